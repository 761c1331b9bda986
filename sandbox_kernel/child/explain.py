"""Errors the sandbox caused say so: one note on the exception, naming the setting.

A cell that fails because of the sandbox gets Python's own exception, as under
stock ipykernel, plus one line (a PEP 678 note, shown at the end of the traceback)
that says what the sandbox did and which setting would change it:

- a connection without network (DNS failure, refused or unreachable, a library's
  wrapper of those): the network is off here, ``Isolation.allow_network``;
- ``FileNotFoundError`` for a path outside the sandbox's view (``/etc/shadow``,
  ``~/.ssh/id_rsa``): the sandbox hides it, ``Isolation.extra_mounts``;
- ``PermissionError``/read-only file system outside the writable places: only the
  workspace (named) and the private /tmp and HOME are writable;
- ``MemoryError``: the memory limit in force, ``Limits.memory_limit_mb``.

The facts come from the launcher (``info["explain"]``): this process cannot read the
kernel's configuration, and must not guess.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from ..units import MIB

__all__ = ["PREFIX", "Explainer", "installs_packages", "private_notice"]

PREFIX = "[sandbox]"
_MAX_CHAIN = 50
_NETWORK_ERRNOS = frozenset(
    {
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.ECONNREFUSED,
        errno.EAFNOSUPPORT,
        errno.ENETDOWN,
    }
)
# Library wrappers of a failed connection (urllib3, requests, httpx, aiohttp, urllib).
_NETWORK_WRAPPERS = frozenset(
    {
        "NewConnectionError",
        "NameResolutionError",
        "MaxRetryError",
        "ConnectError",
        "ConnectTimeout",
        "ClientConnectorError",
        "URLError",
    }
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: causes, contexts and a wrapper's ``reason``."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending and len(seen) < _MAX_CHAIN:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__]
        # urllib's URLError and urllib3's MaxRetryError keep the cause in .reason
        pending.append(getattr(current, "__dict__", {}).get("reason"))
        pending += [a for a in current.args if isinstance(a, BaseException)]


class Explainer:
    """Adds the sandbox's note to exceptions it caused (see the module docstring)."""

    def __init__(self, facts: Mapping[str, Any]) -> None:
        self.level = str(facts.get("level") or "")
        self.allow_network = bool(facts.get("allow_network", False))
        self.allowed_hosts = [str(h) for h in facts.get("allowed_hosts") or []]
        self.workspace = str(facts.get("workspace") or "")
        self.workspace_writable = bool(facts.get("workspace_writable", True))
        self.hidden = tuple(str(p) for p in facts.get("hidden") or [])
        self.memory_bytes = int(facts.get("memory_bytes") or 0)
        self.memory_set = bool(facts.get("memory_limit_set", False))
        self.private = tuple(str(p) for p in facts.get("private") or [])
        # Control files and shadow modules bound read-only in the workspace (hygiene.py).
        self.fixed = tuple(str(p) for p in facts.get("read_only_inside") or [])

    # -- the one entry point ------------------------------------------------------------

    def explain(self, exc: BaseException) -> BaseException:
        """Add the note, once, when the sandbox caused ``exc``. Returns ``exc``."""
        try:
            note = self.note(exc)
        except Exception:  # explaining must never replace the user's error
            return exc
        notes = getattr(exc, "__notes__", None)
        if note and not (isinstance(notes, list) and note in notes):
            exc.add_note(note)
        return exc

    def note(self, exc: BaseException) -> str | None:
        if isinstance(exc, MemoryError):
            return self._memory()
        if isinstance(exc, OSError) and exc.filename and not self._is_network(exc):
            return self._path(exc)
        if not self.allow_network and any(self._is_network(e) for e in _chain(exc)):
            return self._network()
        return None

    # -- network ---------------------------------------------------------------------------

    @staticmethod
    def _is_network(exc: BaseException) -> bool:
        if isinstance(exc, socket.gaierror):
            return True
        if isinstance(exc, OSError) and not exc.filename:
            if exc.errno in _NETWORK_ERRNOS:
                return True
            # Where seccomp allows no socket(2) at all, creating one fails with EPERM.
            if exc.errno in (errno.EPERM, errno.EACCES) and _raised_in(exc, _SOCKET_FILE):
                return True
        return type(exc).__name__ in _NETWORK_WRAPPERS

    def _network(self) -> str:
        if self.allowed_hosts:
            return (
                f"{PREFIX} The network is off in this sandbox except for the hosts in "
                f"Isolation.allowed_hosts ({', '.join(self.allowed_hosts[:5])}"
                f"{' ...' if len(self.allowed_hosts) > 5 else ''}); an administrator can "
                "add hosts there, or turn the network on with c.Isolation.allow_network = True."
            )
        return (
            f"{PREFIX} The network is off in this sandbox: no connection can leave it "
            "(names do not resolve either). An administrator can turn it on with "
            "c.Isolation.allow_network = True."
        )

    # -- files -------------------------------------------------------------------------------

    def _path(self, exc: OSError) -> str | None:
        path = os.fsdecode(exc.filename)
        if not os.path.isabs(path):
            path = os.path.join(os.getcwd(), path)
        path = os.path.normpath(path)
        if isinstance(exc, FileNotFoundError):
            if self._is_hidden(path):
                return self._hidden(path)
            return self._private_missing(path)
        if exc.errno == errno.EPERM and exc.filename2 is not None:
            # symlink(2), refused by seccomp: exc.filename is the link's target.
            return self._no_links()
        if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
            if self._under(path, self.hidden):
                return self._hidden(path)
            if self._under(path, self.fixed):
                return self._control(path)
            in_workspace = bool(self.workspace) and self._under(path, (self.workspace,))
            if in_workspace and not self.workspace_writable:
                return self._read_only(path)
            if not in_workspace and not self._under(path, self._writable()):
                return self._read_only(path)
        return None

    def _writable(self) -> tuple[str, ...]:
        roots = self.private
        if self.workspace_writable and self.workspace:
            roots = (self.workspace, *roots)
        return roots

    @staticmethod
    def _under(path: str, roots: tuple[str, ...]) -> bool:
        return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)

    def _is_hidden(self, path: str) -> bool:
        if self._under(path, self.hidden):
            return True
        if self.level != "namespaces":
            return False  # the host's own tree: a missing file is missing
        # In the sandbox's own root only what was mounted exists: a path whose
        # nearest mount is that root is outside the view.
        return _nearest_mount(path) == "/"

    def _hidden(self, path: str) -> str:
        return (
            f"{PREFIX} {path} is hidden by the sandbox: cells see only the workspace, "
            "the Python environment and the system's own files. An administrator can "
            "show more with c.Isolation.extra_mounts."
        )

    def _private_missing(self, path: str) -> str | None:
        """A file missing from the private /tmp or HOME: the host's copy is not here."""
        if self.workspace and self._under(path, (self.workspace,)):
            return None
        for root in self.private:
            if root and root != os.sep and self._under(path, (root,)):
                where = f" ({self.workspace})" if self.workspace else ""
                return (
                    f"{PREFIX} {root} is private to this sandbox and starts empty: the host's "
                    f"files there are not visible. Keep data in the workspace{where}."
                )
        return None

    def _read_only(self, path: str) -> str:
        if self.workspace_writable and self.workspace:
            where = (
                f"only the workspace ({self.workspace}) is writable, with the private /tmp and HOME"
            )
        else:
            where = (
                "only the private /tmp and HOME are writable (the workspace is read-only: "
                "Isolation.workspace_writable)"
            )
        return (
            f"{PREFIX} {path} is read-only in this sandbox: {where}. An administrator can "
            "mount more with c.Isolation.extra_mounts = ['/path:rw']."
        )

    @staticmethod
    def _no_links() -> str:
        return (
            f"{PREFIX} Symbolic links cannot be made in this sandbox (no setting allows it): "
            "programs outside it, such as the Jupyter server, a grader or your shell, would "
            "follow a link left in the workspace. Copy the file instead."
        )

    @staticmethod
    def _control(path: str) -> str:
        return (
            f"{PREFIX} {path} is read-only in this sandbox: tools outside it run or trust it "
            "(git, your next kernel, pip, pytest), so the kernel keeps it as it was. An "
            "administrator names such files in c.Isolation.control_files and "
            "c.Isolation.shadow_modules."
        )

    # -- memory ------------------------------------------------------------------------------

    def _memory(self) -> str | None:
        if not self.memory_bytes:
            return None
        limit = self.memory_bytes // MIB
        how = (
            "Limits.memory_limit_mb"
            if self.memory_set
            else "half of this machine's memory, as Limits.memory_limit_mb is not set"
        )
        return (
            f"{PREFIX} The sandbox's memory limit is {limit} MiB ({how}). An administrator "
            "can change it with c.Limits.memory_limit_mb."
        )


_SOCKET_FILE = socket.__file__


def _raised_in(exc: BaseException, filename: str) -> bool:
    """Whether the innermost Python frame of ``exc``'s traceback is in ``filename``."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and last.tb_frame.f_code.co_filename == filename


def _nearest_mount(path: str) -> str | None:
    """The mount point closest above ``path`` in this process's view, from mountinfo."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            points = [line.split()[4] for line in f if len(line.split()) > 4]
    except OSError:
        return None
    best = None
    for raw in points:
        point = raw.replace("\\040", " ")
        if (path == point or path.startswith(point.rstrip("/") + "/")) and (
            best is None or len(point) > len(best)
        ):
            best = point
    return best


_INSTALL = re.compile(
    r"^[ \t]*(?:[!%]|get_ipython\(\)\.system\(['\"])[ \t]*"
    r"(?:pip3?|python3? -m pip|uv pip|conda|mamba)[ \t]+install\b",
    re.MULTILINE,
)


def installs_packages(cell: str) -> bool:
    """Whether the cell runs a package installer (!pip install, %pip install, %conda ...)."""
    return bool(_INSTALL.search(cell))


def private_notice(kind: str, path: str) -> str:
    """The one-time notice for the first write to the private /tmp or HOME."""
    what = "/tmp" if kind == "tmp" else f"The home directory ({path})"
    if kind == "tmp" and path not in ("/tmp", "/tmp/"):
        what = f"The temporary directory ({path})"
    return (
        f"{PREFIX} {what} is private to this sandbox: what you write there stays inside "
        "it, and is gone when the kernel restarts. Keep files in the workspace."
    )
