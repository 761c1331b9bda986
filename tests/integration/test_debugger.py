"""The Jupyter debug protocol through jupyter_client, as JupyterLab's debugger speaks it.

debug_request/debug_reply travel on the control channel, debug_event on IOPub; the
debugger (debugpy's pydevd) runs in the executor, inside the sandbox. Each step
asserts what the frontend would show: the stop, the frame, the variable, the step.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests.debug_client import Debug
from tests.utils import TIMEOUT, running_kernel

CELL = "def add(a, b):\n    total = a + b\n    return total\n\nresult = add(40, 2)\nprint(result)\n"


@pytest.fixture(scope="module")
def kernel(module_workspace: Path) -> Iterator[BlockingKernelClient]:
    with running_kernel(module_workspace) as (_, kc):
        kc.kernel_info()
        info = kc.get_shell_msg(timeout=TIMEOUT)["content"]
        if info["sandbox"]["level"] != "namespaces":
            pytest.skip(
                "the debugger is offered only at the namespaces level; this host gives "
                f"{info['sandbox']['level']!r}"
            )
        yield kc


def test_kernel_info_advertises_the_debugger(kernel: BlockingKernelClient) -> None:
    kernel.kernel_info()
    info = kernel.get_shell_msg(timeout=TIMEOUT)["content"]
    assert info["debugger"] is True
    assert "debugger" in info["supported_features"]


def test_breakpoint_stop_variables_step_continue(kernel: BlockingKernelClient) -> None:
    debug = Debug(kernel)
    debug.start()
    info = debug.request("debugInfo")
    assert info["body"]["isStarted"] is True
    assert info["body"]["hashMethod"] == "Murmur2"

    dumped = debug.request("dumpCell", code=CELL)
    path = dumped["body"]["sourcePath"]
    assert path.startswith(info["body"]["tmpFilePrefix"])
    assert path.endswith(".py")
    reply = debug.request("setBreakpoints", source={"path": path}, breakpoints=[{"line": 2}])
    assert reply["success"], reply
    assert reply["body"]["breakpoints"][0]["verified"], reply
    assert debug.request("configurationDone")["success"]

    msg_id = kernel.execute(CELL)
    stopped = debug.event("stopped")
    assert stopped["body"]["reason"] == "breakpoint"
    thread = stopped["body"]["threadId"]
    assert thread in debug.request("debugInfo")["body"]["stoppedThreads"]

    frames = debug.request("stackTrace", threadId=thread)["body"]["stackFrames"]
    # The cell's frames only: the executor's own code is never shown.
    assert [(f["name"], f["line"], f["source"]["path"]) for f in frames] == [
        ("add", 2, path),
        ("<module>", 5, path),
    ]
    scopes = debug.request("scopes", frameId=frames[0]["id"])["body"]["scopes"]
    local = next(s for s in scopes if s["name"] == "Locals")
    variables = debug.request("variables", variablesReference=local["variablesReference"])
    values = {v["name"]: v["value"] for v in variables["body"]["variables"]}
    assert values == {"a": "40", "b": "2"}

    rich = debug.request("richInspectVariables", variableName="a", frameId=frames[0]["id"])
    assert rich["success"], rich
    assert rich["body"]["data"]["text/plain"] == "40", rich

    assert debug.request("next", threadId=thread)["success"]
    stepped = debug.event("stopped")
    assert stepped["body"]["reason"] == "step"
    frames = debug.request("stackTrace", threadId=thread)["body"]["stackFrames"]
    assert (frames[0]["name"], frames[0]["line"]) == ("add", 3)
    scopes = debug.request("scopes", frameId=frames[0]["id"])["body"]["scopes"]
    local = next(s for s in scopes if s["name"] == "Locals")
    variables = debug.request("variables", variablesReference=local["variablesReference"])
    assert {v["name"]: v["value"] for v in variables["body"]["variables"]}["total"] == "42"

    assert debug.request("continue", threadId=thread)["success"]
    reply = kernel.get_shell_msg(timeout=TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kernel.get_shell_msg(timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok"
    assert debug.request("debugInfo")["body"]["stoppedThreads"] == []

    # Between cells: the variable explorer and the rich viewer read the namespace.
    variables = debug.request("inspectVariables")["body"]["variables"]
    assert {v["name"]: v["value"] for v in variables}["result"] == "42"
    rich = debug.request("richInspectVariables", variableName="result")
    assert rich["body"]["data"] == {"text/plain": "42"}


def test_step_in_and_disconnect(kernel: BlockingKernelClient) -> None:
    debug = Debug(kernel)
    debug.start()  # a second session: pydevd's own stays, the frontend's starts again
    code = "def inner(x):\n    y = x * 2\n    return y\n\nz = inner(21)\n"
    path = debug.request("dumpCell", code=code)["body"]["sourcePath"]
    debug.request("setBreakpoints", source={"path": path}, breakpoints=[{"line": 5}])
    msg_id = kernel.execute(code)
    thread = debug.event("stopped")["body"]["threadId"]
    assert debug.request("stepIn", threadId=thread)["success"]
    assert debug.event("stopped")["body"]["reason"] == "step"
    frames = debug.request("stackTrace", threadId=thread)["body"]["stackFrames"]
    assert (frames[0]["name"], frames[0]["line"]) == ("inner", 2)
    # Leaving resumes the paused cell and clears the breakpoints.
    assert debug.request("disconnect", restart=False, terminateDebuggee=False)["success"]
    reply = kernel.get_shell_msg(timeout=TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kernel.get_shell_msg(timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok"
    assert debug.request("debugInfo")["body"]["breakpoints"] == []


# -- pause and exception breakpoints, beside stock ipykernel (the positive control) ---

# Runs until the debugger's console sets ``done`` (or ~2 minutes, should the pause fail).
LOOP = (
    "import time\ndone = False\nrounds = 0\nprint('looping', flush=True)\n"
    "while not done and rounds < 2400:\n    rounds += 1\n    time.sleep(0.05)\n"
    "print('ended', done)\n"
)
LOOP_LINES = (5, 6, 7)  # the loop (its test and body): where a pause lands
RAISED = "def divide(x):\n    return 1 / x\n\ntry:\n    divide(0)\nexcept ZeroDivisionError:\n    caught = True\n"
UNHANDLED = "value = 7\n1 / 0\n"


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlockingKernelClient]:
    """Stock ipykernel with its own debugger: what JupyterLab's debugger meets there."""
    with running_kernel(tmp_path_factory.mktemp("stock"), kernel_name="python3") as (_, kc):
        yield kc


@pytest.fixture(params=["sandbox", "stock"])
def debugged(request: pytest.FixtureRequest) -> BlockingKernelClient:
    """The sandboxed kernel, then stock ipykernel: the same requests, the same answers."""
    name = "kernel" if request.param == "sandbox" else "stock"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def session(
    request: pytest.FixtureRequest, debugged: BlockingKernelClient
) -> Iterator[tuple[Debug, dict[str, Any]]]:
    """A debug session (and the debugger's capabilities), left as JupyterLab leaves it:
    exception breakpoints off, then ``disconnect`` (stock refuses a second initialize
    before that)."""
    debug = Debug(debugged)
    capabilities = debug.start()
    # A note for the test, not a DAP capability.
    capabilities["sandbox"] = request.node.callspec.params["debugged"] == "sandbox"
    assert debug.request("configurationDone")["success"]
    try:
        yield debug, capabilities
    finally:
        debug.request("setExceptionBreakpoints", filters=[])
        debug.request("disconnect", restart=False, terminateDebuggee=False)


def stdout_of(debug: Debug, msg_id: str, text: str) -> None:
    """Wait for ``text`` on the cell's stdout (debug events on the way are kept)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            msg = debug.kc.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            continue
        if msg["msg_type"] == "debug_event":
            debug.events.append(msg["content"])
        elif (
            msg["msg_type"] == "stream"
            and msg["parent_header"].get("msg_id") == msg_id
            and text in msg["content"]["text"]
        ):
            return
    raise AssertionError(f"{text!r} never reached the cell's stdout")


def stops_until_reply(
    debug: Debug, msg_id: str
) -> tuple[list[tuple[str, list[tuple[str, int]], dict[str, Any]]], dict[str, Any]]:
    """Continue from every stop until the cell replies: each stop's reason, frames
    (name, line) and exceptionInfo, and the execute_reply's content. A stop holds
    the cell, so the reply comes only once no stop is left: no waiting for an event
    that should not come."""
    stops: list[tuple[str, list[tuple[str, int]], dict[str, Any]]] = []
    deadline = time.monotonic() + 3 * TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            reply = debug.kc.get_shell_msg(timeout=0.2)
            if reply["parent_header"].get("msg_id") == msg_id:
                return stops, dict(reply["content"])
        try:
            stopped = debug.event("stopped", timeout=0.2)
        except AssertionError:
            continue
        thread = stopped["body"]["threadId"]
        frames = debug.request("stackTrace", threadId=thread)["body"]["stackFrames"]
        info = debug.request("exceptionInfo", threadId=thread)
        stops.append(
            (
                stopped["body"]["reason"],
                [(f["name"].replace(" (Current frame)", ""), f["line"]) for f in frames],
                info.get("body") or {},
            )
        )
        assert len(stops) < 50, f"stops without end: {[s[:2] for s in stops[:5]]} ..."
        assert debug.request("continue", threadId=thread)["success"]
    raise AssertionError(f"the cell did not reply; stops so far: {stops}")


def test_pause_a_running_cell(session: tuple[Debug, dict[str, Any]]) -> None:
    debug, capabilities = session
    path = debug.request("dumpCell", code=LOOP)["body"]["sourcePath"]
    msg_id = debug.kc.execute(LOOP)
    stdout_of(debug, msg_id, "looping")
    # JupyterLab's pause button names thread 1 while nothing is stopped yet.
    assert debug.request("pause", threadId=1)["success"]
    stopped = debug.event("stopped")
    assert stopped["body"]["reason"] == "pause"
    thread = stopped["body"]["threadId"]
    assert thread in debug.request("debugInfo")["body"]["stoppedThreads"]
    frames = debug.request("stackTrace", threadId=thread)["body"]["stackFrames"]
    assert [(f["name"], f["source"]["path"]) for f in frames] == [("<module>", path)]
    assert frames[0]["line"] in LOOP_LINES, frames
    # The console ends the loop; the cell runs on to its end.
    answer = debug.request(
        "evaluate", expression="done = True", frameId=frames[0]["id"], context="repl"
    )
    assert answer["success"], answer
    assert debug.request("continue", threadId=thread)["success"]
    assert debug.finish(msg_id)["status"] == "ok"
    if capabilities.get("sandbox"):
        # Stock's list lags behind its "continued" events (it still names threads here).
        assert debug.request("debugInfo")["body"]["stoppedThreads"] == []
    variables = debug.request("inspectVariables")["body"]["variables"]
    shown = {v["name"]: v["value"] for v in variables}
    assert shown["done"] == "True"
    assert int(shown["rounds"]) > 0


def test_break_on_raised_exceptions_in_the_cell(session: tuple[Debug, dict[str, Any]]) -> None:
    """Each place the exception passes through in the cell, and nowhere else: not in
    the libraries the executor compiles the cell with (re, traitlets, ...)."""
    debug, capabilities = session
    filters = [f["filter"] for f in capabilities["exceptionBreakpointFilters"]]
    assert filters == ["raised", "uncaught", "userUnhandled"]
    assert debug.request("setExceptionBreakpoints", filters=["raised"])["success"]
    stops, reply = stops_until_reply(debug, debug.kc.execute(RAISED))
    assert [(reason, frames) for reason, frames, _ in stops] == [
        ("exception", [("divide", 2), ("<module>", 5)]),
        ("exception", [("<module>", 5)]),
    ]
    for _, _, info in stops:
        assert info["exceptionId"] == "ZeroDivisionError"
        assert info["description"] == "division by zero"
        assert "sandbox_kernel" not in info["details"]["stackTrace"]
    assert reply["status"] == "ok"  # the cell caught it


def test_break_on_user_unhandled_exceptions(session: tuple[Debug, dict[str, Any]]) -> None:
    debug, _ = session
    assert debug.request("setExceptionBreakpoints", filters=["userUnhandled"])["success"]
    stops, reply = stops_until_reply(debug, debug.kc.execute(UNHANDLED))
    assert [(reason, frames) for reason, frames, _ in stops] == [("exception", [("<module>", 2)])]
    assert stops[0][2]["exceptionId"].startswith("ZeroDivisionError")
    assert (reply["status"], reply["ename"]) == ("error", "ZeroDivisionError")


def test_uncaught_never_stops_as_in_stock_ipykernel(session: tuple[Debug, dict[str, Any]]) -> None:
    """IPython handles every cell's exception, so none is uncaught: stock ipykernel
    does not stop either (JupyterLab's "userUnhandled" is the filter that does)."""
    debug, _ = session
    assert debug.request("setExceptionBreakpoints", filters=["uncaught"])["success"]
    stops, reply = stops_until_reply(debug, debug.kc.execute(UNHANDLED))
    assert stops == []
    assert (reply["status"], reply["ename"]) == ("error", "ZeroDivisionError")
