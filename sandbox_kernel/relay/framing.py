"""The frame format both sides share: a header and an encoder, nothing that parses.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON
holding one object with a ``"type"`` key. Both directions use the same framing.
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
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "HEADER",
    "STREAM_FRAME_CHARS",
    "encode_frame",
    "frame_limit",
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
