"""The one tree of exceptions raised by sandbox-kernel."""

from __future__ import annotations

import errno
import os

__all__ = [
    "ExecutorDied",
    "IsolationUnavailable",
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


class IsolationUnavailable(SandboxError):
    """The host cannot give the isolation level the configuration requires."""


class ExecutorDied(SandboxError):
    """The executor process ended while the kernel was waiting on it."""

    def __init__(self, message: str, *, signal: int | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.signal = signal
        self.exit_code = exit_code
