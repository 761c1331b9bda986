"""The launcher: exec'd by the trusted kernel, it builds the sandbox and starts the executor.

Run as ``python -P -s -m sandbox_kernel.launcher.launch SPEC_FD``, with a
scrubbed environment and only three descriptors (relay, supervisor, spec).
It is a fresh interpreter, single-threaded, holding none of the kernel's
secrets, which is what makes ``unshare(CLONE_NEWUSER)`` possible (it fails
in a multi-threaded process) and a fork of it safe.

Process tree, by level::

    namespaces:  launcher ── pid 1 (supervisor) ── executor ── (cells' children)
    landlock:    launcher = supervisor, child subreaper ── executor ── ...
    none:        as landlock, without Landlock

The launcher probes the levels from strongest to weakest and uses the first
one that works, unless it is weaker than ``required_isolation``; then it
starts no executor and says why (fail closed).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import sys
import time
import traceback
from typing import Any

from .. import own_memory
from ..errors import SetupError
from ..isolation import (
    accounts,
    contain,
    landlock,
    libc,
    mountns,
    privs,
    probe,
    seccomp,
    userns,
)
from ..isolation.report import Report
from ..levels import ISOLATION_LEVELS, level_rank
from ..network import dialer, forward
from ..relay.framing import encode_frame
from .supervisor import end_with_kernel, supervise

__all__ = ["main"]

EXIT_SETUP_FAILED = 70
# The shim that carries Python's connections to the proxy over the dialer (landlock, none).
SANDBOX_SITE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "child", "sandbox_site"
)


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(encode_frame(message))


def _fail(relay: socket.socket, report: Report, error: SetupError | str) -> None:
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


def _fail_unexpected(relay: socket.socket, report: Report, exc: BaseException) -> None:
    """An error no mechanism anticipated: still say what and where, never a bare status.

    The executor's stderr is closed by then, so a traceback printed there is lost.
    """
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {os.path.basename(where[0].filename)}:{where[0].lineno})" if where else ""
    _fail(relay, report, SetupError("sandbox", f"{type(exc).__name__}: {exc}{at}"))


def choose_level(spec: dict[str, Any], report: Report) -> str | None:
    """The strongest level that works here and meets the requirement; None if there is none."""
    iso = spec["isolation"]
    required = iso["required_isolation"]
    candidates = [lvl for lvl in ISOLATION_LEVELS if level_rank(lvl) >= level_rank(required)]
    if iso["level"] != "auto":
        candidates = [iso["level"]] if iso["level"] in candidates else []
        if not candidates:
            report.unavailable[iso["level"]] = f"weaker than required_isolation={required}"
    for level in candidates:
        if level == "namespaces":
            reason = probe.probe_namespaces() or _idmap_refused(iso)
        elif level == "landlock":
            _, reason = probe.probe_landlock()
        else:
            reason = None
        if reason is None:
            return level
        report.unavailable[level] = reason
    return None


def _idmap_refused(iso: dict[str, Any]) -> str | None:
    """Why a root kernel cannot use the namespaces level for this workspace, if it cannot.

    A root kernel's cells run as an unprivileged host uid (userns.choose_map, range
    mode) and reach the notebook directory, and the other writable shares, as their
    owner through an id-mapped mount. Where the filesystem refuses one (overlayfs:
    a container's own root filesystem), the cells could neither enter a 0700
    directory nor write a file there; the level is not available rather than
    half-working. At level auto the next one (landlock, cells as the kernel's own
    user) runs the notebook; a level required explicitly fails closed with this text.
    """
    workspace = iso["workspace"]
    idmap = userns.choose_map(workspace, iso["sandbox_uid_base"])
    if idmap.mode != "range":
        return None
    shares = [workspace, *(path for path, mode in iso["extra_mounts"] if mode == "rw")]
    refused = probe.probe_idmap([p for p in shares if os.path.exists(p)], idmap.outer_uid)
    if refused is None:
        return None
    path, err = refused
    fstype = probe.filesystem_type(path)
    what = "the notebook directory" if path == workspace else "the writable extra mount"
    return (
        f"a root kernel's cells run as an unprivileged host uid and reach {what} {path} "
        f"as its owner through an id-mapped mount, which its filesystem ({fstype}) refuses "
        f"({errno.errorcode.get(err, str(err))}). To fix: keep the notebooks on a filesystem "
        "that supports id-mapped mounts (ext4, xfs, btrfs, tmpfs; in a container, a volume "
        "or bind mount rather than the container's own overlay filesystem), or run the "
        "kernel as an unprivileged user; --Isolation.level=landlock runs the cells as the "
        "kernel's own user"
    )


def _seccomp_filter(spec: dict[str, Any], level: str, report: Report) -> Any:
    iso = spec["isolation"]
    if iso["seccomp"] == "disabled":
        report.layer("seccomp", False, "disabled by configuration")
        return None
    if iso["allow_network"]:
        families: tuple[int, ...] = (
            socket.AF_UNIX,
            socket.AF_INET,
            socket.AF_INET6,
            socket.AF_NETLINK,
        )
    elif level == "namespaces":
        # Inside our own network namespace these reach only our own loopback.
        families = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK)
    else:
        # Sharing the host's network: no sockets at all. Landlock does not
        # cover UDP or pathname unix sockets (an ssh-agent socket would be
        # reachable); socketpair(2) stays available.
        families = ()
    try:
        flt = seccomp.build(socket_families=families)
    except (SetupError, ImportError, OSError) as exc:
        if iso["seccomp"] == "required":
            raise SetupError("seccomp", f"the filter cannot be built: {exc}") from None
        report.layer("seccomp", False, f"unavailable: {exc}")
        return None
    allowed = (
        "only socketpair"
        if not families
        else "unix and inet sockets (own network namespace)"
        if level == "namespaces"
        else "sockets allowed"
    )
    report.layer(
        "seccomp",
        True,
        f"default-deny allow-list ({len(seccomp.ALLOWED)} calls), "
        f"{len(seccomp.NOTIFIED)} reported; {allowed}",
    )
    return flt


def _sandbox_home(plan: mountns.MountPlan) -> str:
    """HOME at the namespaces level: its real path (a private tmpfs), else in /tmp."""
    if any(m.kind == "tmpfs" and m.path == plan.home for m in plan.mounts):
        return plan.home
    return plan.tmp + "/home"


def _sandbox_environment(level: str, spec: dict[str, Any], plan: mountns.MountPlan) -> None:
    """HOME, TMPDIR and caches point into the sandbox's private space.

    At the namespaces level HOME keeps its real path (an empty tmpfs there),
    so ``~`` in paths and tracebacks reads as it does outside. Caches go to
    /tmp, which is private too and never the workspace.
    """
    if level == "namespaces":
        home, tmp = _sandbox_home(plan), plan.tmp
    else:
        home, tmp = spec["private_dir"] + "/home", spec["private_dir"] + "/tmp"
        for path in (home, tmp):
            os.makedirs(path, mode=0o700, exist_ok=True)
    if not spec["isolation"]["allow_network"] and not (spec.get("explain") or {}).get(
        "allowed_hosts"
    ):
        # No index can answer: pip fails at once instead of retrying five times.
        os.environ.setdefault("PIP_RETRIES", "0")
        os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    os.environ.update(
        HOME=home,
        TMPDIR=tmp,
        XDG_CACHE_HOME=tmp + "/.cache",
        XDG_CONFIG_HOME=tmp + "/.config",
        MPLCONFIGDIR=tmp + "/.matplotlib",
        IPYTHONDIR=tmp + "/.ipython",
    )
    _network_environment(level, spec)


def _sandbox_path(plan: mountns.MountPlan) -> None:
    """PATH with only what the sandbox shows: a dangling entry would name a host path.

    Called right after the plan, while the launcher still has the kernel's ids:
    a root launcher can no longer see into 0700 directories (/root/.pyenv) once
    it has taken the sandbox's.
    """
    os.environ["PATH"] = mountns.visible_command_path(os.environ.get("PATH", ""), plan)


def _sandbox_accounts(plan: mountns.MountPlan, idmap: userns.IdMap, kernel_uid: int) -> None:
    """The sandbox's /etc/passwd and /etc/group (accounts.py), before the trees are captured.

    USER and LOGNAME follow, so that ``getpass.getuser()`` and ``pwd`` agree even
    where a root kernel runs its cells as the workspace's owner.
    """
    name = accounts.account_name(idmap.inner_uid, kernel_uid)
    plan.synthesize(accounts.etc_files(idmap.inner_uid, idmap.inner_gid, name, _sandbox_home(plan)))
    os.environ.update(USER=name, LOGNAME=name)


def _network_environment(level: str, spec: dict[str, Any]) -> None:
    """Proxy variables, pip's settings and the package directory (from the kernel's spec).

    Set here, in the launcher's environment after it started, so they reach the
    executor and its children but never the launcher's own interpreter start
    (PYTHONPATH names a directory cells write).
    """
    network = spec.get("network")
    if not network:
        return
    env = dict(network.get("env") or {})
    if network.get("proxy_socket") and level != "namespaces":
        # No network namespace: cells open no socket, and the proxy is reached through
        # the supervisor's dialer (network/dialer.py), which the shim on PYTHONPATH
        # makes Python's clients use. The descriptor's number is set at the fork.
        env[dialer.ADDRESS_ENV] = f"127.0.0.1:{network.get('proxy_port')}"
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (SANDBOX_SITE, env.get("PYTHONPATH", "")) if p
        )
    os.environ.update(env)
    bin_dir = os.path.join(str(network.get("package_prefix", "")), "bin")
    if network.get("package_prefix"):
        os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + bin_dir


def _landlock_rules(
    spec: dict[str, Any], level: str, plan: mountns.MountPlan, report: Report
) -> landlock.LandlockRules:
    iso = spec["isolation"]
    writable = [plan.workspace] if plan.workspace_writable else []
    writable += [path for path, mode in iso["extra_mounts"] if mode == "rw"]
    if level == "namespaces":
        # Defence in depth over a view that is read-only already (sensitive
        # paths in the workspace are covered by read-only mounts).
        return landlock.LandlockRules(
            read_paths=["/"],
            shared_paths=writable,
            write_paths=[
                plan.tmp,
                "/dev/shm",
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/ptmx",
                "/dev/pts",
            ],
            # The network namespace is the network boundary here; TCP rules
            # would only break servers a cell runs on its own loopback.
            deny_tcp=False,
        )
    # Without a mount namespace, Landlock is the filesystem boundary. Code
    # the kernel loads and the protected paths must stay out of reach even
    # when they sit inside the workspace.
    code = plan.read_only_sources()
    hidden = list(iso["protected"])
    rules = landlock.LandlockRules(write_paths=[spec["private_dir"], "/dev/null"])
    for path in [b for b in code if b not in (plan.workspace,)] + [
        "/proc",
        "/dev/urandom",
        "/dev/random",
        "/dev/zero",
        "/dev/full",
    ]:
        grants, listed = mountns.entries_around(path, hidden)
        rules.read_paths += grants
        rules.list_paths += listed
    for path in [plan.workspace, *(p for p, _ in iso["extra_mounts"])]:
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


def _start_executor(
    spec: dict[str, Any],
    report: Report,
    level: str,
    relay: socket.socket,
    notify_w: socket.socket,
    flt: Any,
    rules: landlock.LandlockRules | None,
    keep_fds: frozenset[int] = frozenset(),
) -> None:
    """Runs in the executor process: confine, then serve. Never returns."""
    code = 0
    try:
        notify_fd = contain.confine_executor(
            spec,
            report,
            level=level,
            keep_fds={relay.fileno(), notify_w.fileno(), *keep_fds},
            seccomp_filter=flt,
            landlock_rules=rules,
        )
        contain.send_notify_fd(notify_w, notify_fd)
        notify_w.close()
        _enter_workspace(spec["isolation"]["workspace"])
        report.layer(
            "environment", True, "allow-listed variables only; no tokens, no connection file"
        )
        from ..child.child import serve

        iso = spec["isolation"]
        network = spec.get("network") or {}
        info = {
            "isolation": report.as_dict(),
            "limits": spec["limits"],
            "policy": spec.get("policy") or {},
            "explain": {
                **(spec.get("explain") or {}),
                "level": level,
                "allow_network": iso["allow_network"],
                "workspace": iso["workspace"],
                "workspace_writable": iso["workspace_writable"],
                "hidden": iso["protected"],
                "memory_bytes": spec["limits"]["memory_bytes"],
                "private": [os.environ.get("TMPDIR", "/tmp"), os.environ.get("HOME", "")],
                "read_only_inside": iso.get("read_only_inside", [])
                if level == "namespaces"
                else [],
            },
            "network": {k: v for k, v in network.items() if k not in ("env", "proxy_socket")},
            "setup_ms": round((time.monotonic() - spec["_t0"]) * 1000, 1),
        }
        serve(relay, info)
    except SetupError as exc:
        _fail(relay, report, exc)
        code = EXIT_SETUP_FAILED
    except BaseException as exc:
        traceback.print_exc()
        _fail_unexpected(relay, report, exc)
        code = EXIT_SETUP_FAILED
    finally:
        os._exit(code)


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


def run_namespaces(
    spec: dict[str, Any], report: Report, relay: socket.socket, sup: socket.socket
) -> int:
    iso = spec["isolation"]
    workspace = iso["workspace"]
    idmap = userns.choose_map(workspace, iso["sandbox_uid_base"])
    plan = mountns.plan_mounts(
        workspace,
        iso["workspace_writable"],
        [tuple(m) for m in iso["extra_mounts"]],
        iso["tmp_size_mb"],
        idmap.mode == "range",
        iso["home"],
        iso["protected"],
        read_only_inside=iso.get("read_only_inside", []),
    )
    # Still the kernel's own uid here: the ids change after unshare.
    _sandbox_path(plan)
    _sandbox_accounts(plan, idmap, os.geteuid())
    flt = _seccomp_filter(spec, "namespaces", report)
    trees: dict[Any, int] = {}
    helper = None
    if idmap.mode == "range":
        # Before leaving the host's user namespace: root may traverse 0700
        # directories (such as /root) on the way to the sources.
        trees = mountns.capture_trees(plan)
        helper = userns.MapHelper(idmap, [fd for mount, fd in trees.items() if mount.idmap])
    try:
        libc.unshare(contain.namespace_flags(spec))
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
        userns.write_self_map(idmap)
        trees = mountns.capture_trees(plan)
    report.layer("userns", True, idmap.describe())
    if spec.get("cgroup"):
        report.layer("cgroupns", True, "own cgroup namespace")
    _sandbox_environment("namespaces", spec, plan)
    rules = (
        _landlock_rules(spec, "namespaces", plan, report) if iso["landlock"] != "disabled" else None
    )
    if rules is None:
        report.layer("landlock", False, "disabled by configuration")
    notify_r, notify_w = socket.socketpair()
    pid1 = os.fork()
    if pid1 == 0:
        code = EXIT_SETUP_FAILED
        try:
            contain.setup_pid1(spec, plan, trees, report)
            proxy_socket = (spec.get("network") or {}).get("proxy_socket")
            # Bound before any cell runs, so no cell can take the port first.
            listener = forward.listen() if proxy_socket else None
            executor = os.fork()
            if executor == 0:
                sup.close()
                notify_r.close()
                _start_executor(spec, report, "namespaces", relay, notify_w, flt, rules)
            relay.close()
            notify_w.close()
            if listener is not None:
                forward.start_forwarder(listener, str(proxy_socket))
            # pid 1 needs no privilege to reap and signal inside its namespace.
            privs.drop_capabilities(have_setpcap=True)
            privs.set_no_new_privs()
            code = supervise(sup, executor, _receive_notify_fd(notify_r))
        except SetupError as exc:
            _fail(relay, report, exc)
        except BaseException as exc:
            traceback.print_exc()
            _fail_unexpected(relay, report, exc)
        finally:
            os._exit(code)
    # The launcher only keeps pid 1 tied to the kernel's life (PDEATHSIG chain).
    for sock in (relay, sup, notify_r, notify_w):
        sock.close()
    for fd in trees.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _, status = os.waitpid(pid1, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1


def run_flat(
    level: str, spec: dict[str, Any], report: Report, relay: socket.socket, sup: socket.socket
) -> int:
    iso = spec["isolation"]
    # Orphans of the cells come back to us, so we can end them all.
    libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
    privs.set_not_dumpable()
    plan = mountns.plan_mounts(
        iso["workspace"],
        iso["workspace_writable"],
        [tuple(m) for m in iso["extra_mounts"]],
        iso["tmp_size_mb"],
        False,
        iso["home"],
        iso["protected"],
    )
    if level == "landlock":
        _sandbox_path(plan)
    flt = _seccomp_filter(spec, level, report)
    rules = _landlock_rules(spec, level, plan, report) if level == "landlock" else None
    if level == "none":
        report.layer("landlock", False, "not used at level none: the filesystem is not protected")
    _sandbox_environment(level, spec, plan)
    for name in ("userns", "pidns", "mountns", "netns"):
        report.layer(name, False, report.unavailable.get("namespaces", "not used at this level"))
    proxy_socket = (spec.get("network") or {}).get("proxy_socket")
    dial_sup, dial_cells = dialer.pair() if proxy_socket else (None, None)
    if dial_cells is not None:
        # Inherited by every process of the sandbox (the shim keeps it across
        # subprocess and pty spawns); the supervisor's end is not.
        os.set_inheritable(dial_cells.fileno(), True)
        os.environ[dialer.FD_ENV] = str(dial_cells.fileno())
        report.notes.append(
            "the network is the host's, so cells open no socket at all (seccomp); "
            "Python's HTTP clients (pip, requests, urllib) reach the egress proxy over a "
            "connection the supervisor hands them, other programs (curl, git) cannot "
            f"reach it at this level (allowed: {spec['network'].get('allowed')})"
        )
    notify_r, notify_w = socket.socketpair()
    executor = os.fork()
    if executor == 0:
        # A process group of its own: here the supervisor is an ordinary process of
        # the same user, and a cell's kill(0, ...) must not reach it (Landlock's
        # signal scope stops that only from ABI 6 on).
        os.setpgid(0, 0)
        sup.close()
        notify_r.close()
        if dial_sup is not None:
            dial_sup.close()
        keep = frozenset([dial_cells.fileno()]) if dial_cells is not None else frozenset()
        _start_executor(spec, report, level, relay, notify_w, flt, rules, keep)
    relay.close()
    notify_w.close()
    if dial_sup is not None and dial_cells is not None:
        dial_cells.close()
        dialer.start_dialer(dial_sup, str(proxy_socket))
    # Without a pid namespace nothing ends the cells' daemons (setsid, double fork)
    # with us; they are ours as subreaper, so when the kernel dies, even by SIGKILL,
    # the supervisor is told with a signal it can catch and ends them first.
    signal.signal(signal.SIGTERM, end_with_kernel)
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != spec["kernel_pid"]:
        end_with_kernel(signal.SIGTERM, None)
    return supervise(
        sup,
        executor,
        _receive_notify_fd(notify_r),
        socket_hint=SOCKET_HINT if proxy_socket else None,
    )


# Appended to a blocked socket(2) report where hosts are allowed but only Python reaches them.
SOCKET_HINT = (
    "; at this isolation level the allowed hosts are reached only by Python's HTTP "
    "clients (pip, requests, urllib), through the proxy in HTTP_PROXY, not by curl, git "
    "or other programs"
)


def main() -> None:
    # Die with the kernel, whatever kills it; the kernel may take a while to
    # send the spec (it starts this process before its own imports).
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    # The kernel's own memory limit is not the sandbox's.
    own_memory.release_inherited_limit()
    with os.fdopen(int(sys.argv[1])) as spec_file:
        text = spec_file.read()
    t0 = time.monotonic()
    if not text:
        sys.exit(0)  # the kernel decided not to use this launcher
    spec = json.loads(text)
    spec["_t0"] = t0
    if os.getppid() != spec["kernel_pid"]:
        os._exit(1)
    os.chdir(spec["cwd"])
    # The environment the kernel built from its configuration (this process
    # may have been started before the configuration was read).
    os.environ.clear()
    os.environ.update(spec["env"])
    relay = socket.socket(fileno=spec["relay_fd"])
    sup = socket.socket(fileno=spec["supervisor_fd"])
    for procs in (spec.get("cgroup") or {}).get("procs", []):
        try:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        except OSError as exc:
            _fail(relay, Report(), SetupError("cgroup", f"cannot join {procs}", exc.errno))
            sys.exit(EXIT_SETUP_FAILED)
    report = Report()
    if spec.get("cgroup"):
        report.layer("cgroup", True, spec["cgroup"]["detail"])
    else:
        report.layer("cgroup", False, spec.get("cgroup_unavailable", "not used"))
    share = spec.get("cpu_share") or {"on": False, "detail": "not reported"}
    report.layer("cpu_share", share["on"], share["detail"])
    level = choose_level(spec, report)
    if level is None:
        required = spec["isolation"]["required_isolation"]
        reasons = "; ".join(f"{lvl}: {why}" for lvl, why in report.unavailable.items())
        _fail(
            relay,
            report,
            SetupError(
                "sandbox",
                f"no isolation level at or above '{required}' is available here ({reasons})",
            ),
        )
        sys.exit(EXIT_SETUP_FAILED)
    report.level = level
    try:
        if level == "namespaces":
            code = run_namespaces(spec, report, relay, sup)
        else:
            code = run_flat(level, spec, report, relay, sup)
    except SetupError as exc:
        _fail(relay, report, exc)
        sys.exit(EXIT_SETUP_FAILED)
    # The sandbox is gone and this process holds nothing that needs finalizing (its
    # sockets are closed, its children reaped): the interpreter's own teardown took
    # 12-19 ms of every shutdown and restart, which wait for this exit.
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
