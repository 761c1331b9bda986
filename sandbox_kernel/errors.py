"""The one tree of exceptions raised by sandbox-kernel."""

from __future__ import annotations

import errno
import os

__all__ = [
    "CellInterrupted",
    "CellStopped",
    "CellTimeout",
    "CpuLimitExceeded",
    "DiskLimitExceeded",
    "DiskQuotaExceeded",
    "ExecutorDied",
    "FileSizeLimitExceeded",
    "MemoryLimitExceeded",
    "ProcessLimitExceeded",
    "RelayError",
    "SandboxError",
    "SetupError",
]


class SandboxError(Exception):
    """Base class of every error the kernel raises on purpose."""


class RelayError(SandboxError):
    """The executor sent bytes that are not a valid frame.

    The trusted side treats every byte from the child as hostile; this is what
    it raises when a frame is oversized, truncated, not UTF-8/JSON, too deep, or
    does not match the schema of its type.
    """


class SetupError(SandboxError):
    """An isolation mechanism could not be applied.

    ``mechanism`` names the layer (``"userns"``, ``"seccomp"`` ...) and
    ``reason`` says why in words, derived from errno where there is one.
    """

    def __init__(
        self, mechanism: str, reason: str, err: int | None = None, fix: str | None = None
    ) -> None:
        self.mechanism = mechanism
        self.errno = err
        if err is not None:
            reason = f"{reason}: {errno.errorcode.get(err, str(err))} ({os.strerror(err)})"
        if fix:
            # What the user or admin can change: a message without it is a dead end.
            reason = f"{reason}. To fix: {fix}"
        self.reason = reason
        super().__init__(f"{mechanism}: {reason}")


class ExecutorDied(SandboxError):
    """The executor process ended while the kernel was waiting on it."""

    def __init__(self, message: str, *, signal: int | None = None):
        super().__init__(message)
        self.signal = signal


# -- how a cell was stopped -----------------------------------------------------------
# The kernel stops a cell over a limit, or finds it ended without a reply. The user
# sees the class's name as the error's ename ("CellTimeout: The cell did not finish:
# it ran longer than ..."); the message is the reason, worded to follow "because".


class CellStopped(SandboxError):
    """Why the kernel stopped a cell (or why it ended without a reply)."""

    @property
    def ename(self) -> str:
        return type(self).__name__

    @property
    def why(self) -> str:
        return str(self)


class CellTimeout(CellStopped):
    """The cell ran past Limits.wall_time_limit_s."""


class CpuLimitExceeded(CellStopped):
    """The cell used more CPU time than Limits.cpu_time_limit_s."""


class CellInterrupted(CellStopped):
    """The cell did not stop within Limits.interrupt_grace_s of an interrupt."""


class DiskQuotaExceeded(CellStopped):
    """The workspace grew past Limits.workspace_quota_mb."""


class MemoryLimitExceeded(CellStopped):
    """The sandbox's memory cgroup killed the executor."""


class ProcessLimitExceeded(CellStopped):
    """The cell reached Limits.max_processes (reported; the cell is not stopped)."""


class FileSizeLimitExceeded(CellStopped):
    """A write failed with EFBIG: Limits.max_file_size_mb (reported; named in a notice)."""


class DiskLimitExceeded(CellStopped):
    """A write failed with ENOSPC in the private /tmp or home (reported; named in a notice)."""
