"""Requests of the wrong shape from an authenticated frontend: a clear error reply,
and the kernel keeps serving with its state.

ipykernel hands a request's content to its handler as it is; a handler that
raises is logged and nothing is sent, so the frontend waits for ever. Under the
sandbox it was worse: ``user_expressions=[1]`` reached the executor, which failed
after the cell and never replied, and the kernel served nothing more until an
interrupt. The same happened to a one-line cell that breaks the shell's
``user_expressions`` (the last test, with stock ipykernel as the control).
"""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests.utils import execute, reply_to, running_kernel

pytestmark = pytest.mark.timeout(180)

# (request type, content, words the reply's evalue must contain)
MALFORMED: list[tuple[str, Any, str]] = [
    ("execute_request", {"code": 123, "silent": False}, "'code' must be a string, not 123"),
    ("execute_request", {"silent": False}, "the field 'code' (a string) is missing"),
    ("execute_request", {"code": "x", "user_expressions": [1]}, "'user_expressions'"),
    ("execute_request", {"code": "x", "user_expressions": {"a": 5}}, "object of strings"),
    ("execute_request", {"code": "x", "silent": "no"}, "'silent' must be true or false"),
    ("execute_request", {"code": "x", "allow_stdin": "yes"}, "'allow_stdin'"),
    ("execute_request", {"code": "x", "stop_on_error": 1}, "'stop_on_error'"),
    ("complete_request", {"code": 5, "cursor_pos": 0}, "'code' must be a string"),
    ("complete_request", {"code": "pri", "cursor_pos": 999}, "outside the code"),
    ("complete_request", {"code": "pri", "cursor_pos": True}, "'cursor_pos'"),
    ("inspect_request", {"code": "print", "cursor_pos": 5, "detail_level": "x"}, "0 or 1"),
    ("inspect_request", {"code": "print"}, "'cursor_pos' (an integer) is missing"),
    ("is_complete_request", {"code": 7}, "'code' must be a string"),
    ("history_request", {"hist_access_type": "bogus", "output": False, "raw": True}, "'tail'"),
    (
        "history_request",
        {"hist_access_type": "tail", "output": False, "raw": True, "n": 3, "evil": 1},
        "no field 'evil'",
    ),
    ("history_request", {"hist_access_type": "tail", "raw": True}, "'output'"),
    ("comm_info_request", {"target_name": 5}, "'target_name'"),
    ("shutdown_request", {"restart": "yes"}, "'restart' must be true or false"),
]


def _send(kc: BlockingKernelClient, msg_type: str, content: Any, control: bool = False) -> str:
    msg = kc.session.msg(msg_type, content)
    (kc.control_channel if control else kc.shell_channel).send(msg)
    return str(msg["header"]["msg_id"])


def _control_reply(kc: BlockingKernelClient, msg_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.control_channel.get_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg
    raise AssertionError(f"no control reply to {msg_id} within {timeout} s")


def test_each_malformed_request_gets_an_error_reply_and_the_kernel_keeps_serving(
    tmp_path: Path,
) -> None:
    with running_kernel(tmp_path) as (_, kc):
        assert execute(kc, "x = 41").status == "ok"
        for msg_type, content, words in MALFORMED:
            # shutdown_request is a control message: a malformed one must not stop the kernel.
            control = msg_type == "shutdown_request"
            msg_id = _send(kc, msg_type, content, control=control)
            reply = _control_reply(kc, msg_id) if control else reply_to(kc, msg_id)
            assert reply["msg_type"] == msg_type.replace("_request", "_reply")
            body = reply["content"]
            assert body["status"] == "error", (msg_type, content, body)
            assert body["ename"] == "MalformedRequest", body
            assert words in body["evalue"], (words, body["evalue"])
            assert msg_type in body["evalue"]
            assert "keeps serving" in body["evalue"]
        # A comm message has no reply: it is dropped, and the kernel says so in its log.
        _send(kc, "comm_msg", {"comm_id": 5, "data": "x"})
        _send(kc, "comm_open", {"comm_id": "c", "target_name": 7, "data": {}})
        # Nothing above ran, counted, or lost the kernel's state.
        after = execute(kc, "print(x + 1)")
        assert after.status == "ok"
        assert after.stdout == "42\n"
        assert after.reply["content"]["execution_count"] == 2


BREAK_THE_SHELL = "get_ipython().user_expressions = None"


def test_a_cell_that_breaks_the_shell_gets_a_reply_and_the_kernel_keeps_serving(
    tmp_path: Path,
) -> None:
    with running_kernel(tmp_path) as (_, kc):
        assert execute(kc, "x = 41").status == "ok"
        broken = execute(kc, BREAK_THE_SHELL, timeout=60)
        body = broken.reply["content"]
        assert body["status"] == "error"
        assert body["ename"] == "SandboxExecutorError", body
        assert "TypeError" in body["evalue"]
        # The cell itself says it (a frontend does not display the reply's evalue).
        assert "executor failed while handling this cell" in broken.stderr
        # The next cell runs, with the state, and gets its reply.
        after = execute(kc, "print(x + 1)", timeout=60)
        assert after.stdout == "42\n"


def test_control_stock_ipykernel_sends_no_reply_to_that_cell(tmp_path: Path) -> None:
    # Positive control: the check above can fail. Stock ipykernel only logs the
    # handler's exception, and its frontend waits for the reply in vain.
    with running_kernel(tmp_path, kernel_name="python3") as (_, kc):
        assert execute(kc, "x = 41").status == "ok"
        with pytest.raises(TimeoutError):
            execute(kc, BREAK_THE_SHELL, timeout=15)
