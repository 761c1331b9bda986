"""Run a command as if in a container: Docker's defaults, a restricted Kubernetes pod, no Landlock.

Usage: ``python restricted_host.py PROFILE -- COMMAND...``

Everything is applied to this process and inherited by whatever it execs,
exactly as a container runtime applies it: the kernel under test can neither
see nor undo it.

Profiles:

* ``docker``: what a non-privileged ``docker run`` gives root in the
  container. Docker's default seccomp profile (``unshare``, ``setns``,
  ``mount``, ``pivot_root`` and ``clone`` with namespace flags fail with EPERM,
  ``clone3`` with ENOSYS); the capability bounding set cut to Docker's default
  14 capabilities (no CAP_SYS_ADMIN); /proc masked as runc masks it
  (``/proc/kcore``, ``/proc/keys``, ``/proc/timer_list`` ... hidden,
  ``/proc/sys``, ``/proc/sysrq-trigger`` ... read-only); the cgroup filesystem
  read-only. The kernel should fall back to the ``landlock`` level.
* ``k8s-restricted``: a pod that meets Kubernetes' "restricted" Pod Security
  Standard: the same seccomp profile (RuntimeDefault) and masks, ALL
  capabilities dropped, ``allowPrivilegeEscalation: false`` (no_new_privs),
  ``runAsNonRoot`` (the kernel runs as ``nobody``; its connection file is
  handed over as a copy that user can read). Started unprivileged, the
  wrapper keeps the caller's uid.
* ``k8s-unconfined``: the same pod with ``seccompProfile: Unconfined`` (what
  a pod gets when neither it nor the kubelet asks for RuntimeDefault): user
  namespaces are allowed, but /proc is still masked, so a fresh procfs cannot
  be mounted in them (the kernel refuses to reveal what runc masked).
* ``no-landlock``: ``docker`` plus a kernel without Landlock (the Landlock
  calls answer ENOSYS, as on Linux < 5.13). Only the ``none`` level remains.
* ``reachable``: nothing restricted; only the view below, so that processes this
  command starts as other users (a hub's single-user servers) can run the interpreter.
* ``no-passwd``: only the uid, as OpenShift and many restricted pods run a
  container: an arbitrary uid (``NO_PASSWD_UID``, gid 0) that has no passwd
  entry, and ``HOME=/`` as Docker sets it for such a uid. Nothing else is
  restricted.

A pod's image has its interpreter where the pod's user can run it; on a test
machine it may sit under a 0700 home (pyenv under /root). Before switching
uid, the wrapper gives its own mount namespace that view: every directory on
the way to the interpreter and the checkout that the pod user could not
traverse is covered by a tmpfs holding only the entry on the way (nothing else
of it is visible, nothing on the host changes).

The masks need CAP_SYS_ADMIN in the test process; run unprivileged, the
wrapper applies everything else and says so on stderr.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import shutil
import sys
import tempfile

import pyseccomp as sc

from sandbox_kernel.isolation import libc

# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
NAMESPACE_FLAGS = (
    0x20000,
    0x2000000,
    0x4000000,
    0x8000000,
    0x10000000,
    0x20000000,
    0x40000000,
    0x80,
)
# Docker's default capabilities: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID,
# SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP.
DOCKER_CAPS = frozenset({0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31})
CAP_SYS_ADMIN = 21
# runc's defaults (opencontainers/runc libcontainer/specconv: maskedPaths, readonlyPaths).
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/sys/fs/cgroup",
)
PROFILES = ("docker", "k8s-restricted", "k8s-unconfined", "no-landlock", "no-passwd", "reachable")
# An OpenShift-style uid (from a namespace's range), with no passwd entry.
NO_PASSWD_UID = 1000770000


def _mask_like_runc() -> None:
    libc.unshare(libc.CLONE_NEWNS)
    libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
    for path in MASKED_PATHS:
        if not os.path.exists(path):
            continue
        if os.path.isdir(path):
            libc.mount("tmpfs", path, "tmpfs", libc.MS_RDONLY, "size=0")
        else:
            libc.mount("/dev/null", path, None, libc.MS_BIND)
    for path in READONLY_PATHS:
        if not os.path.exists(path):
            continue
        libc.mount(path, path, None, libc.MS_BIND | libc.MS_REC)
        # Every submount too (cgroup v1 has one per controller).
        with open("/proc/self/mountinfo") as f:
            targets = [line.split()[4] for line in f]
        for target in targets:
            if target == path or target.startswith(path + "/"):
                with contextlib.suppress(OSError):
                    libc.mount(None, target, None, libc.MS_REMOUNT | libc.MS_BIND | libc.MS_RDONLY)


def _limit_capabilities(keep: frozenset[int]) -> None:
    for cap in range(64):
        if cap in keep:
            continue
        try:
            libc.prctl(libc.PR_CAPBSET_DROP, cap)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # past the kernel's last capability
                break
            raise
    with contextlib.suppress(OSError):
        libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)


def _runtime_default_seccomp(no_landlock: bool) -> None:
    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in (
        "unshare",
        "setns",
        "mount",
        "umount2",
        "pivot_root",
        "open_tree",
        "move_mount",
        "fsopen",
        "fsmount",
        "mount_setattr",
    ):
        flt.add_rule(sc.ERRNO(errno.EPERM), name)
    for flag in NAMESPACE_FLAGS:
        flt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    if no_landlock:
        for name in ("landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"):
            flt.add_rule(sc.ERRNO(errno.ENOSYS), name)
    flt.load()


POD_USER = "nobody"
# A uid/gid that owns nothing and is in no group: only the others' bits apply.
ANY_OTHER_USER = -1


def _traversable(path: str, uid: int, gid: int) -> bool:
    """Whether ``uid``/``gid`` (no supplementary groups) may search ``path``.

    The kernel's order, not just the ``o+x`` bit: the owner's bits apply to the
    owner, the group's bits to a member, the others' bits to everyone else. A
    directory left at 0701 root:root by an earlier ``chmod o+x`` is closed to a
    gid-0 pod user (no-passwd runs as gid 0), although others may pass.
    """
    st = os.stat(path)
    if st.st_uid == uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid == gid:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def _open_the_way(targets: list[str], uid: int, gid: int) -> None:
    """Cover each directory ``uid``/``gid`` cannot traverse on the way to ``targets``.

    Runs in a private mount namespace, with CAP_SYS_ADMIN. Shallowest first: a
    deeper directory is handled inside the view its parent's tmpfs was given.
    """
    blocked: dict[str, set[str]] = {}
    for target in targets:
        parts = os.path.abspath(target).strip("/").split("/")
        for depth in range(len(parts)):
            directory = "/" + "/".join(parts[:depth])
            if not _traversable(directory, uid, gid):
                blocked.setdefault(directory, set()).add(parts[depth])
    for directory in sorted(blocked, key=lambda d: d.count("/") if d != "/" else 0):
        trees = {
            name: libc.open_tree(
                os.path.join(directory, name),
                libc.OPEN_TREE_CLONE | libc.OPEN_TREE_CLOEXEC | libc.AT_RECURSIVE,
            )
            for name in sorted(blocked[directory])
            if os.path.lexists(os.path.join(directory, name))
        }
        libc.mount("tmpfs", directory, "tmpfs", 0, "size=64k,mode=0711")
        for name, fd in trees.items():
            entry = os.path.join(directory, name)
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.mkdir(entry)
            else:
                open(entry, "w").close()
            libc.move_mount(fd, entry)
            os.close(fd)


def _open_the_way_for(command: list[str], uid: int, gid: int) -> None:
    """The command, the interpreter (also behind a script's shebang), cwd and this checkout."""
    executable = command[0]
    _open_the_way(
        [
            executable,
            os.path.realpath(executable),
            os.path.realpath(sys.executable),
            os.getcwd(),
            os.path.dirname(os.path.dirname(os.path.abspath(libc.__file__))),
        ],
        uid,
        gid,
    )


def _run_as(uid: int, gid: int, command: list[str]) -> list[str]:
    """Switch to an unprivileged uid; the kernel's connection file goes along as a copy."""
    command = list(command)
    _open_the_way_for(command, uid, gid)
    if "-f" in command:
        index = command.index("-f") + 1
        fd, copy = tempfile.mkstemp(prefix="pod-connection-", suffix=".json")
        with os.fdopen(fd, "wb") as dst, open(command[index], "rb") as src:
            shutil.copyfileobj(src, dst)
        os.chown(copy, uid, gid)
        command[index] = copy
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    return command


def _run_as_pod_user(command: list[str]) -> list[str]:
    user = pwd.getpwnam(POD_USER)
    return _run_as(user.pw_uid, user.pw_gid, command)


def install(profile: str, command: list[str]) -> list[str]:
    if profile not in PROFILES:
        raise SystemExit(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
    if profile == "reachable":
        if libc.capget_effective() >> CAP_SYS_ADMIN & 1:
            libc.unshare(libc.CLONE_NEWNS)
            libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
            # Users not known here (a hub's): neither owner nor group, the others' bits.
            _open_the_way_for(command, ANY_OTHER_USER, ANY_OTHER_USER)
        return command
    if profile == "no-passwd":
        if os.geteuid() != 0:
            raise SystemExit("restricted_host: the no-passwd profile needs root to switch uid")
        libc.unshare(libc.CLONE_NEWNS)
        libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
        os.environ["HOME"] = "/"
        for name in ("USER", "LOGNAME", "USERNAME", "LNAME"):
            os.environ.pop(name, None)
        return _run_as(NO_PASSWD_UID, 0, command)
    if libc.capget_effective() >> CAP_SYS_ADMIN & 1:
        _mask_like_runc()
        if profile.startswith("k8s-"):
            # setuid drops every capability of a process that is not root any more.
            command = _run_as_pod_user(command)
        else:
            _limit_capabilities(DOCKER_CAPS)
    else:
        print(
            f"restricted_host: no CAP_SYS_ADMIN, so /proc is not masked ({profile})",
            file=sys.stderr,
        )
    if profile.startswith("k8s-"):
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
    if profile != "k8s-unconfined":
        _runtime_default_seccomp(no_landlock=profile == "no-landlock")
    return command


def main() -> None:
    profile, sep, *command = sys.argv[1:]
    if sep != "--" or not command:
        raise SystemExit(__doc__)
    command = install(profile, command)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
