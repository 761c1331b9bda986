"""cgroups: a memory, process and CPU budget for the whole executor tree, and a clean kill.

The trusted kernel creates one cgroup per executor when the host lets it
(cgroup v2 with the memory and pids controllers delegated, or the v1 memory
and pids hierarchies); the launcher joins it before it forks, so every process
a cell starts is counted and can be killed at once. Where no cgroup can be
had, the limits fall back to rlimits and the report says so.

The CPU share (``cpu.max`` in v2, CFS bandwidth ``cpu.cfs_quota_us`` in v1) is
set where the cpu controller is there too; it covers every thread of every
process in the cgroup, a cell's background threads included. Without it the
cgroup is still used, and the report says the share is not enforced.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass, field

__all__ = ["Cgroup", "EnclosingLimits", "create", "enclosing_limits", "hierarchy_dir"]

ROOT = "/sys/fs/cgroup"
# The CFS bandwidth period: the share is enforced over every 100 ms.
CPU_PERIOD_US = 100_000


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _own_path(controller: str | None) -> str | None:
    """This process's cgroup path in the v1 hierarchy of ``controller`` (None: v2)."""
    with contextlib.suppress(OSError):
        for line in _read("/proc/self/cgroup").splitlines():
            _, controllers, path = line.split(":", 2)
            names = controllers.split(",") if controllers else []
            if (controller is None and not controllers) or (controller in names):
                return path
    return None


def _unescape(field: str) -> str:
    """A mountinfo path field: spaces, tabs, newlines and backslashes are octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mounts(controller: str | None) -> list[tuple[str, str]]:
    """(root, mount point) of each mount of ``controller``'s v1 hierarchy (None: v2)."""
    found = []
    with contextlib.suppress(OSError):
        for line in _read("/proc/self/mountinfo").splitlines():
            fields, _, tail = line.partition(" - ")
            parts, super_options = fields.split(), tail.split()
            if len(parts) < 5 or len(super_options) < 3:
                continue
            fstype, options = super_options[0], super_options[2].split(",")
            if (controller is None and fstype == "cgroup2") or (
                controller is not None and fstype == "cgroup" and controller in options
            ):
                found.append((_unescape(parts[3]), _unescape(parts[4])))
    return found


def _own_dir(controller: str | None) -> str | None:
    """The directory of this process's own cgroup (v1 ``controller``, None: v2)."""
    own = _own_path(controller)
    return None if own is None else hierarchy_dir(controller, own)


def hierarchy_dir(controller: str | None, path: str) -> str:
    """Where the cgroup ``path`` (as /proc/PID/cgroup names it) is in this mount namespace.

    /proc/PID/cgroup gives the path from the hierarchy's root, but a container
    may see only its own part of the hierarchy: Docker on cgroup v1 (no cgroup
    namespace) mounts /docker/<id> at /sys/fs/cgroup/memory while /proc/self/cgroup
    still says /docker/<id>. The mount's root (mountinfo) is taken off the path.
    """
    for root, mount_point in _mounts(controller):
        if root == "/":
            relative: str | None = path.lstrip("/")
        elif path == root:
            relative = ""
        elif path.startswith(root.rstrip("/") + "/"):
            relative = path[len(root.rstrip("/")) + 1 :]
        else:
            relative = None  # this mount shows another part of the hierarchy
        if relative is not None and os.path.isdir(os.path.join(mount_point, relative)):
            return os.path.join(mount_point, relative).rstrip("/") or "/"
    base = ROOT if controller is None else os.path.join(ROOT, controller)
    return os.path.join(base, path.lstrip("/"))


def cpu_quota_us(share: float) -> int:
    """CPU time per period for ``share`` cores (the kernel refuses less than 1 ms)."""
    return max(1000, round(share * CPU_PERIOD_US))


@dataclass
class Cgroup:
    version: int
    dirs: dict[str, str]  # controller ("memory", "pids", "cpu", "cpuacct" or "unified") -> dir
    notes: list[str] = field(default_factory=list)
    # The CPU share in force (cores), or why there is none.
    cpu_share: float = 0.0
    cpu_unavailable: str = ""

    @property
    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in dict.fromkeys(self.dirs.values())]

    def _file(self, controller: str, v1: str, v2: str) -> str:
        if self.version == 2:
            return os.path.join(self.dirs["unified"], v2)
        return os.path.join(self.dirs[controller], v1)

    def oom_kills(self) -> int:
        """How many processes the memory limit has killed so far."""
        path = self._file("memory", "memory.oom_control", "memory.events")
        with contextlib.suppress(OSError, ValueError):
            for line in _read(path).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def pids_limit_hits(self) -> int:
        """How many times a fork failed because the process limit was reached."""
        path = self._file("pids", "pids.events", "pids.events")
        with contextlib.suppress(OSError, ValueError):
            for line in _read(path).splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        return 0

    def memory_peak(self) -> int | None:
        path = self._file("memory", "memory.max_usage_in_bytes", "memory.peak")
        with contextlib.suppress(OSError, ValueError):
            return int(_read(path).split()[0])
        return None

    def reset_peak(self) -> None:
        """Start a new peak measurement (per cell)."""
        path = self._file("memory", "memory.max_usage_in_bytes", "memory.peak")
        with contextlib.suppress(OSError):
            _write(path, "0")

    def memory_current(self) -> int | None:
        path = self._file("memory", "memory.usage_in_bytes", "memory.current")
        with contextlib.suppress(OSError, ValueError):
            return int(_read(path).split()[0])
        return None

    def cpu_usage_s(self) -> float | None:
        """CPU time every process of the cgroup has used so far (v2 cpu.stat, v1 cpuacct)."""
        with contextlib.suppress(OSError, ValueError, KeyError):
            if self.version == 2:
                for line in _read(os.path.join(self.dirs["unified"], "cpu.stat")).splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) / 1e6
                return None
            return int(_read(os.path.join(self.dirs["cpuacct"], "cpuacct.usage"))) / 1e9
        return None

    def pids(self) -> list[int]:
        out: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(OSError, ValueError):
                out.update(int(p) for p in _read(procs).split())
        return sorted(out)

    def kill_all(self, deadline_s: float = 2.0) -> None:
        if self.version == 2:
            with contextlib.suppress(OSError):
                _write(os.path.join(self.dirs["unified"], "cgroup.kill"), "1")
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def destroy(self) -> None:
        self.kill_all()
        for directory in dict.fromkeys(self.dirs.values()):
            for _ in range(50):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _sweep_stale(parent: str, name: str) -> None:
    """Remove the empty cgroups of kernels that died without cleaning up (SIGKILL, OOM).

    Names end in the owning kernel's pid. Only directories whose kernel is gone
    are tried, and rmdir(2) removes a cgroup only when no process is left in it.
    """
    stem, _, own = name.rpartition("-")
    if not stem or not own.isdigit():
        return
    pattern = re.compile(re.escape(stem) + r"-(\d+)")
    with contextlib.suppress(OSError), os.scandir(parent) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match is None or not entry.is_dir(follow_symlinks=False):
                continue
            if _alive(int(match.group(1))):
                continue  # its kernel (or a process that took its pid) still runs
            with contextlib.suppress(OSError):
                os.rmdir(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _create_v2(name: str, memory_bytes: int, pids_max: int, cpu_share: float) -> Cgroup | str:
    base = _own_dir(None)
    if base is None:
        return "cgroup v2 is not mounted"
    try:
        enabled = _read(os.path.join(base, "cgroup.subtree_control")).split()
    except OSError as exc:
        return f"cgroup v2: {os.strerror(exc.errno or 0)}"
    missing = {"memory", "pids"} - set(enabled)
    if missing:
        return f"cgroup v2: controllers {', '.join(sorted(missing))} are not delegated to {base}"
    _sweep_stale(base, name)
    directory = os.path.join(base, name)
    try:
        os.mkdir(directory)
        _write(os.path.join(directory, "memory.max"), str(memory_bytes))
        with contextlib.suppress(OSError):
            _write(os.path.join(directory, "memory.swap.max"), "0")
        _write(os.path.join(directory, "pids.max"), str(pids_max))
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.rmdir(directory)
        return f"cgroup v2: cannot create {directory}: {os.strerror(exc.errno or 0)}"
    group = Cgroup(2, {"unified": directory})
    if cpu_share and "cpu" not in enabled:
        group.cpu_unavailable = f"cgroup v2: the cpu controller is not delegated to {base}"
    elif cpu_share:
        try:
            _write(os.path.join(directory, "cpu.max"), f"{cpu_quota_us(cpu_share)} {CPU_PERIOD_US}")
            group.cpu_share = cpu_share
        except OSError as exc:
            group.cpu_unavailable = f"cgroup v2: cannot set cpu.max: {os.strerror(exc.errno or 0)}"
    return group


def _create_v1(name: str, memory_bytes: int, pids_max: int, cpu_share: float) -> Cgroup | str:
    dirs: dict[str, str] = {}
    try:
        for controller in ("memory", "pids"):
            parent = _own_dir(controller)
            if parent is None or not os.path.isdir(os.path.join(ROOT, controller)):
                raise FileNotFoundError(f"the v1 {controller} controller is not mounted")
            _sweep_stale(parent, name)
            directory = os.path.join(parent, name)
            os.mkdir(directory)
            dirs[controller] = directory
        _write(os.path.join(dirs["memory"], "memory.limit_in_bytes"), str(memory_bytes))
        with contextlib.suppress(OSError):
            _write(os.path.join(dirs["memory"], "memory.memsw.limit_in_bytes"), str(memory_bytes))
        _write(os.path.join(dirs["pids"], "pids.max"), str(pids_max))
    except (OSError, FileNotFoundError) as exc:
        for directory in dirs.values():
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return f"cgroup v1: {reason}"
    group = Cgroup(1, dirs)
    if cpu_share:
        _add_v1_cpu(group, name, cpu_share)
    return group


def _add_v1_cpu(group: Cgroup, name: str, cpu_share: float) -> None:
    """The v1 cpu hierarchy (CFS bandwidth) and cpuacct (usage), where they are mounted."""
    made: dict[str, str] = {}
    try:
        for controller in ("cpu", "cpuacct"):
            parent = _own_dir(controller)
            if parent is None or not os.path.isdir(os.path.join(ROOT, controller)):
                if controller == "cpu":
                    raise FileNotFoundError("the v1 cpu controller is not mounted")
                continue
            directory = os.path.join(parent, name)
            # cpu and cpuacct are often one hierarchy (cpu,cpuacct): one directory.
            same = [d for d in made.values() if os.path.realpath(d) == os.path.realpath(directory)]
            if not same:
                _sweep_stale(parent, name)
                os.mkdir(directory)
            made[controller] = directory
        _write(os.path.join(made["cpu"], "cpu.cfs_period_us"), str(CPU_PERIOD_US))
        _write(os.path.join(made["cpu"], "cpu.cfs_quota_us"), str(cpu_quota_us(cpu_share)))
    except (OSError, FileNotFoundError) as exc:
        for directory in dict.fromkeys(made.values()):
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        group.cpu_unavailable = f"cgroup v1: {reason}"
        return
    group.dirs.update(made)
    group.cpu_share = cpu_share


def create(name: str, memory_bytes: int, pids_max: int, cpu_share: float = 0.0) -> Cgroup | str:
    """A fresh cgroup with the limits set, or the reason there is none.

    ``cpu_share`` (cores; 0 for none) is set where the cpu controller is available;
    the returned group says whether it is (``cpu_share``) or why not.
    """
    v1_memory = os.path.isdir(os.path.join(ROOT, "memory")) and os.path.exists(
        os.path.join(ROOT, "memory", "memory.limit_in_bytes")
    )
    attempts = (_create_v1, _create_v2) if v1_memory else (_create_v2, _create_v1)
    reasons = []
    for attempt in attempts:
        result = attempt(name, memory_bytes, pids_max, cpu_share)
        if isinstance(result, Cgroup):
            return result
        reasons.append(result)
    return "; ".join(reasons)


# cgroup v1 writes "no limit" as the largest page-aligned value it can hold.
_V1_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class EnclosingLimits:
    """Limits the cgroup this kernel already runs in gives (a container's --memory,
    --pids-limit): they bound the kernel and its executors together."""

    memory_bytes: int | None
    pids_max: int | None
    version: int

    def describe(self) -> str:
        parts = []
        if self.memory_bytes is not None:
            parts.append(f"memory {self.memory_bytes >> 20} MiB")
        if self.pids_max is not None:
            parts.append(f"{self.pids_max} processes")
        if not parts:
            return ""
        return (
            f"the enclosing cgroup (v{self.version}, the container's) limits kernel and "
            f"cells together: {', '.join(parts)}"
        )


def _limit_file(controller: str | None, name: str) -> str | None:
    """The limit file of this process's own cgroup, wherever the hierarchy is mounted."""
    base = ROOT if controller is None else os.path.join(ROOT, controller)
    for directory in (_own_dir(controller) or base, base):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    return None


def _read_limit(path: str | None) -> int | None:
    if path is None:
        return None
    try:
        text = _read(path).strip()
    except OSError:
        return None
    if not text.isdigit():
        return None  # "max": no limit
    value = int(text)
    return None if value >= _V1_UNLIMITED else value


def enclosing_limits() -> EnclosingLimits:
    """The memory and pids limits of the cgroup this process is in (None: unlimited)."""
    if os.path.exists(os.path.join(ROOT, "memory", "memory.limit_in_bytes")) or os.path.isdir(
        os.path.join(ROOT, "pids")
    ):
        return EnclosingLimits(
            _read_limit(_limit_file("memory", "memory.limit_in_bytes")),
            _read_limit(_limit_file("pids", "pids.max")),
            1,
        )
    return EnclosingLimits(
        _read_limit(_limit_file(None, "memory.max")),
        _read_limit(_limit_file(None, "pids.max")),
        2,
    )
