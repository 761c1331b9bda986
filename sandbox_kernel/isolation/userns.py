"""User namespace: the sandbox has uids of its own and never holds host root.

Two ways to map ids, chosen by who runs the kernel:

* ``self`` (an unprivileged kernel): the launcher maps its own uid and gid to
  themselves, the one mapping an unprivileged process may write
  (user_namespaces(7)). Cells run as the user, without capabilities.
* ``range`` (a root kernel): a helper left in the parent namespace maps the
  workspace owner's uid to an unused host uid ``S``. Cells see themselves as
  the workspace's owner, but on the host they are ``S``: never uid 0, so a
  read-only bind of a root-owned file cannot be written even if remounted, and
  RLIMIT_NPROC applies (it is not enforced for a real uid of 0). The same
  helper id-maps the workspace mount, so files the cell writes land on disk
  owned by the workspace's owner.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from ..errors import SetupError
from . import libc

if TYPE_CHECKING:
    from .report import Report
    from .spec import SandboxSpec

__all__ = [
    "IdMap",
    "MapHelper",
    "Plan",
    "apply",
    "choose_map",
    "forbid_nesting",
    "namespace_flags",
    "prepare",
    "write_self_map",
]


@dataclass(frozen=True)
class IdMap:
    mode: str  # "self" or "range"
    inner_uid: int
    inner_gid: int
    outer_uid: int
    outer_gid: int

    def describe(self) -> str:
        if self.mode == "self":
            return f"uid {self.inner_uid} mapped to itself (unprivileged)"
        return f"uid {self.inner_uid} inside is host uid {self.outer_uid}, not root"


def _has_cap(cap: int) -> bool:
    return bool(libc.capget_effective() >> cap & 1)


CAP_SETUID, CAP_SETGID, CAP_SYS_ADMIN = 7, 6, 21


# A root launcher runs each sandbox as uid_base + (its pid modulo this).
UID_SPREAD = 1_000_000


def sandbox_uid_range(uid_base: int) -> range:
    """The host uids a root kernel's sandboxes may run as."""
    return range(uid_base, uid_base + UID_SPREAD)


def choose_map(workspace: str, uid_base: int) -> IdMap:
    """Pick the mapping for this launcher (called before unshare)."""
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0 and all(_has_cap(c) for c in (CAP_SETUID, CAP_SETGID, CAP_SYS_ADMIN)):
        st = os.stat(workspace)
        # A distinct host uid per sandbox keeps RLIMIT_NPROC and file ownership
        # of one kernel's cells apart from another's.
        outer = uid_base + os.getpid() % UID_SPREAD
        return IdMap("range", st.st_uid, st.st_gid, outer, outer)
    return IdMap("self", uid, gid, uid, gid)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write_self_map(idmap: IdMap) -> None:
    """Map our own ids inside the namespace we just created (self mode)."""
    try:
        # user_namespaces(7): an unprivileged process must deny setgroups
        # before it may write gid_map.
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{idmap.inner_uid} {idmap.outer_uid} 1\n")
        _write("/proc/self/gid_map", f"{idmap.inner_gid} {idmap.outer_gid} 1\n")
    except OSError as exc:
        raise SetupError("userns", "cannot write the id maps", exc.errno) from None


class MapHelper:
    """A child left in the parent user namespace to write a range map for us.

    It is forked before ``unshare`` so that it keeps root's capabilities in the
    parent namespace, which writing a map to another uid requires. It also
    id-maps the given mount trees with the new namespace, which needs
    CAP_SYS_ADMIN over their (initial) mount namespace.
    """

    def __init__(self, idmap: IdMap, idmap_tree_fds: list[int]) -> None:
        self.idmap = idmap
        self.tree_fds = idmap_tree_fds
        go_read, self._go = os.pipe()
        self._done_read, done_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the helper process
            os.close(self._go)
            os.close(self._done_read)
            code = 1
            try:
                target = int(os.read(go_read, 32) or b"0")
                if target:
                    os.write(done_write, self._map(target).encode() or b"ok")
                    code = 0
            finally:
                os._exit(code)
        os.close(go_read)
        os.close(done_write)

    def _map(self, pid: int) -> str:  # pragma: no cover - runs in the helper process
        idmap = self.idmap
        try:
            _write(f"/proc/{pid}/uid_map", f"{idmap.inner_uid} {idmap.outer_uid} 1\n")
            _write(f"/proc/{pid}/gid_map", f"{idmap.inner_gid} {idmap.outer_gid} 1\n")
        except OSError as exc:
            return f"E{exc.errno}"
        failed = []
        if self.tree_fds:
            userns = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
            for fd in self.tree_fds:
                try:
                    libc.mount_setattr(fd, libc.MOUNT_ATTR_IDMAP, userns_fd=userns)
                except OSError as exc:
                    failed.append(f"{fd}:{exc.errno}")
            os.close(userns)
        return "I" + ",".join(failed) if failed else "ok"

    def map_now(self) -> list[int]:
        """Ask the helper to write our maps; return the tree fds it could not id-map."""
        os.write(self._go, str(os.getpid()).encode())
        os.close(self._go)
        answer = os.read(self._done_read, 4096).decode()
        os.close(self._done_read)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        if answer.startswith("E") or not answer:
            err = int(answer[1:]) if answer[1:].isdigit() else None
            raise SetupError("userns", "the helper could not write the range id map", err)
        if answer.startswith("I"):
            return [int(item.split(":")[0]) for item in answer[1:].split(",")]
        return []

    def cancel(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._go)
        with contextlib.suppress(OSError):
            os.close(self._done_read)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


# -- the mechanism: prepare (launcher, before unshare) and apply ---------------------------


class Plan(NamedTuple):
    idmap: IdMap
    # Every namespace, unshared at once: the new user namespace owns the others.
    flags: int
    cgroup: bool


def namespace_flags(spec: SandboxSpec) -> int:
    flags = (
        libc.CLONE_NEWUSER
        | libc.CLONE_NEWNS
        | libc.CLONE_NEWPID
        | libc.CLONE_NEWIPC
        | libc.CLONE_NEWUTS
    )
    if not spec.isolation.allow_network:
        flags |= libc.CLONE_NEWNET
    if spec.cgroup is not None:
        # After joining our cgroup, so that it looks like the root inside.
        flags |= libc.CLONE_NEWCGROUP
    return flags


def prepare(spec: SandboxSpec) -> Plan:
    """Which ids the cells get, and which namespaces the launcher unshares."""
    idmap = choose_map(spec.isolation.workspace, spec.isolation.sandbox_uid_base)
    return Plan(idmap, namespace_flags(spec), spec.cgroup is not None)


def apply(plan: Plan, report: Report, idmapped_trees: list[int]) -> None:
    """In the launcher: unshare every namespace, then take the sandbox's ids.

    ``idmapped_trees`` are mount trees (captured before, range mode) that the map
    helper id-maps with the new namespace, so the cells write as the owner.
    """
    idmap = plan.idmap
    # Forked before unshare: it keeps root's capabilities in the parent namespace.
    helper = MapHelper(idmap, idmapped_trees) if idmap.mode == "range" else None
    try:
        libc.unshare(plan.flags)
    except OSError as exc:
        if helper:
            helper.cancel()
        raise SetupError("namespaces", "unshare failed", exc.errno) from None
    if helper is not None:
        not_idmapped = helper.map_now()
        if not_idmapped:
            report.notes.append(
                "the workspace filesystem does not support id-mapped mounts: "
                "cells cannot write in it"
            )
        try:
            os.setgroups([])
            os.setresgid(idmap.inner_gid, idmap.inner_gid, idmap.inner_gid)
            os.setresuid(idmap.inner_uid, idmap.inner_uid, idmap.inner_uid)
        except OSError as exc:
            raise SetupError("userns", "cannot take the mapped ids", exc.errno) from None
    else:
        write_self_map(idmap)
    report.layer("userns", True, idmap.describe())
    if plan.cgroup:
        report.layer("cgroupns", True, "own cgroup namespace")


def forbid_nesting(report: Report) -> None:
    """In pid 1: a cell must not create namespaces of its own, even if seccomp were off.

    The per-namespace limit makes unshare(CLONE_NEWUSER) fail with ENOSPC.
    """
    try:
        with open("/proc/sys/user/max_user_namespaces", "w") as f:
            f.write("0")
    except OSError as exc:
        report.notes.append(f"cannot zero max_user_namespaces ({os.strerror(exc.errno or 0)})")
