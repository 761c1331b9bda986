"""execute_request semantics through jupyter_client, as JupyterLab and nbclient use them."""

from __future__ import annotations

import uuid
from pathlib import Path

from jupyter_client.blocking.client import BlockingKernelClient

from tests.utils import execute, execute_until_idle, strip_ansi


def test_state_persists_and_counts_like_ipython(kc: BlockingKernelClient) -> None:
    first = execute(kc, "value = 21")
    second = execute(kc, "value * 2")
    assert first.status == second.status == "ok"
    assert (
        second.reply["content"]["execution_count"] == first.reply["content"]["execution_count"] + 1
    )
    [result] = second.of_type("execute_result")
    assert result["data"]["text/plain"] == "42"
    assert result["execution_count"] == second.reply["content"]["execution_count"]


def test_error_carries_ipython_traceback(kc: BlockingKernelClient) -> None:
    res = execute(kc, "def f():\n    raise ValueError('boom')\nf()")
    assert res.status == "error"
    content = res.reply["content"]
    assert (content["ename"], content["evalue"]) == ("ValueError", "boom")
    assert res.error is not None
    joined = strip_ansi("\n".join(res.error["traceback"]))
    assert "----> 3 f()" in joined
    assert "ValueError: boom" in joined


def test_silent_publishes_nothing_and_does_not_count(kc: BlockingKernelClient) -> None:
    before = execute(kc, "1").reply["content"]["execution_count"]
    run = execute_until_idle(kc, "print('quiet'); 5", silent=True, reply=False)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == run.msg_id
    seen = [m["msg_type"] for m in run.own()]
    # Stream output still flows for silent cells (as in ipykernel); no
    # execute_input, no execute_result.
    assert "execute_input" not in seen
    assert "execute_result" not in seen
    after = execute(kc, "1").reply["content"]["execution_count"]
    assert after == before + 1


def test_store_history_false_does_not_count(kc: BlockingKernelClient) -> None:
    before = execute(kc, "1").reply["content"]["execution_count"]
    res = execute(kc, "2", store_history=False)
    assert res.reply["content"]["execution_count"] == before
    assert execute(kc, "3").reply["content"]["execution_count"] == before + 1


def test_user_expressions(kc: BlockingKernelClient) -> None:
    res = execute(kc, "a = 6", user_expressions={"double": "a * 2", "bad": "1/0"})
    exprs = res.reply["content"]["user_expressions"]
    assert exprs["double"]["status"] == "ok"
    assert exprs["double"]["data"]["text/plain"] == "12"
    assert exprs["bad"]["status"] == "error"
    assert exprs["bad"]["ename"] == "ZeroDivisionError"


def test_stop_on_error_aborts_queued_cells(kc: BlockingKernelClient) -> None:
    failing = kc.execute("raise RuntimeError('first')")
    queued = kc.execute("print('must not run')")
    replies = {}
    while len(replies) < 2:
        msg = kc.get_shell_msg(timeout=30)
        replies[msg["parent_header"]["msg_id"]] = msg["content"]["status"]
    assert replies == {failing: "error", queued: "aborted"}
    # The queue is open again afterwards.
    assert execute(kc, "'again'").status == "ok"


def test_stop_on_error_false_keeps_going(kc: BlockingKernelClient) -> None:
    kc.execute("raise RuntimeError('first')", stop_on_error=False)
    queued = kc.execute("print('ran')")
    statuses = {}
    while len(statuses) < 2:
        msg = kc.get_shell_msg(timeout=30)
        statuses[msg["parent_header"]["msg_id"]] = msg["content"]["status"]
    assert statuses[queued] == "ok"


def test_stdout_is_streamed_while_the_cell_runs(
    kc: BlockingKernelClient, module_workspace: Path
) -> None:
    # The cell prints, then waits for a file that the test writes only once that print
    # has reached it: output held back until the cell ends would leave the cell waiting
    # until it gives up and says so. No clock is read.
    go = module_workspace / f"go-{uuid.uuid4().hex[:8]}"
    code = (
        "import os, time\n"
        "print('early', flush=True)\n"
        "deadline = time.monotonic() + 30\n"
        f"while not os.path.exists({go.name!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        f"print('late' if os.path.exists({go.name!r}) else 'gave up waiting')"
    )
    streams: list[str] = []

    def on_message(msg: dict) -> None:
        if msg["msg_type"] == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            streams.append(msg["content"]["text"])
            if streams[0].startswith("early"):
                go.touch()

    msg_id = kc.execute(code)
    run = execute_until_idle(kc, msg_id=msg_id, on_message=on_message)
    assert streams, "no stream reached the frontend"
    assert streams[0].startswith("early"), streams
    assert "".join(streams) == "early\nlate\n", "output arrived only when the cell ended"
    assert run.reply is not None
    assert run.reply["content"]["status"] == "ok"


def test_payloads_reach_the_frontend(kc: BlockingKernelClient) -> None:
    res = execute(kc, "get_ipython().set_next_input('print(1)')")
    assert {"source": "set_next_input", "text": "print(1)", "replace": False} in res.reply[
        "content"
    ]["payload"]
    res = execute(kc, "len?")
    [page] = [p for p in res.reply["content"]["payload"] if p["source"] == "page"]
    assert "Return the number of items" in page["data"]["text/plain"]


def test_is_complete_is_answered_without_running_code(kc: BlockingKernelClient) -> None:
    kc.is_complete("for i in range(3):")
    reply = kc.get_shell_msg(timeout=10)
    assert reply["content"] == {"status": "incomplete", "indent": "    "}
    kc.is_complete("x = (")
    assert kc.get_shell_msg(timeout=10)["content"]["status"] == "incomplete"
    kc.is_complete("1 +* 2")
    assert kc.get_shell_msg(timeout=10)["content"]["status"] == "invalid"


def test_history_records_inputs(kc: BlockingKernelClient) -> None:
    execute(kc, "history_marker = 1")
    kc.history(hist_access_type="tail", n=5, output=False, raw=True)
    reply = kc.get_shell_msg(timeout=10)
    inputs = [entry[2] for entry in reply["content"]["history"]]
    assert "history_marker = 1" in inputs
