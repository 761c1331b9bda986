"""The Jupyter debugger's boundary, attacked from the frontend's side and from a cell.

The debugger (debugpy's pydevd) runs in the executor with the cells; the trusted
kernel checks each debug_request and reads what comes back with the one parser of
child bytes. Checked from outside: which requests never reach the executor, what
the frontend is never shown (the executor's frames, where the running cell's token
lives), that nothing outside the sandbox (the host, another kernel) nor a cell can
reach pydevd's port, and that the runtime hooks make no exception a cell could use.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.debug_client import Debug
from tests.security.conftest import LEVEL_KERNELS, OS_LAYER_ONLY, Host, Sandbox, start_sandbox
from tests.utils import TIMEOUT, strip_ansi

CELL = "def add(a, b):\n    total = a + b\n    return total\n\nresult = add(40, 2)\n"
# A cell's view of its network namespace's TCP sockets: (state, local port, remote port).
TCP_TABLE = """
def tcp_table():
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(name).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            rows.append((state, int(local.split(":")[1], 16), int(remote.split(":")[1], 16)))
    return rows
"""


def _kernel_info(box: Sandbox) -> dict[str, Any]:
    box.kc.kernel_info()
    while True:
        reply = box.kc.get_shell_msg(timeout=TIMEOUT)
        if reply["msg_type"] == "kernel_info_reply":
            return dict(reply["content"])


def _started(box: Sandbox) -> Debug:
    debug = Debug(box.kc)
    debug.start()
    return debug


@pytest.fixture(scope="module")
def standard(tmp_path_factory: pytest.TempPathFactory, host: Host) -> Any:
    """A namespaces-level kernel with the default policy and its runtime hooks."""
    workspace = tmp_path_factory.mktemp("debug-standard")
    workspace.chmod(0o777)
    box = start_sandbox("namespaces", workspace, host, extra=[])
    try:
        yield box
    finally:
        box.close()


@pytest.fixture(scope="module")
def os_only(tmp_path_factory: pytest.TempPathFactory, host: Host) -> Any:
    """A namespaces-level kernel whose cells meet the OS layer only (the strongest attacker)."""
    workspace = tmp_path_factory.mktemp("debug-os-only")
    workspace.chmod(0o777)
    box = start_sandbox("namespaces", workspace, host, extra=OS_LAYER_ONLY)
    try:
        yield box
    finally:
        box.close()


@pytest.mark.parametrize("level", sorted(LEVEL_KERNELS))
def test_offered_only_where_its_port_stays_inside(
    level: str, tmp_path_factory: pytest.TempPathFactory, host: Host
) -> None:
    workspace = tmp_path_factory.mktemp(f"debug-offer-{level}")
    workspace.chmod(0o777)
    box = start_sandbox(level, workspace, host)
    try:
        info = _kernel_info(box)
        report = strip_ansi(box.run("%sandbox").stdout)
        reply = Debug(box.kc).request("initialize", adapterID="python", pathFormat="path")
        if level == "namespaces":
            assert info["debugger"] is True
            assert "debugger" in info["supported_features"]
            assert "Debugger: available" in report
            assert reply["success"], reply
        else:
            assert info["debugger"] is False
            assert "debugger" not in info["supported_features"]
            assert "Debugger: not available: at the 'landlock' level the seccomp filter" in report
            assert not reply["success"]
            assert "not available in this sandbox" in reply["message"]
    finally:
        box.close()


def test_requests_outside_the_protocol_never_reach_the_executor(standard: Sandbox) -> None:
    debug = _started(standard)
    for content, said in (
        (
            {"type": "request", "seq": 1, "command": "launch", "arguments": {"program": "x"}},
            "launch",
        ),
        (
            {"type": "request", "seq": 2, "command": "runInTerminal", "arguments": {}},
            "runInTerminal",
        ),
        ({"type": "event", "seq": 3, "event": "stopped"}, "DAP request"),
        ({"type": "request", "seq": "4", "command": "threads"}, "integer seq"),
    ):
        reply = debug.send(content)
        assert reply["success"] is False
        assert said in reply["message"]
    # Larger than any cell the frontend would dump: refused here, and the kernel is fine.
    reply = debug.request("dumpCell", code="x = 1\n" * 800_000)
    assert reply["success"] is False
    assert "limit" in reply["message"]
    assert debug.request("debugInfo")["success"]
    assert standard.run("print('alive')").stdout == "alive\n"


def test_debug_console_meets_the_cell_policy(standard: Sandbox) -> None:
    debug = _started(standard)
    msg_id, thread, _ = debug.pause_at(CELL, 2)
    frame = debug.top_frame(thread)
    allowed = debug.request("evaluate", expression="a + b", frameId=frame, context="repl")
    assert allowed["success"], allowed
    assert allowed["body"]["result"] == "42"
    for expression in (
        "().__class__.__bases__[0].__subclasses__()",
        "__import__('ctypes').CDLL(None)",
    ):
        refused = debug.request("evaluate", expression=expression, frameId=frame, context="repl")
        assert refused["success"] is False, (expression, refused)
        assert "SandboxPolicyError" in refused["message"]
    refused = debug.request(
        "setExpression", expression="a", value="__import__('ctypes').CDLL(None)", frameId=frame
    )
    assert refused["success"] is False
    assert debug.request("continue", threadId=thread)["success"]
    assert debug.finish(msg_id)["status"] == "ok"


def test_the_executors_frames_are_never_shown_nor_reachable(standard: Sandbox) -> None:
    """Its frames hold the running cell's token: a cell cannot walk to them (SKP207,
    SKP222), and through the debugger a person cannot either."""
    standard.run("err = None\ntry:\n    1 / 0\nexcept ZeroDivisionError as exc:\n    err = exc\n")
    debug = _started(standard)
    code = "def look(e):\n    seen = e\n    return seen\n\nlook(err)\n"
    msg_id, thread, path = debug.pause_at(code, 2)
    frames = debug.request("stackTrace", threadId=thread)["body"]["stackFrames"]
    paths = [f["source"].get("path", "") for f in frames]
    assert paths[:2] == [path, path]
    assert not any("sandbox_kernel" in p for p in paths), paths
    shown = {f["id"] for f in frames}
    # pydevd numbers frames in order, the hidden ones too: guesses are refused.
    for guess in range(max(shown) + 20):
        if guess in shown:
            continue
        reply = debug.request("scopes", frameId=guess)
        assert reply["success"] is False
        assert "was not shown" in reply["message"]
    scopes = debug.request("scopes", frameId=frames[0]["id"])["body"]["scopes"]
    local = next(s for s in scopes if s["name"] == "Locals")
    variables = debug.request("variables", variablesReference=local["variablesReference"])
    seen = next(v for v in variables["body"]["variables"] if v["name"] == "e")
    assert seen["type"] == "ZeroDivisionError"
    children = debug.request("variables", variablesReference=seen["variablesReference"])
    names = {v["name"]: v.get("type") for v in children["body"]["variables"]}
    assert "args" in names  # the positive control: the exception's own attributes
    assert "traceback" not in names.values()
    assert "frame" not in names.values()
    for reference in range(1, 200):
        reply = debug.request("variables", variablesReference=reference)
        if reply["success"]:
            assert all(
                v.get("type") not in ("frame", "traceback") for v in reply["body"]["variables"]
            )
    assert debug.request("continue", threadId=thread)["success"]
    assert debug.finish(msg_id)["status"] == "ok"


def test_nothing_outside_reaches_the_debuggers_port(
    os_only: Sandbox, tmp_path_factory: pytest.TempPathFactory, host: Host
) -> None:
    """pydevd listens once, on the sandbox's own loopback, and stops when its one
    client (the executor's debugger thread) is connected."""
    before = os_only.run(TCP_TABLE + "print(tcp_table())")
    assert before.reply["content"]["status"] == "ok"
    _started(os_only)
    cell = os_only.run(TCP_TABLE + "print(tcp_table())")
    rows = eval(cell.stdout)
    listening = [r for r in rows if r[0] == "0A"]
    assert listening == [], rows
    established = [r for r in rows if r[0] == "01"]
    assert established, rows  # the debugger's own connection, both ends
    ports = sorted({r[1] for r in established})
    # A cell: every port of that connection refuses a new one.
    probe = os_only.run(
        "import socket\n"
        f"for port in {ports!r}:\n"
        "    s = socket.socket()\n"
        "    try:\n"
        "        s.connect(('127.0.0.1', port))\n"
        "        print(port, 'connected')\n"
        "    except OSError as exc:\n"
        "        print(port, type(exc).__name__)\n"
        "    finally:\n"
        "        s.close()\n"
    )
    assert probe.stdout.split("\n")[:-1] == [f"{p} ConnectionRefusedError" for p in ports]
    # The host, on its own loopback: those ports are not the sandbox's.
    for port in ports:
        assert _host_connect(port) != 0, port
    # Another kernel: its loopback is its own, too. The first kernel listens now on a
    # port of its own loopback (as pydevd did before its client came).
    listener = os_only.run(
        "import socket\nlistener = socket.socket()\nlistener.bind(('127.0.0.1', 0))\n"
        "listener.listen()\nprint(listener.getsockname()[1])\n"
    )
    port = int(listener.stdout)
    # The positive control: inside its own sandbox, that port takes a connection.
    inside = os_only.run(
        f"import socket\ns = socket.socket()\nprint(s.connect_ex(('127.0.0.1', {port})))\n"
    )
    assert inside.stdout == "0\n"
    workspace = tmp_path_factory.mktemp("debug-other-kernel")
    workspace.chmod(0o777)
    other = start_sandbox("namespaces", workspace, host)
    try:
        reach = other.run(
            f"import socket\ns = socket.socket()\nprint(s.connect_ex(('127.0.0.1', {port})))\n"
        )
        assert reach.reply["content"]["status"] == "ok"
        assert reach.stdout.strip() != "0"
    finally:
        other.close()
    assert _host_connect(port) != 0


def _host_connect(port: int) -> int:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port))


def test_no_hook_exemption_for_cells_while_the_debugger_runs(standard: Sandbox) -> None:
    """debugpy's tracer is pure Python here: a library to the runtime hooks like any
    other, with no exemption made for it. A cell walking frames is refused as before,
    also from a module named like pydevd's own."""
    _started(standard)
    walk = "import sys\nframe = getattr(sys, '_get' + 'frame')()\n"
    cell = standard.run(walk)
    assert cell.reply["content"]["status"] == "error"
    assert "SKP207" in cell.reply["content"]["evalue"]
    (standard.workspace / "pydevd_helpers.py").write_text(
        "import sys\ndef frame():\n    return getattr(sys, '_get' + 'frame')()\n"
    )
    cell = standard.run("import pydevd_helpers\npydevd_helpers.frame()\n")
    assert cell.reply["content"]["status"] == "error"
    assert "SKP207" in cell.reply["content"]["evalue"]
