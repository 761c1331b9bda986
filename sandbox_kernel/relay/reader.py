"""The one parser of child bytes, imported only by the trusted side.

Frames are laid out as :mod:`sandbox_kernel.framing` says (the part both
sides share). Only the trusted side's reader (:class:`FrameReader`) treats its input as hostile:
it checks the length before allocating, decodes strictly, bounds nesting depth,
and validates every message against the schema of its type. Anything that does
not pass becomes a :class:`~sandbox_kernel.errors.RelayError`, never an exception
from deep inside ``json`` (``RecursionError`` on deep nesting, for instance).

The child never supplies Jupyter headers, ids or signatures: the schemas below
drop every key they do not know, and the trusted side builds and signs each
Jupyter message itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import RelayError
from ..framing import (
    ATTACHABLE_TYPES,
    ATTACHED,
    COMM_TYPES,
    DEFAULT_MAX_FRAME_BYTES,
    HEADER,
    is_json_mime,
)
from ..units import MIB

__all__ = [
    "CHILD_MESSAGE_TYPES",
    "MAX_DEPTH",
    "MAX_VALUES",
    "FrameReader",
    "FrameRejected",
    "count_values",
    "decode_body",
    "decode_payload",
    "decoding_cost",
    "validate_child_message",
]

# Deep enough for any widget state or plotly figure seen in practice; shallow
# enough that validation and re-serialisation never approach the C stack.
MAX_DEPTH = 64
MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
STREAM_NAMES = frozenset({"stdout", "stderr"})
PAYLOAD_SOURCES = frozenset({"page", "set_next_input", "ask_exit", "edit_magic"})
LOG_LEVELS = frozenset({"debug", "info", "warning", "error"})


class FrameRejected(RelayError):
    """One frame was invalid but the framing is intact: skip it and keep reading."""


# JSON values (scalars, strings, containers and object keys) one frame may hold.
# Decoding one costs the trusted process at most ~150 bytes (a key of a large
# object, with its dict slot and the pair json builds first; tests/unit/
# test_relay_protocol.py measures it), so this caps a frame's decoding cost at
# ~150 MiB before json builds anything. A plotly figure of 250,000 points holds
# ~500,000 values; a frontend would not draw much more.
MAX_VALUES = 1_000_000
# Every value but the first follows one of these bytes (',' and '[' in arrays;
# '{', ',' and ':' in objects), so their count bounds the values from above.
_SEPARATORS = (b",", b":", b"[", b"{")
# A whole JSON string, escapes included. Possessive, so a long string costs no
# backtracking state.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')


def count_values(data: bytes) -> int:
    """An upper bound on the JSON values in ``data``, counted without decoding it.

    Separators are counted at C speed. Where there are many, they may sit inside
    strings (a CSV file shown whole); those are then counted string by string
    and taken off, as long as there are few enough strings for that to be cheap.
    """
    bound = 1 + sum(data.count(sep) for sep in _SEPARATORS)
    if bound <= MAX_VALUES or data.count(b'"') > 2 * MAX_VALUES:
        return bound
    inside = 0
    for match in _STRING.finditer(data):
        start, end = match.span()
        if end - start > 3:
            inside += sum(data.count(sep, start, end) for sep in _SEPARATORS)
    return bound - inside


# Worst cases per decoded value and per byte, measured in
# tests/unit/test_relay_protocol.py: a distinct object key (with its pair and
# dict slot), and text decoded as UCS-4 both as a whole and in its strings.
VALUE_COST_BYTES = 160
BYTE_COST = 9
HEADROOM_CHECK_BYTES = 1024 * 1024


def decoding_cost(data: bytes) -> int:
    """An upper bound on the memory ``decode_body(data)`` takes: the values of its JSON,
    and every byte (attached values included) decoded as UCS-4 twice over at worst."""
    json_part = data
    if data[:1] == ATTACHED and len(data) >= 1 + HEADER.size:
        (head_length,) = HEADER.unpack_from(data, 1)
        json_part = data[1 + HEADER.size : 1 + HEADER.size + head_length]
    return count_values(json_part) * VALUE_COST_BYTES + len(data) * BYTE_COST


def decode_body(body: bytes) -> Any:
    """Decode one frame body: plain JSON (:func:`decode_payload`), or an attached body
    (sandbox_kernel/framing.py): its JSON head decoded the same way, then each attached value
    checked against the head and decoded as strict UTF-8 into its place in ``data``.

    The result is what the same message sent as plain JSON decodes to, so the schema
    and the gate see no difference. Anything that does not add up is a rejected frame:
    a head that overruns the body, lengths that do not cover the bytes exactly, a MIME
    type that is not a text placeholder of this bundle, bytes that are not UTF-8."""
    if body[:1] != ATTACHED:
        return decode_payload(body)
    start = 1 + HEADER.size
    if len(body) < start:
        raise FrameRejected("attached frame is too short for its head's length")
    (head_length,) = HEADER.unpack_from(body, 1)
    if head_length > len(body) - start:
        raise FrameRejected(
            f"attached frame's head of {head_length:,} bytes overruns its "
            f"{len(body) - start:,} bytes"
        )
    value = decode_payload(body[start : start + head_length])
    if not isinstance(value, dict):
        raise FrameRejected("frame is not a JSON object")
    if value.get("type") in COMM_TYPES:
        return _attach_buffers(value, body, start + head_length)
    if value.get("type") not in ATTACHABLE_TYPES:
        raise FrameRejected(f"{str(value.get('type'))[:40]!r} frames carry no attached values")
    attached = value.pop("attached", None)
    data = value.get("data")
    if not isinstance(attached, dict) or not attached or not isinstance(data, dict):
        raise FrameRejected("attached frame lacks its 'attached' lengths or its data")
    offset = start + head_length
    lengths: list[tuple[str, int]] = []
    for mime, length in attached.items():
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise FrameRejected("attached lengths must be non-negative integers")
        if mime not in data or data[mime] is not None:
            raise FrameRejected(f"attached {mime[:40]!r} has no null placeholder in data")
        if is_json_mime(mime):
            raise FrameRejected(f"attached {mime[:40]!r} is JSON, which is never attached")
        lengths.append((mime, length))
    if sum(length for _, length in lengths) != len(body) - offset:
        raise FrameRejected(
            f"attached lengths add up to {sum(n for _, n in lengths):,} bytes, "
            f"the frame holds {len(body) - offset:,}"
        )
    with memoryview(body) as view:
        for mime, length in lengths:
            try:
                # str() of a buffer decodes it in place: no copy of the bytes first.
                data[mime] = str(view[offset : offset + length], "utf-8", "strict")
            except UnicodeDecodeError as exc:
                raise FrameRejected(
                    f"attached {mime[:40]!r} is not valid UTF-8 ({exc.reason} at byte {exc.start})"
                ) from None
            except MemoryError:
                raise FrameRejected(
                    f"frame of {len(body):,} bytes does not fit in the kernel's memory limit"
                ) from None
            offset += length
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]}... overflows to infinity")
    return value


def decode_payload(data: bytes) -> Any:
    """Decode one frame body strictly: UTF-8, plain JSON, finite numbers, bounded
    values and depth. The value count is checked before anything is built."""
    values = count_values(data)
    if values > MAX_VALUES:
        raise FrameRejected(
            f"frame holds {values:,} JSON values, more than the {MAX_VALUES:,} "
            "the kernel decodes for one output"
        )
    try:
        text = data.decode("utf-8", "strict")
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except UnicodeDecodeError as exc:
        raise FrameRejected(
            f"frame is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    except RecursionError:
        raise FrameRejected("frame nests too deeply to decode") from None
    except MemoryError:
        # The kernel's own memory limit (RLIMIT_DATA) stopped the decoding.
        raise FrameRejected(
            f"frame of {len(data):,} bytes does not fit in the kernel's memory limit"
        ) from None
    except ValueError as exc:
        raise FrameRejected(f"frame is not valid JSON: {exc}") from None
    _check_depth(value)
    if "\\ud" in text or "\\uD" in text:
        value = _replace_lone_surrogates(value)
    return value


def _attach_buffers(value: dict[str, Any], body: bytes, offset: int) -> dict[str, Any]:
    """A comm message's attached buffers: raw bytes, in the order of their lengths, that
    cover the rest of the frame exactly; the head's own buffers must be empty."""
    lengths = value.pop("attached_buffers", None)
    if not isinstance(lengths, list) or not lengths or value.get("buffers", []) != []:
        raise FrameRejected("attached comm frame lacks its buffer lengths or has buffers")
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in lengths):
        raise FrameRejected("attached lengths must be non-negative integers")
    if sum(lengths) != len(body) - offset:
        raise FrameRejected(
            f"attached lengths add up to {sum(lengths):,} bytes, "
            f"the frame holds {len(body) - offset:,}"
        )
    buffers: list[bytes] = []
    for length in lengths:
        buffers.append(body[offset : offset + length])
        offset += length
    # Bytes, which no JSON decodes to: decode_buffers() knows them from base64 text.
    value["buffers"] = buffers
    return value


def _replace_lone_surrogates(value: Any) -> Any:
    """Lone surrogates survive JSON but not the encoders downstream (jupyter_client's
    packer would emit invalid UTF-8 or fail): each becomes U+FFFD, as a UTF-8 decoder would."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            return _SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, list):
        return [_replace_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in value.items()}
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_depth(value: Any) -> None:
    # Iterative, so a hostile document cannot exhaust the Python stack here.
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FrameRejected(f"frame nests deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


class FrameReader:
    """Incremental, hostile-input frame parser for the trusted side.

    An oversized length header raises :class:`RelayError`: the stream cannot be
    resynchronised, so the channel is dead. A frame whose body is malformed is
    consumed and reported as a :class:`FrameRejected` item, and reading goes on.
    """

    def __init__(
        self,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        headroom: Callable[[], int | None] | None = None,
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        # Bytes the process may still allocate (its memory limit less its use).
        self.headroom = headroom
        self._buffer = bytearray()
        self._need: int | None = None

    @property
    def has_partial_frame(self) -> bool:
        """Whether bytes of an unfinished frame are buffered (for the slow-loris deadline)."""
        return bool(self._buffer) or self._need is not None

    def feed(self, data: bytes) -> list[dict[str, Any] | FrameRejected]:
        """Add bytes; return the frames they complete, in order.

        Each item is a validated message, or a :class:`FrameRejected` describing a
        frame that was consumed and dropped. A fatal :class:`RelayError` is raised.
        """
        self._buffer += data
        out: list[dict[str, Any] | FrameRejected] = []
        while True:
            if self._need is None:
                if len(self._buffer) < HEADER.size:
                    return out
                (length,) = HEADER.unpack_from(self._buffer)
                if length > self.max_frame_bytes:
                    self._buffer.clear()
                    error = RelayError(
                        f"frame of {length} bytes exceeds the {self.max_frame_bytes}-byte limit"
                    )
                    # The frames completed before the bad header are good: they
                    # travel with the error, so no output is lost.
                    error.items = out  # type: ignore[attr-defined]
                    raise error
                del self._buffer[: HEADER.size]
                self._need = length
            if len(self._buffer) < self._need:
                return out
            with memoryview(self._buffer) as view:
                body = bytes(view[: self._need])  # one copy, not two
            del self._buffer[: self._need]
            self._need = None
            try:
                self._check_headroom(body)
                out.append(validate_child_message(decode_body(body)))
            except FrameRejected as exc:
                out.append(exc)
            del body

    def _check_headroom(self, body: bytes) -> None:
        """Refuse, with a clear reason, a frame whose decoding would cross the memory limit."""
        if self.headroom is None or len(body) < HEADROOM_CHECK_BYTES:
            return
        left = self.headroom()
        need = decoding_cost(body)
        if left is not None and need > left:
            raise FrameRejected(
                f"decoding this {len(body) / MIB:.1f} MiB frame could take "
                f"{need / MIB:.0f} MiB, more than the {left / MIB:.0f} MiB left under the "
                "kernel's own memory limit (Limits.kernel_memory_mb)"
            )

    def eof_error(self) -> RelayError | None:
        """What to report if the stream ended now (EOF in the middle of a frame)."""
        if self.has_partial_frame:
            return RelayError("the executor's output ended in the middle of a frame")
        return None


# ---------------------------------------------------------------------------
# Schema: one validator per child message type. Each returns a new dict that
# holds only the keys it checked, so nothing unvalidated passes through.
# ---------------------------------------------------------------------------


def _field(
    msg: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any = ...
) -> Any:
    if key not in msg:
        if default is ...:
            raise FrameRejected(f"{msg.get('type')!s} frame lacks {key!r}")
        return default
    value = msg[key]
    # bool is an int subclass; never accept it where an int is meant.
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise FrameRejected(f"{msg.get('type')!s} frame field {key!r} has the wrong type")
    return value


def _str(msg: Mapping[str, Any], key: str, default: Any = ..., max_len: int | None = None) -> Any:
    value = _field(msg, key, str, default)
    if isinstance(value, str) and max_len is not None and len(value) > max_len:
        raise FrameRejected(f"{msg.get('type')!s} frame field {key!r} is too long")
    return value


def _int(msg: Mapping[str, Any], key: str, default: Any = ...) -> Any:
    return _field(msg, key, int, default)


def _bool(msg: Mapping[str, Any], key: str, default: Any = ...) -> Any:
    return _field(msg, key, bool, default)


def _dict(msg: Mapping[str, Any], key: str, default: Any = ...) -> Any:
    return _field(msg, key, dict, default)


def _str_list(msg: Mapping[str, Any], key: str, default: Any = ...) -> Any:
    value = _field(msg, key, list, default)
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        raise FrameRejected(f"{msg.get('type')!s} frame field {key!r} must be a list of strings")
    return value


def validate_mime_bundle(bundle: Any, where: str) -> dict[str, Any]:
    """A display bundle: MIME type -> str (or JSON for ``*json`` types)."""
    if not isinstance(bundle, dict):
        raise FrameRejected(f"{where}: data must be an object")
    clean: dict[str, Any] = {}
    for mime, value in bundle.items():
        if not isinstance(mime, str) or not MIME_RE.fullmatch(mime):
            raise FrameRejected(f"{where}: {str(mime)[:40]!r} is not a MIME type")
        if is_json_mime(mime):
            if not isinstance(value, (dict, list, str, int, float, bool)) and value is not None:
                raise FrameRejected(f"{where}: {mime} value is not JSON")
        elif not isinstance(value, str):
            raise FrameRejected(f"{where}: {mime} value must be a string")
        clean[mime] = value
    return clean


def _metadata(msg: Mapping[str, Any], key: str = "metadata") -> dict[str, Any]:
    value = _dict(msg, key, {})
    assert isinstance(value, dict)
    return value


def _transient(msg: Mapping[str, Any], *, need_display_id: bool = False) -> dict[str, Any]:
    transient = _dict(msg, "transient", {})
    clean: dict[str, Any] = {}
    if "display_id" in transient:
        display_id = transient["display_id"]
        if not isinstance(display_id, str) or not 0 < len(display_id) <= 256:
            raise FrameRejected("display_id must be a short string")
        clean["display_id"] = display_id
    elif need_display_id:
        raise FrameRejected("update_display_data needs a display_id")
    return clean


def _v_stream(msg: Mapping[str, Any]) -> dict[str, Any]:
    name = _str(msg, "name")
    if name not in STREAM_NAMES:
        raise FrameRejected(f"stream name {str(name)[:20]!r} is not stdout or stderr")
    return {"name": name, "text": _str(msg, "text")}


def _v_display(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "data": validate_mime_bundle(msg.get("data"), str(msg["type"])),
        "metadata": _metadata(msg),
        "transient": _transient(msg, need_display_id=msg["type"] == "update_display_data"),
    }


def _v_execute_result(msg: Mapping[str, Any]) -> dict[str, Any]:
    out = {
        "execution_count": _int(msg, "execution_count"),
        "data": validate_mime_bundle(msg.get("data"), "execute_result"),
        "metadata": _metadata(msg),
    }
    transient = _transient(msg)
    if transient:
        out["transient"] = transient
    return out


def _v_clear_output(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {"wait": _bool(msg, "wait", False)}


def _v_error(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "ename": _str(msg, "ename", max_len=1000),
        "evalue": _str(msg, "evalue"),
        "traceback": _str_list(msg, "traceback", []),
    }


def _v_user_expression(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FrameRejected("user expression result must be an object")
    value = {**value, "type": "user_expression"}
    status = _str(value, "status")
    if status == "ok":
        return {
            "status": "ok",
            "data": validate_mime_bundle(value.get("data"), "user_expression"),
            "metadata": _metadata(value),
        }
    if status == "error":
        return {"status": "error", **_v_error(value)}
    raise FrameRejected("user expression status must be ok or error")


def _v_payload(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FrameRejected("payload items must be objects")
    value = {**value, "type": "payload"}
    source = _str(value, "source")
    if source not in PAYLOAD_SOURCES:
        raise FrameRejected(f"payload source {str(source)[:30]!r} is not allowed")
    if source == "page":
        return {
            "source": "page",
            "data": validate_mime_bundle(value.get("data"), "page payload"),
            "start": _int(value, "start", 0),
        }
    if source == "set_next_input":
        return {
            "source": "set_next_input",
            "text": _str(value, "text"),
            "replace": _bool(value, "replace", False),
        }
    if source == "ask_exit":
        return {"source": "ask_exit", "keepkernel": _bool(value, "keepkernel", False)}
    return {
        "source": "edit_magic",
        "filename": _str(value, "filename", max_len=4096),
        "line_number": _int(value, "line_number", 0),
    }


def _stats(stats: dict[str, Any]) -> dict[str, Any]:
    """Figures the executor reports about a cell: numbers and short strings only."""
    clean: dict[str, Any] = {}
    for key, value in list(stats.items())[:20]:
        if (isinstance(value, (int, float)) and not isinstance(value, bool)) or value is None:
            clean[str(key)[:40]] = value
        elif isinstance(value, str):
            clean[str(key)[:40]] = value[:300]
    return clean


def _v_execute_reply(msg: Mapping[str, Any]) -> dict[str, Any]:
    status = _str(msg, "status")
    if status not in {"ok", "error"}:
        raise FrameRejected("execute_reply status must be ok or error")
    expressions = _dict(msg, "user_expressions", {})
    payload = _field(msg, "payload", list, [])
    out: dict[str, Any] = {
        "id": _int(msg, "id"),
        "status": status,
        "user_expressions": {
            str(name): _v_user_expression(value) for name, value in expressions.items()
        },
        "payload": [_v_payload(p) for p in payload],
        "stats": _stats(_dict(msg, "stats", {})),
    }
    if status == "error":
        out.update(_v_error(msg))
    return out


def _v_input_request(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "prompt": _str(msg, "prompt", "", max_len=100_000),
        "password": _bool(msg, "password", False),
    }


def decode_buffers(msg: Mapping[str, Any]) -> list[bytes]:
    """Binary comm buffers: attached after the head as bytes (decode_body put them
    here), or base64 strings inside the JSON frame."""
    attached = msg.get("buffers")
    if isinstance(attached, list) and attached and all(type(b) is bytes for b in attached):
        return list(attached)
    raw = _str_list(msg, "buffers", [])
    try:
        return [base64.b64decode(b, validate=True) for b in raw]
    except (binascii.Error, ValueError):
        raise FrameRejected("comm buffers must be base64") from None


def _comm_common(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "comm_id": _str(msg, "comm_id", max_len=256),
        "data": _dict(msg, "data", {}),
        "metadata": _metadata(msg),
        "buffers": decode_buffers(msg),
    }


def _v_comm_open(msg: Mapping[str, Any]) -> dict[str, Any]:
    out = _comm_common(msg)
    out["target_name"] = _str(msg, "target_name", max_len=256)
    target_module = _str(msg, "target_module", None, max_len=256)
    if target_module is not None:
        out["target_module"] = target_module
    return out


def _v_complete_reply(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": _int(msg, "id"),
        "matches": _str_list(msg, "matches"),
        "cursor_start": _int(msg, "cursor_start"),
        "cursor_end": _int(msg, "cursor_end"),
        "metadata": _metadata(msg),
    }


def _v_inspect_reply(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": _int(msg, "id"),
        "found": _bool(msg, "found"),
        "data": validate_mime_bundle(msg.get("data", {}), "inspect_reply"),
        "metadata": _metadata(msg),
    }


def _v_snapshot(msg: Mapping[str, Any]) -> dict[str, Any]:
    # pid 0: no snapshot for this cell, and "skipped" says why.
    return {"pid": _int(msg, "pid"), "skipped": _str(msg, "skipped", "", max_len=300)}


def _v_restored(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {"token": _str(msg, "token", max_len=100), "pid": _int(msg, "pid")}


def _v_oversized(msg: Mapping[str, Any]) -> dict[str, Any]:
    # The executor's stand-in for an output whose frame would pass the frame limit.
    return {"kind": _str(msg, "kind", max_len=40), "bytes": _int(msg, "bytes")}


def _v_done(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": _int(msg, "id")}


def _optional_int(msg: Mapping[str, Any], key: str) -> int | None:
    value = msg.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameRejected(f"{msg.get('type')!s} frame field {key!r} must be an integer")
    return value


def _v_exit(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "pid": _int(msg, "pid", 0),
        "code": _optional_int(msg, "code"),
        "signal": _optional_int(msg, "signal"),
        "oom": _bool(msg, "oom", False),
    }


def _v_ready(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "pid": _int(msg, "pid"),
        "python": _str(msg, "python", "", max_len=200),
        "ipython": _str(msg, "ipython", "", max_len=50),
        "isolation": _dict(msg, "isolation", {}),
    }


def _v_setup_failed(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "mechanism": _str(msg, "mechanism", "sandbox", max_len=100),
        "error": _str(msg, "error", max_len=10_000),
        "isolation": _dict(msg, "isolation", {}),
    }


def _v_log(msg: Mapping[str, Any]) -> dict[str, Any]:
    level = _str(msg, "level", "info")
    if level not in LOG_LEVELS:
        raise FrameRejected("log level is not one of debug/info/warning/error")
    return {"level": level, "message": _str(msg, "message", max_len=10_000)}


def _v_audit(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event": _str(msg, "event", max_len=200),
        "rule": _str(msg, "rule", "", max_len=50),
        "action": _str(msg, "action", "", max_len=20),
        "detail": _str(msg, "detail", "", max_len=2000),
    }


def _debug_content(msg: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """A DAP message from the executor's debugger: an object of the given DAP type.
    It goes to the frontend as it is (its size and depth bounded like every frame);
    the kernel gates the one part a frontend renders (richInspectVariables' data)."""
    content = _dict(msg, "content")
    assert isinstance(content, dict)
    if content.get("type") != kind:
        raise FrameRejected(f"{msg.get('type')} content is not a DAP {kind}")
    name = content.get("event" if kind == "event" else "command")
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        raise FrameRejected(f"{msg.get('type')} content has no {kind} name")
    return content


def _v_debug_reply(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": _int(msg, "id"), "content": _debug_content(msg, "response")}


def _v_debug_event(msg: Mapping[str, Any]) -> dict[str, Any]:
    return {"content": _debug_content(msg, "event")}


_VALIDATORS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "ready": _v_ready,
    "stream": _v_stream,
    "display_data": _v_display,
    "update_display_data": _v_display,
    "execute_result": _v_execute_result,
    "clear_output": _v_clear_output,
    "error": _v_error,
    "execute_reply": _v_execute_reply,
    "input_request": _v_input_request,
    "comm_open": _v_comm_open,
    "comm_msg": _comm_common,
    "comm_close": _comm_common,
    "complete_reply": _v_complete_reply,
    "inspect_reply": _v_inspect_reply,
    "done": _v_done,
    "snapshot": _v_snapshot,
    "restored": _v_restored,
    "exit": _v_exit,
    # The supervisor's answer to end_cell_processes (its own channel only).
    "swept": _v_done,
    "log": _v_log,
    "setup_failed": _v_setup_failed,
    "audit": _v_audit,
    "oversized": _v_oversized,
    "debug_reply": _v_debug_reply,
    "debug_event": _v_debug_event,
}

CHILD_MESSAGE_TYPES = frozenset(_VALIDATORS)
# Frames that answer a request: they carry the request's id and its secret token.
REPLY_FRAME_TYPES = frozenset(
    {"execute_reply", "complete_reply", "inspect_reply", "done", "debug_reply"}
)


def validate_child_message(value: Any) -> dict[str, Any]:
    """Check one decoded frame from the executor; return a clean copy with its ``type``."""
    if not isinstance(value, dict):
        raise FrameRejected("frame is not a JSON object")
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in _VALIDATORS:
        raise FrameRejected(f"unknown frame type {str(kind)[:40]!r}")
    clean = _VALIDATORS[kind](value)
    clean["type"] = kind
    if kind in REPLY_FRAME_TYPES and "token" in value:
        clean["token"] = _str(value, "token", max_len=64)
    # Which request an output belongs to, by the msg_id the kernel gave the child;
    # the kernel maps it back to a parent header it kept, so the child can only
    # pick among real requests.
    parent = value.get("parent")
    if isinstance(parent, str) and 0 < len(parent) <= 128:
        clean["parent"] = parent
    return clean
