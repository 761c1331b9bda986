"""UTS namespace: the sandbox's hostname is its own ("sandbox"), not the host's."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import libc

if TYPE_CHECKING:
    from .report import Report

__all__ = ["apply"]


def apply(report: Report) -> None:
    """In pid 1 (unshared with the others, userns.py): name the host 'sandbox'."""
    try:
        libc.sethostname("sandbox")
        report.layer("utsns", True, "hostname 'sandbox'")
    except OSError as exc:
        # Rootless Podman's seccomp profile refuses sethostname even in a UTS
        # namespace of our own: the namespace still hides nothing worth a failure.
        report.layer(
            "utsns",
            True,
            "own UTS namespace; the host's name is kept "
            f"(sethostname: {os.strerror(exc.errno or 0)})",
        )
