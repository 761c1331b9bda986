"""The frame format both sides share: a header and an encoder, nothing that parses.

A frame is a 4-byte big-endian length followed by that many bytes of body. A body
is UTF-8 JSON holding one object with a ``"type"`` key. Both directions use the same
framing.

An output bundle (``display_data``, ``update_display_data``, ``execute_result``)
whose text values are large (an image's base64, a page of HTML) may instead travel
as an *attached* body: the byte ``ATTACHED`` (0x01, never the first byte of JSON),
a 4-byte length of a JSON head, the head, then the large values' UTF-8 bytes one
after the other. In the head each such value stands as ``null`` in ``data``, and
``"attached"`` maps its MIME type to its length in bytes, in the order of the bytes.
The values then cost neither a JSON escape on this side nor a JSON parse on the
trusted side, which only decodes them as strict UTF-8 (relay/reader.py checks the
lengths, the MIME types and the placeholders; the result is the same message).

A comm message's binary buffers travel attached the same way, as raw bytes instead
of base64 inside the JSON: the head's ``"buffers"`` is empty and
``"attached_buffers"`` lists their lengths in order. The executor hands them to
:func:`encode_frame_parts` as bytes; base64 strings (the plain form) stay in the JSON.
This module is imported inside the sandbox (the executor writes frames, the
launcher reports setup failures in them), so it holds no parser of child bytes:
that is :mod:`sandbox_kernel.relay.reader`, which only the trusted side imports.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ATTACHABLE_TYPES",
    "ATTACHED",
    "ATTACH_MIN_BYTES",
    "COMM_TYPES",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "HEADER",
    "STREAM_FRAME_CHARS",
    "encode_frame",
    "encode_frame_parts",
    "frame_limit",
    "is_json_mime",
]

HEADER = struct.Struct(">I")
# What frames need: a stream chunk is at most STREAM_FRAME_CHARS characters (the
# executor splits longer text), and one output is at most Output.max_message_bytes
# once serialised; comm buffers travel as base64 (4/3 of their size). A frame that
# could not be relayed anyway is not worth reading: frame_limit() is the one place
# that turns the message cap into the frame limit, for both sides.
STREAM_FRAME_CHARS = 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
FRAME_ENVELOPE_BYTES = 1024 * 1024


def frame_limit(max_message_bytes: int) -> int:
    """The largest frame the trusted side reads, for a given per-message output cap."""
    return max(max_message_bytes * 4 // 3, 6 * STREAM_FRAME_CHARS) + FRAME_ENVELOPE_BYTES


DEFAULT_MAX_FRAME_BYTES = frame_limit(DEFAULT_MAX_MESSAGE_BYTES)


# Bound once, at import: in the executor this module shares the interpreter with the
# cells, and a cell that rebinds json.dumps would otherwise garble every frame after it.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def encode_frame(message: Mapping[str, Any]) -> bytes:
    """Serialise one message into a length-prefixed frame."""
    body = _encode(message)
    # A lone surrogate (printable from Python) can only occur inside a JSON
    # string, where "\\udXXX" is the JSON escape for it: backslashreplace keeps
    # the frame valid UTF-8 and decodes back to the same str.
    data = body.encode("utf-8", "backslashreplace")
    return HEADER.pack(len(data)) + data


# First byte of an attached body (JSON starts with '{' or whitespace, never 0x01).
ATTACHED = b"\x01"
# Below this a value stays in the JSON: escaping it costs less than a second part.
ATTACH_MIN_BYTES = 64 * 1024
ATTACHABLE_TYPES = frozenset({"display_data", "update_display_data", "execute_result"})
COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})


def is_json_mime(mime: str) -> bool:
    """Whether a bundle's value for ``mime`` is JSON (any value) rather than text."""
    return mime == "application/json" or mime.endswith("+json")


def encode_frame_parts(message: Mapping[str, Any]) -> tuple[list[bytes], int]:
    """Serialise one message into the parts of one frame (to send in one go, in order)
    and the length of its body. Large text values of an output bundle are attached
    (see the module's docstring); anything else is :func:`encode_frame`."""
    buffers = message.get("buffers")
    if (
        message.get("type") in COMM_TYPES
        and isinstance(buffers, list)
        and buffers
        and all(isinstance(b, (bytes, bytearray, memoryview)) for b in buffers)
    ):
        raw = [bytes(b) for b in buffers]
        head = _encode(
            {**message, "buffers": [], "attached_buffers": [len(b) for b in raw]}
        ).encode("utf-8", "backslashreplace")
        prefix = ATTACHED + HEADER.pack(len(head))
        length = len(prefix) + len(head) + sum(len(b) for b in raw)
        return [HEADER.pack(length) + prefix + head, *raw], length
    data = message.get("data")
    if message.get("type") in ATTACHABLE_TYPES and isinstance(data, dict):
        attached: dict[str, int] = {}
        blobs: list[bytes] = []
        for mime, value in data.items():
            if (
                isinstance(value, str)
                and len(value) >= ATTACH_MIN_BYTES // 4
                and isinstance(mime, str)
                and not is_json_mime(mime)
            ):
                try:
                    # Strict: a lone surrogate cannot be UTF-8; such text stays in the
                    # JSON, where it travels escaped as before.
                    blob = value.encode("utf-8")
                except UnicodeEncodeError:
                    continue
                if len(blob) >= ATTACH_MIN_BYTES:
                    attached[mime] = len(blob)
                    blobs.append(blob)
        if blobs:
            head_message = {
                **message,
                "data": {k: None if k in attached else v for k, v in data.items()},
                "attached": attached,
            }
            head = _encode(head_message).encode("utf-8", "backslashreplace")
            prefix = ATTACHED + HEADER.pack(len(head))
            length = len(prefix) + len(head) + sum(len(b) for b in blobs)
            return [HEADER.pack(length) + prefix + head, *blobs], length
    frame = encode_frame(message)
    return [frame], len(frame) - HEADER.size
