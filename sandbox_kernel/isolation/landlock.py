"""Landlock: filesystem, TCP and IPC-scope rules that work without privileges.

A small ctypes layer of our own, because the ``landlock`` package on PyPI is
not usable (research/feasibility.md, Q2): its error check reads a stale errno,
so every call after one failure fails; it has no TCP rules and no scopes; and
it leaks the ruleset fd. This module covers ABI 1 to 7 and uses what the
running kernel offers, reporting what it could not.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from ..errors import SetupError
from ..paths import DEVICES, SINK_DEVICES, TERMINAL_DEVICES, device_paths
from . import libc, mountns

if TYPE_CHECKING:
    from .report import Report
    from .spec import SandboxSpec

__all__ = ["LandlockRules", "Plan", "abi_version", "apply", "prepare", "restrict"]

# Filesystem access rights, by the ABI that introduced them.
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

RULE_PATH_BENEATH = 1
CREATE_RULESET_VERSION = 1 << 0

READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
WRITE = (
    FS_WRITE_FILE
    | FS_REMOVE_DIR
    | FS_REMOVE_FILE
    | FS_MAKE_DIR
    | FS_MAKE_REG
    | FS_MAKE_SYM
    | FS_MAKE_FIFO
    | FS_MAKE_SOCK
    | FS_REFER
    | FS_TRUNCATE
)
# Directories shared with programs outside the sandbox (the workspace): no
# symlinks, FIFOs or sockets, which the Jupyter server, a grader or the user's
# shell would follow or block on after the cell (seccomp reports the attempts).
SHARED_WRITE = WRITE & ~(FS_MAKE_SYM | FS_MAKE_FIFO | FS_MAKE_SOCK)
# Rights that make sense on a file (not a directory) in a path-beneath rule.
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi_version() -> int:
    """The Landlock ABI of the running kernel; 0 when Landlock is unavailable."""
    try:
        return libc.syscall(
            "landlock_create_ruleset",
            None,
            ctypes.c_size_t(0),
            ctypes.c_uint32(CREATE_RULESET_VERSION),
        )
    except OSError:
        return 0


def _handled_fs(abi: int) -> int:
    rights = READ | (WRITE & ~(FS_REFER | FS_TRUNCATE)) | FS_MAKE_CHAR | FS_MAKE_BLOCK
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


@dataclass
class LandlockRules:
    read_paths: list[str] = field(default_factory=list)
    write_paths: list[str] = field(default_factory=list)
    # Writable, but shared with trusted programs outside: SHARED_WRITE only.
    shared_paths: list[str] = field(default_factory=list)
    # Directories whose entries may be listed but not opened (READ_DIR only).
    list_paths: list[str] = field(default_factory=list)
    # TCP ports the sandbox may connect to / bind; empty means none at all.
    deny_tcp: bool = True
    scope_ipc: bool = True


def _add_path(ruleset: int, path: str, rights: int, handled: int) -> str | None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        return f"{path}: {os.strerror(exc.errno or 0)}"
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS
        attr = _PathBeneathAttr(rights & handled, fd)
        libc.syscall(
            "landlock_add_rule",
            ctypes.c_int(ruleset),
            ctypes.c_int(RULE_PATH_BENEATH),
            ctypes.byref(attr),
            ctypes.c_uint32(0),
        )
    except OSError as exc:
        return f"{path}: {os.strerror(exc.errno or 0)}"
    finally:
        os.close(fd)
    return None


def restrict(rules: LandlockRules, abi: int | None = None) -> dict[str, object]:
    """Apply the rules to this thread (and its future children). Returns what was enforced.

    Landlock is per-thread: call it while the process is single-threaded, or
    threads started earlier stay unrestricted (feasibility.md, Q2).
    """
    abi = abi_version() if abi is None else abi
    if abi < 1:
        raise SetupError("landlock", "Landlock is not available in this kernel")
    handled_fs = _handled_fs(abi)
    handled_net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 and rules.deny_tcp else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 and rules.scope_ipc else 0
    attr = _RulesetAttr(handled_fs, handled_net, scoped)
    # Older kernels reject a struct larger than the one they know.
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    try:
        ruleset = libc.syscall(
            "landlock_create_ruleset", ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
        )
    except OSError as exc:
        raise SetupError("landlock", "cannot create a ruleset", exc.errno) from None
    problems: list[str] = []
    try:
        for path in _unique(rules.read_paths):
            if (problem := _add_path(ruleset, path, READ, handled_fs)) is not None:
                problems.append(problem)
        for path in _unique(rules.list_paths):
            if (problem := _add_path(ruleset, path, FS_READ_DIR, handled_fs)) is not None:
                problems.append(problem)
        for path in _unique(rules.write_paths):
            if (
                problem := _add_path(ruleset, path, READ | WRITE | FS_IOCTL_DEV, handled_fs)
            ) is not None:
                problems.append(problem)
        for path in _unique(rules.shared_paths):
            if (
                problem := _add_path(ruleset, path, READ | SHARED_WRITE | FS_IOCTL_DEV, handled_fs)
            ) is not None:
                problems.append(problem)
        try:
            libc.syscall("landlock_restrict_self", ctypes.c_int(ruleset), ctypes.c_uint32(0))
        except OSError as exc:
            raise SetupError("landlock", "cannot enforce the ruleset", exc.errno) from None
    finally:
        os.close(ruleset)
    return {
        "abi": abi,
        "tcp": bool(handled_net),
        "scopes": bool(scoped),
        "skipped": problems,
    }


def _unique(paths: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for path in paths:
        seen.setdefault(path, None)
    return list(seen)


# -- the mechanism: prepare (launcher: which paths), apply (executor) ---------------------


class Plan(NamedTuple):
    rules: LandlockRules
    # Whether the sandbox must not start without it (its own level, or configured so).
    required: bool


def prepare(spec: SandboxSpec, level: str, view: mountns.MountPlan, report: Report) -> Plan | None:
    """Which paths the cells may read, list and write; None where Landlock is not used."""
    if level == "none":
        report.layer("landlock", False, "not used at level none: the filesystem is not protected")
        return None
    if level == "namespaces" and spec.isolation.landlock == "disabled":
        report.layer("landlock", False, "disabled by configuration")
        return None
    required = level == "landlock" or spec.isolation.landlock == "required"
    if level == "namespaces":
        return Plan(_rules_over_namespaces(spec, view), required)
    return Plan(_rules_alone(spec, view, report), required)


def _rules_over_namespaces(spec: SandboxSpec, view: mountns.MountPlan) -> LandlockRules:
    # Defence in depth over a view that is read-only already (sensitive
    # paths in the workspace are covered by read-only mounts).
    writable = [view.workspace] if view.workspace_writable else []
    return LandlockRules(
        read_paths=["/"],
        shared_paths=writable + spec.isolation.writable_shares(),
        write_paths=[view.tmp, "/dev/shm", *device_paths(SINK_DEVICES), *TERMINAL_DEVICES],
        # The network namespace is the network boundary here; TCP rules
        # would only break servers a cell runs on its own loopback.
        deny_tcp=False,
    )


def _rules_alone(spec: SandboxSpec, view: mountns.MountPlan, report: Report) -> LandlockRules:
    """Without a mount namespace, Landlock is the filesystem boundary.

    Code the kernel loads and the protected paths must stay out of reach even
    when they sit inside the workspace.
    """
    iso = spec.isolation
    writable = [view.workspace] if view.workspace_writable else []
    writable += iso.writable_shares()
    code = view.read_only_sources()
    hidden = list(iso.protected)
    rules = LandlockRules(write_paths=[spec.private_dir, "/dev/null"])
    devices = [d for d in device_paths(DEVICES) if d != "/dev/null"]
    for path in [b for b in code if b not in (view.workspace,)] + ["/proc", *devices]:
        grants, listed = mountns.entries_around(path, hidden)
        rules.read_paths += grants
        rules.list_paths += listed
    for path in [view.workspace, *(p for p, _ in iso.extra_mounts)]:
        keep_out = hidden + [c for c in code if mountns.inside(c, path) and c != path]
        grants, listed = mountns.entries_around(path, keep_out)
        target = rules.shared_paths if path in writable else rules.read_paths
        target += grants
        rules.list_paths += listed
        if listed:
            report.notes.append(
                f"{path} holds code or sensitive files Landlock cannot carve out; its other "
                "entries are granted one by one, so new files can only be created inside "
                "existing subdirectories"
            )
        rules.read_paths += [c for c in code if mountns.inside(c, path) and c != path]
    return rules


def apply(plan: Plan, report: Report) -> None:
    """In the executor, after no_new_privs (required without CAP_SYS_ADMIN)."""
    try:
        enforced = restrict(plan.rules)
    except SetupError as exc:
        if plan.required:
            raise
        report.layer("landlock", False, exc.reason)
        return
    parts = ["filesystem"]
    if enforced["tcp"]:
        parts.append("TCP")
    if enforced["scopes"]:
        parts.append("abstract-socket and signal scopes")
    report.layer("landlock", True, f"ABI {enforced['abi']}: {', '.join(parts)}")
