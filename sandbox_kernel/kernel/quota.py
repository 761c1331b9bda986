"""The workspace quota: how much the workspace has grown, measured on the trusted side.

No unprivileged mechanism puts a hard size limit on a directory of the host's
disk: tmpfs would keep the files in memory, an overlay's upper layer makes the
Jupyter server's own writes (saves, uploads) unsafe under a live mount, and
project quotas and loop-mounted images need root. So the kernel accounts: it
measures the workspace's allocated size (``st_blocks``, each inode once) from
outside the sandbox, and stops the cell that makes it grow past
``Limits.workspace_quota_mb``. ``RLIMIT_FSIZE`` (never above the quota) bounds
one file between two measurements; what a cell writes into many files between
two measurements is the stated margin (SECURITY.md).

Whether the sandbox did the writing is read from ``/proc/<pid>/io``
(``write_bytes``: bytes its processes dirtied on disk-backed filesystems; tmpfs
is not counted), so a file the user uploads through JupyterLab does not stop a
cell that wrote nothing. Where the workspace is on a memory filesystem (a tmpfs
``/tmp``, as on many distributions), whose writes that counter never sees, the
sandbox's CPU time stands for it (``sandbox_cpu_ns``), as where the counter is closed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from dataclasses import dataclass, field

from ..isolation.probe import filesystem_type

__all__ = ["QuotaCheck", "WorkspaceMeter", "sandbox_write_bytes", "writes_counted"]

# Filesystems without writeback: what a process writes there is not in
# /proc/<pid>/io's write_bytes (found by make test in a container with a tmpfs /tmp).
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


def writes_counted(path: str) -> bool:
    """Whether writes under ``path`` show in ``sandbox_write_bytes``."""
    return filesystem_type(path) not in MEMORY_FILESYSTEMS


# The shortest time between two measurements, and the share of one core a
# measurement may take (a large workspace is measured less often).
MIN_INTERVAL_S = 0.1
# Between cells the sandbox's write counter is looked at less often: an idle
# kernel then costs about 0.4% of a core instead of 1% (bench/workspace.py).
IDLE_INTERVAL_S = 0.25
MAX_SCAN_SHARE = 0.1


@dataclass
class WorkspaceMeter:
    """Allocated bytes under ``root``, leaving out trees a cell cannot write."""

    root: str
    skip: list[str] = field(default_factory=list)
    baseline: int = 0
    last: int = 0
    scan_s: float = 0.0

    def __post_init__(self) -> None:
        self._skip = {os.path.realpath(p) for p in self.skip}
        self.baseline = self.last = self.measure()

    def measure(self) -> int:
        started = time.monotonic()
        seen: set[tuple[int, int]] = set()
        total = 0
        todo = [self.root]
        while todo:
            directory = todo.pop()
            with contextlib.suppress(OSError), os.scandir(directory) as entries:
                for entry in entries:
                    if entry.path in self._skip:
                        continue
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # removed meanwhile
                    if info.st_nlink > 1:
                        key = (info.st_dev, info.st_ino)
                        if key in seen:
                            continue
                        seen.add(key)
                    total += info.st_blocks * 512
                    if stat.S_ISDIR(info.st_mode):
                        todo.append(entry.path)
        self.scan_s = time.monotonic() - started
        return total

    @property
    def growth(self) -> int:
        return self.last - self.baseline

    def interval(self) -> float:
        """How long to wait before the next measurement."""
        return max(MIN_INTERVAL_S, self.scan_s / MAX_SCAN_SHARE)


@dataclass
class QuotaCheck:
    """One measurement's verdict."""

    over: bool
    growth: int
    sandbox_wrote: bool


def sandbox_cpu_ns(pids: list[int]) -> int | None:
    """CPU time the given processes' threads have run, in ns; None if unknown.

    The sign of life between cells where the write counter cannot be read
    (``/proc/<pid>/io`` needs ptrace access, which a container without
    CAP_SYS_PTRACE lacks for a non-dumpable sandbox); ``schedstat`` is readable to
    all and counts in nanoseconds, so even a thread that only writes a small file
    moves it.
    """
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        except OSError:
            return None
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except FileNotFoundError:
                continue
            except (OSError, ValueError, IndexError):
                return None
    return total


def sandbox_write_bytes(pids: list[int]) -> int | None:
    """Bytes the given processes (and the children they reaped) dirtied on disk; None if unknown."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/io") as f:
                for line in f:
                    if line.startswith("write_bytes:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            continue  # gone meanwhile: its count went to the process that reaped it
        except (OSError, ValueError):
            return None
    return total
