"""The executor's supervisor: holds and reaps the process tree, relays signals and exits.

At the ``namespaces`` level it is pid 1 of the sandbox's pid namespace: when it
dies, the kernel kills every process in the namespace, so nothing a cell starts
(daemons, double forks, ``setsid``) outlives it. At the other levels it is the
launcher itself, marked as the child subreaper so orphans come back to it, and
it kills the whole tree when the kernel goes away.

It answers to the trusted kernel over its own socket: ``signal`` (interrupt or
kill the executor) in, ``exit`` (how the executor ended) out.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Iterable
from typing import Any

from .. import procfs
from ..framing import HEADER, encode_frame

__all__ = ["kill_descendants", "supervise"]

# include/linux/threads.h: no pid namespace hands out a pid above this (4194304).
PID_MAX_LIMIT = 4 * 1024 * 1024

# SIGUSR2 asks the executor to drop the rest of a cell's output (over budget).
ALLOWED_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGKILL, signal.SIGUSR2})


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = procfs.children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(procfs.children(child))
    return out


def kill_descendants(deadline_s: float = 2.0) -> None:
    """SIGKILL every process below this one and reap them.

    Stop first, then kill, and repeat until nothing is left: a fork bomb keeps
    making children while a single pass is under way.
    """
    me = os.getpid()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        pids = _descendants(me)
        if not pids:
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        # Killed processes take a few ms to free their memory; shutdown waits for this.
        time.sleep(0.001)


def end_with_kernel(signum: int, frame: object) -> None:
    """The kernel died (parent-death signal): end every process of the sandbox, then us."""
    kill_descendants()
    os._exit(0)


class _Commands:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def read(self) -> list[dict[str, Any]] | None:
        import json

        try:
            data = self.sock.recv(65536)
        except InterruptedError:
            return []
        if not data:
            return None
        self.buffer += data
        out = []
        while len(self.buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < HEADER.size + length:
                break
            body = bytes(self.buffer[HEADER.size : HEADER.size + length])
            del self.buffer[: HEADER.size + length]
            with contextlib.suppress(ValueError):
                message = json.loads(body)
                if isinstance(message, dict):
                    out.append(message)
        return out


class _SeccompListener:
    """Answers the executor's reported system calls (SECCOMP_RET_USER_NOTIF) with EPERM.

    The report goes out before the answer: the caller is blocked in the call until
    then, so the report is on the kernel's channel before the cell can go on to its
    reply, and the kernel, which reads this channel before it ends a cell
    (kernel/runner.py, ``_drain_supervisor``), shows it under the cell that made the
    call. Answered first, a report could come after the reply and be shown under no
    cell at all. Raw ioctls, because the listener fd came over a socket and there is
    no libseccomp filter object on this side.
    """

    # _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp)
    RECV = 0xC0502100
    SEND = 0xC0182101
    NOTIF = struct.Struct("=QII iIQ6Q")  # id, pid, flags, seccomp_data{nr, arch, ip, args[6]}
    RESP = struct.Struct("=QqiI")  # id, val, error, flags
    REPORTS_PER_CALL = 20

    def __init__(self, fd: int, socket_hint: str | None = None) -> None:
        self.fd = fd
        self.seen: dict[str, int] = {}
        self.socket_hint = socket_hint

    def handle(self, send: Any) -> None:
        import fcntl

        from ..isolation.seccomp import describe_call

        buf = bytearray(self.NOTIF.size)
        try:
            fcntl.ioctl(self.fd, self.RECV, buf, True)
        except OSError:
            return  # the caller died meanwhile (ENOENT), or was interrupted
        notif_id, _pid, _, nr, _, _, *args = self.NOTIF.unpack(buf)
        call, why = describe_call(nr, list(args))
        if self.socket_hint and call.startswith("socket("):
            why += self.socket_hint
        count = self.seen.get(call, 0) + 1
        self.seen[call] = count
        # A loop retrying the same call must not flood the kernel's log.
        if count <= self.REPORTS_PER_CALL:
            send(
                {
                    "type": "audit",
                    "event": "seccomp",
                    "rule": "SECCOMP",
                    "action": "deny",
                    "detail": f"{call}: {why}",
                }
            )
        resp = bytearray(self.RESP.pack(notif_id, 0, -errno.EPERM, 0))
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.fd, self.SEND, resp, True)


def _parent_of(pid: int) -> int | None:
    fields = procfs.stat_fields(pid)
    try:
        return int(fields[1]) if fields is not None else None
    except (ValueError, IndexError):
        return None


# PIDFD_GET_INFO (Linux 6.13): a process's parent, in this pid namespace, through a
# pidfd. Used where this mount namespace has no /proc (a container that masks parts of
# its /proc, such as Docker's default, keeps an unprivileged pid namespace from mounting
# a procfs of its own), so that a cell's snapshot can still be checked and promoted.
# _IOWR(0xFF, 11, struct pidfd_info), its first version's 64 bytes: mask, cgroupid,
# then pid, tgid, ppid and the nine credential ids (include/uapi/linux/pidfd.h).
_PIDFD_GET_INFO = 0xC040FF0B
_PIDFD_INFO = struct.Struct("=QQ12I")
_PIDFD_INFO_PID = 1


def _parent_by_pidfd(pidfd: int) -> int | None:
    """The parent of the process ``pidfd`` refers to, or None (an older kernel, gone)."""
    import fcntl

    buf = bytearray(_PIDFD_INFO.pack(_PIDFD_INFO_PID, 0, *[0] * 12))
    try:
        fcntl.ioctl(pidfd, _PIDFD_GET_INFO, buf, True)
    except OSError:
        return None
    mask, _cgroup, _pid, _tgid, ppid, *_ids = _PIDFD_INFO.unpack(buf)
    return ppid if mask & _PIDFD_INFO_PID else None


def _kill_process(pid: int) -> None:
    """SIGKILL the process ``pid``, if it is one: a pid found by trying numbers may be
    a thread's id, and kill() with a thread's id would kill its whole process (the
    executor's, say). pidfd_open takes only a process's own pid (EINVAL for a thread)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def _is_zombie(pid: int) -> bool:
    fields = procfs.stat_fields(pid)
    return not fields or fields[0] in {"Z", "X"}  # no fields: gone


def _own_pid_namespace() -> bool:
    """Whether we are pid 1 of a pid namespace whose /proc is mounted here."""
    try:
        return os.getpid() == 1 and os.readlink("/proc/self") == "1"
    except OSError:
        return False


def _start_time(pid: int) -> int | None:
    """When a process started, in clock ticks since boot (proc(5), field 22)."""
    fields = procfs.stat_fields(pid)
    try:
        return int(fields[19]) if fields is not None else None
    except (ValueError, IndexError):
        return None


class _Supervisor:
    def __init__(
        self,
        sock: socket.socket,
        executor_pid: int,
        notify_fd: int | None,
        socket_hint: str | None = None,
    ) -> None:
        self.sock = sock
        self.commands = _Commands(sock)
        self.executor: int | None = executor_pid
        # Where this namespace shows no /proc, parents are read through pidfds and
        # there are no start times to compare (see pin_snapshot).
        self.has_proc = os.path.exists("/proc/self/stat")
        # Without /proc: the pid a fresh child got at the last clean-up (_pids_in_use).
        self.last_fresh_pid = executor_pid
        self.executor_started = _start_time(executor_pid) or 0
        self.pidfd: int | None = os.pidfd_open(executor_pid)
        self.listener = _SeccompListener(notify_fd, socket_hint) if notify_fd is not None else None
        self.notify_fd = notify_fd
        # The snapshot the kernel accepted (the first announced after a reply),
        # held by a pidfd so that promotion reaches that very process.
        self.snapshot: tuple[int, int] | None = None
        # SIGCHLD wakes the loop at once: zombies hold pids, which count against
        # the process limit, so pid 1 reaps as soon as there is one.
        self.wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(encode_frame(message))

    def executor_ended(self, status: int) -> None:
        assert self.executor is not None
        _report_exit(self.send, self.executor, status)
        self.executor = None
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def reap(self) -> None:
        """Collect zombies; orphans of double forks are re-parented to us."""
        with contextlib.suppress(ChildProcessError):
            while True:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    return
                if pid == self.executor:
                    self.executor_ended(status)

    def handle(self, command: dict[str, Any]) -> None:
        op = command.get("op")
        if op == "signal":
            signum = command.get("signal")
            if self.executor is not None and isinstance(signum, int) and signum in ALLOWED_SIGNALS:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.executor, signum)
        elif op == "snapshot":
            self.pin_snapshot(command.get("pid"))
        elif op == "promote":
            self.promote(command.get("pid"))
        elif op == "end_cell_processes":
            # Processes a cell left running (classroom clean-up, before a
            # snapshot takes over, after a cell hit the process limit):
            # everything but the executor and the snapshot being kept.
            keep = {p for p in [self.executor, *command.get("keep", [])] if isinstance(p, int)}
            self.end_processes(keep)
            sweep = command.get("id")
            if isinstance(sweep, int):
                # The kernel waits for this before the executor takes its next snapshot:
                # a sweep that came after the snapshot would kill it.
                self.send({"type": "swept", "id": sweep})

    def end_processes(self, keep: set[int], deadline_s: float = 2.0) -> None:
        """Kill every process below us but ``keep``.

        A fork bomb keeps forking while this runs, and now that zombies are reaped at
        once its copies are not held back by the pids their zombies would keep. As
        pid 1 of our own pid namespace (with its own /proc) we stop every process in
        it at once (kill(-1) reaches all but us), kill all but ``keep`` from the
        list in /proc, and let ``keep`` go on. Elsewhere the tree is walked, stopped
        and killed until nothing is left, reaping only at the end.
        """
        own_proc = _own_pid_namespace()
        if own_proc or (os.getpid() == 1 and not self.has_proc):
            with contextlib.suppress(OSError):
                os.kill(-1, signal.SIGSTOP)
            try:
                pids: Iterable[int] = (
                    [int(name) for name in os.listdir("/proc") if name.isdigit()]
                    if own_proc
                    else self._pids_in_use()
                )
                for pid in pids:
                    if pid not in keep and pid != 1:
                        _kill_process(pid)
            finally:
                for pid in keep:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGCONT)
        else:
            me = os.getpid()
            end = time.monotonic() + deadline_s
            while time.monotonic() < end:
                targets = [p for p in _descendants(me) if p not in keep and not _is_zombie(p)]
                if not targets:
                    break
                for sig in (signal.SIGSTOP, signal.SIGKILL):
                    for pid in targets:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.kill(pid, sig)
                time.sleep(0.002)
        self.reap()

    def _pids_in_use(self) -> range:
        """Every pid this namespace may be using, where there is no /proc to list them.

        Called with every other process stopped. A pid namespace hands out pids in
        increasing order, so a fresh child's pid bounds those in use (under 1 us a pid
        to try: about 6 ms for a kernel whose cells have used 10,000), unless the numbers
        wrapped past pid_max since the last call (the bound went down): then the whole
        range up to PID_MAX_LIMIT, about 2.5 s. A cell that goes through every pid within
        one cell, back to above the last bound, is not caught by either (SECURITY.md).
        """
        child = os.fork()
        if child == 0:  # pragma: no cover - exits at once
            os._exit(0)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
        wrapped = child < self.last_fresh_pid
        self.last_fresh_pid = child
        return range(2, PID_MAX_LIMIT + 1 if wrapped else child)

    def _refuse(self, what: str) -> None:
        self.send({"type": "log", "level": "warning", "message": what})

    def pin_snapshot(self, pid: Any) -> None:
        """The kernel accepted this announcement: hold that process, if the executor forked it."""
        if self.snapshot is not None:
            os.close(self.snapshot[1])
            self.snapshot = None
        if not isinstance(pid, int) or pid <= 1:
            self._refuse(f"snapshot refused: {pid!r} is not a process")
            return
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            self._refuse(f"snapshot refused: {pid} ({exc.strerror})")
            return
        # Checked after the pidfd is held, so the pid cannot be reused in between. The
        # announcement may arrive after the executor died (a cell that kills it at
        # once): its children are ours by then.
        if self.has_proc:
            parent = self.executor if self.executor is not None else os.getpid()
            started = _start_time(pid)
            taken = (
                _parent_of(pid) == parent
                and started is not None
                and started >= self.executor_started
            )
        else:
            # No start times without /proc: only a child of the live executor is taken
            # (the executor is not reaped yet, so its pid is its own). An orphan of ours
            # could be any earlier cell's double fork, so once the executor has died
            # nothing is (the cell that killed it at once loses its rollback).
            taken = self.executor is not None and _parent_by_pidfd(pidfd) == self.executor
        if not taken:
            os.close(pidfd)
            self._refuse(f"snapshot refused: {pid} is not a child of the executor")
            return
        self.snapshot = (pid, pidfd)

    def promote(self, pid: Any) -> None:
        # Only the pinned snapshot, re-parented to us now that the executor is gone.
        if self.executor is not None:
            self._refuse("promote refused: the executor is alive")
            return
        if self.snapshot is None or pid != self.snapshot[0]:
            self._refuse(f"promote refused: {pid!r} is not the snapshot")
            return
        parent = _parent_of(pid) if self.has_proc else _parent_by_pidfd(self.snapshot[1])
        if parent != os.getpid():
            self._refuse(f"promote refused: {pid!r} is not the snapshot")
            return
        from ..child.snapshot import PROMOTE_SIGNAL

        snapshot, pidfd = self.snapshot
        self.snapshot = None
        try:
            signal.pidfd_send_signal(pidfd, PROMOTE_SIGNAL)
        except OSError as exc:
            os.close(pidfd)
            self._refuse(f"promote failed: {exc}")
            return
        self.pidfd = pidfd
        self.executor = snapshot
        self.executor_started = _start_time(snapshot) or 0

    def run(self) -> int:
        while True:
            watched: list[Any] = [self.sock, self.wakeup_r]
            if self.pidfd is not None:
                watched.append(self.pidfd)
            if self.notify_fd is not None:
                watched.append(self.notify_fd)
            try:
                readable, _, _ = select.select(watched, [], [], 1.0)
            except InterruptedError:
                continue
            if self.wakeup_r in readable:
                with contextlib.suppress(OSError):
                    os.read(self.wakeup_r, 4096)
            if self.listener is not None and self.notify_fd in readable:
                self.listener.handle(self.send)
            self.reap()
            if self.pidfd is not None and self.pidfd in readable and self.executor is not None:
                with contextlib.suppress(ChildProcessError):
                    _, status = os.waitpid(self.executor, 0)
                    self.executor_ended(status)
            if self.sock in readable:
                batch = self.commands.read()
                if batch is None:
                    # The kernel is gone or done with us: take everything down.
                    kill_descendants()
                    return 0
                for command in batch:
                    self.handle(command)


def supervise(
    sock: socket.socket,
    executor_pid: int,
    notify_fd: int | None = None,
    *,
    socket_hint: str | None = None,
) -> int:
    """Serve until the kernel hangs up; return an exit status.

    When the executor ends, its exit is reported and the supervisor waits: the
    kernel either promotes the cell's snapshot (which then is the executor)
    or hangs up, which ends every process of the sandbox.
    """
    return _Supervisor(sock, executor_pid, notify_fd, socket_hint).run()


def _report_exit(send: Any, pid: int, status: int) -> None:
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    send({"type": "exit", "pid": pid, "code": code, "signal": sig})
