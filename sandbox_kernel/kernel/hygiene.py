"""Workspace hygiene: after each cell, nothing in the workspace for trusted programs to trip on.

The workspace is the one host directory a cell writes, and programs outside the
sandbox use it afterwards with the user's full rights: the Jupyter server saves
notebooks and checkpoints there and serves downloads, nbconvert and graders write
and read there, ``git status`` runs ``core.fsmonitor`` from ``.git/config``, and
the next ordinary kernel or ``python -m pip`` started there imports
``ipykernel_launcher.py`` or ``pip/`` from it. seccomp and Landlock refuse the
making of links, special files and setuid bits (``isolation/seccomp.py``); this
scan, run by the trusted kernel before a cell's reply goes out, is the second line
and covers what no system-call filter can see (names):

* symbolic links that resolve outside the workspace, hard links to files outside
  it, FIFOs, sockets and device nodes, setuid/setgid bits and files of another
  owner, made since the last scan, are removed (setuid bits cleared);
* **guarded names** (``Isolation.control_files``: ``.git``, ``.vscode`` ... and
  ``Isolation.shadow_modules``: ``ipykernel_launcher.py``, ``pip``,
  ``conftest.py`` ...) made or changed since the last scan are put back as they
  were when the kernel started (their bytes are kept for that), or removed when
  they are new.

It costs little on the hot path: a directory's ctime moves whenever an entry in it
is made, renamed or removed, and a cell cannot set a ctime, so only directories
changed since the last scan have their entries examined; the others are only
opened and listed to find their subdirectories. Guarded trees are examined whole
(``bench/workspace_hygiene.py`` has the numbers).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shutil
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Finding", "WorkspaceGuard", "frozen_trees", "mount_view"]

# Inside a guarded tree (a repository's .git), entries that tools read but never
# run: large, changed by ordinary git use, and not worth a copy.
DATA_ENTRIES = frozenset(
    {
        "objects",
        "lfs",
        "logs",
        "refs",
        "index",
        "packed-refs",
        "HEAD",
        "ORIG_HEAD",
        "FETCH_HEAD",
        "MERGE_HEAD",
        "COMMIT_EDITMSG",
    }
)
# The Jupyter server writes checkpoints there while cells run: only the general
# rules apply (links and special files), its regular files are the server's.
SERVER_OWNED = frozenset({".ipynb_checkpoints"})
# A guarded file larger than this is not kept for restoring: removed if changed.
MAX_KEPT_FILE = 1 << 20
MAX_KEPT_TOTAL = 16 << 20
# File times come from the kernel's coarse clock (CLOCK_REALTIME_COARSE, 5 on
# Linux; Python has no name for it): a threshold read from it is never later than
# the ctime of an entry made after it. Elsewhere, a few ticks of slack.
CLOCK_REALTIME_COARSE = 5
SLACK_NS = 20_000_000


def _fs_now_ns() -> int:
    try:
        return time.clock_gettime_ns(CLOCK_REALTIME_COARSE)
    except OSError:
        return time.time_ns() - SLACK_NS


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Finding:
    path: str  # relative to the workspace
    what: str
    action: str  # "removed", "restored", "setuid/setgid bits cleared", "could not remove"

    def line(self) -> str:
        return f"{self.path}: {self.what}; {self.action}"


@dataclass
class ScanStats:
    dirs: int = 0
    entries_examined: int = 0
    seconds: float = 0.0


class _OpenDir:
    """A directory descriptor of the walk: closed once the directory and its waiting
    children are done."""

    __slots__ = ("fd", "refs")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.refs = 1  # the directory's own turn; each waiting child adds one

    def release(self) -> None:
        self.refs -= 1
        if self.refs == 0:
            os.close(self.fd)


@dataclass
class WorkspaceGuard:
    """Finds and undoes what a cell left in ``root`` for trusted programs."""

    root: str
    control: list[str]
    shadow: list[str]
    # Trees the sandbox cannot write (masked protected paths): never walked.
    skip: list[str] = field(default_factory=list)
    since_ns: int = 0
    stats: ScanStats = field(default_factory=ScanStats)
    # Host uids the sandbox's processes may run as (a root kernel's range): their
    # files are the sandbox's doing. Files of any other foreign uid were made by
    # someone outside (a server running as root, a colleague): reported, never removed.
    sandbox_uids: range | None = None
    # Guarded trees bound read-only into the sandbox (namespaces level), relative
    # paths, as read from the executor's own mountinfo: the sandbox cannot change
    # them, so a change there is the user's (a rebase in a terminal during a cell)
    # and becomes the state to keep.
    bound: set[str] = field(default_factory=set)
    # Other trees read-only in the executor's own view (its code roots inside the
    # workspace, such as the project's .venv the kernel runs from), relative paths:
    # nothing in them can be the sandbox's doing, so the walk does not enter them.
    # Set by freeze(); walking a virtualenv's guarded trees (pip, every __pycache__)
    # cost a kernel started in a project next to its .venv 10-60 ms per scan.
    frozen: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.root = os.path.realpath(self.root)
        self.owner = os.stat(self.root).st_uid
        self.kernel_uid = os.geteuid()
        self._skip = {os.path.realpath(p) for p in self.skip}
        self._not_walked = set(self._skip)
        # One regular expression for all the patterns: this runs for every entry.
        # Compiled once: this runs for every entry of every changed directory.
        self._guarded = _Matcher([*self.control, *self.shadow])
        self._shadow = _Matcher(self.shadow)
        # Directory listings by relative path: (ctime, subdirectories, guarded names).
        self._listings: dict[str, tuple[int, list[str], list[str]]] = {}
        # Guarded regular files as they were at the kernel's start: relative path -> (mode, bytes).
        self.kept: dict[str, tuple[int, bytes]] = {}
        # Every guarded entry that existed then (directories and files too large to keep).
        self.known: set[str] = set()
        # Those of them inside frozen trees: no longer followed (see freeze()).
        self._frozen_known: set[str] = set()
        # Guarded regular files with more than one name, and those of them inside
        # frozen trees: another name may be writable (see freeze()).
        self._multi_named: set[str] = set()
        self._linked: set[str] = set()
        self.since_ns = _fs_now_ns()
        self._keep_guarded()

    # -- names -------------------------------------------------------------------------

    def guarded(self, path: str) -> bool:
        """Whether ``path`` (relative to the workspace) is a guarded name."""
        return self._guarded.match(path)

    def _kind(self, path: str) -> str:
        if self._shadow.match(path):
            return "a module that shadows a tool or launcher (Isolation.shadow_modules)"
        return "a control file that tools outside the sandbox run (Isolation.control_files)"

    # -- the baseline ------------------------------------------------------------------

    def _keep_guarded(self) -> None:
        for rel, st, _ in self._walk_guarded(full=True):
            self._remember(rel, st)

    def _remember(self, rel: str, st: os.stat_result) -> None:
        self.known.add(rel)
        self.kept.pop(rel, None)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            self._multi_named.add(rel)
        else:
            self._multi_named.discard(rel)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_KEPT_FILE:
            return
        if sum(len(d) for _, d in self.kept.values()) + st.st_size > MAX_KEPT_TOTAL:
            return
        with contextlib.suppress(OSError):
            self.kept[rel] = (stat.S_IMODE(st.st_mode), _read_nofollow(self.root, rel))

    def begin_cell(self) -> None:
        """Take what changed since the last scan, while no cell ran, as the user's own.

        Between cells the user works on the project outside the sandbox (``git
        commit`` in a terminal, a new clone): those guarded files become the ones
        put back. (A process an earlier cell left running could change them too
        in that time; SECURITY.md states this.)
        """
        started = _fs_now_ns()
        seen: set[str] = set()
        for rel, st, _ in self._walk_guarded(full=False):
            seen.add(rel)
            if rel not in self.known or st.st_ctime_ns >= self.since_ns:
                self._remember(rel, st)
        for rel in self.known - seen:
            self.known.discard(rel)
            self.kept.pop(rel, None)
        self.since_ns = started

    def _walk_guarded(self, *, full: bool) -> Iterable[tuple[str, os.stat_result, bool]]:
        """Every entry at or under a guarded name: (relative path, lstat, is the top)."""
        for rel, entry_stat, inside, top in self._walk(full=full):
            if inside:
                yield rel, entry_stat, top

    def top_entries(self, limit: int) -> list[str]:
        """Absolute paths of the outermost guarded directories and files there now.

        At the ``namespaces`` level they are bound read-only into the sandbox
        (``mountns.plan_mounts``); at most ``limit``, outermost first.
        """
        named = self.known | self._frozen_known
        tops = [r for r in sorted(named) if not any(p in named for p in _prefixes(r)[:-1])]
        out = []
        for rel in sorted(tops, key=lambda r: (r.count("/"), r))[:limit]:
            path = os.path.join(self.root, rel)
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
                if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                    out.append(path)
        return out

    def freeze(self, trees: set[str]) -> None:
        """Leave out of every walk these trees, read-only in the executor's own view.

        Called after each executor start, with what its mountinfo shows. Their
        guarded entries are no longer followed or kept (nothing can be put back
        there), only still named by top_entries(): the read-only binds asked for stay
        those the executor was built with, which a spare's adoption compares. A tree
        that is no longer read-only (a new executor without that bind) is taken as
        it is now, before any cell of that executor runs.

        Except guarded files with more than one name (uv links a virtualenv's files
        from its cache; a cache inside the workspace is writable): a write through
        another name changes the file without touching the tree, so those few are
        still stat'ed at each scan and put back, as before.
        """
        trees = {t for t in trees if t == "." or not self.guarded(t)}
        if trees == self.frozen:
            return
        thawed = self.frozen - trees
        self.frozen = trees
        self._not_walked = self._skip | {
            os.path.normpath(os.path.join(self.root, t)) for t in trees
        }
        self._listings.clear()  # they may name a tree that is left out now, or no longer
        self._linked = {r for r in self._linked if _under_any(r, trees)}
        for rel in [r for r in self.known if _under_any(r, trees)]:
            self._frozen_known.add(rel)
            if rel in self._multi_named:
                self._linked.add(rel)
                continue
            self.known.discard(rel)
            self.kept.pop(rel, None)
        if thawed:
            self._frozen_known = {r for r in self._frozen_known if not _under_any(r, thawed)}
            for rel, st, _ in self._walk_guarded(full=True):
                if _under_any(rel, thawed) and not _under_any(rel, trees):
                    self._remember(rel, st)

    # -- the walk ----------------------------------------------------------------------

    def _walk(
        self, *, full: bool, into_frozen: bool = False
    ) -> Iterable[tuple[str, os.stat_result, bool, bool]]:
        """(relative path, lstat, inside a guarded tree, is the guarded top) of entries to examine.

        With ``full`` every entry; otherwise those of directories changed since
        ``since_ns`` and everything in guarded trees. A directory unchanged since
        it was last listed is not listed again: its subdirectories and guarded
        names are remembered (``_listings``), so an unchanged tree costs one open
        and one fstat per directory. Frozen trees are entered only ``into_frozen``.
        """
        skip = self._skip if into_frozen else self._not_walked
        if self.root not in skip:  # else the whole workspace is read-only in the sandbox
            yield from self._walk_tree(full, skip)
        if skip is self._not_walked:
            yield from self._linked_entries()

    def _walk_tree(
        self, full: bool, skip: set[str]
    ) -> Iterable[tuple[str, os.stat_result, bool, bool]]:
        try:
            root_fd = os.open(self.root, DIR_FLAGS)
        except OSError:
            return
        # A directory is opened only when its turn comes, relative to its parent's
        # descriptor (no path lookup), and a parent stays open only while children of
        # it wait: the walk holds about one descriptor per level of depth, not one per
        # waiting directory. A busy /tmp as the workspace has thousands of those, and
        # the kernel's soft limit is often 1024 (EMFILE left a cell without a reply).
        todo: list[tuple[_OpenDir | None, str, str, bool]] = [(None, "", "", False)]
        try:
            while todo:
                parent, name, rel, in_guarded = todo.pop()
                if parent is None:
                    fd = root_fd
                else:
                    try:
                        fd = os.open(name, DIR_FLAGS, dir_fd=parent.fd)
                    except OSError:
                        continue
                    finally:
                        parent.release()
                yield from self._examine(todo, _OpenDir(fd), rel, in_guarded, full, skip)
        finally:
            for parent, *_ in todo:
                if parent is not None:
                    parent.release()

    def _linked_entries(self) -> Iterable[tuple[str, os.stat_result, bool, bool]]:
        """The guarded files with more than one name inside frozen trees (freeze())."""
        for rel in sorted(self._linked):
            try:
                parent = _open_parent(self.root, rel)
                try:
                    info = os.stat(os.path.basename(rel), dir_fd=parent, follow_symlinks=False)
                finally:
                    os.close(parent)
            except OSError:
                # Gone: only the user can remove it there (the tree is read-only to
                # the sandbox), so it is not put back.
                self._linked.discard(rel)
                self.known.discard(rel)
                self.kept.pop(rel, None)
                continue
            self.stats.entries_examined += 1
            yield rel, info, True, False

    def _examine(
        self,
        todo: list[tuple[_OpenDir | None, str, str, bool]],
        directory: _OpenDir,
        rel: str,
        in_guarded: bool,
        full: bool,
        skip: set[str],
    ) -> Iterable[tuple[str, os.stat_result, bool, bool]]:
        """One directory of the walk: its entries to examine; its subdirectories go on ``todo``."""
        fd = directory.fd
        try:
            self.stats.dirs += 1
            ctime = os.fstat(fd).st_ctime_ns
            changed = full or in_guarded or ctime >= self.since_ns
            listing = None if changed else self._listings.get(rel)
            if listing is not None and listing[0] == ctime:
                for name in listing[2]:
                    path = f"{rel}/{name}" if rel else name
                    try:
                        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        continue
                    self.stats.entries_examined += 1
                    yield path, info, True, True
                    if stat.S_ISDIR(info.st_mode):
                        self._push(todo, directory, name, path, True)
                for name in listing[1]:
                    self._push(todo, directory, name, f"{rel}/{name}" if rel else name, False)
                return
            listed_at = _fs_now_ns()
            with os.scandir(fd) as entries:
                listed = list(entries)
            subdirs: list[str] = []
            guarded: list[str] = []
            for entry in listed:
                path = f"{rel}/{entry.name}" if rel else entry.name
                if skip and os.path.join(self.root, path) in skip:
                    continue
                if in_guarded and (entry.name in DATA_ENTRIES or entry.name.endswith(".lock")):
                    continue  # data, or git's lock files (held while git works)
                top = not in_guarded and self.guarded(path)
                is_dir = entry.is_dir(follow_symlinks=False)
                if top:
                    guarded.append(entry.name)
                elif is_dir:
                    subdirs.append(entry.name)
                if changed or top:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    self.stats.entries_examined += 1
                    yield path, info, in_guarded or top, top
                if is_dir:
                    self._push(todo, directory, entry.name, path, in_guarded or top)
            # Remembered only if the directory did not change in the clock tick it
            # was listed in (a later change then gives it a later ctime), and only
            # from a walk that leaves out what every walk leaves out.
            if not in_guarded and ctime < listed_at and skip is self._not_walked:
                self._listings[rel] = (ctime, subdirs, guarded)
        finally:
            directory.release()

    @staticmethod
    def _push(
        todo: list[tuple[_OpenDir | None, str, str, bool]],
        parent: _OpenDir,
        name: str,
        path: str,
        in_guarded: bool,
    ) -> None:
        parent.refs += 1
        todo.append((parent, name, path, in_guarded))

    # -- the scan ----------------------------------------------------------------------

    def scan(self) -> list[Finding]:
        """Examine what changed since the last scan; undo what must not stay. Trusted side."""
        started_ns = _fs_now_ns()
        started = time.monotonic()
        self.stats = ScanStats()
        findings: list[Finding] = []
        seen_guarded: set[str] = set()
        multi: list[tuple[str, os.stat_result]] = []
        new_since = self.since_ns
        removed: list[str] = []
        for rel, st, in_guarded, _top in list(self._walk(full=False)):
            if in_guarded:
                seen_guarded.add(rel)
            if any(rel.startswith(r + "/") for r in removed):
                continue  # inside a tree removed or restored whole just now
            if rel in self._linked:
                # In a frozen tree: changed only through another name. Put back;
                # never removed (the sandbox made neither the file nor its links).
                if st.st_ctime_ns >= new_since and stat.S_ISREG(st.st_mode):
                    finding = self._undo_guarded(rel, st.st_mode)
                    if finding is not None:
                        findings.append(finding)
                continue
            if self.bound and _under_any(rel, self.bound):
                if st.st_ctime_ns >= new_since or rel not in self.known:
                    self._remember(rel, st)
                continue
            recent = st.st_ctime_ns >= new_since
            if not recent:
                continue
            finding = self._check(rel, st, in_guarded)
            if finding is not None:
                findings.append(finding)
                if stat.S_ISDIR(st.st_mode):
                    removed.append(rel)
            elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                multi.append((rel, st))
        findings += self._hard_links_out(multi)
        # Guarded files the cell deleted (or replaced by a directory) come back.
        for rel in sorted(set(self.kept) - seen_guarded):
            if _parent_guarded_gone(rel, findings):
                continue
            if self.bound and _under_any(rel, self.bound):
                self.kept.pop(rel, None)  # deleted outside the sandbox: the user's
                self.known.discard(rel)
                continue
            findings.append(self._restore(rel, "deleted"))
        self.since_ns = started_ns
        self.stats.seconds = time.monotonic() - started
        return findings

    def _check(self, rel: str, st: os.stat_result, in_guarded: bool) -> Finding | None:
        mode = st.st_mode
        server_owned = any(part in SERVER_OWNED for part in rel.split("/"))
        if stat.S_ISLNK(mode):
            target = _link_target(self.root, rel)
            if target is None or not _inside(target, self.root):
                return self._remove(
                    rel, f"a symbolic link to {target or '?'}, outside the workspace"
                )
            if in_guarded and not server_owned and rel not in self.known:
                return self._remove(rel, f"new: {self._kind_of(rel)}")
            return None
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket"
            return self._remove(rel, f"{kind}, which programs outside the sandbox would block on")
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            return self._remove(rel, "a device node")
        if st.st_uid not in (self.owner, self.kernel_uid):
            what = f"owned by uid {st.st_uid}, not the workspace's owner"
            if self.sandbox_uids is not None and st.st_uid in self.sandbox_uids:
                return self._remove(rel, what)
            if in_guarded and not server_owned:
                return self._undo_guarded(rel, mode)
            return Finding(rel, what, "left as is (made outside the sandbox)")
        if mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISDIR(mode):
            return self._clear_set_id(rel, mode)
        if in_guarded and not server_owned:
            return self._undo_guarded(rel, mode)
        return None

    def _kind_of(self, rel: str) -> str:
        top = next((p for p in _prefixes(rel) if self.guarded(p)), rel)
        return self._kind(top)

    def _undo_guarded(self, rel: str, mode: int) -> Finding | None:
        """A guarded entry made or changed since the last scan: as it was, or gone."""
        if rel not in self.known:
            return self._remove(rel, f"new: {self._kind_of(rel)}")
        if stat.S_ISDIR(mode):
            return None  # its entries are examined one by one
        if rel in self.kept:
            with contextlib.suppress(OSError):
                if _read_nofollow(self.root, rel) == self.kept[rel][1]:
                    return None  # touched, not changed
            return self._restore(rel, f"changed: {self._kind_of(rel)}")
        return Finding(
            rel,
            f"changed: {self._kind_of(rel)}",
            f"reported only (larger than {MAX_KEPT_FILE >> 20} MiB, so no copy was kept)",
        )

    def _remove(self, rel: str, what: str) -> Finding:
        try:
            parent_fd = _open_parent(self.root, rel)
        except OSError:
            return Finding(rel, what, "could not remove (its directory is gone)")
        try:
            name = os.path.basename(rel)
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(name, dir_fd=parent_fd)
            else:
                os.unlink(name, dir_fd=parent_fd)
        except FileNotFoundError:
            return Finding(rel, what, "gone")
        except OSError as exc:
            return Finding(rel, what, f"could not remove ({exc.strerror})")
        finally:
            os.close(parent_fd)
        return Finding(rel, what, "removed")

    def _restore(self, rel: str, what: str) -> Finding:
        mode, data = self.kept[rel]
        try:
            parent_fd = _open_parent(self.root, rel, make=True)
        except OSError as exc:
            return Finding(rel, what, f"could not restore ({exc.strerror})")
        try:
            name = os.path.basename(rel)
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(name, dir_fd=parent_fd)
                elif not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
                    os.unlink(name, dir_fd=parent_fd)
            fd = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                mode,
                dir_fd=parent_fd,
            )
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                os.fchmod(f.fileno(), mode)
        except OSError as exc:
            return Finding(rel, what, f"could not restore ({exc.strerror})")
        finally:
            os.close(parent_fd)
        return Finding(rel, what, "restored as it was when the kernel started")

    def _clear_set_id(self, rel: str, mode: int) -> Finding:
        what = f"a file with setuid/setgid bits ({oct(stat.S_IMODE(mode))})"
        try:
            parent_fd = _open_parent(self.root, rel)
        except OSError:
            return Finding(rel, what, "could not clear (its directory is gone)")
        try:
            fd = os.open(
                os.path.basename(rel),
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=parent_fd,
            )
            try:
                now = os.fstat(fd)
                if stat.S_ISREG(now.st_mode):
                    os.fchmod(fd, stat.S_IMODE(now.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
            finally:
                os.close(fd)
        except OSError:
            return self._remove(rel, what)
        finally:
            os.close(parent_fd)
        return Finding(rel, what, "setuid/setgid bits cleared")

    def _hard_links_out(self, multi: list[tuple[str, os.stat_result]]) -> list[Finding]:
        """Files with more links than names in the workspace share an inode with a file outside."""
        if not multi:
            return []
        wanted = {(st.st_dev, st.st_ino): st.st_nlink for _, st in multi}
        names: dict[tuple[int, int], int] = dict.fromkeys(wanted, 0)
        # Frozen trees too: a name there is a name in the workspace.
        for _rel, st, _, _ in self._walk(full=True, into_frozen=True):
            key = (st.st_dev, st.st_ino)
            if key in names:
                names[key] += 1
        findings = []
        for rel, st in multi:
            key = (st.st_dev, st.st_ino)
            if names[key] < wanted[key]:
                findings.append(self._remove(rel, "a hard link to a file outside the workspace"))
        return findings


class _Matcher:
    """Shell patterns against a relative path: a pattern without a slash matches the
    last component ("conftest.py"), one with slashes as many last components
    ("site-packages/*.pth": a .pth file means nothing elsewhere, and model.pth is
    PyTorch's usual name for saved weights)."""

    def __init__(self, patterns: list[str]) -> None:
        by_depth: dict[int, list[str]] = {}
        for pattern in patterns:
            by_depth.setdefault(pattern.strip("/").count("/") + 1, []).append(pattern.strip("/"))
        self.by_depth = {
            depth: re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in group))
            for depth, group in by_depth.items()
        }

    def match(self, path: str) -> bool:
        parts = path.split("/")
        for depth, regex in self.by_depth.items():
            if len(parts) >= depth and regex.match("/".join(parts[-depth:])):
                return True
        return False


def _under_any(rel: str, tops: set[str]) -> bool:
    return any(rel == t or rel.startswith(t + "/") or t == "." for t in tops)


def mount_view(pid: int | None) -> dict[str, bool]:
    """Process ``pid``'s mount points -> whether each is read-only (the top mount of a
    point wins); empty when its mountinfo cannot be read."""
    if pid is None:
        return {}
    view: dict[str, bool] = {}
    try:
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 5:
                    # mountinfo escapes space, tab, newline and backslash as \ooo.
                    point = _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
                    view[point] = "ro" in fields[5].split(",")
    except OSError:
        return {}
    return view


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def frozen_trees(view: dict[str, bool], root: str, exclude: Iterable[str] = ()) -> set[str]:
    """Read-only mount points at or inside ``root`` with nothing writable mounted under
    them, relative to ``root`` ("." for the whole workspace: the kernel's own code lives
    there, a checkout with an editable install): trees a sandbox with that view cannot
    change. ``exclude`` (absolute) are left out: the guard's own binds of guarded
    entries, whose changes by the user it follows, and the masked protected paths."""
    excluded = set(exclude)
    inside = {p: ro for p, ro in view.items() if _inside(p, root) and p not in excluded}
    writable = [p for p, ro in view.items() if not ro]
    trees = {
        p for p, ro in inside.items() if ro and not any(w != p and _inside(w, p) for w in writable)
    }
    # The outermost only: the walk does not enter them, so what lies under one is moot.
    outer = {p for p in trees if not any(q != p and _inside(p, q) for q in trees)}
    return {os.path.relpath(p, root) for p in outer}


def _prefixes(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _parent_guarded_gone(rel: str, findings: list[Finding]) -> bool:
    return any(f.action.startswith("restored") and rel.startswith(f.path + "/") for f in findings)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _link_target(root: str, rel: str) -> str | None:
    """Where a link in the workspace leads, resolved as a reader outside would resolve it."""
    try:
        return os.path.realpath(os.path.join(root, rel))
    except (OSError, ValueError):
        return None


def _open_parent(root: str, rel: str, *, make: bool = False) -> int:
    """A descriptor of ``rel``'s directory, reached without following any link on the way."""
    fd = os.open(root, DIR_FLAGS)
    try:
        for part in rel.split("/")[:-1]:
            if make:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            sub = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_nofollow(root: str, rel: str) -> bytes:
    parent = _open_parent(root, rel)
    try:
        fd = os.open(
            os.path.basename(rel),
            os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            dir_fd=parent,
        )
    finally:
        os.close(parent)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError("not a regular file")
        return f.read(MAX_KEPT_FILE + 1)
