"""The Jupyter debug protocol through jupyter_client, as JupyterLab's debugger speaks it.

debug_request/debug_reply travel on the control channel, debug_event on IOPub; the
debugger (debugpy's pydevd) runs in the executor, inside the sandbox. Each step
asserts what the frontend would show: the stop, the frame, the variable, the step.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
