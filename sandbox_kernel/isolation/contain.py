"""The order in which the executor is confined, in one place.

Each step says why it sits where it does. The launcher calls these in its
processes; nothing here runs in the trusted kernel.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from ..errors import SetupError
from . import fds, landlock, libc, mountns, netns, pidns, privs, rlimits, seccomp
from .report import Report

__all__ = ["confine_executor", "namespace_flags", "setup_pid1"]


def namespace_flags(spec: dict[str, Any]) -> int:
    flags = (
        libc.CLONE_NEWUSER
        | libc.CLONE_NEWNS
        | libc.CLONE_NEWPID
        | libc.CLONE_NEWIPC
        | libc.CLONE_NEWUTS
    )
    if not spec["isolation"]["allow_network"]:
        flags |= libc.CLONE_NEWNET
    if spec.get("cgroup"):
        # After joining our cgroup, so that it looks like the root inside.
        flags |= libc.CLONE_NEWCGROUP
    return flags


def setup_pid1(
    spec: dict[str, Any], plan: mountns.MountPlan, trees: dict[Any, int], report: Report
) -> None:
    """Everything pid 1 does with its namespace capabilities, before it forks the executor."""
    pidns.become_init()
    # Mounts first: they need CAP_SYS_ADMIN in the new user namespace, and
    # the view must be complete before any process that runs user code exists.
    proc_notes: list[str] = []

    def mount_proc(target: str) -> str | None:
        note = pidns.mount_proc(target)
        if note:
            proc_notes.append(note)
        return None

    report.notes.extend(mountns.assemble_root(plan, trees, mount_proc))
    report.layer("pidns", True, "own pid namespace; a pid 1 of ours holds and reaps the tree")
    report.layer(
        "proc",
        not proc_notes,
        proc_notes[0] if proc_notes else "fresh /proc for the sandbox's pid namespace",
    )
    mountns.finish_read_only()
    ws = "writable" if plan.workspace_writable else "read-only"
    report.layer(
        "mountns", True, f"read-only view; workspace {plan.workspace} {ws}; private {plan.tmp}"
    )
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
    report.layer("ipcns", True, "own System V IPC and POSIX message queues")
    if not spec["isolation"]["allow_network"]:
        netns.bring_up_loopback()
        detail = "own network namespace with only loopback"
        if (spec.get("network") or {}).get("proxy_socket"):
            detail += (
                "; 127.0.0.1:3128 leads to the kernel's egress proxy "
                f"(allowed: {spec['network'].get('allowed')})"
            )
        report.layer("netns", True, detail)
    else:
        report.layer("netns", False, "allow_network is set: the host's network is shared")
    # A cell must not create namespaces of its own, even if seccomp were off:
    # the per-namespace limit makes unshare(CLONE_NEWUSER) fail with ENOSPC.
    try:
        with open("/proc/sys/user/max_user_namespaces", "w") as f:
            f.write("0")
    except OSError as exc:
        report.notes.append(f"cannot zero max_user_namespaces ({os.strerror(exc.errno or 0)})")


def confine_executor(
    spec: dict[str, Any],
    report: Report,
    *,
    level: str,
    keep_fds: set[int],
    seccomp_filter: Any,
    landlock_rules: landlock.LandlockRules | None,
) -> int | None:
    """Confine the executor process; return the seccomp notification fd, if any."""
    # Descriptors first: nothing opened by the launcher (spec pipe, mount
    # trees, probe sockets) may reach user code.
    fds.close_all_except(keep_fds)
    # Capabilities next, while we still hold CAP_SETPCAP to lock securebits
    # and clear the bounding set (namespaces level; elsewhere there are none).
    if level == "namespaces":
        privs.drop_capabilities(have_setpcap=True)
        report.layer("capabilities", True, "all dropped, bounding set empty, securebits locked")
    elif os.geteuid() == 0:
        privs.drop_capabilities(have_setpcap=privs.have_capability(8))
        report.layer("capabilities", True, "all dropped")
    # rlimits before seccomp: setrlimit stays allowed, but lowering them here
    # means the first line of user code already runs under them.
    rlimits.apply(spec["rlimits"])
    detail = ", ".join(f"{k[7:].lower()}={v}" for k, v in spec["rlimits"].items())
    if "RLIMIT_NPROC" in spec["rlimits"] and level != "namespaces" and os.getuid() == 0:
        # Linux never applies RLIMIT_NPROC to the host's uid 0, capabilities or not.
        detail += (
            " (nproc is not enforced: the kernel runs as root and has no pids cgroup;"
            " give the container a pids limit)"
        )
    report.layer("rlimits", True, detail)
    # no_new_privs before Landlock (which requires it without CAP_SYS_ADMIN)
    # and before seccomp (likewise).
    privs.set_no_new_privs()
    report.layer("no_new_privs", True, "setuid binaries and file capabilities grant nothing")
    if landlock_rules is not None:
        try:
            enforced = landlock.restrict(landlock_rules)
        except SetupError as exc:
            if level == "landlock" or spec["isolation"]["landlock"] == "required":
                raise
            report.layer("landlock", False, exc.reason)
        else:
            parts = ["filesystem"]
            if enforced["tcp"]:
                parts.append("TCP")
            if enforced["scopes"]:
                parts.append("abstract-socket and signal scopes")
            report.layer("landlock", True, f"ABI {enforced['abi']}: {', '.join(parts)}")
    # seccomp last: every step above needs system calls the filter forbids.
    notify_fd = None
    if seccomp_filter is not None:
        notify_fd = seccomp.load(seccomp_filter)
    return notify_fd


def send_notify_fd(sock: socket.socket, fd: int | None) -> None:
    """Hand the seccomp listener to the supervisor, which answers and reports blocked calls."""
    if fd is None:
        sock.send(b"n")
    else:
        socket.send_fds(sock, [b"y"], [fd])
        os.close(fd)
