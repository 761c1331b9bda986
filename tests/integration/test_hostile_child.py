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

import json
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.utils import running_kernel

FRAME_DEADLINE_S = 1.0
CELL_TIMEOUT_S = 30.0
NOTICE = "[sandbox] an output from the executor was dropped"
MAX_FRAME_BYTES = 64 * 1024 * 1024  # Output.max_frame_bytes default

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


class CellHung(AssertionError):
    """The kernel did not finish a cell within the bound."""


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
    started = time.monotonic()
    deadline = started + timeout
    msg_id = kc.execute(code, allow_stdin=False)
    iopub: list[dict[str, Any]] = []

    def remaining(what: str) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            seen = [(m["msg_type"], m["content"].get("execution_state")) for m in iopub]
            raise CellHung(f"no {what} within {timeout:g} s; IOPub so far: {seen}")
        return left

    while True:
        try:
            msg = kc.get_iopub_msg(timeout=remaining("idle status"))
        except queue.Empty:
            remaining("idle status")
            continue
        iopub.append(msg)
        if (
            msg["msg_type"] == "status"
            and msg["parent_header"].get("msg_id") == msg_id
            and msg["content"]["execution_state"] == "idle"
        ):
            break
    while True:
        try:
            reply = kc.get_shell_msg(timeout=remaining("execute_reply"))
        except queue.Empty:
            remaining("execute_reply")
            continue
        if reply["parent_header"].get("msg_id") == msg_id:
            return Cell(msg_id, reply, iopub, time.monotonic() - started)


@dataclass
class Kernel:
    km: KernelManager
    kc: BlockingKernelClient
    process: psutil.Process
    workspace: Path

    def fd_count(self) -> int | None:
        """The kernel's open descriptors; None where this user may not look (not dumpable)."""
        try:
            return int(self.process.num_fds())
        except psutil.AccessDenied:
            return None

    def assert_fds_unchanged(self, before: int | None) -> None:
        if before is not None:
            assert self.fd_count() == before

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


@pytest.fixture
def kernel(workspace: Path) -> Iterator[Kernel]:
    """The real kernel, with a 1 s frame deadline and the hostile helpers defined.

    The cell policy is a separate layer (native code gets past it anyway): it is
    turned down so that these cells reach the relay, which must hold on its own.
    """
    arguments = [
        f"--Output.frame_deadline_s={FRAME_DEADLINE_S:g}",
        "--Policy.preset=permissive",
        "--Policy.runtime_hooks=False",
    ]
    with running_kernel(workspace, extra_arguments=arguments) as (km, kc):
        provisioner = km.provisioner
        assert provisioner is not None
        process = psutil.Process(provisioner.process.pid)  # type: ignore[attr-defined]
        handle = Kernel(km, kc, process, workspace)
        setup = handle.run(HOSTILE_HELPERS)
        assert setup.status == "ok", setup.reply["content"]
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
    fds_before = kernel.fd_count()
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
    fds_before = kernel.fd_count()
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
    fds_before = kernel.fd_count()
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
    fds_before = kernel.fd_count()
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
