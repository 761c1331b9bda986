"""PID namespace: the sandbox's processes see only each other, under a pid 1 of ours."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import SetupError
from . import libc

if TYPE_CHECKING:
    from .report import Report

__all__ = ["apply", "become_init", "mount_proc", "proc_mounter"]


def become_init() -> None:
    """Set up pid 1: die with the launcher, and ignore stray job-control signals.

    When pid 1 exits, the kernel kills every other process in the namespace
    (pid_namespaces(7)); that is what guarantees no process a cell starts can
    outlive the sandbox.
    """
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    for sig in (signal.SIGTTIN, signal.SIGTTOU, signal.SIGTSTP, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    # Not dumpable: a cell running as the same uid cannot read pid 1's memory.
    libc.prctl(libc.PR_SET_DUMPABLE, 0)


def mount_proc(target: str = "/proc") -> str | None:
    """Mount a fresh procfs for this pid namespace; return a note if it cannot be had.

    Container runtimes overmount parts of the host's /proc (for example
    /proc/timer_list); the kernel then refuses a fresh procfs in a user
    namespace with EPERM ("mount_too_revealing"). Python, numpy, pandas and
    matplotlib run without /proc, so the sandbox goes on without it.
    """
    try:
        libc.mount("proc", target, "proc", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
    except OSError as exc:
        if exc.errno in (1, 13):  # EPERM, EACCES
            return f"/proc not mounted: the host masks its procfs ({os.strerror(exc.errno)})"
        raise SetupError("pidns", "cannot mount /proc", exc.errno) from None
    return None


# -- the mechanism: nothing to prepare (unshared with the others, userns.py); apply --------


def apply(report: Report) -> None:
    """In pid 1, first: become the init of the sandbox's pid namespace."""
    become_init()
    report.layer("pidns", True, "own pid namespace; a pid 1 of ours holds and reaps the tree")


def proc_mounter(report: Report) -> Callable[[str], str | None]:
    """``mount_proc`` for mountns.apply (a fresh /proc in the new root), reported."""

    def mount(target: str) -> str | None:
        note = mount_proc(target)
        report.layer("proc", note is None, note or "fresh /proc for the sandbox's pid namespace")
        return None

    return mount
