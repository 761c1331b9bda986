"""Start the sandboxed executor and talk to it (runs in the trusted kernel).

The executor is started by exec'ing a fresh interpreter (never a fork of this
multi-threaded process, which holds the HMAC key and the ZMQ sockets), with a
scrubbed environment and exactly three inherited descriptors: the relay socket
(frames both ways), the supervisor socket (process events, signals) and a pipe
that carries the spec once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import procfs
from ..errors import ExecutorDied, RelayError
from ..framing import encode_frame
from ..isolation.spec import Launch, SandboxSpec, dumps
from ..relay.reader import FrameReader, FrameRejected
from ..relay.reports import Quota
from . import leftovers
from .spawn import spawn, take_prelaunched

__all__ = ["CellOutcome", "ExecuteRequest", "ExecutorProcess", "OutputSink"]

log = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024
# Per cell, what the executor may put in the kernel log and the audit log.
LOG_RECORDS_PER_CELL = 100
LOG_BYTES_PER_CELL = 64 * 1024
AUDIT_RECORDS_PER_CELL = 100
AUDIT_BYTES_PER_CELL = 128 * 1024
# Kinds of record only the supervisor (seccomp) and the kernel (admin locks, the
# workspace scan, the output gate's refused comms) make.
TRUSTED_AUDIT_EVENTS = frozenset({"seccomp", "lock", "workspace", "comm_refused"})
TRUSTED_AUDIT_RULES = frozenset({"SECCOMP", "LOCK", "WORKSPACE"})
# The frame that answers each command; anything else carrying its id is forged.
REPLY_TYPES = {
    "execute": "execute_reply",
    "complete": "complete_reply",
    "inspect": "inspect_reply",
    "debug": "debug_reply",
}
STDERR_LOG_LIMIT = 64 * 1024
# How long the kernel waits for the supervisor's sweep of a cell's processes: a sweep
# is milliseconds, or seconds where it has no /proc and the pids wrapped (supervisor.py).
SWEEP_TIMEOUT_S = 10.0


class OutputSink(Protocol):
    """What the runner hands the executor's outputs to (the publisher, in the kernel)."""

    def publish(self, message: dict[str, Any]) -> None: ...

    async def request_input(self, prompt: str, password: bool, parent: str) -> str: ...


@dataclass
class ExecuteRequest:
    code: str
    silent: bool
    store_history: bool
    user_expressions: dict[str, str]
    allow_stdin: bool
    execution_count: int
    parent: str
    # The kernel ends the cell's processes afterwards (and the executor takes its
    # next snapshot only then).
    reap_after: bool = False


@dataclass
class CellOutcome:
    """How a cell ended, as the trusted side saw it."""

    reply: dict[str, Any] | None = None
    # Set when the cell did not end with a reply: the executor died, was killed
    # after an interrupt, or broke the protocol. Words for the user.
    failure: str | None = None
    wall_time_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)


_SIGNAL_MEANINGS: dict[int, str] = {
    signal.SIGKILL: "was killed",
    signal.SIGSEGV: "crashed with a segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "crashed with a bus error",
    signal.SIGFPE: "crashed with an arithmetic fault",
    signal.SIGILL: "crashed on an illegal instruction",
    signal.SIGSYS: "was stopped by the seccomp filter (a forbidden system call)",
    signal.SIGXCPU: "reached its CPU time limit",
    signal.SIGXFSZ: "reached its file size limit",
}


def describe_exit(code: int | None, sig: int | None) -> str:
    """Say how a process ended, in words."""
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"{_SIGNAL_MEANINGS.get(sig, 'was stopped')} ({name})"
    return f"exited with status {code}" if code is not None else "ended"


async def _exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to ``timeout`` for the launcher to exit; True when it has (and is reaped).

    Woken by a pidfd the moment it exits (shutdown and restart wait for this; a 10 ms
    poll added 5 ms on average), polling only where pidfds are unavailable.
    """
    if proc.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:
        pidfd = -1
    if pidfd < 0:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return proc.poll() is not None
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    loop.add_reader(pidfd, gone.set)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gone.wait(), timeout)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return proc.poll() is not None


class ExecutorProcess:
    """One executor: its processes, its relay, and the requests in flight."""

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        sink: OutputSink,
        env: dict[str, str],
        cwd: str,
        max_frame_bytes: int,
        frame_deadline_s: float,
        on_log: Callable[[str, str], None] | None = None,
        on_audit: Callable[[dict[str, Any]], None] | None = None,
        headroom: Callable[[], int | None] | None = None,
    ) -> None:
        self.spec = spec
        self.sink = sink
        self.env = env
        self.cwd = cwd
        self.frame_deadline_s = frame_deadline_s
        self.on_log = on_log or (
            lambda level, msg: log.log(logging.getLevelName(level.upper()), "%s", msg)
        )
        self.on_audit = on_audit
        self._headroom = headroom
        self._reader = self._new_reader(max_frame_bytes)
        self._supervisor_reader = FrameReader(1024 * 1024)
        # Set at the first frame the reader rejects outright: read from two places (the
        # channel's task and _drain_supervisor), the channel is given up, and said, once.
        self._supervisor_broken = False
        # end_cell_processes sweeps the kernel waits on, by id (reap_cell_processes).
        self._sweeps = 0
        self._sweeping: dict[int, asyncio.Future[None]] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.relay: socket.socket | None = None
        self.supervisor: socket.socket | None = None
        self.ready: dict[str, Any] | None = None
        self._ready_future: asyncio.Future[dict[str, Any]] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        # request id -> (the reply frame type it expects, its secret token)
        self._expected: dict[int, tuple[str, str]] = {}
        self.forged_replies = 0
        self._next_id = 1
        self._send_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._input_tasks: set[asyncio.Task[Any]] = set()
        # Whether the running cell may ask for input (its request allowed stdin);
        # at most one input_request is outstanding at a time.
        self._stdin_allowed = False
        self.protocol_violations = 0
        # How many snapshot announcements the executor makes next: one after each
        # reply that ends a command (and one more per comm message handed over
        # while a cell ran). Any other announcement is the cell's, not a snapshot.
        self._announcements_due = 0
        self._deferred_commands = 0
        self._log_quota = Quota(LOG_RECORDS_PER_CELL, LOG_BYTES_PER_CELL)
        self._audit_quota = Quota(AUDIT_RECORDS_PER_CELL, AUDIT_BYTES_PER_CELL)
        self.exit_status: dict[str, Any] | None = None
        self._exited = asyncio.Event()
        # The whole sandbox is gone (or being taken down) when dead_reason is
        # set; only the executor process is gone when executor_lost is: its
        # snapshot may still be promoted.
        self.dead_reason: str | None = None
        self.executor_lost: str | None = None
        self.executor_pid: int | None = None
        self.snapshot_pid: int | None = None
        self.snapshot_skipped: str | None = None
        self._restore: tuple[bytes, asyncio.Future[None]] | None = None
        self._scan = bytearray()
        self._executor_gone = asyncio.Event()
        self._host_pid: tuple[int, int] | None = None
        self.stderr_tail = bytearray()
        self.started_at = 0.0
        self.setup_time_s: float | None = None
        self.setup_failure: str | None = None
        self.setup_report: dict[str, Any] = {}

    def _new_reader(self, max_frame_bytes: int) -> FrameReader:
        return FrameReader(max_frame_bytes, headroom=self._headroom)

    # -- lifecycle -------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return (
            self.dead_reason is None
            and self.executor_lost is None
            and self.proc is not None
            and self.proc.poll() is None
        )

    async def start(self, timeout: float) -> dict[str, Any]:
        """Start (or adopt the pre-started) launcher, send the spec, wait for ``ready``."""
        loop = asyncio.get_running_loop()
        self.started_at = time.monotonic()
        launcher = take_prelaunched() or spawn(self.env, self.cwd)
        self.proc = launcher.proc
        relay_parent, sup_parent = launcher.relay, launcher.supervisor
        launch = Launch(
            sandbox=self.spec,
            relay_fd=launcher.relay_child_fd,
            supervisor_fd=launcher.supervisor_child_fd,
            kernel_pid=os.getpid(),
            # A pre-started launcher began with the built-in allow-list only.
            env=self.env,
            cwd=self.cwd,
        )
        with os.fdopen(launcher.spec_fd, "w") as spec_file:
            spec_file.write(dumps(launch))
        for sock in (relay_parent, sup_parent):
            sock.setblocking(False)
        self.relay, self.supervisor = relay_parent, sup_parent
        self._ready_future = loop.create_future()
        self._tasks = [
            asyncio.ensure_future(self._read_relay()),
            asyncio.ensure_future(self._read_supervisor()),
            asyncio.ensure_future(self._read_stderr()),
        ]
        try:
            self.ready = await asyncio.wait_for(asyncio.shield(self._ready_future), timeout)
        except TimeoutError:
            await self.kill()
            raise ExecutorDied(f"the executor did not start within {timeout:g} s") from None
        self.setup_time_s = time.monotonic() - self.started_at
        self.executor_pid = self.ready["pid"]
        return self.ready

    async def kill(self) -> None:
        """End the executor and everything it started; safe to call twice.

        Closing the supervisor's socket first lets it kill the tree itself
        (at the namespaces level pid 1 exits and the pid namespace dies with
        it; elsewhere the subreaper kills every descendant, including ones
        that called setsid). SIGKILL to the launcher's session follows if
        that does not happen quickly.
        """
        if self.dead_reason is None:
            self.dead_reason = "stopped by the kernel"
        if self.supervisor is not None:
            with contextlib.suppress(OSError):
                self.supervisor.shutdown(socket.SHUT_RDWR)
        proc = self.proc
        if proc is not None and not await _exited(proc, 1.0):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await _exited(proc, 1.0)
        self._fail_pending(ExecutorDied(self.dead_reason or "the executor stopped"))
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for sock in (self.relay, self.supervisor):
            if sock is not None:
                sock.close()

    def interrupt(self) -> None:
        """Ask the supervisor to deliver SIGINT to the executor."""
        self.send_supervisor({"op": "signal", "signal": int(signal.SIGINT)})

    def tree_pids(self) -> list[int]:
        """The sandbox's processes as this process sees them (the launcher and all below it)."""
        if self.proc is None:
            return []
        # /proc/PID/task/TID/children reads only this tree; psutil's children()
        # scans every process on the host, milliseconds per cell on a busy one.
        seen: list[int] = []
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            seen.append(pid)
            try:
                todo.extend(procfs.children(pid, strict=True))
            except OSError:
                import psutil  # only where /proc has no children files

                try:
                    root = psutil.Process(self.proc.pid)
                    return [root.pid, *(p.pid for p in root.children(recursive=True))]
                except psutil.Error:
                    return []
        return seen

    def tree_size(self) -> int:
        """How many processes the sandbox holds now (the launcher and all below it)."""
        return len(self.tree_pids())

    def executor_host_pid(self) -> int | None:
        """The executor's pid as this process sees it (the executor reports its own namespace's)."""
        if self.proc is None or self.executor_pid is None:
            return None
        if self._host_pid is not None and self._host_pid[0] == self.executor_pid:
            return self._host_pid[1]
        import psutil

        try:
            candidates = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return None
        for candidate in candidates:
            if procfs.innermost_pid(candidate.pid) == self.executor_pid:
                self._host_pid = (self.executor_pid, candidate.pid)
                return int(candidate.pid)
        return None

    def executor_host_uid(self) -> int | None:
        """The host uid the executor runs as: the uid whose processes RLIMIT_NPROC counts
        for the cell (this kernel's own uid, or the sandbox uid a root kernel maps)."""
        pid = self.executor_host_pid()
        if pid is None:
            return None
        import psutil

        try:
            return int(psutil.Process(pid).uids().real)
        except psutil.Error:
            return None

    def executor_cpu_s(self) -> float | None:
        """CPU time of the executor and the children it has waited for, measured from outside."""
        pid = self.executor_host_pid()
        if pid is None:
            return None
        fields = procfs.stat_fields(pid)
        if fields is None:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        # utime, stime, cutime, cstime (proc(5), fields 14-17)
        return sum(int(v) for v in fields[11:15]) / ticks

    def mute(self) -> None:
        """The cell's output is over its budget: the executor stops sending it (SIGUSR2)."""
        self.send_supervisor({"op": "signal", "signal": int(signal.SIGUSR2)})

    def kill_executor(self, reason: str) -> None:
        """Kill the executor process only: the sandbox, and the cell's snapshot, stay."""
        self.executor_lost = self.executor_lost or reason
        self._fail_pending(ExecutorDied(self.executor_lost))
        self.send_supervisor({"op": "signal", "signal": int(signal.SIGKILL)})

    def end_cell_processes(self, keep: list[int] | None = None) -> None:
        """Kill what the last cell left running (everything in the sandbox but the executor)."""
        self.send_supervisor({"op": "end_cell_processes", "keep": keep or []})

    def holds_only_its_own_processes(self) -> bool:
        """Whether the sandbox holds nothing but the launcher, its pid 1, the executor and
        the executor's snapshot or zombies (kernel/leftovers.py); False when unsure."""
        executor = self.executor_host_pid()
        if self.proc is None or executor is None:
            return False
        return leftovers.only_own_processes(self.proc.pid, executor, self.snapshot_pid)

    async def reap_cell_processes(self, *, sweep_if_needed: bool = False) -> None:
        """End what the last cell left running and have the executor collect its zombies.

        The executor takes its next snapshot once it has collected them, so the
        supervisor's sweep must be over first: the two commands go over two sockets,
        and a sweep that came late killed the fresh snapshot (the next crash was then
        not rolled back). With ``sweep_if_needed`` the sweep is left out when the cell
        left no process (the reap command still runs: it takes the snapshot).
        """
        if not (sweep_if_needed and self.holds_only_its_own_processes()):
            await self._sweep()
        with contextlib.suppress(ExecutorDied, asyncio.TimeoutError):
            await asyncio.wait_for(self.request({"op": "reap"}), 5.0)

    async def _sweep(self) -> None:
        """Have the supervisor kill every process of the sandbox but the executor; wait."""
        self._sweeps += 1
        sweep = self._sweeps
        swept = asyncio.get_running_loop().create_future()
        self._sweeping[sweep] = swept
        try:
            if self.send_supervisor({"op": "end_cell_processes", "keep": [], "id": sweep}):
                await asyncio.wait_for(swept, SWEEP_TIMEOUT_S)
        except TimeoutError:
            self.on_log("warning", "the supervisor did not confirm the end of the cell's processes")
        finally:
            self._sweeping.pop(sweep, None)

    async def promote(self, timeout: float = 10.0) -> bool:
        """Make the cell's snapshot the executor; True when it took over.

        The old executor must be gone first (its exit reported). The snapshot
        resumes the relay where the old one left it, so both sides look for a
        random token instead of trusting the stream's position: a dying
        executor may have left half a frame in either direction.
        """
        if self.dead_reason is not None:
            return False
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._executor_gone.wait(), timeout)
        if not self._executor_gone.is_set():
            return False
        # Everything the executor wrote is in the socket now; the snapshot it
        # announced last (just before the fatal cell) may still be unread.
        await self._relay_settled()
        pid = self.snapshot_pid
        if pid is None:
            return False
        # Nothing the dead cell left behind may race the snapshot for the relay.
        self.end_cell_processes(keep=[pid])
        token = secrets.token_hex(16)
        marker = encode_frame({"type": "restored", "token": token, "pid": pid})
        restored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = self._new_reader(self._reader.max_frame_bytes)
        self._scan = bytearray()
        self._restore = (marker, restored)
        self.send_supervisor({"op": "promote", "pid": pid})
        try:
            await self.send_raw({"op": "resume", "token": token})
            await asyncio.wait_for(restored, timeout)
        except (TimeoutError, ExecutorDied):
            self._restore = None
            return False
        self.executor_pid, self.snapshot_pid = pid, None
        self.executor_lost = None
        self._executor_gone.clear()
        return True

    def send_supervisor(self, command: dict[str, Any]) -> bool:
        """Send the supervisor a command; whether it went out."""
        if self.supervisor is None or self.dead_reason:
            return False
        try:
            # Tiny and rare; the supervisor reads it at once.
            self.supervisor.send(encode_frame(command))
        except OSError:
            return False
        return True

    # -- requests ----------------------------------------------------------------

    async def send(self, command: dict[str, Any]) -> None:
        if self.executor_lost:
            raise ExecutorDied(self.executor_lost)
        await self.send_raw(command)

    async def send_deferred(self, command: dict[str, Any]) -> None:
        """A comm message for the executor to take up after the running cell; it takes
        a new snapshot afterwards (the widget changed the state), announced like any."""
        await self.send(command)
        self._deferred_commands += 1

    async def send_raw(self, command: dict[str, Any]) -> None:
        if self.relay is None or self.dead_reason:
            raise ExecutorDied(self.dead_reason or "the executor is not running")
        loop = asyncio.get_running_loop()
        async with self._send_lock:
            try:
                await loop.sock_sendall(self.relay, encode_frame(command))
            except OSError as exc:
                raise ExecutorDied(f"the executor stopped reading ({exc.strerror})") from None

    async def request(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send a command that gets a reply frame carrying the same id; await that frame."""
        request_id = self._next_id
        self._next_id += 1
        # Ids are guessable; the token is not. A cell can write frames to the relay
        # socket, but it cannot end its own cell early (cancelling its time limits)
        # without the token, which the executor keeps out of the cell's reach.
        token = secrets.token_hex(16)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._expected[request_id] = (REPLY_TYPES.get(command["op"], "done"), token)
        try:
            await self.send({**command, "id": request_id, "token": token})
            return await future
        finally:
            self._pending.pop(request_id, None)
            self._expected.pop(request_id, None)

    async def execute(self, request: ExecuteRequest) -> CellOutcome:
        started = time.monotonic()
        outcome = CellOutcome()
        self._stdin_allowed = request.allow_stdin
        self._log_quota.reset()
        self._audit_quota.reset()
        try:
            outcome.reply = await self.request(
                {
                    "op": "execute",
                    "code": request.code,
                    "silent": request.silent,
                    "store_history": request.store_history,
                    "user_expressions": request.user_expressions,
                    "allow_stdin": request.allow_stdin,
                    "execution_count": request.execution_count,
                    "parent": request.parent,
                    "reap_after": request.reap_after,
                }
            )
        except ExecutorDied as exc:
            outcome.failure = str(exc)
        finally:
            self._stdin_allowed = False
            self._summarise_reports()
            for task in list(self._input_tasks):
                task.cancel()
            outcome.wall_time_s = time.monotonic() - started
        return outcome

    # -- reading -----------------------------------------------------------------

    def _fail_pending(self, error: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        if self._ready_future is not None and not self._ready_future.done():
            self._ready_future.set_exception(error)

    async def _died(self, reason: str) -> None:
        """The relay ended: every process holding it is gone. Tell every waiter and clean up."""
        if self.dead_reason is not None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._exited.wait(), 1.0)
        status = self.exit_status
        if self.executor_lost:
            reason = self.executor_lost
        elif status is not None:
            reason = (
                f"{reason}: the executor {describe_exit(status.get('code'), status.get('signal'))}"
            )
        self.dead_reason = reason
        self._fail_pending(ExecutorDied(reason, signal=(status or {}).get("signal")))
        await self.kill()

    def _broken(self, reason: str) -> None:
        """The executor broke the protocol or stalled: stop it; its snapshot may take over."""
        self.on_log("warning", f"executor stopped: {reason}")
        self.kill_executor(reason)

    def _on_exit(self, item: dict[str, Any]) -> None:
        self.exit_status = item
        self._exited.set()
        if item["pid"] == self.executor_pid:
            self._executor_gone.set()
            why = f"the executor {describe_exit(item.get('code'), item.get('signal'))}"
            self.executor_lost = self.executor_lost or why
            self._fail_pending(ExecutorDied(self.executor_lost, signal=item.get("signal")))

    async def _read_relay(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.relay is not None
        partial_since: float | None = None
        try:
            while True:
                timeout = None
                if partial_since is not None:
                    timeout = max(0.0, partial_since + self.frame_deadline_s - time.monotonic())
                try:
                    data = await asyncio.wait_for(loop.sock_recv(self.relay, READ_CHUNK), timeout)
                except TimeoutError:
                    self._broken(f"it left a frame unfinished for {self.frame_deadline_s:g} s")
                    self._reader = self._new_reader(self._reader.max_frame_bytes)
                    partial_since = None
                    continue
                if not data:
                    problem = self._reader.eof_error()
                    await self._died(str(problem) if problem else "the executor closed the relay")
                    return
                if self._restore is not None:
                    data = self._after_marker(data)
                    if not data:
                        continue
                if self.executor_lost and self._restore is None:
                    # An executor being replaced: its last frames mean nothing any more,
                    # except which snapshot it took (written before the fatal cell ran,
                    # but maybe read only after its exit was reported).
                    self._read_lost(data)
                    continue
                broken: RelayError | None = None
                try:
                    items = self._reader.feed(data)
                except RelayError as exc:
                    items, broken = getattr(exc, "items", []), exc
                for item in items:
                    self._handle(item)
                if broken is not None:
                    self._broken(f"it broke the relay protocol ({broken})")
                    self._reader = self._new_reader(self._reader.max_frame_bytes)
                    partial_since = None
                    continue
                if self._reader.has_partial_frame:
                    partial_since = partial_since or time.monotonic()
                else:
                    partial_since = None
        except OSError as exc:
            await self._died(f"the relay failed ({exc})")

    def _read_lost(self, data: bytes) -> None:
        try:
            items = self._reader.feed(data)
        except RelayError as exc:
            items = getattr(exc, "items", [])
            self._reader = self._new_reader(self._reader.max_frame_bytes)
        for item in items:
            if not isinstance(item, FrameRejected) and item["type"] == "snapshot":
                self._handle(item)

    async def _relay_settled(self, timeout: float = 0.5) -> None:
        """Wait until the reader has taken every byte already in the relay socket."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.relay is None or self.relay.fileno() < 0:
                break  # closed: nothing more will come
            readable, _, _ = select.select([self.relay], [], [], 0)
            if not readable:
                break
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)

    def _after_marker(self, data: bytes) -> bytes:
        """While a snapshot takes over: drop bytes until its exact 'restored' frame."""
        assert self._restore is not None
        marker, restored = self._restore
        self._scan += data
        index = self._scan.find(marker)
        if index < 0:
            del self._scan[: max(0, len(self._scan) - len(marker))]
            return b""
        rest = bytes(self._scan[index + len(marker) :])
        # The promoted snapshot announces its own next snapshot before its first cell.
        self._announcements_due = 1
        self._deferred_commands = 0
        self._scan = bytearray()
        self._restore = None
        if not restored.done():
            restored.set_result(None)
        return rest

    def _handle(self, item: dict[str, Any] | FrameRejected) -> None:
        """One frame from the reader. Nothing a frame contains may stop the reading loop."""
        try:
            if isinstance(item, FrameRejected):
                self._cell_log("warning", f"dropped a frame from the executor: {item}")
                self.sink.publish({"type": "relay_notice", "text": str(item)})
            else:
                self._dispatch(item)
        except Exception as exc:  # the loop must go on: every waiter depends on it
            log.exception("relay_dispatch_failed")
            with contextlib.suppress(Exception):
                self.sink.publish(
                    {
                        "type": "relay_notice",
                        "text": f"an output could not be relayed ({type(exc).__name__})",
                    }
                )

    def _forged(self, kind: str, why: str) -> None:
        """A reply the executor's own code did not send: the running cell wrote it."""
        self.forged_replies += 1
        if self.forged_replies > 3:
            return  # a flood of them: the first few are on record
        self.on_log("warning", f"dropped a forged {kind} {why}")
        if self.on_audit is not None:
            self.on_audit(
                {
                    "source": "relay",
                    "rule": "",
                    "action": "deny",
                    "event": "forged_reply",
                    "detail": f"a {kind} {why}",
                    "reported_by": "kernel",
                }
            )

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "snapshot":
            if self._announcements_due <= 0:
                self._violation("a snapshot announcement the executor did not owe")
                return
            self._announcements_due -= 1
            self.snapshot_pid = message["pid"] or None
            self.snapshot_skipped = message["skipped"] or None
            if self.snapshot_pid is not None:
                # The supervisor holds this process (if the executor forked it) and
                # will promote no other.
                self.send_supervisor({"op": "snapshot", "pid": self.snapshot_pid})
            return
        if kind in {"execute_reply", "complete_reply", "inspect_reply", "done", "debug_reply"}:
            request_id = message["id"]
            future = self._pending.get(request_id)
            if future is None:
                # Late replies to requests that timed out are normal; replies to
                # requests never made are not.
                if request_id >= self._next_id or request_id < 1:
                    self._forged(kind, f"for request {request_id}, which was never made")
                return
            expected_kind, token = self._expected.get(request_id, ("", ""))
            if expected_kind != kind:
                self._forged(kind, f"for request {request_id}, which expects a {expected_kind}")
                return
            if not hmac.compare_digest(message.get("token", ""), token):
                self._forged(kind, f"for request {request_id} without the request's token")
                return
            exits: list[dict[str, Any]] = []
            if kind in {"execute_reply", "done"}:
                # The supervisor's reports of this command's blocked calls come first.
                exits = self._drain_supervisor()
                # The executor's next snapshot announcement follows this reply.
                self._announcements_due = 1 + self._deferred_commands
                self._deferred_commands = 0
            if not future.done():
                future.set_result(message)
            for item in exits:
                self._on_exit(item)
            return
        if kind == "setup_failed":
            self.setup_failure = f"{message['mechanism']}: {message['error']}"
            self.setup_report = message["isolation"]
            if self._ready_future is not None and not self._ready_future.done():
                self._ready_future.set_exception(ExecutorDied(self.setup_failure))
            return
        if kind == "ready":
            self._announcements_due = 1
            if self._ready_future is not None and not self._ready_future.done():
                self._ready_future.set_result(message)
            return
        if kind == "input_request":
            if not self._stdin_allowed or self._input_tasks:
                why = (
                    "another one is still waiting for its answer"
                    if self._input_tasks
                    else "no running cell allowed stdin"
                )
                self._violation(f"an input_request ({why})")
                return
            task = asyncio.ensure_future(self._answer_input(message))
            self._input_tasks.add(task)
            task.add_done_callback(self._input_tasks.discard)
            return
        if kind == "log":
            self._cell_log(
                message["level"], f"executor (reported by the cell): {message['message']}"
            )
            return
        if kind == "audit":
            self._cell_audit(message)
            return
        self.sink.publish(message)

    def _cell_log(self, level: str, text: str) -> None:
        """A log record the executor caused: within its quota, escaped by the kernel's log."""
        if self._log_quota.admit(len(text)):
            self.on_log(level, text)

    def _cell_audit(self, message: dict[str, Any]) -> None:
        """An audit report from the relay: the cell's word, never the supervisor's."""
        if message["event"] in TRUSTED_AUDIT_EVENTS or message["rule"] in TRUSTED_AUDIT_RULES:
            self._violation(f"an audit report of a {message['event'] or message['rule']} event")
            return
        size = sum(len(str(v)) for v in message.values())
        if self.on_audit is not None and self._audit_quota.admit(size):
            self.on_audit({**message, "reported_by": "cell"})

    def _summarise_reports(self) -> None:
        """One record each for the log and audit reports of a cell that went over quota."""
        dropped = self._log_quota.take_dropped()
        if dropped:
            self.on_log(
                "warning",
                f"{dropped:,} more log records from the executor were dropped in this cell "
                f"(at most {LOG_RECORDS_PER_CELL} or {LOG_BYTES_PER_CELL // 1024} KiB a cell)",
            )
        dropped = self._audit_quota.take_dropped()
        if dropped and self.on_audit is not None:
            self.on_audit(
                {
                    "event": "audit_reports_dropped",
                    "rule": "",
                    "action": "audit",
                    "detail": f"{dropped:,} more audit reports from the cell were dropped "
                    f"(at most {AUDIT_RECORDS_PER_CELL} a cell)",
                    "reported_by": "kernel",
                }
            )

    def _violation(self, what: str) -> None:
        """A frame the protocol does not allow now: dropped, counted, reported once a cell."""
        self.protocol_violations += 1
        self.sink.publish({"type": "protocol_violation", "text": what})

    async def _answer_input(self, message: dict[str, Any]) -> None:
        try:
            value = await self.sink.request_input(
                message["prompt"], message["password"], message.get("parent", "")
            )
            reply: dict[str, Any] = {"op": "input_reply", "value": value}
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("input_failed", exc_info=True)
            reply = {"op": "input_reply", "error": f"no input: {exc}"}
        with contextlib.suppress(ExecutorDied):
            await self.send(reply)

    def _supervisor_data(self, data: bytes, exits: list[dict[str, Any]] | None = None) -> bool:
        """Handle bytes from the supervisor's channel; False once it is broken. Exit
        reports go to ``exits`` where it is given, to be handled by the caller."""
        if self._supervisor_broken:
            return False
        try:
            items = self._supervisor_reader.feed(data)
        except RelayError as exc:
            self._supervisor_broken = True
            self.on_log("error", f"supervisor channel: {exc}")
            return False
        for item in items:
            if isinstance(item, FrameRejected):
                self.on_log("warning", f"supervisor: {item}")
            elif item["type"] == "exit":
                if exits is None:
                    self._on_exit(item)
                else:
                    exits.append(item)
            elif item["type"] == "swept":
                swept = self._sweeping.get(item["id"])
                if swept is not None and not swept.done():
                    swept.set_result(None)
            elif item["type"] == "audit" and self.on_audit is not None:
                # The supervisor's own channel: the one source of seccomp reports.
                self.on_audit({**item, "reported_by": "supervisor"})
            elif item["type"] == "log":
                self.on_log(item["level"], f"supervisor: {item['message']}")
        return True

    def _drain_supervisor(self) -> list[dict[str, Any]]:
        """Handle what the supervisor has sent so far, now: before a cell's reply is
        taken. Its report of a call the cell made was written before the call returned
        (launcher/supervisor.py), so it is already here; read by the channel's own task
        it could come after the cell had ended. Exit reports are returned, for after the
        reply: a process that exited after the executor replied does not undo the reply."""
        exits: list[dict[str, Any]] = []
        sock = self.supervisor
        while sock is not None:
            try:
                data = sock.recv(65536, socket.MSG_DONTWAIT)
            except OSError:  # nothing more (EAGAIN), or the channel is gone
                break
            # At its end, the channel's own task sees the end too.
            if not data or not self._supervisor_data(data, exits):
                break
        return exits

    async def _read_supervisor(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.supervisor is not None
        try:
            while True:
                data = await loop.sock_recv(self.supervisor, 65536)
                if not data or not self._supervisor_data(data):
                    break
        except OSError:
            pass
        # The supervisor is gone: no sweep it was asked for will be confirmed.
        for swept in self._sweeping.values():
            if not swept.done():
                swept.set_result(None)
        self._exited.set()

    async def _read_stderr(self) -> None:
        """The launcher's stderr (errors before the relay is up) goes to the kernel log."""
        assert self.proc is not None
        assert self.proc.stderr is not None
        loop = asyncio.get_running_loop()
        fd = self.proc.stderr.fileno()
        os.set_blocking(fd, False)
        reader_done: asyncio.Future[None] = loop.create_future()

        def on_readable() -> None:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(fd)
                if not reader_done.done():
                    reader_done.set_result(None)
                return
            if len(self.stderr_tail) < STDERR_LOG_LIMIT:
                self.stderr_tail += data[: STDERR_LOG_LIMIT - len(self.stderr_tail)]
                for line in data.decode("utf-8", "replace").splitlines():
                    self.on_log("warning", f"executor stderr: {line}")

        loop.add_reader(fd, on_readable)
        try:
            await reader_done
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(fd)
            self.proc.stderr.close()
