"""A hostile cell writes straight to the relay socket: the kernel stays up and says why.

Code in a cell runs in the executor, which holds the relay socket to the trusted
kernel. These tests start the real kernel through jupyter_client and, from a
cell, write bytes to that socket that the executor would never send: garbage,
impossible lengths, frames that are well-formed but invalid, forged replies,
spoofed headers, half frames, and file descriptors. Everything is checked from
the outside, as a frontend and an operator would see it: the kernel process
lives on and leaks no descriptors, every cell ends within a bound with an
error or notice the frontend can show, the next cell runs, and where the
framing was intact the executor (and its variables) survives.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from sandbox_kernel.framing import DEFAULT_MAX_FRAME_BYTES as MAX_FRAME_BYTES
from tests.utils import KERNEL_NAME, execute_until_idle, running_kernel

FRAME_DEADLINE_S = 1.0
CELL_TIMEOUT_S = 30.0
NOTICE = "[sandbox] an output from the executor was dropped"

# Put together at run time inside the executor, so that the literal never
# appears in the code a cell echoes back on IOPub (execute_input).
MARK = "HOSTILE-7f3a9c"
CANARY_VALUE = "set before the attack"

HOSTILE_HELPERS = f'''
import json as _json, os as _os, socket as _socket, stat as _stat, struct as _struct
import sys as _sys, time as _time

_MARK = "HOST" + "ILE-" + "7f3a9c"
canary = {CANARY_VALUE!r}

def _relay_fds():
    """Socket fds a cell can find on its own: the AF_UNIX stream sockets."""
    found = []
    for name in _os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not _stat.S_ISSOCK(_os.fstat(fd).st_mode):
                continue
        except OSError:
            continue
        probe = _socket.socket(fileno=fd)
        try:
            if probe.family == _socket.AF_UNIX and probe.type == _socket.SOCK_STREAM:
                found.append(fd)
        finally:
            probe.detach()
    return found

def _channel():
    return get_ipython().outbox.channel

def _send_raw(data):
    """Write to the relay between the executor's own whole frames."""
    channel = _channel()
    _sys.stdout.flush()
    _sys.stderr.flush()
    with channel._send_lock:
        channel.sock.sendall(data)

def _frame(message):
    body = message if isinstance(message, bytes) else _json.dumps(message).encode()
    return _struct.pack(">I", len(body)) + body

def _executor():
    """The executor object serving this cell (read off the stack)."""
    frame = _sys._getframe()
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if type(candidate).__name__ == "Executor":
            return candidate
        frame = frame.f_back
    raise LookupError("no executor on the stack")

def _request_id():
    """The relay id of the execute command running this cell (read off the stack)."""
    frame = _sys._getframe()
    while frame is not None:
        command = frame.f_locals.get("command")
        if isinstance(command, dict) and command.get("op") == "execute":
            return command["id"]
        frame = frame.f_back
    raise LookupError("no execute command on the stack")
'''


@dataclass
class Cell:
    msg_id: str
    reply: dict[str, Any]
    # Every IOPub message seen until this cell's idle status, whatever its parent.
    iopub: list[dict[str, Any]]
    elapsed: float

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    def outputs(self, msg_type: str) -> list[dict[str, Any]]:
        return [
            m["content"]
            for m in self.iopub
            if m["msg_type"] == msg_type and m["parent_header"].get("msg_id") == self.msg_id
        ]

    def stream(self, name: str) -> str:
        return "".join(c["text"] for c in self.outputs("stream") if c["name"] == name)

    @property
    def stdout(self) -> str:
        return self.stream("stdout")

    @property
    def stderr(self) -> str:
        return self.stream("stderr")

    def everything(self) -> str:
        """All that reached the frontend, as text, except the echo of the cell's code."""
        shown = [m for m in self.iopub if m["msg_type"] != "execute_input"]
        return json.dumps([*shown, self.reply], default=str, ensure_ascii=False)


def run_cell(kc: BlockingKernelClient, code: str, timeout: float = CELL_TIMEOUT_S) -> Cell:
    """Execute ``code``; collect every IOPub message until its idle status, then its reply."""
    run = execute_until_idle(kc, code, timeout=timeout, allow_stdin=False)
    assert run.reply is not None
    return Cell(run.msg_id, run.reply, run.iopub, run.elapsed)


@dataclass
class Kernel:
    km: KernelManager
    kc: BlockingKernelClient
    process: psutil.Process
    workspace: Path

    def fd_targets_settled(self) -> list[str] | None:
        """The kernel's open descriptors; None where this user may not look (not dumpable).

        Counted at a moment when none of them is open on /proc: the kernel's own
        monitors (the workspace quota's walk of the executor's tree, the CPU watch)
        open /proc/<pid>/task and the like for a moment, at any time, also between
        cells; a count taken then is one too many (seen in the fresh container and
        here, 3 runs in 16). A descriptor left open on /proc stays, so after the
        tries it is counted like any other.
        """
        try:
            targets = self.fd_targets()
            for _ in range(100):
                if not any(target.startswith("/proc/") for target in targets):
                    break
                time.sleep(0.02)
                targets = self.fd_targets()
        except PermissionError:
            return None
        return targets

    def assert_fds_unchanged(self, before: list[str] | None) -> None:
        if before is None:
            return
        # A leaked descriptor stays; one the kernel's own work holds for a moment is
        # gone again within a second, and not all of them are on /proc: when the
        # sandbox writes between cells (or, on a tmpfs, uses CPU) the kernel's watch
        # (kernel/sandbox.py) walks the workspace, holding its directories open (seen:
        # the workspace itself, 0.1-0.3 s after a cell whose thread wrote a file). A
        # CI run under load once counted one too many right after a cell; 9 reruns
        # here did not.
        after = self.fd_targets_settled()
        for _ in range(50):
            if after is None or len(after) == len(before):
                break
            time.sleep(0.02)
            after = self.fd_targets_settled()
        assert after is not None
        # Named, so that a failure says which descriptor came or went.
        gained = sorted((Counter(after) - Counter(before)).elements())
        lost = sorted((Counter(before) - Counter(after)).elements())
        assert len(after) == len(before), f"opened since: {gained}; closed since: {lost}"

    def fd_targets(self) -> list[str]:
        base = f"/proc/{self.process.pid}/fd"
        targets = []
        for name in os.listdir(base):
            try:
                targets.append(os.readlink(f"{base}/{name}"))
            except FileNotFoundError:
                continue
        return targets

    def assert_alive(self) -> None:
        assert self.km.is_alive()
        assert self.process.is_running()
        assert self.process.status() != psutil.STATUS_ZOMBIE

    def run(self, code: str, timeout: float = CELL_TIMEOUT_S) -> Cell:
        return run_cell(self.kc, code, timeout)

    def assert_state_kept(self) -> None:
        """The executor that ran earlier cells still serves: its variables are there."""
        cell = self.run("print(canary)")
        assert cell.status == "ok", cell.reply["content"]
        assert cell.stdout == CANARY_VALUE + "\n"

    def assert_serving_after_stop(self, evalue: str) -> None:
        """After the executor was stopped, the next cell runs, and the error told the truth.

        The kernel either rolls back to the state before the cell (a snapshot) or
        starts a fresh executor; either way the message must say which.
        """
        cell = self.run("print('serving')")
        assert cell.status == "ok", cell.reply["content"]
        assert cell.stdout == "serving\n"
        probe = self.run("print(canary)")
        if probe.status == "ok":
            assert probe.stdout == CANARY_VALUE + "\n"
            assert "still there" in evalue
        else:
            assert probe.reply["content"]["ename"] == "NameError"
            assert "are gone" in evalue


HOSTILE_ARGUMENTS = [
    f"--Output.frame_deadline_s={FRAME_DEADLINE_S:g}",
    # The cell policy is a separate layer (native code gets past it anyway): it is
    # turned down so that these cells reach the relay, which must hold on its own.
    "--Policy.preset=permissive",
    "--Policy.runtime_hooks=False",
]


@contextlib.contextmanager
def hostile_kernel(
    workspace: Path, *arguments: str, kernel_name: str = KERNEL_NAME, **launch: Any
) -> Iterator[Kernel]:
    """The real kernel with the hostile helpers defined; ``launch`` goes to start_kernel
    (``stderr=`` a file, to read the kernel log)."""
    extra_arguments = [*HOSTILE_ARGUMENTS, *arguments]
    with running_kernel(workspace, kernel_name, extra_arguments=extra_arguments, **launch) as (
        km,
        kc,
    ):
        provisioner = km.provisioner
        assert provisioner is not None
        process = psutil.Process(provisioner.process.pid)  # type: ignore[attr-defined]
        handle = Kernel(km, kc, process, workspace)
        setup = handle.run(HOSTILE_HELPERS)
        assert setup.status == "ok", setup.reply["content"]
        yield handle


@pytest.fixture
def kernel(workspace: Path) -> Iterator[Kernel]:
    """The real kernel, with a 1 s frame deadline and the hostile helpers defined."""
    with hostile_kernel(workspace) as handle:
        yield handle


def hostile(code: str) -> str:
    """A cell that prints around the attack, so a loss of its neighbours would show."""
    return f"print('before')\n{code}\nprint('after')\n"


# ---------------------------------------------------------------------------


def test_a_cell_can_reach_the_relay_socket(kernel: Kernel) -> None:
    # The premise of this module: what the helpers write to is the one socket
    # any cell finds among its own descriptors.
    cell = kernel.run("print(_relay_fds() == [_channel().sock.fileno()], len(_relay_fds()))")
    assert cell.stdout == "True 1\n"


# Frames with intact framing but bad content: (Python expression, evaluated in
# the cell, for the frame body; words the notice must contain).
RECOVERABLE: dict[str, tuple[str, str]] = {
    "garbage-body": ("b'\\x00\\xffgarbage\\xfe' + _MARK.encode()", "not valid UTF-8"),
    "invalid-json": ("b'{not json ' + _MARK.encode()", "not valid JSON"),
    "nan": ('b\'{"type": "done", "id": NaN}\'', "non-standard JSON constant NaN"),
    "unknown-type": ("{'type': 'bogus', 'text': _MARK}", "unknown frame type 'bogus'"),
    "trusted-only-type": (
        "{'type': 'relay_notice', 'text': _MARK}",
        "unknown frame type 'relay_notice'",
    ),
    "stream-named-iopub": (
        "{'type': 'stream', 'name': 'iopub', 'text': _MARK}",
        "stream name 'iopub' is not stdout or stderr",
    ),
    "deep-100000": ("b'[' * 100_000", "nests too deeply"),
    "deep-100000-closed": ("b'[' * 100_000 + b']' * 100_000", "nests too deeply"),
    "50000-digit-int": ("b'{\"type\": \"done\", \"id\": ' + b'7' * 50_000 + b'}'", "integer"),
    "bool-for-int": (
        "{'type': 'execute_result', 'execution_count': True, 'data': {'text/plain': _MARK}}",
        "wrong type",
    ),
    "not-a-mime-type": (
        "{'type': 'display_data', 'data': {'no mime': _MARK}}",
        "is not a MIME type",
    ),
    "non-string-mime-value": (
        "{'type': 'display_data', 'data': {'text/html': [_MARK]}}",
        "must be a string",
    ),
    "update-without-display-id": (
        "{'type': 'update_display_data', 'data': {'text/plain': _MARK}}",
        "needs a display_id",
    ),
    "comm-buffer-not-base64": (
        "{'type': 'comm_msg', 'comm_id': 'c', 'data': {'m': _MARK}, 'buffers': ['!!']}",
        "base64",
    ),
}


@pytest.mark.parametrize("name", list(RECOVERABLE))
def test_bad_frame_is_dropped_with_a_notice_and_the_executor_survives(
    kernel: Kernel, name: str
) -> None:
    body, reason = RECOVERABLE[name]
    fds_before = kernel.fd_targets_settled()
    cell = kernel.run(hostile(f"_send_raw(_frame({body}))"))
    assert cell.status == "ok", cell.reply["content"]
    # Nothing lost around it, in order.
    assert cell.stdout == "before\nafter\n"
    # The frontend is told, in the cell's own output.
    assert NOTICE in cell.stderr
    assert reason in cell.stderr
    # The frame's content reached nobody, under any parent.
    assert MARK not in cell.everything()
    assert not [c for c in cell.outputs("stream") if c["name"] not in {"stdout", "stderr"}]
    kernel.assert_alive()
    kernel.assert_state_kept()
    kernel.assert_fds_unchanged(fds_before)


def test_spoofed_jupyter_header_fields_never_reach_the_frontend(kernel: Kernel) -> None:
    spoof = (
        "{'type': 'stream', 'name': 'stdout', 'text': 'visible\\n',"
        " 'header': {'msg_id': _MARK, 'session': _MARK, 'username': _MARK,"
        "            'msg_type': 'execute_reply', 'date': _MARK},"
        " 'parent_header': {'msg_id': _MARK, 'session': _MARK},"
        " 'metadata': {'spoof': _MARK}, 'signature': _MARK, 'msg_id': _MARK,"
        " 'session': _MARK, 'parent': _MARK, 'buffers': ['SE9TVElMRQ==']}"
    )
    cell = kernel.run(hostile(f"_send_raw(_frame({spoof}))"))
    assert cell.status == "ok", cell.reply["content"]
    assert cell.stdout == "before\nvisible\nafter\n"
    assert MARK not in cell.everything()
    [visible] = [m for m in cell.iopub if m["content"].get("text") == "visible\n"]
    # Built and signed by the kernel, under the request that is really running.
    assert visible["msg_type"] == "stream"
    assert visible["parent_header"]["msg_id"] == cell.msg_id
    assert visible["header"]["session"] == cell.reply["header"]["session"]
    assert visible["metadata"] == {}
    assert not visible.get("buffers")
    kernel.assert_alive()
    kernel.assert_state_kept()


FORGED_IDS = {
    "never-issued": "10**9",
    "zero": "0",
    "earlier-request": "_request_id() - 1",
}


@pytest.mark.parametrize("which", list(FORGED_IDS))
def test_forged_execute_reply_with_a_wrong_id_changes_nothing(kernel: Kernel, which: str) -> None:
    forged = (
        f"{{'type': 'execute_reply', 'id': {FORGED_IDS[which]}, 'status': 'error',"
        " 'ename': _MARK, 'evalue': _MARK, 'traceback': [_MARK],"
        " 'payload': [{'source': 'set_next_input', 'text': _MARK}]}"
    )
    cell = kernel.run(hostile(f"_send_raw(_frame({forged}))\n_time.sleep(0.5)"))
    # The cell's real reply governs: it finished normally, after all of its output.
    assert cell.status == "ok", cell.reply["content"]
    assert cell.stdout == "before\nafter\n"
    assert cell.reply["content"]["payload"] == []
    assert MARK not in cell.everything()
    kernel.assert_alive()
    kernel.assert_state_kept()


def test_forged_execute_reply_with_a_never_issued_id_is_reported(kernel: Kernel) -> None:
    forged = "{'type': 'execute_reply', 'id': 10**9, 'status': 'ok'}"
    cell = kernel.run(hostile(f"_send_raw(_frame({forged}))"))
    assert cell.status == "ok"
    assert "[sandbox]" in cell.stderr


@pytest.mark.parametrize("kind", ["done", "complete_reply"])
def test_reply_of_the_wrong_kind_for_the_running_cell(kernel: Kernel, kind: str) -> None:
    forged = (
        "{'type': 'done', 'id': _request_id()}"
        if kind == "done"
        else "{'type': 'complete_reply', 'id': _request_id(), 'matches': [],"
        " 'cursor_start': 0, 'cursor_end': 0}"
    )
    cell = kernel.run(hostile(f"_send_raw(_frame({forged}))"), timeout=10)
    assert cell.status == "ok", cell.reply["content"]
    assert cell.stdout == "before\nafter\n"
    kernel.assert_state_kept()


def test_a_cell_that_rebinds_json_does_not_garble_the_relay(kernel: Kernel) -> None:
    """The executor's framing shares the interpreter with cells; rebinding the json
    module's functions must not turn every later frame (the replies too) into garbage."""
    kernel.run("import json\nsaved = (json.dumps, json.loads)")
    try:
        cell = kernel.run(
            "json.dumps = lambda *a, **k: 'garbage'\njson.loads = lambda *a, **k: 'garbage'",
            timeout=10,
        )
        assert cell.reply["content"]["status"] == "ok"
        nxt = kernel.run("print('serving', canary)", timeout=10)
        assert nxt.stdout == f"serving {CANARY_VALUE}\n"
        assert NOTICE not in nxt.stdout + cell.stdout
    finally:
        kernel.run("json.dumps, json.loads = saved", timeout=10)


def test_lone_high_surrogate_in_output_does_not_hang_the_kernel(kernel: Kernel) -> None:
    cell = kernel.run("print('\\ud800')\nprint('after')", timeout=10)
    assert "after\n" in cell.stdout
    kernel.assert_alive()
    nxt = kernel.run("print('serving')", timeout=10)
    assert nxt.stdout == "serving\n"


def test_lone_low_surrogate_in_output_is_shown(kernel: Kernel) -> None:
    # Bytes that were not UTF-8 (surrogateescape) reach the frontend as text.
    cell = kernel.run("print('a\\udc80b')")
    assert cell.status == "ok"
    # As the surrogate itself, or as U+FFFD once decoded by the frontend's session.
    assert cell.stdout in ("a\udc80b\n", "a\ufffdb\n")
    kernel.assert_state_kept()


# Bytes that break the framing itself: the channel cannot be resynchronised, so
# the executor is stopped and the user told why.
FATAL: dict[str, tuple[str, str]] = {
    # 'GARB' read as a length is 1,195,463,234 bytes.
    "raw-garbage": ("b'GARBAGE, not a frame at all'", "frame of 1195463234 bytes exceeds"),
    "length-0xFFFFFFFF": ("_struct.pack('>I', 0xFFFFFFFF)", "frame of 4294967295 bytes exceeds"),
    "length-max+1": (
        f"_struct.pack('>I', {MAX_FRAME_BYTES + 1}) + b'{{'",
        f"frame of {MAX_FRAME_BYTES + 1} bytes exceeds",
    ),
}


@pytest.mark.parametrize("name", list(FATAL))
def test_broken_framing_stops_the_executor_with_an_error_and_the_kernel_serves_on(
    kernel: Kernel, name: str
) -> None:
    data, reason = FATAL[name]
    fds_before = kernel.fd_targets_settled()
    rss_before = kernel.process.memory_info().rss
    # The cell would sleep for a minute: only the relay's protection ends it in time.
    cell = kernel.run(hostile(f"_send_raw({data})\n_time.sleep(60)"), timeout=45)
    content = cell.reply["content"]
    assert cell.status == "error"
    assert content["ename"] == "ExecutorDied"
    assert "protocol" in content["evalue"]
    assert reason in content["evalue"]
    # The frontend can show it: an error output under the cell.
    [error] = cell.outputs("error")
    assert error["ename"] == "ExecutorDied"
    assert reason in error["evalue"]
    # No allocation of the claimed length in the kernel.
    assert kernel.process.memory_info().rss - rss_before < 32 * 1024 * 1024
    kernel.assert_alive()
    kernel.assert_serving_after_stop(content["evalue"])
    # The dead executor's descriptors were closed, the new one's are as many.
    kernel.assert_fds_unchanged(fds_before)


def test_output_sent_just_before_broken_framing_is_not_lost(kernel: Kernel) -> None:
    # One write: the valid frame and the bad header arrive in the same read.
    before = "_frame({'type': 'stream', 'name': 'stdout', 'text': 'last words\\n'})"
    cell = kernel.run(f"_send_raw({before} + _struct.pack('>I', 0xFFFFFFFF))\n_time.sleep(60)")
    assert cell.reply["content"]["ename"] == "ExecutorDied"
    assert cell.stdout == "last words\n"


@pytest.mark.parametrize(
    "data",
    ["b'\\x00\\x00'", "_struct.pack('>I', 100) + b'{\"type\": \"stream\"'"],
    ids=["half-header", "half-body"],
)
def test_half_a_frame_then_silence_hits_the_frame_deadline(kernel: Kernel, data: str) -> None:
    fds_before = kernel.fd_targets_settled()
    # The cell would sleep for a minute: only the frame deadline ends it in time.
    cell = kernel.run(hostile(f"_send_raw({data})\n_time.sleep(60)"), timeout=45)
    content = cell.reply["content"]
    assert cell.status == "error"
    assert content["ename"] == "ExecutorDied"
    assert f"left a frame unfinished for {FRAME_DEADLINE_S:g} s" in content["evalue"]
    [error] = cell.outputs("error")
    assert "unfinished" in error["evalue"]
    kernel.assert_alive()
    kernel.assert_serving_after_stop(content["evalue"])
    kernel.assert_fds_unchanged(fds_before)


def test_descriptors_sent_with_scm_rights_never_reach_the_kernel(kernel: Kernel) -> None:
    bait = kernel.workspace / "fd-bait.txt"
    bait.write_text("bait")
    fds_before = kernel.fd_targets_settled()
    if fds_before is None:
        pytest.skip("the kernel is not dumpable: only root can count its descriptors")
    code = """
_bait = open("fd-bait.txt")
_r, _w = _os.pipe()
_data = _frame({"type": "stream", "name": "stdout", "text": "fds-sent\\n"})
_channel_ = _channel()
_sys.stdout.flush()
with _channel_._send_lock:
    for _ in range(4):
        # 240 descriptors per message (SCM_MAX_FD is 253), on a valid frame.
        _fds = [_bait.fileno(), _r, _w] * 80
        assert _socket.send_fds(_channel_.sock, [_data], _fds) == len(_data)
print("sent")
"""
    cell = kernel.run(code)
    assert cell.status == "ok", cell.reply["content"]
    # The frames carrying the descriptors were read and published...
    assert cell.stdout == "fds-sent\n" * 4 + "sent\n"
    # ...and none of the 960 descriptors was installed in the kernel.
    kernel.assert_fds_unchanged(fds_before)
    assert str(bait.resolve()) not in kernel.fd_targets()
    kernel.assert_alive()
    kernel.assert_state_kept()


class RssSampler:
    """Samples a process's RSS in the background; keeps the maximum."""

    def __init__(self, process: psutil.Process, interval_s: float = 0.02) -> None:
        self.process = process
        self.interval_s = interval_s
        self.baseline = process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@pytest.mark.slow
def test_a_200_mb_print_neither_crashes_nor_hangs_the_kernel(kernel: Kernel) -> None:
    with RssSampler(kernel.process) as rss:
        cell = kernel.run("print('x' * 200_000_000)", timeout=90)
    assert rss.growth < 1024 * 1024 * 1024, f"kernel RSS grew by {rss.growth >> 20} MiB"
    kernel.assert_alive()
    # Not silence: the output arrived (perhaps cut short), or the refusal is shown.
    refused = [e for e in cell.outputs("error") if "exceeds" in e["evalue"]]
    assert refused or cell.stdout.startswith("x" * 100_000)
    assert len(cell.stdout) <= 200_000_001
    # Still serving afterwards, in whatever executor is current.
    nxt = kernel.run("print('serving')")
    assert nxt.status == "ok"
    assert nxt.stdout == "serving\n"


# ---------------------------------------------------------------------------
# The trusted side's own resources: memory, CPU, the output budgets, the logs,
# the audit log and the rollback, each attacked from a cell and measured from
# outside (issue 10). Every one of these succeeded against the kernel before
# the fix; the numbers in the comments are what they cost it then.
# ---------------------------------------------------------------------------

MIB = 1024 * 1024


def cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU time of a process, from /proc/PID/stat."""
    times = process.cpu_times()
    return float(times.user + times.system)


def received_bytes(messages: list[dict[str, Any]]) -> int:
    """What the client received, serialised: content, metadata and buffers."""
    return sum(
        len(json.dumps(m["content"], ensure_ascii=False).encode())
        + len(json.dumps(m["metadata"], ensure_ascii=False).encode())
        + sum(len(bytes(b)) for b in m.get("buffers") or [])
        for m in messages
    )


def cell_messages(cell: Cell, *kinds: str) -> list[dict[str, Any]]:
    return [m for m in cell.iopub if m["msg_type"] in kinds]


def test_a_frame_of_millions_of_numbers_costs_the_kernel_little_memory(kernel: Kernel) -> None:
    # 8M floats in one 32 MiB frame: the kernel grew by ~1 GiB decoding it.
    code = (
        '_body = b\'{"type":"display_data","data":{"application/json":[\' '
        "+ b'1.5,' * 8_000_000 + b'1]}}'\n"
        "_send_raw(_frame(_body))\ndel _body"
    )
    with RssSampler(kernel.process) as rss:
        cell = kernel.run(hostile(code), timeout=90)
    assert cell.status == "ok", cell.reply["content"]
    assert cell.stdout == "before\nafter\n"
    assert rss.growth < 200 * MIB, f"kernel RSS grew by {rss.growth >> 20} MiB"
    assert "JSON values" in cell.stderr
    kernel.assert_alive()
    kernel.assert_state_kept()


def test_an_object_with_millions_of_keys_costs_the_kernel_little_memory(kernel: Kernel) -> None:
    # 3M distinct keys: the kernel grew by ~600 MiB building the object.
    code = (
        "_keys = b','.join(b'\"%x\":0' % i for i in range(3_000_000))\n"
        '_body = b\'{"type":"display_data","data":{},"metadata":{\' + _keys + b\'}}\'\n'
        "del _keys\n_send_raw(_frame(_body))\ndel _body"
    )
    with RssSampler(kernel.process) as rss:
        cell = kernel.run(hostile(code), timeout=90)
    assert cell.status == "ok", cell.reply["content"]
    assert rss.growth < 200 * MIB, f"kernel RSS grew by {rss.growth >> 20} MiB"
    assert "JSON values" in cell.stderr
    kernel.assert_state_kept()


def test_input_requests_nobody_asked_for_cost_no_cpu(kernel: Kernel) -> None:
    # Each one started a task polling stdin every 10 ms, for good: ~1 CPU-s per s.
    code = (
        "_send_raw(b''.join(_frame({'type': 'input_request', 'prompt': 'x'}) for _ in range(500)))"
    )
    cell = kernel.run(hostile(code))
    assert cell.status == "ok", cell.reply["content"]
    # Reported once, not once per frame.
    assert cell.stderr.count("input_request") == 1, cell.stderr
    # Idle afterwards: the kernel's CPU time over two seconds, read from /proc.
    before = cpu_seconds(kernel.process)
    time.sleep(2.0)
    used = cpu_seconds(kernel.process) - before
    assert used < 0.5, f"the idle kernel used {used:.2f} CPU-s in 2 s"
    kernel.assert_state_kept()


# Small caps so that each attack is quick: 1 MiB per message, 4 MiB per cell, 50/s.
CAPS = [
    f"--Output.max_message_bytes={MIB}",
    f"--Output.max_cell_output_bytes={4 * MIB}",
    "--Output.max_messages_per_s=50",
    f"--Output.max_comm_bytes={4 * MIB}",
]


@pytest.fixture
def capped(workspace: Path) -> Iterator[Kernel]:
    with hostile_kernel(workspace, *CAPS) as handle:
        yield handle


def test_metadata_counts_against_the_message_cap(capped: Kernel) -> None:
    # The size used to count the data only: 4 MiB of metadata went through a 1 MiB cap.
    code = (
        "_send_raw(_frame({'type': 'display_data', 'data': {'text/plain': 'small'},"
        " 'metadata': {'x': 'm' * (4 * 1024 * 1024)}}))"
    )
    cell = capped.run(hostile(code))
    assert cell.status == "ok"
    displays = cell_messages(cell, "display_data")
    assert displays == [], "a 4 MiB message got past the 1 MiB cap"
    assert received_bytes(cell.iopub) < MIB
    assert "Output.max_message_bytes" in cell.stderr


def test_mime_keys_count_against_the_message_cap(capped: Kernel) -> None:
    # 30,000 long MIME types with empty values: counted as 0 bytes before.
    code = (
        "_send_raw(_frame({'type': 'display_data',"
        " 'data': {'text/x-' + 'k' * 100 + str(i): '' for i in range(30_000)}}))"
    )
    cell = capped.run(hostile(code))
    assert cell.status == "ok"
    # Neither the keys (counted, or removed by the output gate) nor their bytes get through.
    shown = cell_messages(cell, "display_data")
    assert not [m for m in shown if "text/x-" in json.dumps(m["content"])]
    assert received_bytes(cell.iopub) < MIB


def test_comm_traffic_has_a_budget_of_its_own(capped: Kernel) -> None:
    # Comm messages were exempt from the per-cell cap: 20 MiB went through a 4 MiB cap.
    code = (
        "_send_raw(_frame({'type': 'comm_open', 'comm_id': 'c', 'target_name': 'jupyter.widget',"
        " 'data': {'state': {'_model_module': '@jupyter-widgets/base',"
        " '_model_name': 'LayoutModel'}}}))\n"
        "for _i in range(20):\n"
        "    _send_raw(_frame({'type': 'comm_msg', 'comm_id': 'c', 'data': {'x': 'c' * 1000000}}))\n"
        "    _time.sleep(0.05)"
    )
    cell = capped.run(hostile(code), timeout=60)
    assert cell.status == "ok"
    comm = received_bytes(cell_messages(cell, "comm_msg"))
    assert comm <= 4 * MIB + 64 * 1024, f"{comm >> 20} MiB of comm traffic got through"
    assert "comm" in cell.stderr


def test_held_display_updates_count_when_they_are_replayed(capped: Kernel) -> None:
    # Updates held back by the rate limit were replayed at the cell's end past the cap.
    code = (
        "_send_raw(b''.join(_frame({'type': 'update_display_data', 'data': {'text/plain': 'u' * 16384},"
        " 'transient': {'display_id': 'd%d' % i}}) for i in range(500)))"
    )
    cell = capped.run(hostile(code), timeout=60)
    assert cell.status == "ok"
    total = received_bytes(cell.iopub)
    assert total <= 4 * MIB + 64 * 1024, f"{total / MIB:.1f} MiB reached the client"


def test_the_kernels_own_notices_are_budgeted_and_coalesced(capped: Kernel) -> None:
    # Each malformed frame made its own notice, past the rate limit: 3,000 messages.
    code = "_send_raw(b''.join(_frame(b'not json %d' % i) for i in range(3000)))"
    cell = capped.run(hostile(code), timeout=60)
    assert cell.status == "ok"
    notices = [m for m in cell_messages(cell, "stream") if m["content"]["name"] == "stderr"]
    assert len(notices) <= 10, f"{len(notices)} notices for one flood"
    assert "3,000" in cell.stderr, cell.stderr


@pytest.fixture
def logged(workspace: Path, tmp_path: Path) -> Iterator[tuple[Kernel, Path, Path]]:
    """A kernel whose log (stderr) and audit log are files the test reads."""
    log_path, audit_path = tmp_path / "kernel.log", tmp_path / "audit.jsonl"
    with (
        log_path.open("wb") as log_file,
        hostile_kernel(workspace, f"--Policy.audit_log={audit_path}", stderr=log_file) as handle,
    ):
        yield handle, log_path, audit_path


def test_log_frames_cannot_flood_the_kernel_log(logged: tuple[Kernel, Path, Path]) -> None:
    # 2.1-2.6 GiB in 20 s before; here 4,000 frames of 10 kB would be 40 MB.
    kernel, log_path, _ = logged
    before = log_path.stat().st_size
    code = (
        "_send_raw(b''.join(_frame({'type': 'log', 'level': 'error', 'message': 'L' * 10000})"
        " for _ in range(4000)))"
    )
    cell = kernel.run(hostile(code), timeout=60)
    assert cell.status == "ok"
    kernel.assert_state_kept()
    grown = log_path.stat().st_size - before
    assert grown < 256 * 1024, f"the kernel log grew by {grown} bytes"


def test_a_log_frame_cannot_forge_a_line_of_the_server_log(
    logged: tuple[Kernel, Path, Path],
) -> None:
    kernel, log_path, _ = logged
    code = (
        "_send_raw(_frame({'type': 'log', 'level': 'error', 'message':"
        " 'x\\n[W 2024-01-01 00:00:00.000 ServerApp] FORGED' + _MARK + '\\r\\x1b[2K'}))"
    )
    cell = kernel.run(hostile(code))
    assert cell.status == "ok"
    kernel.assert_state_kept()
    lines = log_path.read_text("utf-8", "replace").splitlines()
    reported = [line for line in lines if "FORGED" in line]
    assert reported, "the log frame was not logged at all"
    for line in reported:
        assert not line.startswith("[W 2024-01-01"), line
        assert "\x1b" not in line
        assert "\r" not in line
        # Said to come from the cell, in the same line.
        assert "cell" in line.split("FORGED")[0]


def read_audit(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_audit_frames_cannot_forge_seccomp_or_lock_records(
    logged: tuple[Kernel, Path, Path],
) -> None:
    kernel, _, audit_path = logged
    code = (
        "_send_raw(_frame({'type': 'audit', 'event': 'seccomp', 'rule': 'SECCOMP',"
        " 'action': 'deny', 'detail': 'FORGED ' + _MARK}))\n"
        "_send_raw(_frame({'type': 'audit', 'event': 'lock', 'rule': 'LOCK',"
        " 'action': 'deny', 'detail': 'FORGED ' + _MARK}))\n"
        "_send_raw(_frame({'type': 'audit', 'event': 'comm_refused', 'rule': 'X',"
        " 'action': 'deny', 'detail': 'FORGED ' + _MARK}))\n"
        "_send_raw(_frame({'type': 'audit', 'event': 'open', 'rule': 'SKP240',"
        " 'action': 'deny', 'detail': 'reported ' + _MARK}))"
    )
    cell = kernel.run(hostile(code))
    assert cell.status == "ok"
    kernel.assert_state_kept()
    records = [r for r in read_audit(audit_path) if MARK in r.get("detail", "")]
    # The supervisor's and the kernel's own kinds never come from the relay...
    assert not [r for r in records if {"SECCOMP", "LOCK"} & set(r.get("rules", []))], records
    assert not [r for r in records if r.get("event") in {"seccomp", "lock", "comm_refused"}], (
        records
    )
    # ...and what the relay reports is marked as the cell's word.
    [reported] = [r for r in records if "reported" in r["detail"]]
    assert reported["reported_by"] == "cell"


def test_audit_frames_cannot_flood_the_audit_log(logged: tuple[Kernel, Path, Path]) -> None:
    # 99-228 MiB before; here 5,000 records of 2 kB would be 10 MB.
    kernel, _, audit_path = logged
    before = audit_path.stat().st_size if audit_path.exists() else 0
    code = (
        "_send_raw(b''.join(_frame({'type': 'audit', 'event': 'open', 'rule': 'SKP240',"
        " 'action': 'audit', 'detail': 'A' * 2000}) for _ in range(5000)))"
    )
    cell = kernel.run(hostile(code), timeout=60)
    assert cell.status == "ok"
    grown = (audit_path.stat().st_size if audit_path.exists() else 0) - before
    assert grown < 512 * 1024, f"the audit log grew by {grown} bytes"
    kernel.assert_state_kept()


HIJACK = """
import signal as _signal
_ex = _executor()
_signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGUSR1})
_pid = _os.fork()
if _pid == 0:
    # The cell's own process, waiting to be promoted as if it were the snapshot.
    _signal.sigwait({_signal.SIGUSR1})
    _ex.shell.user_ns["hijacked"] = "the cell's own process answers"
    _ex._become_executor()
    _ex.serve()
    _os._exit(0)
get_ipython().outbox.send({"type": "snapshot", "pid": _pid, "skipped": ""})
_time.sleep(0.5)
_os.kill(_os.getpid(), _signal.SIGKILL)
"""


def test_a_cell_cannot_announce_its_own_process_as_the_snapshot(kernel: Kernel) -> None:
    cell = kernel.run(HIJACK, timeout=60)
    assert cell.status == "error"
    evalue = cell.reply["content"]["evalue"]
    probe = kernel.run("print(globals().get('hijacked'), canary)", timeout=30)
    # Whatever answers now holds the state from before the cell, or a fresh one:
    # never a process of the cell that died.
    assert "answers" not in probe.stdout, (evalue, probe.stdout)
    kernel.assert_serving_after_stop(evalue)


WAKE_THE_SNAPSHOT = """
import signal as _signal
_exe = _os.getpid()
if _os.fork() == 0:
    # Once the cell has ended (the test says so) and the executor has forked its next
    # snapshot: wake the snapshot, and stop the executor so the snapshot reads the
    # relay alone.
    for _ in range(2000):
        if _os.path.exists("go"):
            break
        _time.sleep(0.01)
    for _ in range(200):
        _kids = [int(k) for k in open(f"/proc/{_exe}/task/{_exe}/children").read().split()]
        _kids = [k for k in _kids if k != _os.getpid()]
        if _kids:
            break
        _time.sleep(0.01)
    for _kid in _kids:
        _os.kill(_kid, _signal.SIGUSR1)
    _os.kill(_exe, _signal.SIGSTOP)
    open("executor-stopped", "w").close()
    _time.sleep(1.5)
    _os.kill(_exe, _signal.SIGCONT)
    _os._exit(0)
"""


def test_a_cell_cannot_wake_the_snapshot(kernel: Kernel) -> None:
    # The woken snapshot swallowed the next command: that cell hung, and the state was lost.
    cell = kernel.run(WAKE_THE_SNAPSHOT, timeout=30)
    assert cell.status == "ok"
    (kernel.workspace / "go").touch()
    marker = kernel.workspace / "executor-stopped"
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists()
    kernel.assert_state_kept()
    crash = kernel.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", timeout=60)
    assert "still there" in crash.reply["content"]["evalue"]
    kernel.assert_state_kept()


@pytest.mark.parametrize("kernel_name", ["sandbox-python", "sandbox-python-docker"])
def test_kill_zero_does_not_take_the_snapshot_along(workspace: Path, kernel_name: str) -> None:
    # kill(0, SIGKILL) reached the snapshot in the executor's process group (and, at
    # the landlock level of a Docker-like host, the supervisor: the whole sandbox).
    with hostile_kernel(workspace, kernel_name=kernel_name) as kernel:
        cell = kernel.run("import os, signal\nos.kill(0, signal.SIGKILL)", timeout=60)
        assert cell.status == "error"
        assert "still there" in cell.reply["content"]["evalue"], cell.reply["content"]
        kernel.assert_state_kept()


def test_pid_1_reaps_a_fork_and_exit_chain_at_once(workspace: Path) -> None:
    # Orphans were reaped once a second: their zombies used up a 64-process limit.
    code = """
import os, time
_pid = os.fork()
if _pid == 0:
    for _ in range(400):
        if os.fork():
            os._exit(0)
    open("chain-done", "w").close()
    os._exit(0)
os.waitpid(_pid, 0)
for _ in range(300):
    if os.path.exists("chain-done"):
        print("chain done")
        break
    time.sleep(0.1)
"""
    with hostile_kernel(workspace, "--Limits.max_processes=64") as kernel:
        cell = kernel.run(code, timeout=60)
        assert "chain done" in cell.stdout, cell.everything()[-2000:]
        kernel.assert_state_kept()


PLANTED = """
import os as _os
open(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "RAN-" + __name__), "w").close()
"""


def test_modules_planted_in_the_workspace_never_run_at_start(
    workspace: Path, tmp_path: Path
) -> None:
    """A notebook directory holding a module under any name the executor imports at
    start (comm.py, say) must not have it run before the audit hooks, or at all."""
    with running_kernel(workspace, extra_arguments=HOSTILE_ARGUMENTS) as (_, kc):
        names = run_cell(
            kc,
            "import json\nfrom sandbox_kernel.child import child\n"
            "print(json.dumps(sorted(child.BOOTSTRAP_MODULES)))",
        )
    assert names.status == "ok", names.reply["content"]
    bootstrap = json.loads(names.stdout)
    assert "comm" in bootstrap
    assert "IPython" in bootstrap
    planted = tmp_path / "planted"
    planted.mkdir()
    planted.chmod(0o777)
    for name in bootstrap:
        (planted / f"{name}.py").write_text(PLANTED)
    (planted / "notebook_helper_4b1e.py").write_text("VALUE = 'from the workspace'\n")
    with running_kernel(planted) as (_, kc):
        cell = run_cell(kc, "import notebook_helper_4b1e\nprint(notebook_helper_4b1e.VALUE)")
    # The workspace is still importable, as in ipykernel...
    assert cell.stdout == "from the workspace\n", cell.everything()[-2000:]
    # ...but nothing planted under a bootstrap name ran.
    ran = sorted(p.name for p in planted.glob("RAN-*"))
    assert ran == [], ran


def test_a_forged_copy_ahead_note_shows_no_words_of_the_cell(kernel: Kernel) -> None:
    """The executor's reply names why nothing was copied ahead by a key; the kernel owns
    the words. A cell rewrites what its executor replies: its own text must reach
    neither the reply's metadata nor %sandbox."""
    forged = kernel.run(
        "_hp = _executor().hot_pages\n"
        "_hp.unavailable = None\n"
        "_hp.note = '<img src=x onerror=alert(1)>' + _MARK"
    )
    assert forged.status == "ok", forged.reply["content"]
    assert MARK not in forged.everything()
    assert forged.reply["metadata"]["sandbox"].get("copy_ahead_note") is None
    report = kernel.run("%sandbox")
    assert report.status == "ok", report.reply["content"]
    assert "copy ahead" in report.stdout  # the report was read, not a blank one
    assert MARK not in report.everything()
    # A known key, forged, gets the kernel's words and nothing more.
    known = kernel.run("_executor().hot_pages.note = 'cut_short'")
    note = known.reply["metadata"]["sandbox"].get("copy_ahead_note")
    assert note is not None, known.reply["metadata"]
    assert note.startswith("cut short:"), note
    kernel.assert_state_kept()


def test_a_blocking_pump_read_end_cannot_hang_the_end_of_a_cell(kernel: Kernel) -> None:
    """A cell clears O_NONBLOCK on the executor's fd-pump pipes (its own descriptors),
    then writes to fds 1 and 2: the end of each cell drains the pipes, and a read that
    blocked there, holding the pump's lock, would hang this cell and every later one."""
    setup = kernel.run(
        "for _p in _executor().pumps:\n    _os.set_blocking(_p.read_end, True)\n"
        "print(all(_os.get_blocking(_p.read_end) for _p in _executor().pumps))"
    )
    assert setup.stdout == "True\n", setup.everything()[-2000:]
    for i in range(5):
        cell = kernel.run(
            f"_os.write(1, b'raw-out-{i}\\n')\n_os.write(2, b'raw-err-{i}\\n')",
            timeout=CELL_TIMEOUT_S,
        )
        assert cell.status == "ok", cell.reply["content"]
        # (A hang would end in CellHung after CELL_TIMEOUT_S, not here.)
        assert f"raw-out-{i}" in cell.stdout, cell.everything()[-2000:]
        assert f"raw-err-{i}" in cell.stderr, cell.everything()[-2000:]
    kernel.assert_state_kept()
    kernel.assert_alive()
