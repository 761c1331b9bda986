"""Privileges: no capabilities, no way to regain them, not dumpable."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from ..errors import SetupError
from . import libc

if TYPE_CHECKING:
    from .report import Report

__all__ = [
    "apply",
    "apply_no_new_privs",
    "drop_capabilities",
    "open_own_proc_file",
    "set_no_new_privs",
    "set_not_dumpable",
]

# securebits(7): root (uid 0 inside the namespace) gains nothing on execve,
# setuid changes keep no capabilities, and none of this can be undone.
SECBIT_NOROOT = 1 << 0
SECBIT_NOROOT_LOCKED = 1 << 1
SECBIT_NO_SETUID_FIXUP = 1 << 2
SECBIT_NO_SETUID_FIXUP_LOCKED = 1 << 3
SECBIT_KEEP_CAPS_LOCKED = 1 << 5
SECBIT_NO_CAP_AMBIENT_RAISE = 1 << 6
SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED = 1 << 7
SECUREBITS = (
    SECBIT_NOROOT
    | SECBIT_NOROOT_LOCKED
    | SECBIT_NO_SETUID_FIXUP
    | SECBIT_NO_SETUID_FIXUP_LOCKED
    | SECBIT_KEEP_CAPS_LOCKED
    | SECBIT_NO_CAP_AMBIENT_RAISE
    | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED
)
CAP_LAST_CAP_MAX = 63


def drop_capabilities(*, have_setpcap: bool) -> None:
    """Empty every capability set of this process, bounding set included.

    The bounding set and securebits need CAP_SETPCAP, so they go first (a
    process that has already dropped it cannot drop the rest).
    """
    if have_setpcap:
        try:
            libc.prctl(libc.PR_SET_SECUREBITS, SECUREBITS)
        except OSError as exc:
            raise SetupError("privs", "cannot lock securebits", exc.errno) from None
        for cap in range(CAP_LAST_CAP_MAX + 1):
            try:
                libc.prctl(libc.PR_CAPBSET_DROP, cap)
            except OSError as exc:
                if exc.errno == 22:  # EINVAL: past the kernel's last capability
                    break
                raise SetupError(
                    "privs", f"cannot drop capability {cap} from the bounding set", exc.errno
                ) from None
    with contextlib.suppress(OSError):
        libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
    try:
        libc.capset_empty()
    except OSError as exc:
        raise SetupError("privs", "cannot clear the capability sets", exc.errno) from None
    if _effective_caps() != 0:
        raise SetupError("privs", "capabilities are still set after dropping them")


def _effective_caps() -> int:
    return libc.capget_effective()


def set_no_new_privs() -> None:
    """setuid binaries and file capabilities give nothing after this (and seccomp needs it)."""
    try:
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
    except OSError as exc:
        raise SetupError("privs", "cannot set no_new_privs", exc.errno) from None


def set_not_dumpable() -> None:
    """No core dumps and no /proc/<pid>/mem or environ for other same-uid processes."""
    with contextlib.suppress(OSError):
        libc.prctl(libc.PR_SET_DUMPABLE, 0)


def open_own_proc_file(name: str) -> int | None:
    """Open /proc/self/<name> for reading, though this process is not dumpable.

    A process that is not dumpable finds its own mode-0400 /proc files (``pagemap``)
    owned by the host's root, out of its reach. The executor inherits that state from
    pid 1 and wants one such file (child/hot_pages.py), so it is dumpable for the one
    ``open``, and not dumpable again before any cell runs. Call it only once the
    capabilities are gone: a descriptor of ``pagemap`` opened with CAP_SYS_ADMIN on the
    host would show physical page numbers to the cells. None where it cannot be opened.
    """
    try:
        libc.prctl(libc.PR_SET_DUMPABLE, 1)
    except OSError:
        return None
    try:
        return os.open(f"/proc/self/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    finally:
        # Never leave the executor dumpable: its memory would be open to the cells'
        # other processes (/proc/<pid>/mem, past the audit hooks).
        try:
            libc.prctl(libc.PR_SET_DUMPABLE, 0)
            still = libc.prctl(libc.PR_GET_DUMPABLE)
        except OSError:
            still = 1
        if still:
            os._exit(125)


def have_capability(cap: int) -> bool:
    return bool(_effective_caps() >> cap & 1)


# -- the mechanism: nothing to prepare; apply in the executor (and pid 1) ------------------


def apply(level: str, report: Report) -> None:
    """Drop every capability, while CAP_SETPCAP still allows locking the securebits.

    At the namespaces level the executor holds all capabilities in its own user
    namespace; elsewhere only a root kernel's executor has any.
    """
    if level == "namespaces":
        drop_capabilities(have_setpcap=True)
        report.layer("capabilities", True, "all dropped, bounding set empty, securebits locked")
    elif os.geteuid() == 0:
        drop_capabilities(have_setpcap=have_capability(8))
        report.layer("capabilities", True, "all dropped")


def apply_no_new_privs(report: Report) -> None:
    """Before Landlock and seccomp, which both require it without CAP_SYS_ADMIN."""
    set_no_new_privs()
    report.layer("no_new_privs", True, "setuid binaries and file capabilities grant nothing")
