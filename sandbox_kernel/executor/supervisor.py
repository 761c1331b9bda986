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
from typing import Any

from ..relay.protocol import HEADER, encode_frame

__all__ = ["kill_descendants", "supervise"]

ALLOWED_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGKILL})


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(p) for p in f.read().split())
    return found


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = _children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(_children(child))
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
        time.sleep(0.005)


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

    The executor is blocked in the call until we answer, so we answer first
    and report after. Raw ioctls, because the listener fd came over a socket
    and there is no libseccomp filter object on this side.
    """

    # _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp)
    RECV = 0xC0502100
    SEND = 0xC0182101
    NOTIF = struct.Struct("=QII iIQ6Q")  # id, pid, flags, seccomp_data{nr, arch, ip, args[6]}
    RESP = struct.Struct("=QqiI")  # id, val, error, flags
    REPORTS_PER_CALL = 20

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.seen: dict[str, int] = {}

    def handle(self, send: Any) -> None:
        import fcntl

        from ..isolation.seccomp import describe_call

        buf = bytearray(self.NOTIF.size)
        try:
            fcntl.ioctl(self.fd, self.RECV, buf, True)
        except OSError:
            return  # the caller died meanwhile (ENOENT), or was interrupted
        notif_id, pid, _, nr, _, _, *args = self.NOTIF.unpack(buf)
        resp = bytearray(self.RESP.pack(notif_id, 0, -errno.EPERM, 0))
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.fd, self.SEND, resp, True)
        call, why = describe_call(nr, list(args))
        count = self.seen.get(call, 0) + 1
        self.seen[call] = count
        # A loop retrying the same call must not flood the kernel's log.
        if count <= self.REPORTS_PER_CALL:
            send({"type": "audit", "event": "seccomp", "rule": "SECCOMP", "action": "deny", "detail": f"{call}: {why}"})


def supervise(sock: socket.socket, executor_pid: int, notify_fd: int | None = None) -> int:
    """Serve until the executor ends or the kernel hangs up; return an exit status."""
    commands = _Commands(sock)
    pidfd = os.pidfd_open(executor_pid)
    listener = _SeccompListener(notify_fd) if notify_fd is not None else None
    watched: list[Any] = [sock, pidfd] + ([notify_fd] if notify_fd is not None else [])

    def send(message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(encode_frame(message))

    while True:
        try:
            readable, _, _ = select.select(watched, [], [], 1.0)
        except InterruptedError:
            continue
        if listener is not None and notify_fd in readable:
            listener.handle(send)
        # Orphans re-parented to us (double forks) must not stay zombies.
        with contextlib.suppress(ChildProcessError):
            while True:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                if pid == executor_pid:
                    _report_exit(send, pid, status)
                    kill_descendants()
                    return 0
        if sock in readable:
            batch = commands.read()
            if batch is None:
                # The kernel is gone: take everything down with us.
                kill_descendants()
                return 0
            for command in batch:
                if command.get("op") == "signal":
                    signum = command.get("signal")
                    if isinstance(signum, int) and signum in ALLOWED_SIGNALS:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(executor_pid, signum)
        if pidfd in readable:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(executor_pid, 0)
                _report_exit(send, pid, status)
            kill_descendants()
            return 0


def _report_exit(send: Any, pid: int, status: int) -> None:
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    send({"type": "exit", "pid": pid, "code": code, "signal": sig})
