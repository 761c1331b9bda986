"""Mount namespace: an allow-listed, read-only view of the host, the workspace writable.

Nothing is visible unless listed here: the system's ``/usr``, a few files from
``/etc``, the Python environment at its own paths, directories on PATH, the
workspace, and private tmpfs mounts for ``/tmp``, HOME and ``/dev/shm``. HOME
keeps its real path (so ``~`` reads as outside) but is an empty tmpfs: the
user's files, ``/run``, ``/var``, the Jupyter runtime directory (connection
files), other users' files are simply absent. Where the workspace itself
contains sensitive directories (a notebook server started in ``~``), those are
covered by empty read-only mounts: ~/.ssh, ~/.jupyter, ~/.ipython, ~/.local ...

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
from typing import TYPE_CHECKING

from ..errors import SetupError
from ..paths import DEVICES, PACKAGE_DIR, interpreter_prefixes
from . import libc

if TYPE_CHECKING:
    from .report import Report
    from .spec import SandboxSpec

__all__ = [
    "Mount",
    "MountPlan",
    "apply",
    "assemble_root",
    "capture_trees",
    "inside",
    "plan_mounts",
    "prepare",
    "visible_command_path",
]

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
    # Read by pip (distro, for its user agent), which fails on an unreadable one.
    "debian_version",
    "lsb-release",
    "protocols",
    "services",
    "matplotlibrc",
    "inputrc",
    "gai.conf",
)
SYSTEM_DIRS = ("/usr", "/opt/conda", "/sys/devices/system/cpu")
MERGED_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
NEW_ROOT = "/tmp"
# Where the sandbox's private temporary directory goes, the first the workspace does not cover.
TMP_CANDIDATES = ("/tmp", "/var/tmp")
# Mount kinds, in the order they are applied at equal depth: a tmpfs first
# (things are mounted into it), then writable binds, then read-only binds (at
# the same path read-only wins: a workspace that is also a code path), then
# masks over sensitive paths.
KIND_ORDER = {"tmpfs": 0, "bind-rw": 1, "bind-ro": 2, "mask": 3}


@dataclass(frozen=True)
class Mount:
    path: str
    kind: str  # "bind", "tmpfs" or "mask"
    writable: bool = False
    is_file: bool = False
    idmap: bool = False
    size_mb: int = 0

    @property
    def sort_key(self) -> tuple[int, int]:
        kind = f"bind-{'rw' if self.writable else 'ro'}" if self.kind == "bind" else self.kind
        # Parents before children, so a child mount is not hidden by its parent.
        return (self.path.rstrip("/").count("/"), KIND_ORDER[kind])


@dataclass
class MountPlan:
    mounts: list[Mount]
    symlinks: dict[str, str]
    workspace: str
    workspace_writable: bool
    tmp_size_mb: int
    home: str
    notes: list[str] = field(default_factory=list)
    # The private temporary directory: /tmp, unless the workspace is /tmp itself
    # (a notebook kept in /tmp), where cells' temporary files must not land.
    tmp: str = "/tmp"
    # Files the launcher writes into the sandbox's root instead of binding the
    # host's (accounts.py: /etc/passwd and /etc/group), by path.
    files: dict[str, str] = field(default_factory=dict)

    def synthesize(self, files: dict[str, str]) -> None:
        """Show ``files`` with the given contents inside, in place of any bind of them."""
        self.files.update(files)
        self.mounts = [m for m in self.mounts if m.path not in files]

    def read_only_sources(self) -> list[str]:
        return [m.path for m in self.mounts if m.kind == "bind" and not m.writable]

    def masked(self) -> list[str]:
        return [m.path for m in self.mounts if m.kind == "mask"]


def inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def entries_around(path: str, hidden: list[str]) -> tuple[list[str], list[str]]:
    """Split ``path`` into grantable entries that leave every ``hidden`` path out.

    Returns the entries that may be granted whole, and the directories on the
    way that may only be listed. Neither bind mounts nor Landlock rules can
    grant a directory "except" something inside it, so a directory holding a
    hidden path is replaced by its other entries, recursively. Hidden paths
    need not exist: a missing ~/.bashrc must not be creatable either, which is
    why the listed directories themselves get no right to create entries.
    """
    if not any(inside(h, path) for h in hidden):
        return [path], []
    if path in hidden or os.path.islink(path) or not os.path.isdir(path):
        return [], []
    grants: list[str] = []
    listed = [path]
    with contextlib.suppress(OSError), os.scandir(path) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            more, dirs = entries_around(entry.path, hidden)
            grants += more
            listed += dirs
    return grants, listed


def _prefixes() -> set[str]:
    """The interpreter's prefixes and the directory of the interpreter itself."""
    return {*interpreter_prefixes(), os.path.dirname(os.path.realpath(sys.executable))}


def _code_paths() -> list[str]:
    """Where this interpreter loads code from: prefixes, the interpreter, sys.path."""
    paths = _prefixes()
    paths.update(p for p in sys.path if p and os.path.isabs(p))
    return sorted(p for p in paths if os.path.exists(p))


def _code_trees() -> list[str]:
    """Trees in which any file may be code the kernel runs: never writable from a cell.

    The prefixes hold the standard library and site-packages (with their .pth
    files); this package's own directory matters for an editable install, where
    it sits in a project checkout that may also hold notebooks.
    """
    trees = {*_prefixes(), PACKAGE_DIR}
    return sorted({os.path.realpath(t) for t in trees} | trees)


def _command_dirs(home: str, protected: list[str]) -> list[str]:
    """Directories on PATH, so ``!tool`` finds what it finds outside the sandbox.

    Never a home directory or one of its ancestors (that would expose the whole
    home), and never a directory under a protected path: Ubuntu's ``.profile``
    puts ``~/.local/bin`` on PATH, and its scripts may hold tokens although
    ``~/.local`` is protected. pyenv's shims are scripts that run ``pyenv
    exec``, which needs the pyenv root, so that comes along (read-only, like
    everything here), unless it too is protected.
    """
    dirs: list[str] = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry.startswith("/") or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if real in ("/", home) or home.startswith(real.rstrip("/") + "/"):
            continue
        if _covered(real, protected) or _covered(entry, protected):
            continue
        dirs.append(real)
        root = os.path.dirname(real)
        if (
            os.path.basename(real) == "shims"
            and all(os.path.isdir(os.path.join(root, d)) for d in ("libexec", "versions"))
            and not _covered(root, protected)
        ):
            dirs.append(root)
    return dirs


def visible_command_path(value: str, plan: MountPlan) -> str:
    """PATH with only the directories the sandbox shows, each as it is seen inside.

    A directory that is not mounted (``~/.local/bin`` under a protected path, a
    relative entry) would only name a host path that is absent inside; one whose
    real path is mounted elsewhere (``_command_dirs`` binds the real path) is
    listed by that path. Masked and hidden entries are dropped.
    """
    shown = [m.path for m in plan.mounts if m.kind == "bind"] + list(plan.symlinks)
    masked = plan.masked()
    kept: list[str] = []
    for entry in value.split(os.pathsep):
        if not entry.startswith("/") or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if _covered(real, masked) or _covered(entry, masked) or not _covered(real, shown):
            continue
        visible = entry if _covered(entry, shown) else real
        if visible not in kept:
            kept.append(visible)
    return os.pathsep.join(kept)


def _covered(path: str, dirs: list[str]) -> bool:
    return any(inside(path, d) for d in dirs)


def plan_mounts(
    workspace: str,
    workspace_writable: bool,
    extra_mounts: list[tuple[str, str]],
    tmp_size_mb: int,
    idmap: bool,
    home: str,
    protected: list[str],
    read_only_inside: tuple[str, ...] | list[str] = (),
) -> MountPlan:
    """Decide the sandbox's filesystem view (in the launcher, from the host's layout).

    ``protected`` are paths a cell must never read or write even when they lie
    inside the workspace (credentials, Jupyter and IPython configuration,
    the runtime directory with connection files, the user site).
    """
    mounts: list[Mount] = []
    symlinks: dict[str, str] = {}
    notes: list[str] = []
    for name in MERGED_USR_LINKS:
        path = f"/{name}"
        if os.path.islink(path):
            symlinks[path] = os.readlink(path)
        elif os.path.isdir(path):
            mounts.append(Mount(path, "bind"))
    system = [d for d in SYSTEM_DIRS if os.path.isdir(d)]
    mounts.extend(Mount(d, "bind") for d in system)
    for entry in ETC_ENTRIES:
        path = f"/etc/{entry}"
        if os.path.exists(path):
            mounts.append(Mount(path, "bind", is_file=not os.path.isdir(path)))
    covered = [m.path for m in mounts]
    code = [
        p
        for p in dict.fromkeys([*_code_paths(), *_command_dirs(home, protected)])
        if not _covered(p, covered)
    ]
    # Keep the outermost code paths only; their children come along.
    code_roots = [p for p in code if not _covered(p, [q for q in code if q != p])]
    mounts.extend(Mount(p, "bind", is_file=os.path.isfile(p)) for p in code_roots)
    code_trees = _code_trees()
    if workspace_writable and (
        workspace in (*code_roots, *system, "/") or _covered(workspace, code_trees)
    ):
        # The kernel imports from here: a cell must not be able to change it.
        notes.append(
            "the workspace is where the kernel's own Python code lives, so it is read-only"
        )
        workspace_writable = False
    if home.startswith("/") and home != "/" and not _covered(home, [*system, "/tmp"]):
        mounts.append(Mount(home, "tmpfs", writable=True, size_mb=tmp_size_mb))
    shared = [(workspace, workspace_writable)]
    for path, mode in extra_mounts:
        if not os.path.exists(path):
            notes.append(f"extra mount {path} does not exist; skipped")
        elif mode == "rw" and _covered(path, [*code_trees, *system]):
            notes.append(f"extra mount {path} holds the kernel's own code, so it is read-only")
            shared.append((path, False))
        else:
            shared.append((path, mode == "rw"))
    for path, rw in shared:
        # The workspace is id-mapped even where it is read-only: its owner's 0700
        # directories (/root, a job's private directory) must stay reachable to the
        # cells, which run as that owner, and to pid 1, which mounts masks inside.
        mapped = idmap and (rw or path == workspace)
        mounts.append(Mount(path, "bind", writable=rw, is_file=os.path.isfile(path), idmap=mapped))
        if not rw or not any(inside(p, path) and p != path for p in protected):
            continue
        # A writable tree that holds protected paths (a server started in ~):
        # the tree itself becomes read-only and its other entries writable, so
        # nothing protected can be written or created, even where it does not
        # exist yet (~/.bashrc, ~/.local/lib/pythonX/site-packages/*.pth).
        mounts[-1] = Mount(path, "bind", is_file=False, idmap=idmap)
        # Code the kernel runs (a pyenv under ~, PATH directories) stays read-only too.
        grants, _ = entries_around(path, [*protected, *code_roots])
        mounts.extend(
            Mount(g, "bind", writable=True, is_file=os.path.isfile(g), idmap=idmap) for g in grants
        )
        notes.append(
            f"{path} holds protected paths (such as {home}/.jupyter): new files can be created "
            "only inside its existing subdirectories"
        )
    if workspace_writable:
        # Control files and shadow modules that exist (hygiene.py): read-only inside,
        # so a trusted program that runs during a cell (jupyterlab-git polling git
        # status) never meets the cell's version. Only real entries of the
        # workspace: a link here would bring its target into the sandbox.
        fixed = [
            p
            for p in read_only_inside
            if inside(p, workspace)
            and p != workspace
            and os.path.realpath(p) == p
            and (os.path.isdir(p) or os.path.isfile(p))
            and not _covered(p, protected)
            # Inside a code root bound read-only already (the project's .venv the
            # kernel runs from: pip, every __pycache__): a bind there would only
            # spend the kernel's budget of them and the start-up's time.
            and not _covered(p, [c for c in code_roots if inside(c, workspace) and c != workspace])
        ]
        mounts.extend(Mount(p, "bind", is_file=os.path.isfile(p), idmap=idmap) for p in fixed)
        if fixed:
            names = ", ".join(os.path.relpath(p, workspace) for p in fixed[:6])
            more = f" and {len(fixed) - 6} more" if len(fixed) > 6 else ""
            notes.append(f"read-only inside the workspace: {names}{more}")
    visible = [p for p, _ in shared]
    tmp = next((t for t in TMP_CANDIDATES if not _covered(t, visible)), "/tmp")
    if tmp != "/tmp":
        mounts.append(Mount(tmp, "tmpfs", writable=True, size_mb=tmp_size_mb))
        notes.append(f"the workspace covers /tmp, so the private temporary directory is {tmp}")
    exposed = [p for p in protected if os.path.lexists(p) and _covered(p, visible)]
    for path in exposed:
        # One mask over ~/.local also hides ~/.local/share/jupyter.
        if not any(inside(path, other) for other in exposed if other != path):
            mounts.append(Mount(path, "mask", is_file=not os.path.isdir(path)))
    masked = [m.path for m in mounts if m.kind == "mask"]
    if masked:
        notes.append("hidden inside the workspace: " + ", ".join(masked))
    # One mount per path: a workspace that is also a code root (a notebook next to
    # its project's .venv, an editable install) would otherwise be planned twice,
    # and the second move of one captured tree fails (ELOOP). The later, more
    # specific entry wins; both are read-only when the path holds code.
    mounts = list({m.path: m for m in mounts}.values())
    mounts.sort(key=lambda m: m.sort_key)
    return MountPlan(
        mounts, symlinks, workspace, workspace_writable, tmp_size_mb, home, notes, tmp=tmp
    )


def _allow_open_trees(count: int) -> None:
    """Raise the soft open-files limit to the hard one when ``count`` trees need it.

    Every captured tree holds a descriptor until the root is assembled, and a
    workspace split into its entries (a notebook in a busy /tmp that holds protected
    paths) can need more than a login's soft limit of 1024. Only the set-up raises
    it: the executor's own limit (``Limits.max_open_files``) is set later.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = count + 64  # the set-up's own descriptors besides the trees
    if soft != resource.RLIM_INFINITY and soft < needed:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def capture_trees(plan: MountPlan) -> dict[Mount, int]:
    """Clone each bind source as a detached mount tree and set its flags."""
    trees: dict[Mount, int] = {}
    flags = libc.OPEN_TREE_CLONE | libc.OPEN_TREE_CLOEXEC | libc.AT_RECURSIVE
    binds = [m for m in plan.mounts if m.kind == "bind"]
    _allow_open_trees(len(binds) + len(DEVICES))
    for bind in binds:
        try:
            fd = libc.open_tree(bind.path, flags)
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                raise SetupError(
                    "mountns",
                    f"cannot capture {bind.path}: {len(binds)} directories to bind at once",
                    exc.errno,
                    fix=(
                        f"the notebook directory {plan.workspace} holds protected paths, so "
                        "each of its entries is bound on its own; start the kernel from a "
                        "directory with fewer entries, or raise the open-files hard limit "
                        "(ulimit -Hn)"
                    ),
                ) from None
            if bind.writable or bind.path == plan.workspace:
                raise SetupError(
                    "mountns",
                    f"cannot capture the notebook directory {bind.path}",
                    exc.errno,
                    fix="start the kernel from a directory its user can read",
                ) from None
            plan.notes.append(
                f"{bind.path} not visible ({errno.errorcode.get(exc.errno or 0, exc.errno)})"
            )
            continue
        attrs = libc.MOUNT_ATTR_NOSUID | libc.MOUNT_ATTR_NODEV
        if not bind.writable:
            attrs |= libc.MOUNT_ATTR_RDONLY
        try:
            libc.mount_setattr(fd, attrs)
        except OSError as exc:
            os.close(fd)
            raise SetupError("mountns", f"cannot make {bind.path} read-only", exc.errno) from None
        trees[bind] = fd
    for device in DEVICES:
        with contextlib.suppress(OSError):
            fd = libc.open_tree(f"/dev/{device}", libc.OPEN_TREE_CLONE | libc.OPEN_TREE_CLOEXEC)
            libc.mount_setattr(fd, libc.MOUNT_ATTR_NOSUID | libc.MOUNT_ATTR_NOEXEC, recursive=False)
            trees[Mount(f"/dev/{device}", "bind", writable=True, is_file=True)] = fd
    return trees


def _mkdirs(path: str) -> None:
    with contextlib.suppress(FileExistsError):
        os.makedirs(path, mode=0o755, exist_ok=True)


def _make_target(path: str, is_file: bool) -> None:
    _mkdirs(os.path.dirname(path) if is_file else path)
    if is_file and not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def _write_file(target: str, text: str) -> None:
    """A file of the sandbox's root tmpfs (read-only once ``finish_read_only`` ran)."""
    _mkdirs(os.path.dirname(target))
    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _tmpfs(target: str, size_mb: int, mode: str, flags: int) -> None:
    libc.mount("tmpfs", target, "tmpfs", flags, f"size={size_mb}m,mode={mode}")


def assemble_root(
    plan: MountPlan, trees: dict[Mount, int], mount_proc: Callable[[str], str | None]
) -> list[str]:
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
        _assemble_dev(root, trees)
        _mkdirs(root + "/proc")
    except OSError as exc:
        raise SetupError("mountns", "cannot create the sandbox root", exc.errno) from None
    for mount in plan.mounts:
        try:
            _apply(root, mount, trees)
        except OSError as exc:
            if mount.kind == "mask":
                notes.append(mask_not_applied(root, mount.path, plan.workspace, exc))
                continue
            if mount.path == plan.workspace:
                raise SetupError(
                    "mountns",
                    f"cannot mount the notebook directory {mount.path}",
                    exc.errno,
                    fix="start the kernel from another directory, or set "
                    "Isolation.level='landlock' (no mount namespace)",
                ) from None
            notes.append(f"{mount.path} not mounted ({os.strerror(exc.errno or 0)})")
    for fd in trees.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    for path, text in plan.files.items():
        try:
            _write_file(root + path, text)
        except OSError as exc:
            raise SetupError("mountns", f"cannot write the sandbox's {path}", exc.errno) from None
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


def mask_not_applied(root: str, path: str, workspace: str, exc: OSError) -> str:
    """A mask over ``path`` failed: return a note if no mask is needed, else fail closed.

    No mask is needed where nothing in the sandbox can reach the path: a
    directory on the way is closed even to pid 1 (this process), which holds
    every capability the cells lack, so it belongs to an id the cells are not
    and cannot become, and they cannot open it up either. A secret the cells
    could reach but that cannot be hidden stops the sandbox.
    """
    if not _reachable(root + path):
        return f"{path} needs no mask: nothing in the sandbox can reach it"
    raise SetupError(
        "mountns",
        f"cannot mask {path}, which cells could otherwise reach",
        exc.errno,
        fix=f"keep {path} outside the notebook directory {workspace}, "
        "or start the kernel from a directory that does not contain it",
    ) from None


def _reachable(path: str) -> bool:
    """Whether this process can look the path up (EACCES on the way means it cannot)."""
    try:
        os.lstat(path)
    except PermissionError:
        return False
    except OSError:
        return True  # missing, too long ...: assume reachable, so a failed mask fails closed
    return True


def _apply(root: str, mount: Mount, trees: dict[Mount, int]) -> None:
    target = root + mount.path
    if mount.kind == "tmpfs":
        _mkdirs(target)
        _tmpfs(target, mount.size_mb, "0700", libc.MS_NOSUID | libc.MS_NODEV)
    elif mount.kind == "bind":
        fd = trees.get(mount)
        if fd is None:
            return
        _make_target(target, mount.is_file)
        libc.move_mount(fd, target)
    elif mount.is_file:
        # /dev/null in place of the secret file, on a nodev mount: opening it fails
        # with EACCES, for reading and for writing, as at the landlock level. (A plain
        # bind of /dev/null would read as empty and swallow writes without a word,
        # and a read-only mount does not stop writes to a device.)
        fd = libc.open_tree(root + "/dev/null", libc.OPEN_TREE_CLONE | libc.OPEN_TREE_CLOEXEC)
        try:
            libc.move_mount(fd, target)
        finally:
            os.close(fd)
        libc.mount(
            None,
            target,
            None,
            libc.MS_REMOUNT
            | libc.MS_BIND
            | libc.MS_RDONLY
            | libc.MS_NOSUID
            | libc.MS_NODEV
            | libc.MS_NOEXEC,
        )
    else:
        flags = libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC
        libc.mount("tmpfs", target, "tmpfs", flags, "size=4k,mode=0500")


def _assemble_dev(root: str, trees: dict[Mount, int]) -> None:
    dev = root + "/dev"
    _mkdirs(dev)
    _tmpfs(dev, 1, "0755", libc.MS_NOSUID | libc.MS_NOEXEC)
    for device, fd in list(trees.items()):
        if device.path.startswith("/dev/"):
            target = root + device.path
            _make_target(target, True)
            libc.move_mount(fd, target)
            os.close(fd)
            del trees[device]
    # A devpts instance of our own: IPython's ``!cmd`` runs commands on a pty
    # (as in ipykernel), and the host's terminals must not be reachable.
    os.makedirs(dev + "/pts")
    try:
        libc.mount(
            "devpts",
            dev + "/pts",
            "devpts",
            libc.MS_NOSUID | libc.MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620",
        )
        os.symlink("pts/ptmx", dev + "/ptmx")
    except OSError:
        pass  # the executor falls back to pipes for ``!cmd``
    os.makedirs(dev + "/shm")
    # multiprocessing's semaphores live here; private and small.
    _tmpfs(dev + "/shm", 64, "1777", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{dev}/{name}")


def finish_read_only() -> None:
    """Make the tmpfs root read-only; /tmp, /dev/shm and binds marked rw stay writable."""
    try:
        libc.mount(
            None,
            "/",
            None,
            libc.MS_REMOUNT | libc.MS_BIND | libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV,
        )
    except OSError as exc:
        raise SetupError("mountns", "cannot make the sandbox root read-only", exc.errno) from None


# -- the mechanism: prepare (launcher), capture_trees (launcher), apply (pid 1) ------------


def prepare(spec: SandboxSpec, level: str, idmap_range: bool) -> MountPlan:
    """The sandbox's filesystem view, decided from the host's layout in the launcher.

    Below the namespaces level nothing is mounted, but the plan still says what is
    code and what is the workspace (Landlock's paths, PATH, HOME and TMPDIR).
    """
    iso = spec.isolation
    return plan_mounts(
        iso.workspace,
        iso.workspace_writable,
        list(iso.extra_mounts),
        iso.tmp_size_mb,
        idmap_range,
        iso.home,
        list(iso.protected),
        read_only_inside=iso.read_only_inside if level == "namespaces" else (),
    )


def apply(
    plan: MountPlan,
    trees: dict[Mount, int],
    report: Report,
    mount_proc: Callable[[str], str | None],
) -> None:
    """In pid 1, before anything that runs user code exists: assemble, pivot, seal."""
    # The view must be complete before any process that runs user code exists.
    report.notes.extend(assemble_root(plan, trees, mount_proc))
    finish_read_only()
    ws = "writable" if plan.workspace_writable else "read-only"
    report.layer(
        "mountns", True, f"read-only view; workspace {plan.workspace} {ws}; private {plan.tmp}"
    )
