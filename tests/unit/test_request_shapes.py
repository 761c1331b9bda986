"""requests.py: what jupyter_client and JupyterLab send passes; wrong shapes are named."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_client.client import KernelClient
from jupyter_client.session import Session

from sandbox_kernel.kernel.requests import malformed, reply_type


class _Recorder:
    """Stands in for a channel: keeps what the client would have sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, msg: dict[str, Any]) -> None:
        self.sent.append(msg)


def _sent_by_jupyter_client() -> list[dict[str, Any]]:
    client = KernelClient(session=Session(key=b"k"))
    shell, control = _Recorder(), _Recorder()
    client._shell_channel = shell  # type: ignore[assignment]
    client._control_channel = control  # type: ignore[assignment]
    client.execute("1+1")
    client.execute("x", silent=True, store_history=False, user_expressions={"a": "x"})
    client.execute("input()", allow_stdin=True, stop_on_error=False)
    client.complete("pri")
    client.complete("print(1)", cursor_pos=3)
    client.inspect("print", detail_level=1)
    client.history()
    client.history(hist_access_type="tail", n=10)
    client.history(hist_access_type="range", session=0, start=1, stop=5)
    client.history(hist_access_type="search", pattern="x*", unique=True)
    client.is_complete("for i in x:")
    client.comm_info()
    client.comm_info(target_name="jupyter.widget")
    client.kernel_info()
    client.shutdown(restart=True)
    return shell.sent + control.sent


# What JupyterLab 4 sends (services/src/kernel/kernel.ts and the widget manager).
JUPYTERLAB: list[tuple[str, dict[str, Any]]] = [
    (
        "execute_request",
        {
            "code": "1+1",
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": True,
            "stop_on_error": True,
        },
    ),
    ("complete_request", {"code": "im", "cursor_pos": 2}),
    ("inspect_request", {"code": "print", "cursor_pos": 5, "detail_level": 0}),
    ("history_request", {"output": False, "raw": True, "hist_access_type": "tail", "n": 1000}),
    ("is_complete_request", {"code": "x = ("}),
    ("comm_info_request", {"target_name": "jupyter.widget"}),
    ("comm_open", {"comm_id": "c1", "target_name": "jupyter.widget", "data": {}}),
    ("comm_open", {"comm_id": "c1", "target_name": "t", "data": {}, "target_module": None}),
    ("comm_msg", {"comm_id": "c1", "data": {"method": "update", "state": {}}}),
    ("comm_close", {"comm_id": "c1", "data": {}}),
    ("comm_close", {"comm_id": "c1"}),
    ("debug_request", {"command": "initialize", "seq": 1, "type": "request", "arguments": {}}),
    ("usage_request", {}),
]


@pytest.mark.parametrize(
    "msg", _sent_by_jupyter_client(), ids=lambda m: str(m["header"]["msg_type"])
)
def test_what_jupyter_client_sends_passes(msg: dict[str, Any]) -> None:
    assert malformed(msg["header"]["msg_type"], msg["content"]) is None


@pytest.mark.parametrize(("msg_type", "content"), JUPYTERLAB, ids=lambda v: str(v)[:30])
def test_what_jupyterlab_sends_passes(msg_type: str, content: dict[str, Any]) -> None:
    assert malformed(msg_type, content) is None


@pytest.mark.parametrize(
    ("msg_type", "content", "words"),
    [
        ("execute_request", "code", "its content must be an object, not the string 'code'"),
        ("kernel_info_request", [1], "its content must be an object, not a list"),
        ("execute_request", {}, "the field 'code' (a string) is missing"),
        ("execute_request", {"code": b"x"}, "'code' must be a string, not b'x'"[:22]),
        ("execute_request", {"code": "1", "silent": 0}, "'silent' must be true or false, not 0"),
        ("execute_request", {"code": "1", "user_expressions": {"a": 1}}, "object of strings"),
        ("execute_request", {"code": "1", "user_expressions": {1: "a"}}, "object of strings"),
        ("complete_request", {"code": "ab", "cursor_pos": -1}, "'cursor_pos' -1 is outside"),
        ("complete_request", {"code": "ab", "cursor_pos": 3}, "outside the code (0 to 2"),
        ("complete_request", {"code": "ab", "cursor_pos": 1.5}, "an integer or null, not 1.5"),
        ("inspect_request", {"code": "a", "cursor_pos": 1, "detail_level": 2}, "0 or 1, not 2"),
        ("inspect_request", {"code": "a", "cursor_pos": 1, "detail_level": True}, "0 or 1"),
        ("inspect_request", {"code": "a", "cursor_pos": 1, "omit_sections": "x"}, "a list"),
        ("history_request", {"hist_access_type": "tail", "output": 1, "raw": True}, "'output'"),
        (
            "history_request",
            {"hist_access_type": "tail", "output": True, "raw": True, "n": -1},
            "a non-negative integer or null, not -1",
        ),
        (
            "history_request",
            {"hist_access_type": "tail", "output": True, "raw": True, "a": 1, "b": 2},
            "it has no field 'a', 'b'",
        ),
        ("comm_open", {"comm_id": "c", "data": {}}, "the field 'target_name' (a string)"),
        ("comm_msg", {"comm_id": "c", "data": [1]}, "'data' must be an object, not a list"),
        ("comm_close", {"data": {}}, "the field 'comm_id' (a string) is missing"),
        ("shutdown_request", {"restart": None}, "'restart' must be true or false, not None"),
    ],
)
def test_a_wrong_shape_is_named(msg_type: str, content: Any, words: str) -> None:
    problem = malformed(msg_type, content)
    assert problem is not None
    assert words in problem


def test_a_long_string_is_shown_short() -> None:
    problem = malformed("execute_request", {"code": "1", "silent": "x" * 10_000})
    assert problem is not None
    assert len(problem) < 200


@pytest.mark.parametrize(
    ("request_type", "reply"),
    [
        ("execute_request", "execute_reply"),
        ("history_request", "history_reply"),
        ("comm_msg", None),
        ("comm_open", None),
    ],
)
def test_reply_type(request_type: str, reply: str | None) -> None:
    assert reply_type(request_type) == reply
