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

__all__ = ["filesystem_type", "probe_idmap", "probe_landlock", "probe_namespaces"]

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


def probe_idmap(paths: list[str], outer_uid: int) -> tuple[str, int] | None:
    """None when each path can be id-mapped as a root launcher does; else (path, errno).

    Called by a root launcher (CAP_SETUID, CAP_SETGID, CAP_SYS_ADMIN) before it
    commits to the namespaces level: a throwaway user namespace, mapped as the
    sandbox's would be, and a detached recursive clone of each path given the
    same id-mapping the launcher gives the real one (userns.MapHelper). Some
    filesystems refuse it (EINVAL): overlayfs, the root filesystem of a
    container, among them. A path that cannot be opened is left to the
    launcher's own checks, which name it.
    """
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the throwaway child
        os.close(ready_r)
        os.close(go_w)
        try:
            libc.unshare(libc.CLONE_NEWUSER)
            os.write(ready_w, b"y")
        except OSError:
            os.write(ready_w, b"n")
        os.read(go_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    refused: tuple[str, int] | None = None
    try:
        if os.read(ready_r, 1) != b"y":
            return None  # no user namespace at all: probe_namespaces says why
        try:
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(f"0 {outer_uid} 1\n")
            userns = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None  # the launcher's own map helper fails the same way, and says so
        try:
            flags = libc.OPEN_TREE_CLONE | libc.OPEN_TREE_CLOEXEC | libc.AT_RECURSIVE
            for path in paths:
                try:
                    tree = libc.open_tree(path, flags)
                except OSError:
                    continue
                try:
                    libc.mount_setattr(tree, libc.MOUNT_ATTR_IDMAP, userns_fd=userns)
                except OSError as exc:
                    refused = (path, exc.errno or 0)
                    break
                finally:
                    os.close(tree)
        finally:
            os.close(userns)
    finally:
        os.close(ready_r)
        os.close(go_w)
        os.waitpid(pid, 0)
    return refused


def filesystem_type(path: str) -> str:
    """The type of the filesystem ``path`` is on (from mountinfo), or "unknown"."""
    try:
        dev = os.stat(path).st_dev
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                major, minor = (int(x) for x in fields[2].split(":"))
                if os.makedev(major, minor) == dev and "-" in fields:
                    return fields[fields.index("-") + 1]
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"
