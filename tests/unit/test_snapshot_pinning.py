"""The supervisor pins and promotes only a snapshot the executor forked, with /proc or without.

Where the sandbox shows no /proc (a container that masks parts of its own, such as
Docker's default, keeps the sandbox's pid namespace from mounting a procfs), the
supervisor reads a snapshot's parent through its pidfd (PIDFD_GET_INFO). Here the
"executor" is a child of the test and the "snapshot" its child; the supervisor object
runs in the test process, with its /proc view switched off.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox_kernel.framing import HEADER
from sandbox_kernel.launcher import supervisor


@pytest.fixture
def family() -> Iterator[tuple[int, int]]:
    """(executor, snapshot): a child of this process and that child's own child."""
    read_end, write_end = os.pipe()
    executor = os.fork()
    if executor == 0:  # pragma: no cover - the executor stand-in
        os.close(read_end)
        snapshot = os.fork()
        if snapshot == 0:
            time.sleep(60)
            os._exit(0)
        os.write(write_end, str(snapshot).encode())
        time.sleep(60)
        os._exit(0)
    os.close(write_end)
    snapshot = int(os.read(read_end, 32))
    os.close(read_end)
    try:
        yield executor, snapshot
    finally:
        for pid in (snapshot, executor):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(executor, 0)


@pytest.fixture
def make_supervisor() -> Iterator[Any]:
    made: list[tuple[Any, socket.socket]] = []
    handler = signal.getsignal(signal.SIGCHLD)
    wakeup_fd = signal.set_wakeup_fd(-1)  # read (and put back) this process's own
    signal.set_wakeup_fd(wakeup_fd)

    def make(executor: int, has_proc: bool) -> tuple[Any, socket.socket]:
        ours, kernel = socket.socketpair()
        sup = supervisor._Supervisor(ours, executor, None)
        sup.has_proc = has_proc
        made.append((sup, kernel))
        return sup, kernel

    yield make
    signal.set_wakeup_fd(wakeup_fd)
    signal.signal(signal.SIGCHLD, handler)
    for sup, kernel in made:
        for fd in (sup.wakeup_r, sup.pidfd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        sup.sock.close()
        kernel.close()


def _logged(kernel: socket.socket) -> list[str]:
    kernel.setblocking(False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := kernel.recv(65536):
            data += chunk
    messages = []
    while len(data) >= HEADER.size:
        (length,) = HEADER.unpack_from(data)
        messages.append(json.loads(data[HEADER.size : HEADER.size + length])["message"])
        data = data[HEADER.size + length :]
    return messages


def _needs_pidfd_info() -> None:
    pidfd = os.pidfd_open(os.getpid())
    try:
        if supervisor._parent_by_pidfd(pidfd) != os.getppid():
            pytest.skip("needs PIDFD_GET_INFO (Linux 6.13) to read a parent through a pidfd")
    finally:
        os.close(pidfd)


def test_a_parent_is_read_through_a_pidfd(family: tuple[int, int]) -> None:
    _needs_pidfd_info()
    executor, snapshot = family
    for pid, parent in ((executor, os.getpid()), (snapshot, executor)):
        pidfd = os.pidfd_open(pid)
        try:
            assert supervisor._parent_by_pidfd(pidfd) == parent
        finally:
            os.close(pidfd)


@pytest.mark.parametrize("has_proc", [True, False], ids=["with-proc", "without-proc"])
def test_only_the_executors_child_is_pinned(
    family: tuple[int, int], make_supervisor: Any, has_proc: bool
) -> None:
    if not has_proc:
        _needs_pidfd_info()
    executor, snapshot = family
    sup, kernel = make_supervisor(executor, has_proc)
    # Not the executor's child: this process (its parent), the executor itself.
    for impostor in (os.getpid(), executor):
        sup.pin_snapshot(impostor)
        assert sup.snapshot is None
    assert _logged(kernel) == [
        f"snapshot refused: {pid} is not a child of the executor" for pid in (os.getpid(), executor)
    ]
    sup.pin_snapshot(snapshot)
    assert sup.snapshot is not None, _logged(kernel)
    assert sup.snapshot[0] == snapshot
    # While the executor lives, it is not promoted.
    sup.promote(snapshot)
    assert _logged(kernel) == ["promote refused: the executor is alive"]
    assert sup.executor == executor


def test_without_proc_nothing_is_pinned_once_the_executor_is_gone(
    family: tuple[int, int], make_supervisor: Any
) -> None:
    # Without start times an orphan of pid 1 could be any earlier cell's double fork.
    _needs_pidfd_info()
    executor, snapshot = family
    sup, kernel = make_supervisor(executor, False)
    sup.executor = None
    sup.pin_snapshot(snapshot)
    assert sup.snapshot is None
    assert _logged(kernel) == [f"snapshot refused: {snapshot} is not a child of the executor"]
