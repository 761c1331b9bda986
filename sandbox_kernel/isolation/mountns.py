"""Mount namespace: an allow-listed, read-only view of the host, the workspace writable.

Nothing is visible unless listed here: the system's ``/usr``, a few files from
``/etc``, the Python environment at its own paths, the workspace, and private
tmpfs mounts for ``/tmp`` (which holds HOME) and ``/dev/shm``. The user's home,
``/run``, ``/var``, the Jupyter runtime directory (connection files), other
users' files and config directories (~/.jupyter, ~/.ipython) are simply absent.

Sources are captured as detached mount trees with ``open_tree(OPEN_TREE_CLONE)``
before the sandbox is assembled: a root launcher does it before it leaves the
host's user namespace (so 0700 directories on the way, such as /root, are no
obstacle), an unprivileged one right after entering its own. The trees get
their read-only/nosuid/nodev flags (recursively, with ``mount_setattr``)
while detached, then pid 1 moves them into a fresh tmpfs root and pivots.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import SetupError
from . import libc

__all__ = ["Bind", "MountPlan", "assemble_root", "capture_trees", "plan_mounts"]

# Single files and directories from /etc that programs need; never all of /etc.
ETC_ENTRIES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "passwd",
    "group",
    "nsswitch.conf",
    "localtime",
    "timezone",
    "hosts",
    "host.conf",
    "ssl",
    "ca-certificates",
    "fonts",
    "mime.types",
    "alternatives",
    "os-release",
    "protocols",
    "services",
    "matplotlibrc",
    "inputrc",
    "gai.conf",
)
SYSTEM_DIRS = ("/usr", "/opt/conda", "/sys/devices/system/cpu")
DEVICES = ("null", "zero", "full", "random", "urandom")
MERGED_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
NEW_ROOT = "/tmp"
HOME = "/tmp/home"


@dataclass(frozen=True)
class Bind:
    source: str
    writable: bool = False
    is_file: bool = False
    idmap: bool = False

    @property
    def sort_key(self) -> tuple[int, int]:
        # Parents before children, so a child mount is not hidden by its parent;
        # at equal paths a read-only bind goes last and wins (a workspace that is
        # also a code path stays read-only: the kernel imports from it).
        return (self.source.rstrip("/").count("/"), 0 if self.writable else 1)


@dataclass
class MountPlan:
    binds: list[Bind]
    symlinks: dict[str, str]
    workspace: str
    workspace_writable: bool
    tmp_size_mb: int
    notes: list[str] = field(default_factory=list)

    def read_only_sources(self) -> list[str]:
        return [b.source for b in self.binds if not b.writable]


def _code_paths() -> list[str]:
    """Where this interpreter loads code from: prefixes, the interpreter, sys.path."""
    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
    }
    paths.update(p for p in sys.path if p and os.path.isabs(p))
    return sorted(p for p in paths if os.path.exists(p))


def _command_dirs() -> list[str]:
    """Directories on PATH, so ``!tool`` finds what it finds outside the sandbox.

    Never a home directory or one of its ancestors (that would expose the whole
    home). pyenv's shims are scripts that run ``pyenv exec``, which needs the
    pyenv root, so that comes along (read-only, like everything here).
    """
    home = os.path.realpath(os.path.expanduser("~"))
    dirs: list[str] = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry.startswith("/") or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if real == "/" or real == home or home.startswith(real.rstrip("/") + "/"):
            continue
        dirs.append(real)
        root = os.path.dirname(real)
        if os.path.basename(real) == "shims" and all(
            os.path.isdir(os.path.join(root, d)) for d in ("libexec", "versions")
        ):
            dirs.append(root)
    return dirs


def _covered(path: str, dirs: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def plan_mounts(
    workspace: str, workspace_writable: bool, extra_mounts: list[tuple[str, str]], tmp_size_mb: int, idmap: bool
) -> MountPlan:
    """Decide the sandbox's filesystem view (in the launcher, from the host's layout)."""
    binds: list[Bind] = []
    symlinks: dict[str, str] = {}
    notes: list[str] = []
    for name in MERGED_USR_LINKS:
        path = f"/{name}"
        if os.path.islink(path):
            symlinks[path] = os.readlink(path)
        elif os.path.isdir(path):
            binds.append(Bind(path))
    system = [d for d in SYSTEM_DIRS if os.path.isdir(d)]
    binds.extend(Bind(d) for d in system)
    for entry in ETC_ENTRIES:
        path = f"/etc/{entry}"
        if os.path.exists(path):
            binds.append(Bind(path, is_file=not os.path.isdir(path)))
    covered = [*system, *(b.source for b in binds)]
    code = [p for p in dict.fromkeys([*_code_paths(), *_command_dirs()]) if not _covered(p, covered)]
    # Keep the outermost code paths only; their children come along.
    code_roots = [p for p in code if not _covered(p, [q for q in code if q != p])]
    binds.extend(Bind(p, is_file=os.path.isfile(p)) for p in code_roots)
    if workspace in (*code_roots, *system, "/") and workspace_writable:
        # The kernel imports from here: a cell must not be able to change it.
        notes.append("the workspace is where the kernel's own Python code lives, so it is read-only")
        workspace_writable = False
    binds.append(Bind(workspace, writable=workspace_writable, idmap=idmap and workspace_writable))
    for path, mode in extra_mounts:
        if os.path.exists(path):
            writable = mode == "rw"
            binds.append(Bind(path, writable=writable, is_file=os.path.isfile(path), idmap=idmap and writable))
        else:
            notes.append(f"extra mount {path} does not exist; skipped")
    binds.sort(key=lambda b: b.sort_key)
    return MountPlan(binds, symlinks, workspace, workspace_writable, tmp_size_mb, notes)


def capture_trees(plan: MountPlan) -> dict[Bind, int]:
    """Clone each source as a detached mount tree and set its flags."""
    trees: dict[Bind, int] = {}
    flags = libc.OPEN_TREE_CLONE | libc.OPEN_TREE_CLOEXEC | libc.AT_RECURSIVE
    for bind in plan.binds:
        try:
            fd = libc.open_tree(bind.source, flags)
        except OSError as exc:
            if bind.writable or bind.source == plan.workspace:
                raise SetupError("mountns", f"cannot capture the workspace {bind.source}", exc.errno) from None
            plan.notes.append(f"{bind.source} not visible ({errno.errorcode.get(exc.errno or 0, exc.errno)})")
            continue
        attrs = libc.MOUNT_ATTR_NOSUID | libc.MOUNT_ATTR_NODEV
        if not bind.writable:
            attrs |= libc.MOUNT_ATTR_RDONLY
        try:
            libc.mount_setattr(fd, attrs)
        except OSError as exc:
            os.close(fd)
            raise SetupError("mountns", f"cannot make {bind.source} read-only", exc.errno) from None
        trees[bind] = fd
    for device in DEVICES:
        with contextlib.suppress(OSError):
            fd = libc.open_tree(f"/dev/{device}", libc.OPEN_TREE_CLONE | libc.OPEN_TREE_CLOEXEC)
            libc.mount_setattr(fd, libc.MOUNT_ATTR_NOSUID | libc.MOUNT_ATTR_NOEXEC, recursive=False)
            trees[Bind(f"/dev/{device}", writable=True, is_file=True)] = fd
    return trees


def _mkdirs(path: str) -> None:
    with contextlib.suppress(FileExistsError):
        os.makedirs(path, mode=0o755, exist_ok=True)


def _make_target(path: str, is_file: bool) -> None:
    _mkdirs(os.path.dirname(path) if is_file else path)
    if is_file and not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def _tmpfs(target: str, size_mb: int, mode: str, flags: int) -> None:
    libc.mount("tmpfs", target, "tmpfs", flags, f"size={size_mb}m,mode={mode}")


def assemble_root(plan: MountPlan, trees: dict[Bind, int], mount_proc: Callable[[str], str | None]) -> list[str]:
    """Build the new root and pivot into it (pid 1, after unshare). Returns notes.

    ``mount_proc`` is called with the new root's /proc before the pivot: the
    kernel only allows a fresh procfs while the host's is still visible in our
    mount namespace (fs/namespace.c, mount_too_revealing).
    """
    notes = list(plan.notes)
    root = NEW_ROOT
    try:
        # Our changes must not propagate back to the host (mount_namespaces(7)).
        libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
        # The sources are already held as detached trees, so the staging tmpfs
        # may cover the host's /tmp without hiding anything we still need.
        _tmpfs(root, 16, "0755", libc.MS_NOSUID | libc.MS_NODEV)
        for link, target in plan.symlinks.items():
            os.symlink(target, root + link)
        # /tmp before the binds: a workspace that lives under /tmp on the host
        # is then mounted inside it instead of being hidden by it.
        _mkdirs(root + "/tmp")
        _tmpfs(root + "/tmp", plan.tmp_size_mb, "1777", libc.MS_NOSUID | libc.MS_NODEV)
        os.makedirs(root + HOME, mode=0o700)
        _assemble_dev(root, trees)
        _mkdirs(root + "/proc")
    except OSError as exc:
        raise SetupError("mountns", "cannot create the sandbox root", exc.errno) from None
    for bind, fd in sorted(trees.items(), key=lambda item: item[0].sort_key):
        if bind.source.startswith("/dev/"):
            continue
        target = root + bind.source
        try:
            _make_target(target, bind.is_file)
            libc.move_mount(fd, target)
        except OSError as exc:
            if bind.source == plan.workspace:
                raise SetupError("mountns", f"cannot mount the workspace at {bind.source}", exc.errno) from None
            notes.append(f"{bind.source} not mounted ({os.strerror(exc.errno or 0)})")
        finally:
            os.close(fd)
    proc_note = mount_proc(root + "/proc")
    if proc_note:
        notes.append(proc_note)
    try:
        os.chdir(root)
        # pivot_root(".", ".") stacks the old root on top of the new one; the
        # detach below then drops it (pivot_root(2), "NOTES").
        libc.pivot_root(".", ".")
        libc.umount2(".", libc.MNT_DETACH)
        os.chdir("/")
    except OSError as exc:
        raise SetupError("mountns", "cannot pivot into the sandbox root", exc.errno) from None
    return notes


def _assemble_dev(root: str, trees: dict[Bind, int]) -> None:
    dev = root + "/dev"
    _mkdirs(dev)
    _tmpfs(dev, 1, "0755", libc.MS_NOSUID | libc.MS_NOEXEC)
    for bind, fd in list(trees.items()):
        if bind.source.startswith("/dev/"):
            target = root + bind.source
            _make_target(target, True)
            libc.move_mount(fd, target)
            os.close(fd)
            del trees[bind]
    # A devpts instance of our own: IPython's ``!cmd`` runs commands on a pty
    # (as in ipykernel), and the host's terminals must not be reachable.
    os.makedirs(dev + "/pts")
    try:
        libc.mount("devpts", dev + "/pts", "devpts", libc.MS_NOSUID | libc.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
        os.symlink("pts/ptmx", dev + "/ptmx")
    except OSError:
        pass  # the executor falls back to pipes for ``!cmd``
    os.makedirs(dev + "/shm")
    # multiprocessing's semaphores live here; private and small.
    _tmpfs(dev + "/shm", 64, "1777", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")


def finish_read_only() -> None:
    """Make the tmpfs root itself read-only; only /tmp, /dev/shm and binds marked rw stay writable."""
    try:
        libc.mount(None, "/", None, libc.MS_REMOUNT | libc.MS_BIND | libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV)
    except OSError as exc:
        raise SetupError("mountns", "cannot make the sandbox root read-only", exc.errno) from None
