"""The launcher: exec'd by the trusted kernel, it builds the sandbox and starts the executor.

Run as ``python -P -s -m sandbox_kernel.launcher.launch SPEC_FD``, with a
scrubbed environment and only three descriptors (relay, supervisor, spec).
It is a fresh interpreter, single-threaded, holding none of the kernel's
secrets, which is what makes ``unshare(CLONE_NEWUSER)`` possible (it fails
in a multi-threaded process) and a fork of it safe.

This module reads and checks the spec (isolation/spec.py), joins the cgroup and
picks the level: it probes the levels from strongest to weakest and uses the
first one that works, unless it is weaker than ``required_isolation``; then it
starts no executor and says why (fail closed). The sandbox itself is built by
the containment sequence in ``contain.py``.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import time

from .. import own_memory
from ..errors import SetupError
from ..isolation import libc, probe, userns
from ..isolation.report import Report
from ..isolation.spec import IsolationSpec, SandboxSpec, SpecError, parse
from ..levels import ISOLATION_LEVELS, level_rank
from . import contain
from .failure import EXIT_SETUP_FAILED, fail

__all__ = ["choose_level", "main"]


def choose_level(spec: SandboxSpec, report: Report) -> str | None:
    """The strongest level that works here and meets the requirement; None if there is none."""
    iso = spec.isolation
    required = iso.required_isolation
    candidates = [lvl for lvl in ISOLATION_LEVELS if level_rank(lvl) >= level_rank(required)]
    if iso.level != "auto":
        candidates = [iso.level] if iso.level in candidates else []
        if not candidates:
            report.unavailable[iso.level] = f"weaker than required_isolation={required}"
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


def _idmap_refused(iso: IsolationSpec) -> str | None:
    """Why a root kernel cannot use the namespaces level for this workspace, if it cannot.

    A root kernel's cells run as an unprivileged host uid (userns.choose_map, range
    mode) and reach the notebook directory, and the other writable shares, as their
    owner through an id-mapped mount. Where the filesystem refuses one (overlayfs:
    a container's own root filesystem), the cells could neither enter a 0700
    directory nor write a file there; the level is not available rather than
    half-working. At level auto the next one (landlock, cells as the kernel's own
    user) runs the notebook; a level required explicitly fails closed with this text.
    """
    workspace = iso.workspace
    idmap = userns.choose_map(workspace, iso.sandbox_uid_base)
    if idmap.mode != "range":
        return None
    shares = [workspace, *iso.writable_shares()]
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


def main() -> None:
    # Die with the kernel, whatever kills it; the kernel may take a while to
    # send the spec (it starts this process before its own imports).
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    # The kernel's own memory limit is not the sandbox's.
    own_memory.release_inherited_limit()
    with os.fdopen(int(sys.argv[1])) as spec_file:
        text = spec_file.read()
    started = time.monotonic()
    if not text:
        sys.exit(0)  # the kernel decided not to use this launcher
    try:
        launch = parse(text)
    except SpecError as exc:
        # No relay to say it on: the kernel sees the launcher exit before "ready".
        print(f"sandbox launcher: {exc}", file=sys.stderr)
        sys.exit(EXIT_SETUP_FAILED)
    if os.getppid() != launch.kernel_pid:
        os._exit(1)
    spec = launch.sandbox
    os.chdir(launch.cwd)
    # The environment the kernel built from its configuration (this process
    # may have been started before the configuration was read).
    os.environ.clear()
    os.environ.update(launch.env)
    relay = socket.socket(fileno=launch.relay_fd)
    sup = socket.socket(fileno=launch.supervisor_fd)
    for procs in spec.cgroup.procs if spec.cgroup is not None else ():
        try:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        except OSError as exc:
            fail(relay, Report(), SetupError("cgroup", f"cannot join {procs}", exc.errno))
            sys.exit(EXIT_SETUP_FAILED)
    report = Report()
    if spec.cgroup is not None:
        report.layer("cgroup", True, spec.cgroup.detail)
    else:
        report.layer("cgroup", False, spec.cgroup_unavailable)
    report.layer("cpu_share", spec.cpu_share.on, spec.cpu_share.detail)
    level = choose_level(spec, report)
    if level is None:
        required = spec.isolation.required_isolation
        reasons = "; ".join(f"{lvl}: {why}" for lvl, why in report.unavailable.items())
        fail(
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
        code = contain.run(launch, level, report, relay, sup, started)
    except SetupError as exc:
        fail(relay, report, exc)
        sys.exit(EXIT_SETUP_FAILED)
    # The sandbox is gone and this process holds nothing that needs finalizing (its
    # sockets are closed, its children reaped): the interpreter's own teardown took
    # 12-19 ms of every shutdown and restart, which wait for this exit.
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
