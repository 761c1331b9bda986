"""The containment sequence: every step that builds the sandbox, in order, in one place.

Three plain lists, one per process, read top to bottom (as bubblewrap's ``main``):

* :func:`run`, in the launcher: decide everything while it still has the kernel's
  ids (each mechanism's ``prepare``), then unshare and fork;
* :func:`pid1`, in the sandbox's pid 1 (namespaces level only): the mounts and the
  namespaces' set-up, with the capabilities the new user namespace gave it;
* :func:`executor`, in the process that will run user code: descriptors,
  capabilities, rlimits, no_new_privs, Landlock, seccomp last; then it serves.

Each mechanism lives in ``isolation/`` with the same shape: ``prepare(...)`` in the
launcher, before any fork or unshare, returns a plan (or None where the mechanism is
not used, after reporting why); ``apply(plan, ...)`` in the process being confined
applies it and reports what is in force. The policy (which calls, which paths) is in
the mechanism's module, never here: this file only says where and when.

Process tree, by level::

    namespaces:  launcher ── pid 1 (supervisor) ── executor ── (cells' children)
    landlock:    launcher = supervisor, child subreaper ── executor ── ...
    none:        as landlock, without Landlock
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import traceback
from typing import Any, NamedTuple

from ..errors import SetupError
from ..isolation import (
    fds,
    landlock,
    libc,
    mountns,
    netns,
    pidns,
    privs,
    rlimits,
    seccomp,
    userns,
    utsns,
)
from ..isolation.report import Report
from ..isolation.spec import Launch, SandboxSpec, plain
from . import dialer, environment, forward
from .failure import EXIT_SETUP_FAILED, fail, fail_unexpected
from .supervisor import end_with_kernel, supervise

__all__ = ["SOCKET_HINT", "run"]

# Appended to a blocked socket(2) report where hosts are allowed but only Python reaches them.
SOCKET_HINT = (
    "; at this isolation level the allowed hosts are reached only by Python's HTTP "
    "clients (pip, requests, urllib), through the proxy in HTTP_PROXY, not by curl, git "
    "or other programs"
)


class Plans(NamedTuple):
    """What the launcher decided, handed down to pid 1 and the executor by the forks."""

    level: str
    view: mountns.MountPlan
    seccomp: seccomp.Plan | None
    landlock: landlock.Plan | None
    network: netns.Plan
    # Mount trees captured in the launcher, moved into the new root by pid 1.
    trees: dict[mountns.Mount, int]
    started: float  # time.monotonic() when the spec was read, for setup_ms


def run(
    launch: Launch,
    level: str,
    report: Report,
    relay: socket.socket,
    sup: socket.socket,
    started: float,
) -> int:
    """In the launcher: prepare every mechanism, unshare, fork. Returns the exit status."""
    spec = launch.sandbox
    flat = level != "namespaces"
    if flat:
        # Orphans of the cells come back to us, so we can end them all.
        libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
        # A cell of the same uid cannot read the supervisor's memory.
        privs.set_not_dumpable()
    namespaces = None if flat else userns.prepare(spec)
    idmap_range = namespaces is not None and namespaces.idmap.mode == "range"
    # The filesystem view, from the host's layout (below namespaces: Landlock's paths).
    view = mountns.prepare(spec, level, idmap_range)
    if level != "none":
        # Still the kernel's own uid here: the ids change after unshare.
        environment.set_command_path(view)
    if namespaces is not None:
        environment.set_accounts(view, namespaces.idmap, os.geteuid())
    # Built here: libseccomp needs calls the filter forbids.
    filter_plan = seccomp.prepare(spec, level, report)
    trees: dict[mountns.Mount, int] = {}
    if namespaces is not None:
        if idmap_range:
            # Before leaving the host's user namespace: root may traverse 0700
            # directories (such as /root) on the way to the sources.
            trees = mountns.capture_trees(view)
        userns.apply(namespaces, report, [fd for m, fd in trees.items() if m.idmap])
        if not idmap_range:
            # Only now: an unprivileged launcher may clone trees in its own namespaces.
            trees = mountns.capture_trees(view)
    else:
        for name in ("userns", "pidns", "mountns", "netns"):
            report.layer(
                name, False, report.unavailable.get("namespaces", "not used at this level")
            )
    environment.set_environment(level, spec, view)
    plans = Plans(
        level=level,
        view=view,
        seccomp=filter_plan,
        landlock=landlock.prepare(spec, level, view, report),
        network=netns.prepare(spec),
        trees=trees,
        started=started,
    )
    notify_r, notify_w = socket.socketpair()
    if not flat:
        pid = os.fork()
        if pid == 0:
            pid1(launch, plans, report, relay, sup, notify_r, notify_w)
        # The launcher only keeps pid 1 tied to the kernel's life (PDEATHSIG chain).
        for sock in (relay, sup, notify_r, notify_w):
            sock.close()
        for fd in trees.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1
    # No pid namespace: the launcher itself supervises.
    proxy_socket = spec.network.proxy_socket if spec.network is not None else None
    dial_sup, dial_cells = dialer.pair() if proxy_socket else (None, None)
    if dial_cells is not None and spec.network is not None:
        # Inherited by every process of the sandbox (the shim keeps it across
        # subprocess and pty spawns); the supervisor's end is not.
        os.set_inheritable(dial_cells.fileno(), True)
        os.environ[dialer.FD_ENV] = str(dial_cells.fileno())
        report.notes.append(
            "the network is the host's, so cells open no socket at all (seccomp); "
            "Python's HTTP clients (pip, requests, urllib) reach the egress proxy over a "
            "connection the supervisor hands them, other programs (curl, git) cannot "
            f"reach it at this level (allowed: {spec.network.allowed})"
        )
    pid = os.fork()
    if pid == 0:
        # A process group of its own: here the supervisor is an ordinary process of
        # the same user, and a cell's kill(0, ...) must not reach it (Landlock's
        # signal scope stops that only from ABI 6 on).
        os.setpgid(0, 0)
        sup.close()
        notify_r.close()
        if dial_sup is not None:
            dial_sup.close()
        keep = {dial_cells.fileno()} if dial_cells is not None else set()
        executor(launch, plans, report, relay, notify_w, keep)
    relay.close()
    notify_w.close()
    if dial_sup is not None and dial_cells is not None and proxy_socket:
        dial_cells.close()
        dialer.start_dialer(dial_sup, proxy_socket)
    # Without a pid namespace nothing ends the cells' daemons (setsid, double fork)
    # with us; they are ours as subreaper, so when the kernel dies, even by SIGKILL,
    # the supervisor is told with a signal it can catch and ends them first.
    signal.signal(signal.SIGTERM, end_with_kernel)
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != launch.kernel_pid:
        end_with_kernel(signal.SIGTERM, None)
    return supervise(
        sup,
        pid,
        _receive_notify_fd(notify_r),
        socket_hint=SOCKET_HINT if proxy_socket else None,
    )


def pid1(
    launch: Launch,
    plans: Plans,
    report: Report,
    relay: socket.socket,
    sup: socket.socket,
    notify_r: socket.socket,
    notify_w: socket.socket,
) -> None:
    """In pid 1 of the sandbox's pid namespace (namespaces level). Never returns."""
    code = EXIT_SETUP_FAILED
    try:
        # First: die with the launcher; not dumpable.
        pidns.apply(report)
        # Mounts next: they need CAP_SYS_ADMIN in the new user namespace, and the view
        # must be complete before any process that runs user code exists. A fresh
        # /proc is mounted in the new root before the pivot (pidns.mount_proc).
        mountns.apply(plans.view, plans.trees, report, pidns.proc_mounter(report))
        utsns.apply(report)
        report.layer("ipcns", True, "own System V IPC and POSIX message queues")
        netns.apply(plans.network, report)
        userns.forbid_nesting(report)
        network = launch.sandbox.network
        proxy_socket = network.proxy_socket if network is not None else None
        # Bound before any cell runs, so no cell can take the port first.
        listener = forward.listen(network.proxy_port) if network and proxy_socket else None
        pid = os.fork()
        if pid == 0:
            sup.close()
            notify_r.close()
            executor(launch, plans, report, relay, notify_w)
        relay.close()
        notify_w.close()
        if listener is not None and proxy_socket:
            forward.start_forwarder(listener, proxy_socket)
        # pid 1 needs no privilege to reap and signal inside its namespace.
        privs.drop_capabilities(have_setpcap=True)
        privs.set_no_new_privs()
        code = supervise(sup, pid, _receive_notify_fd(notify_r))
    except SetupError as exc:
        fail(relay, report, exc)
    except BaseException as exc:
        traceback.print_exc()
        fail_unexpected(relay, report, exc)
    finally:
        os._exit(code)


def executor(
    launch: Launch,
    plans: Plans,
    report: Report,
    relay: socket.socket,
    notify_w: socket.socket,
    keep_fds: set[int] | None = None,
) -> None:
    """In the executor: confine, then serve the kernel. Never returns."""
    code = 0
    spec = launch.sandbox
    try:
        # Descriptors first: nothing opened by the launcher (spec pipe, mount
        # trees, probe sockets) may reach user code.
        fds.apply({relay.fileno(), notify_w.fileno(), *(keep_fds or set())})
        # Capabilities next, while we still hold CAP_SETPCAP to lock securebits
        # and clear the bounding set.
        privs.apply(plans.level, report)
        # rlimits before seccomp: setrlimit stays allowed, but lowering them here
        # means the first line of user code already runs under them.
        rlimits.apply(spec.rlimits, plans.level, report)
        # no_new_privs before Landlock and seccomp (both require it).
        privs.apply_no_new_privs(report)
        # With no capability left, and before Landlock could hide /proc.
        pagemap_fd = privs.open_own_proc_file("pagemap")
        if plans.landlock is not None:
            landlock.apply(plans.landlock, report)
        # seccomp last: every step above needs system calls the filter forbids.
        notify_fd = seccomp.apply(plans.seccomp) if plans.seccomp is not None else None
        # The supervisor answers the filter's notifications and reports blocked calls.
        _send_notify_fd(notify_w, notify_fd)
        notify_w.close()
        _enter_workspace(spec.isolation.workspace)
        report.layer(
            "environment", True, "allow-listed variables only; no tokens, no connection file"
        )
        from ..child.child import serve

        serve(relay, {**_executor_info(spec, plans, report), "pagemap_fd": pagemap_fd})
    except SetupError as exc:
        fail(relay, report, exc)
        code = EXIT_SETUP_FAILED
    except BaseException as exc:
        traceback.print_exc()
        fail_unexpected(relay, report, exc)
        code = EXIT_SETUP_FAILED
    finally:
        os._exit(code)


def _executor_info(spec: SandboxSpec, plans: Plans, report: Report) -> dict[str, Any]:
    """What the executor is told about its sandbox (child/child.py, the ready frame)."""
    iso = spec.isolation
    level = plans.level
    return {
        "isolation": report.as_dict(),
        "limits": plain(spec.limits),
        "policy": spec.policy,
        "explain": {
            **plain(spec.explain),
            "level": level,
            "allow_network": iso.allow_network,
            "workspace": iso.workspace,
            "workspace_writable": iso.workspace_writable,
            "hidden": list(iso.protected),
            "memory_bytes": spec.limits.memory_bytes,
            "private": [os.environ.get("TMPDIR", "/tmp"), os.environ.get("HOME", "")],
            "read_only_inside": list(iso.read_only_inside) if level == "namespaces" else [],
        },
        "network": {
            k: v for k, v in plain(spec.network or {}).items() if k not in ("env", "proxy_socket")
        },
        "setup_ms": round((time.monotonic() - plans.started) * 1000, 1),
    }


def _enter_workspace(workspace: str) -> None:
    """Make the notebook directory the cells' cwd, or say why the sandbox cannot use it.

    Cells run without the capabilities that let a root kernel into any directory,
    so a directory its own owner may not read (mode 0300, 0100 ...) is closed to them.
    """
    try:
        os.chdir(workspace)
        readable = os.access(".", os.R_OK | os.X_OK)
    except OSError as exc:
        err: int | None = exc.errno
        readable = False
    else:
        err = None
    if not readable:
        raise SetupError(
            "workspace",
            f"the sandboxed user (uid {os.getuid()} in the sandbox) cannot read the notebook "
            f"directory {workspace}",
            err,
            fix=f"give its owner read and search permission (chmod u+rx '{workspace}'), "
            "or start the kernel from a directory its user can read",
        )


def _send_notify_fd(sock: socket.socket, fd: int | None) -> None:
    """Hand the seccomp listener to the supervisor, which answers and reports blocked calls."""
    if fd is None:
        sock.send(b"n")
    else:
        socket.send_fds(sock, [b"y"], [fd])
        os.close(fd)


def _receive_notify_fd(sock: socket.socket) -> int | None:
    """One byte and at most one descriptor from the executor, then the socket is done."""
    try:
        msg, fds_, _, _ = socket.recv_fds(sock, 1, 4)
    except OSError:
        return None
    finally:
        sock.close()
    for extra in fds_[1:]:
        os.close(extra)
    return fds_[0] if msg == b"y" and fds_ else None
