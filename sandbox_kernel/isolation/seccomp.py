"""seccomp: a default-deny system-call allow-list, with reports of what it blocked.

Built with pyseccomp (libseccomp). The shape follows what was measured on
these machines (research/feasibility.md, Q3):

* unknown or new system calls answer ENOSYS, so libc falls back gracefully;
  a deny-list built with an older libseccomp would silently allow syscalls it
  cannot name (``open_tree_attr``);
* the calls a sandbox must never make (namespaces, mounts, ptrace, bpf,
  io_uring, keyrings, kernel modules ...) are sent to the supervisor with
  SECCOMP_RET_USER_NOTIF, which answers EPERM and tells the kernel, so the
  user sees which call was blocked instead of a bare PermissionError;
* ``clone3`` answers ENOSYS (glibc then uses ``clone``, whose flags a filter
  can inspect; EPERM would make ``threading`` fail);
* foreign architectures kill the process (``int 0x80`` bypass), and the
  filter is synchronised to every thread.
"""

from __future__ import annotations

import errno
import socket
import stat
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import SetupError
from . import libc

if TYPE_CHECKING:
    from .report import Report
    from .spec import SandboxSpec

__all__ = ["ALLOWED", "NOTIFIED", "Plan", "apply", "build", "describe_call", "load", "prepare"]

ALLOWED = frozenset(
    """
    accept accept4 access alarm arch_prctl bind brk cachestat capget chdir chown
    clock_getres clock_gettime clock_nanosleep close close_range connect copy_file_range
    dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait
    eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fallocate
    fchdir fchown fchownat fcntl fdatasync fgetxattr flistxattr flock
    fork fremovexattr fsetxattr fstat fstatfs fsync ftruncate futex futex_requeue futex_wait
    futex_waitv futex_wake futimesat get_mempolicy get_robust_list getcpu getcwd getdents
    getdents64 getegid geteuid getgid getgroups getitimer getpeername getpgid getpgrp getpid
    getppid getpriority getrandom getresgid getresuid getrlimit getrusage getsid getsockname
    getsockopt gettid gettimeofday getuid getxattr inotify_add_watch inotify_init
    inotify_init1 inotify_rm_watch ioctl kill landlock_add_rule landlock_create_ruleset
    landlock_restrict_self lchown lgetxattr link linkat listen listxattr llistxattr
    lremovexattr lseek lsetxattr lstat madvise map_shadow_stack mbind membarrier memfd_create
    mincore mkdir mkdirat mlock mlock2 mmap mprotect mq_getsetattr mq_notify
    mq_open mq_timedreceive mq_timedsend mq_unlink mremap msgctl msgget msgrcv msgsnd msync
    munlock munmap nanosleep newfstatat   openat2 pause pidfd_open
    pidfd_send_signal pipe pipe2 poll ppoll prctl pread64 preadv preadv2 prlimit64 pselect6
    pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recvfrom recvmmsg
    recvmsg removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
    rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
    rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min sched_getaffinity
    sched_getattr sched_getparam sched_getscheduler sched_setaffinity sched_yield seccomp
    select semctl semget semop semtimedop sendfile sendmmsg sendmsg sendto set_mempolicy
    set_robust_list set_tid_address setitimer setpgid setpriority setrlimit setsid
    setsockopt setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
    socketpair splice stat statfs statx sync sync_file_range syncfs sysinfo
    tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_settime
    timerfd_create timerfd_gettime timerfd_settime times tkill truncate umask uname unlink
    unlinkat utime utimensat utimes vfork wait4 waitid write writev
    """.split()
)

# Calls that have no business in a sandbox: each attempt is reported, then EPERM.
NOTIFIED = frozenset(
    """
    ptrace process_vm_readv process_vm_writev pidfd_getfd kcmp unshare setns mount umount2
    pivot_root chroot fsopen fsconfig fsmount fspick open_tree move_mount mount_setattr
    open_by_handle_at name_to_handle_at bpf perf_event_open userfaultfd io_uring_setup
    io_uring_enter io_uring_register keyctl add_key request_key kexec_load kexec_file_load
    init_module finit_module delete_module fanotify_init quotactl quotactl_fd acct swapon
    swapoff reboot syslog vhangup iopl ioperm uselib ustat sysfs settimeofday clock_settime
    clock_adjtime adjtimex sethostname setdomainname move_pages migrate_pages process_madvise
    setuid setgid setreuid setregid setresuid setresgid setgroups setfsuid setfsgid capset
    personality lookup_dcookie nfsservctl symlink symlinkat
    """.split()
)
# Allowed only without setuid/setgid bits in the mode (argument index of the mode):
# a setuid file left in the workspace runs with the user's rights for whoever
# starts it outside. The rest of the mode is the cell's business.
MODE_CALLS = {
    "chmod": 1,
    "fchmod": 1,
    "fchmodat": 2,
    "fchmodat2": 2,
    "open": 2,
    "openat": 3,
    "creat": 1,
}
SET_ID_BITS = stat.S_ISUID | stat.S_ISGID
# mknod makes regular files only: a FIFO, socket or device node left in the
# workspace blocks or misleads whatever opens it outside the sandbox.
MKNOD_CALLS = {"mknod": 1, "mknodat": 2}
FILE_TYPE_MASK = 0o170000  # S_IFMT (in Python, stat.S_IFMT is a function)
SPECIAL_FILE_TYPES = (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK)
# Newer than libseccomp 2.5.4, so given by number (x86_64 and the unified table).
NOTIFIED_NUMBERS = {460: "lsm_set_self_attr", 467: "open_tree_attr", 462: "mseal"}
NAMESPACE_CLONE_FLAGS = (
    libc.CLONE_NEWNS
    | libc.CLONE_NEWCGROUP
    | libc.CLONE_NEWUTS
    | libc.CLONE_NEWIPC
    | libc.CLONE_NEWUSER
    | libc.CLONE_NEWPID
    | libc.CLONE_NEWNET
    | libc.CLONE_NEWTIME
)
PERSONALITY_QUERY = 0xFFFFFFFF


def build(*, socket_families: tuple[int, ...], notify: bool = True) -> Any:
    """Build (not load) the filter. ``socket_families`` may be created with socket(2)."""
    import pyseccomp as sc

    report = sc.NOTIFY if notify else sc.ERRNO(errno.EPERM)
    try:
        flt = sc.SyscallFilter(defaction=sc.ERRNO(errno.ENOSYS))
        flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
        flt.set_attr(sc.Attr.CTL_TSYNC, 1)
        for name in sorted(ALLOWED):
            _add(flt, sc.ALLOW, name)
        for name in sorted(NOTIFIED):
            _add(flt, report, name)
        for number in NOTIFIED_NUMBERS:
            flt.add_rule(report, number)
        # Threads and fork, but no new namespaces through clone's flags.
        flt.add_rule(sc.ALLOW, "clone", sc.Arg(0, sc.MASKED_EQ, NAMESPACE_CLONE_FLAGS, 0))
        flt.add_rule(
            report, "clone", sc.Arg(0, sc.MASKED_EQ, NAMESPACE_CLONE_FLAGS, libc.CLONE_NEWUSER)
        )
        # clone3 is left to the default, ENOSYS: its flags live in memory a
        # filter cannot read, and ENOSYS (unlike EPERM) makes glibc use clone.
        for family in socket_families:
            flt.add_rule(sc.ALLOW, "socket", sc.Arg(0, sc.EQ, family))
        for family in _REPORTED_FAMILIES:
            if family not in socket_families:
                flt.add_rule(report, "socket", sc.Arg(0, sc.EQ, family))
        for name, index in MODE_CALLS.items():
            _add_arg_rule(flt, sc.ALLOW, name, sc.Arg(index, sc.MASKED_EQ, SET_ID_BITS, 0))
            for bits in (stat.S_ISUID, stat.S_ISGID, SET_ID_BITS):
                _add_arg_rule(flt, report, name, sc.Arg(index, sc.MASKED_EQ, SET_ID_BITS, bits))
        for name, index in MKNOD_CALLS.items():
            for kind in (0, stat.S_IFREG):
                _add_arg_rule(
                    flt, sc.ALLOW, name, sc.Arg(index, sc.MASKED_EQ, FILE_TYPE_MASK, kind)
                )
            for kind in SPECIAL_FILE_TYPES:
                _add_arg_rule(flt, report, name, sc.Arg(index, sc.MASKED_EQ, FILE_TYPE_MASK, kind))
        # uname-style queries only; ADDR_NO_RANDOMIZE and friends stay off.
        flt.add_rule(sc.ALLOW, "personality", sc.Arg(0, sc.EQ, PERSONALITY_QUERY))
    except OSError as exc:
        raise SetupError("seccomp", "cannot build the system-call filter", exc.errno) from None
    return flt


def _add(flt: Any, action: int, name: str) -> None:
    try:
        flt.add_rule(action, name)
    except OSError as exc:
        # A name this libseccomp does not know, or that this architecture lacks
        # (open on aarch64): denying is the default anyway.
        if exc.errno not in (errno.EINVAL, errno.EDOM, errno.EFAULT):
            raise


def _add_arg_rule(flt: Any, action: int, name: str, arg: Any) -> None:
    try:
        flt.add_rule(action, name, arg)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EDOM, errno.EFAULT):
            raise


_REPORTED_FAMILIES = (
    socket.AF_UNIX,
    socket.AF_INET,
    socket.AF_INET6,
    socket.AF_NETLINK,
    socket.AF_PACKET,
    getattr(socket, "AF_VSOCK", 40),
    getattr(socket, "AF_BLUETOOTH", 31),
    getattr(socket, "AF_ALG", 38),
    getattr(socket, "AF_KEY", 15),
    getattr(socket, "AF_CAN", 29),
)


# -- the mechanism: prepare (launcher: build the filter), apply (executor, last) -----------


class Plan(NamedTuple):
    filter: Any  # a pyseccomp SyscallFilter, built but not loaded


def socket_families(spec: SandboxSpec, level: str) -> tuple[int, ...]:
    """The socket families cells may create with socket(2)."""
    if spec.isolation.allow_network or level == "namespaces":
        # With allow_network: the host's network. Otherwise, inside our own network
        # namespace, these reach only our own loopback.
        return (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK)
    # Sharing the host's network: no sockets at all. Landlock does not
    # cover UDP or pathname unix sockets (an ssh-agent socket would be
    # reachable); socketpair(2) stays available.
    return ()


def prepare(spec: SandboxSpec, level: str, report: Report) -> Plan | None:
    """Build the filter in the launcher (libseccomp needs calls the filter forbids)."""
    wanted = spec.isolation.seccomp
    if wanted == "disabled":
        report.layer("seccomp", False, "disabled by configuration")
        return None
    families = socket_families(spec, level)
    try:
        flt = build(socket_families=families)
    except (SetupError, ImportError, OSError) as exc:
        if wanted == "required":
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
        f"default-deny allow-list ({len(ALLOWED)} calls), {len(NOTIFIED)} reported; {allowed}",
    )
    return Plan(flt)


def apply(plan: Plan) -> int | None:
    """In the executor, last; returns the notification fd for the supervisor, if any."""
    return load(plan.filter)


def load(flt: Any) -> int | None:
    """Load the filter on this process (all threads); return the notification fd if any."""
    import pyseccomp as sc

    try:
        flt.load()
    except OSError as exc:
        raise SetupError("seccomp", "cannot load the system-call filter", exc.errno) from None
    # pyseccomp has no public getter for the listener; libseccomp's own call is
    # reached through its private handle to the library.
    fd = int(sc._libseccomp.seccomp_notify_fd(flt._filter))
    return fd if fd >= 0 else None


_FAMILY_NAMES = {
    int(v): k for k, v in vars(socket).items() if k.startswith("AF_") and isinstance(v, int)
}
_SOCKET_TYPES = {
    1: "SOCK_STREAM",
    2: "SOCK_DGRAM",
    3: "SOCK_RAW",
    4: "SOCK_RDM",
    5: "SOCK_SEQPACKET",
    10: "SOCK_PACKET",
}
_CLONE_FLAG_NAMES = {
    libc.CLONE_NEWNS: "CLONE_NEWNS",
    libc.CLONE_NEWCGROUP: "CLONE_NEWCGROUP",
    libc.CLONE_NEWUTS: "CLONE_NEWUTS",
    libc.CLONE_NEWIPC: "CLONE_NEWIPC",
    libc.CLONE_NEWUSER: "CLONE_NEWUSER",
    libc.CLONE_NEWPID: "CLONE_NEWPID",
    libc.CLONE_NEWNET: "CLONE_NEWNET",
}
_WHY = {
    "socket": "network and socket access is not available in this sandbox",
    "ptrace": "debugging other processes is not allowed",
    "unshare": "creating namespaces is not allowed",
    "clone": "creating namespaces is not allowed",
    "setns": "joining namespaces is not allowed",
    "mount": "mounting filesystems is not allowed",
    "bpf": "loading BPF programs is not allowed",
    "io_uring_setup": "io_uring is not available in this sandbox",
    "keyctl": "kernel keyrings are not available in this sandbox",
    "personality": "changing the execution domain is not allowed",
    "symlink": (
        "symbolic links cannot be made in the sandbox (no setting allows it): programs "
        "outside it, such as the Jupyter server, a grader or your shell, would follow a "
        "link left in the workspace; copy the file instead"
    ),
    "mknod": (
        "FIFOs, sockets and device nodes cannot be made in the sandbox (no setting allows "
        "it): programs outside it would block on or open them; use a pipe or a regular file"
    ),
    "setid": (
        "setuid and setgid bits cannot be set in the sandbox (no setting allows it): a "
        "program outside it would run such a file with your rights"
    ),
}
_FILE_TYPE_NAMES = {
    stat.S_IFIFO: "S_IFIFO",
    stat.S_IFCHR: "S_IFCHR",
    stat.S_IFBLK: "S_IFBLK",
    stat.S_IFSOCK: "S_IFSOCK",
}


def syscall_name(number: int) -> str:
    if number in NOTIFIED_NUMBERS:
        return NOTIFIED_NUMBERS[number]
    try:
        import pyseccomp as sc

        name = sc.resolve_syscall(sc.Arch.NATIVE, number)
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:
        return f"syscall {number}"


def describe_call(number: int, args: list[int]) -> tuple[str, str]:
    """Name a blocked call with its telling arguments, and say why it is blocked."""
    name = syscall_name(number)
    if name == "socket":
        family = _FAMILY_NAMES.get(args[0], str(args[0]))
        kind = _SOCKET_TYPES.get(args[1] & 0xF, str(args[1] & 0xF))
        call = f"socket({family}, {kind})"
    elif name in {"clone", "unshare"}:
        flags = [n for bit, n in _CLONE_FLAG_NAMES.items() if args[0] & bit]
        call = f"{name}({'|'.join(flags) or hex(args[0])})"
    elif name == "personality":
        call = f"personality({hex(args[0])})"
    elif name in MKNOD_CALLS:
        file_type = args[MKNOD_CALLS[name]] & FILE_TYPE_MASK
        call = f"{name}({_FILE_TYPE_NAMES.get(file_type, oct(file_type))})"
        return call, _WHY["mknod"]
    elif name in MODE_CALLS:
        return f"{name}(mode={oct(args[MODE_CALLS[name]] & 0o7777)})", _WHY["setid"]
    else:
        call = f"{name}()"
    if name in {"symlink", "symlinkat"}:
        return call, _WHY["symlink"]
    why = (
        _WHY.get(name)
        or _WHY.get(name.split("_")[0])
        or "this system call is not allowed in the sandbox"
    )
    return call, why
