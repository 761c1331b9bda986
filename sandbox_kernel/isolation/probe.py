"""Probe what the host allows, in throwaway processes, before committing to a level.

``unshare`` alone is not a sufficient test: on Ubuntu >= 23.10 AppArmor lets an
unprivileged process create a user namespace but denies it any capability
inside, so mounts fail later. The probe therefore goes as far as a mount.
Every failure is turned into words (which call, which errno) for the report.
"""

from __future__ import annotations

import errno
import os

from . import landlock, libc

__all__ = ["probe_landlock", "probe_namespaces"]

PROBE_FLAGS = (
    libc.CLONE_NEWUSER
    | libc.CLONE_NEWNS
    | libc.CLONE_NEWPID
    | libc.CLONE_NEWNET
    | libc.CLONE_NEWIPC
    | libc.CLONE_NEWUTS
)
_STEPS = {1: "unshare", 2: "uid_map", 3: "mount", 4: "fork"}


def probe_namespaces() -> str | None:
    """None when user+mount+pid+net namespaces with a mount work here; else the reason."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the throwaway child
        os.close(read_end)
        step, err = 0, 0
        try:
            step = 1
            uid, gid = os.geteuid(), os.getegid()
            libc.unshare(PROBE_FLAGS)
            step = 2
            for path, text in (
                ("setgroups", "deny"),
                ("uid_map", f"{uid} {uid} 1"),
                ("gid_map", f"{gid} {gid} 1"),
            ):
                with open(f"/proc/self/{path}", "w") as f:
                    f.write(text)
            step = 3
            libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
            libc.mount("tmpfs", "/tmp", "tmpfs", 0, "size=1m")
            step = 0
        except OSError as exc:
            err = exc.errno or 0
        os.write(write_end, f"{step} {err}".encode())
        os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    step, err = (int(x) for x in (answer.split() or ["4", "0"]))
    if step == 0:
        return None
    name = errno.errorcode.get(err, str(err))
    hint = {
        errno.EPERM: "blocked by the host (a container's seccomp profile, or an LSM "
        "such as AppArmor)",
        errno.ENOSPC: "user namespaces are limited to 0 (user.max_user_namespaces)",
        errno.EINVAL: "not supported here",
        errno.EACCES: "denied by the host",
    }.get(err, os.strerror(err) if err else "unknown failure")
    return f"{_STEPS.get(step, 'probe')} failed with {name}: {hint}"


def probe_landlock() -> tuple[int, str | None]:
    """The Landlock ABI and, when it is 0, why."""
    abi = landlock.abi_version()
    if abi >= 1:
        return abi, None
    return 0, "Landlock is not enabled in this kernel (needs Linux >= 5.13 with lsm=landlock)"
