"""What a frontend's request must look like before the kernel acts on it.

The client is authenticated (the connection's HMAC key), but a buggy or hostile
frontend can still send a well-signed request with the wrong shape: ``code`` as a
number, ``user_expressions`` as a list, a ``history_request`` with unknown keys.
ipykernel hands such content to the handler as it is. The handler then raises
("Exception in message handler") and no reply is sent, so the frontend waits
forever. Worse, a wrong field was relayed to the executor, which failed after the
cell had run and never replied: the kernel stopped serving (found by sending
``user_expressions=[1]``).

Here every request's content is checked against the fields the Jupyter messaging
specification (5.4) gives it, before any handler runs. A request that does not
fit gets its ``*_reply`` with ``status: error`` naming the field and what it must
be, and the kernel goes on serving. Fields the specification does not name are
left alone (frontends add their own), except where ipykernel spreads the content
into a call (``history_request``), where an unknown key would raise.

Hand-written rather than jsonschema: it runs on every cell (issue 14 counts
microseconds there), and its messages name the field in words a user can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MALFORMED", "malformed", "reply_type"]

#: The ``ename`` of the error reply to a request that does not fit its type.
MALFORMED = "MalformedRequest"


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_int(value: Any) -> bool:
    # bool is an int subclass; True is not a cursor position.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _is_optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_optional_int(value: Any) -> bool:
    return value is None or _is_int(value)


@dataclass(frozen=True)
class Field:
    """One field of a request's content: its check and how to say what it must be."""

    name: str
    check: Callable[[Any], bool]
    must_be: str
    required: bool = False


_CODE = Field("code", _is_str, "a string", required=True)
_COMM_ID = Field("comm_id", _is_str, "a string", required=True)
_DATA = Field("data", _is_object, "an object")

#: Request type -> its fields. A type not listed here is checked only for an
#: object as its content (kernel_info, connect, interrupt, usage, debug: the
#: debugger's relay has a schema of its own, ``debug.py``).
FIELDS: Mapping[str, tuple[Field, ...]] = {
    "execute_request": (
        _CODE,
        Field("silent", _is_bool, "true or false"),
        Field("store_history", _is_bool, "true or false"),
        Field(
            "user_expressions",
            _is_str_map,
            "an object of strings (names to Python expressions)",
        ),
        Field("allow_stdin", _is_bool, "true or false"),
        Field("stop_on_error", _is_bool, "true or false"),
    ),
    "complete_request": (_CODE, Field("cursor_pos", _is_optional_int, "an integer or null")),
    "inspect_request": (
        _CODE,
        Field("cursor_pos", _is_int, "an integer", required=True),
        Field("detail_level", lambda v: v in (0, 1) and _is_int(v), "0 or 1"),
        Field("omit_sections", _is_str_list, "a list of strings"),
    ),
    "is_complete_request": (_CODE,),
    "history_request": (
        Field(
            "hist_access_type",
            lambda v: v in ("range", "tail", "search"),
            "'range', 'tail' or 'search'",
            required=True,
        ),
        Field("output", _is_bool, "true or false", required=True),
        Field("raw", _is_bool, "true or false", required=True),
        Field("session", _is_optional_int, "an integer or null"),
        Field("start", _is_optional_int, "an integer or null"),
        Field("stop", _is_optional_int, "an integer or null"),
        Field("n", lambda v: v is None or _is_count(v), "a non-negative integer or null"),
        Field("pattern", _is_optional_str, "a string or null"),
        Field("unique", _is_bool, "true or false"),
    ),
    "comm_info_request": (Field("target_name", _is_optional_str, "a string or null"),),
    "shutdown_request": (Field("restart", _is_bool, "true or false"),),
    "comm_open": (
        _COMM_ID,
        Field("target_name", _is_str, "a string", required=True),
        _DATA,
        Field("target_module", _is_optional_str, "a string or null"),
    ),
    "comm_msg": (_COMM_ID, _DATA),
    "comm_close": (_COMM_ID, _DATA),
}

#: Types whose content ipykernel spreads into a call: any other key would raise.
CLOSED = frozenset({"history_request"})


def _shown(value: Any) -> str:
    """A value as a message shows it: short, and saying what kind it is."""
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return f"the string {value[:30]!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def malformed(msg_type: str, content: Any) -> str | None:
    """Why this request's content does not fit its type, or None when it does."""
    if not isinstance(content, dict):
        return f"its content must be an object, not {_shown(content)}"
    fields = FIELDS.get(msg_type, ())
    for field in fields:
        if field.name not in content:
            if field.required:
                return f"the field '{field.name}' ({field.must_be}) is missing"
            continue
        value = content[field.name]
        if not field.check(value):
            return f"'{field.name}' must be {field.must_be}, not {_shown(value)}"
    if msg_type in CLOSED:
        known = {field.name for field in fields}
        unknown = sorted(str(key) for key in content if key not in known)
        if unknown:
            return f"it has no field {', '.join(repr(k) for k in unknown[:5])}"
    if msg_type in ("complete_request", "inspect_request"):
        return _cursor_outside(content)
    return None


def _cursor_outside(content: dict[str, Any]) -> str | None:
    cursor, code = content.get("cursor_pos"), content["code"]
    if cursor is not None and not 0 <= cursor <= len(code):
        return f"'cursor_pos' {cursor} is outside the code (0 to {len(code)} characters)"
    return None


def reply_type(msg_type: str) -> str | None:
    """The reply a request gets; None for messages that have none (comm messages)."""
    if msg_type.endswith("_request"):
        return msg_type[: -len("_request")] + "_reply"
    return None
