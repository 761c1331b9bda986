"""How the launcher says it could not build the sandbox: a setup_failed frame, never silence."""

from __future__ import annotations

import contextlib
import os
import socket
import traceback
from typing import Any

from ..errors import SetupError
from ..framing import encode_frame
from ..isolation.report import Report

__all__ = ["EXIT_SETUP_FAILED", "fail", "fail_unexpected"]

EXIT_SETUP_FAILED = 70


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(encode_frame(message))


def fail(relay: socket.socket, report: Report, error: SetupError | str) -> None:
    mechanism = error.mechanism if isinstance(error, SetupError) else "sandbox"
    reason = error.reason if isinstance(error, SetupError) else str(error)
    _send(
        relay,
        {
            "type": "setup_failed",
            "mechanism": mechanism,
            "error": reason,
            "isolation": report.as_dict(),
        },
    )


def fail_unexpected(relay: socket.socket, report: Report, exc: BaseException) -> None:
    """An error no mechanism anticipated: still say what and where, never a bare status.

    The executor's stderr is closed by then, so a traceback printed there is lost.
    """
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {os.path.basename(where[0].filename)}:{where[0].lineno})" if where else ""
    fail(relay, report, SetupError("sandbox", f"{type(exc).__name__}: {exc}{at}"))
