"""Per-cell snapshots: a frozen copy-on-write fork of the executor, promoted if the cell dies.

Before a cell runs, the executor forks. The copy (the snapshot) blocks in
``sigwait`` holding the state from before the cell; the cell runs in the
original, so threads started by earlier cells keep working. If the cell ends,
the snapshot is killed. If the cell crashes the executor, runs out of memory,
times out or had to be killed after an interrupt, the supervisor sends the
snapshot ``PROMOTE_SIGNAL`` and it carries on as the executor, as if the cell
had never run.

Forking is skipped, and the cell runs without a safety net, where it would be
unsafe or too costly (feasibility.md, Q5): when threads of the user's are
running (a thread inside OpenBLAS deadlocks the fork), or when the executor is
so large that copy-on-write could double its memory past the limit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

__all__ = ["PROMOTE_SIGNAL", "Snapshots"]

PROMOTE_SIGNAL = signal.SIGUSR1
ORPHAN_CHECK_S = 1.0


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Snapshots:
    """Takes, drops and (in the copy) waits to be promoted."""

    def __init__(self, *, enabled: bool, max_bytes: int, own_threads: int) -> None:
        self.enabled = enabled
        self.max_bytes = max_bytes
        # Threads the executor itself runs (stream flusher, fd pumps).
        self.own_threads = own_threads
        self.pid: int | None = None
        self.skipped: str | None = None
        # Why forking is unsafe for the rest of the executor's life (the debugger's threads).
        self.blocked: str | None = None
        # The supervisor started the executor; a promoted snapshot is its child too.
        self.supervisor_pid = os.getppid()
        # Dropped snapshots, killed but not yet collected: waiting for one that
        # is tearing down a large address space would delay the next cell.
        self._dropped: list[int] = []

    def why_not(self) -> str | None:
        """Why no snapshot can be taken for this cell, or None."""
        if not self.enabled:
            return "rollback is turned off"
        if self.blocked is not None:
            return self.blocked
        extra = threading.active_count() - 1 - self.own_threads
        if extra > 0:
            return (
                f"{extra} background thread(s) of the notebook are running (forking then is unsafe)"
            )
        size = resident_bytes()
        if self.max_bytes and size > self.max_bytes:
            return (
                f"the executor holds {size >> 20} MiB, more than the snapshot budget "
                f"of {self.max_bytes >> 20} MiB"
            )
        return None

    def take(self) -> bool:
        """Fork a snapshot. Returns False in the executor, True in a snapshot that was promoted."""
        self.skipped = self.why_not()
        if self.skipped is not None:
            return False
        # Block the promotion signal across the fork, so that it cannot arrive
        # before the copy is waiting for it.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {PROMOTE_SIGNAL})
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            self.skipped = f"fork failed ({exc.strerror})"
            return False
        if pid == 0:
            # The frozen copy. Out of the executor's process group, so that a cell's
            # kill(0, ...) or killpg() cannot take it along.
            with contextlib.suppress(OSError):
                os.setpgid(0, 0)
            # Interrupts are for the running executor only.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            self._wait_for_promotion(executor=os.getppid())
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            signal.signal(signal.SIGINT, previous)
            self.pid = None
            return True
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        self.pid = pid
        return False

    def _wait_for_promotion(self, executor: int) -> None:
        """Block until promoted; end quietly if the sandbox is gone without promoting us.

        Only the supervisor promotes: the signal's sender (``si_pid``) is checked, so a
        cell that sends the promotion signal itself wakes nobody.

        PR_SET_PDEATHSIG cannot tie a snapshot to the sandbox's life: it would fire
        when the executor dies, which is exactly when a snapshot is needed. So the
        copy looks at its parent now and then: the executor, or after the executor's
        death the supervisor (its subreaper). Any other parent means the supervisor
        died too (the kernel was killed) and nobody will ever promote or kill us.
        """
        while True:
            info = signal.sigtimedwait({PROMOTE_SIGNAL}, ORPHAN_CHECK_S)
            if info is not None and info.si_pid == self.supervisor_pid:
                return
            # Not from the supervisor: a cell signalled us; waking up would make us
            # read the relay beside the executor. Keep waiting.
            if info is None and os.getppid() not in (executor, self.supervisor_pid):
                os._exit(0)

    def drop(self) -> None:
        """The snapshot is not needed any more: kill it now, collect it later."""
        self._collect()
        pid, self.pid = self.pid, None
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._dropped.append(pid)

    def _collect(self) -> None:
        for pid in list(self._dropped):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self._dropped.remove(pid)
