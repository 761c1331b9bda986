"""Classroom density benchmark: many sandboxed kernels at once against as many stock ipykernels.

Models a class working on one machine: N kernels (default 30) of one kind are alive
at the same time, each driven by its own thread as a frontend would drive it
(``run.Kernel``: KernelManager + BlockingKernelClient), each running a typical
student cell mix in a loop (numpy/pandas/matplotlib imported once, small dataframe
operations, a print, now and then a small plot) with a think time between cells.
The sandbox kernels run the classroom preset. Both kinds run in the same invocation,
one after the other (sandbox first, then stock), never both at once.

Reported, for both kinds and as ratios: PSS per kernel (the kernel's whole process
tree, ``run.tree_memory``) idle after start and after the mix; the latency of a
trivial cell (``1+1``) with one kernel alone and its p50/p99 under the N-kernel
load. For the sandbox only, three of the N kernels then turn into noisy neighbours
(a fork bomb, a memory bomb, a CPU spin in four processes) while the others keep
working: their p99 is reported next to the no-bomb value, and the bombs' limits,
the bombers' survival and the clean-up are checked. Stock kernels get no bombs:
they would be real fork and memory bombs on the host.

Before the bombs, the CPU share (``Limits.cpu_share``, 1 core in the classroom
preset) is put to the test: in three equal windows (quiet, spinner, quiet) one
kernel leaves threads spinning after its cell ends (hashing, which releases the
GIL, so four threads could take four cores); the others' p99 in the spinner
window is compared with the difference between the two quiet windows (the
noise). ``--sandbox-arg=--Limits.cpu_share=0`` runs the same without a share.

Usage::

    .venv/bin/python bench/density.py               # full run: 30 + 30 kernels, ~15-20 min
    .venv/bin/python bench/density.py --quick       # 8 + 8 kernels, short windows, ~5 min
    .venv/bin/python bench/density.py --kernels 12 --no-bombs

See bench/README.md ("Classroom density") for what is measured and the caveats.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
from run import (
    MIB,
    Cell,
    Kernel,
    bench_session,
    environment,
    progress,
    result_paths,
    source_digest,
    tree_memory,
)

SANDBOX, STOCK = "sandbox", "stock"
NOKILL = "sandbox_nokill"  # diagnostic: classroom preset with kill_cell_processes off
KERNELSPECS = {SANDBOX: "sandbox-python", NOKILL: "sandbox-python", STOCK: "python3"}
CLASSROOM = ("--SandboxKernelApp.preset=classroom",)
WARN_FORK = ('--Policy.rules={"SKP203":"warn"}',)  # let os.fork() run (with a warning)
EXTRA_ARGS = {SANDBOX: CLASSROOM, NOKILL: (*CLASSROOM, "--Limits.kill_cell_processes=False")}
FORK_BOMBER, MEMORY_BOMBER, CPU_BOMBER = 0, 1, 2  # kernel indexes that turn into bombs
BOMBERS = (FORK_BOMBER, MEMORY_BOMBER, CPU_BOMBER)
SPINNER = 3  # the kernel that leaves threads spinning after its cell (the CPU share)

TRIVIAL = "1+1"
CELL_TIMEOUT_S = 180.0
BOMB_TIMEOUT_S = 240.0
SETUP_CELL = (
    "import numpy as np\n"
    "import pandas as pd\n"
    "import matplotlib.pyplot as plt\n"
    "rng = np.random.default_rng(0)\n"
    "df = pd.DataFrame({'group': rng.integers(0, 8, 5000),\n"
    "                   'x': rng.normal(size=5000), 'y': rng.normal(size=5000)})"
)
# (name, code, weight, expected output type): one is picked after each trivial cell.
WORK_CELLS = (
    ("groupby", "df.groupby('group')[['x', 'y']].agg(['mean', 'std']).round(3)", 3, "result"),
    ("describe", "df['z'] = 2 * df.x + df.y\ndf.describe()", 2, "result"),
    ("print", "print(f'mean of x: {df.x.mean():.4f}, rows: {len(df)}')", 3, "stream"),
    ("numpy", "a = rng.normal(size=(200, 200))\nfloat(np.linalg.norm(a @ a.T))", 2, "result"),
    (
        "plot",
        "fig, ax = plt.subplots(figsize=(4, 3))\nax.hist(df.x, bins=30)\nplt.show()",
        1,
        "png",
    ),
)
FORK_BOMB = "import os\nwhile True: os.fork()"
MEMORY_BOMB = "chunks = []\nwhile True:\n    chunks.append(b'x' * (64 << 20))"
CPU_SPIN = (
    "import os\n"
    "for _ in range(3):  # four processes spinning: more than the machine's two cores\n"
    "    if os.fork() == 0:\n"
    "        break\n"
    "while True:\n"
    "    pass"
)
STATE_CHECK = "len(df)"  # 5000 while the kernel's state survived
# Four threads that outlive their cell; hashing 1 MiB releases the GIL, so together
# they could take four cores. The cell itself returns at once.
THREAD_SPIN = (
    "import hashlib, threading\n"
    "spin_stop = threading.Event()\n"
    "def _spin(buf=b'x' * (1 << 20)):\n"
    "    while not spin_stop.is_set():\n"
    "        hashlib.sha256(buf).digest()\n"
    "for _ in range(4):\n"
    "    threading.Thread(target=_spin, daemon=True).start()\n"
)
THREAD_SPIN_STOP = "spin_stop.set()"
SPIN_WINDOWS = ("quiet1", "spinner", "quiet2")


@dataclass(frozen=True)
class Durations:
    unloaded_cells: int  # trivial cells on one kernel alone
    unloaded_pause_s: float
    stagger_s: float  # the set-up cells start spread over this
    mix_s: float  # the no-bomb load window
    bomb_s: float  # the bomb window
    think_mean_s: float
    think_min_s: float
    think_max_s: float
    settle_s: float  # before PSS readings
    spin_wall_s: float | None  # None: the classroom preset's wall_time_limit_s (60 s)
    share_window_s: float  # each of the quiet, spinner, quiet windows


FULL = Durations(40, 0.5, 20.0, 150.0, 75.0, 6.0, 2.0, 20.0, 5.0, None, 60.0)
QUICK = Durations(12, 0.5, 5.0, 40.0, 30.0, 4.0, 1.0, 10.0, 3.0, 20.0, 20.0)


@dataclass
class Window:
    name: str
    start: float
    end: float

    def remaining(self) -> float:
        return self.end - time.monotonic()


@dataclass
class Slot:
    """One kernel of the N: its index, its think-time generator and its bomb, if any."""

    index: int
    kernel: Kernel
    rng: random.Random
    bomb: str | None = None
    start_s: float = 0.0


@dataclass
class Record:
    """Everything measured for one kind of kernel (and the diagnostic variant)."""

    unloaded_s: list[float] = field(default_factory=list)
    start_s: list[float] = field(default_factory=list)
    start_all_s: float = 0.0
    pss: dict[str, list[int]] = field(default_factory=dict)  # "idle"/"mix" -> bytes per kernel
    uss: dict[str, list[int]] = field(default_factory=dict)
    procs: dict[str, list[int]] = field(default_factory=dict)
    pss_by_depth: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    setup_s: list[float] = field(default_factory=list)
    trivial: list[dict[str, Any]] = field(default_factory=list)  # one per trivial cell
    work: list[dict[str, Any]] = field(default_factory=list)
    cpu_busy: dict[str, float] = field(default_factory=dict)  # window -> host CPU busy fraction
    kernels_cores: dict[str, float] = field(default_factory=dict)  # window -> our trees' CPU / s
    loadavg: dict[str, list[float]] = field(default_factory=dict)
    bombs: list[dict[str, Any]] = field(default_factory=list)
    containment: dict[str, Any] = field(default_factory=dict)
    cgroups: dict[str, Any] = field(default_factory=dict)  # kernels that got no cgroup of their own
    spinner: dict[str, Any] = field(default_factory=dict)  # the CPU-share windows


@dataclass
class State:
    records: dict[str, Record] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    tracked: dict[int, float] = field(default_factory=dict)  # pid -> create_time, our kernels
    cgroup_dirs: set[str] = field(default_factory=set)
    cleanup: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)
        progress(f"  ERROR: {text}")


# -- process trees, cgroups, host CPU ------------------------------------------------------


def tree_procs(pid: int) -> list[tuple[int, psutil.Process]]:
    """(depth, process) for pid and every descendant; depth 0 is the kernel process."""
    out: list[tuple[int, psutil.Process]] = []
    level = [psutil.Process(pid)]
    depth = 0
    while level:
        out.extend((depth, proc) for proc in level)
        children: list[psutil.Process] = []
        for proc in level:
            with contextlib.suppress(psutil.Error):
                children.extend(proc.children())
        level, depth = children, depth + 1
    return out


def track(state: State, kernel: Kernel) -> None:
    """Remember every process of the kernel's tree, to check after shutdown that none is left."""
    with contextlib.suppress(psutil.Error, AssertionError):
        for _, proc in tree_procs(kernel.pid):
            with contextlib.suppress(psutil.Error):
                state.tracked[proc.pid] = proc.create_time()


def cgroup_parents(pid: int | str = "self") -> dict[str, str]:
    """Where a process's sandbox kernel would create its cgroups: controller -> directory."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if not controllers:
                for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
                    if os.path.exists(os.path.join(root, "cgroup.controllers")):
                        out.setdefault("unified", os.path.join(root, path.lstrip("/")))
            for controller in controllers.split(","):
                if controller in {"memory", "pids"}:
                    out[controller] = os.path.join(f"/sys/fs/cgroup/{controller}", path.lstrip("/"))
    return out


def _cgroup_pids(directory: str) -> set[int]:
    with contextlib.suppress(OSError, ValueError):
        return {int(p) for p in Path(directory, "cgroup.procs").read_text().split()}
    return set()


def kernel_cgroups(kernel_pid: int) -> dict[str, str]:
    """The sandbox kernel's own cgroups (sandbox-kernel-<pid>), controller -> directory.

    Only directories that hold a process of the kernel's tree count: a directory of
    the same name can be a stale one, left by an earlier kernel that had the same pid.
    """
    ours = {proc.pid for _, proc in tree_procs(kernel_pid)}
    found = {}
    for controller, parent in cgroup_parents(kernel_pid).items():
        directory = os.path.join(parent, f"sandbox-kernel-{kernel_pid}")
        if _cgroup_pids(directory) & ours:
            found[controller] = directory
    return found


def stale_cgroups() -> list[str]:
    """Empty sandbox-kernel-* cgroups where our kernels create theirs (left by dead kernels)."""
    out = []
    for parent in cgroup_parents().values():
        with contextlib.suppress(OSError):
            for entry in os.scandir(parent):
                if entry.name.startswith("sandbox-kernel-") and not _cgroup_pids(entry.path):
                    out.append(entry.path)
    return sorted(out)


CGROUP_FILES = (
    "memory.limit_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.failcnt",
    "memory.oom_control",
    "memory.max",
    "memory.peak",
    "memory.events",
    "pids.max",
    "pids.current",
    "pids.events",
)


def cgroup_counters(directories: list[str]) -> dict[str, Any]:
    """Limits and how often they were hit, as the kernel's cgroups count them."""
    out: dict[str, Any] = {}
    for directory in directories:
        for fname in CGROUP_FILES:
            with contextlib.suppress(OSError):
                text = Path(directory, fname).read_text().strip()
                if " " in text or "\n" in text:  # "key value" lines
                    for line in text.splitlines():
                        key, _, value = line.partition(" ")
                        if key in {"oom_kill", "max", "oom"}:
                            out[f"{fname}:{key}"] = int(value)
                else:
                    out[fname] = int(text) if text.isdigit() else text
    return out


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a kernel's tree, including children its processes have reaped."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        for _, proc in tree_procs(pid):
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
    return total


class CpuWindow:
    """Host CPU busy fraction between start() and stop() (all processes, not only ours)."""

    def __init__(self) -> None:
        self.t0 = psutil.cpu_times()

    def stop(self) -> float:
        t1 = psutil.cpu_times()
        total = sum(t1) - sum(self.t0)
        idle = (t1.idle + getattr(t1, "iowait", 0)) - (self.t0.idle + getattr(self.t0, "iowait", 0))
        return 1 - idle / total if total > 0 else 0.0


# -- the benchmark -----------------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    """q in (0, 1), inclusive method (interpolates; exact for p50)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def lat_stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": quantile(values, 0.5) * 1e3,
        "p99_ms": quantile(values, 0.99) * 1e3,
        "max_ms": max(values) * 1e3,
        "mean_ms": statistics.fmean(values) * 1e3,
    }


class Density:
    def __init__(self, args: argparse.Namespace, workdir: Path, log: IO[bytes]) -> None:
        self.args, self.workdir, self.log = args, workdir, log
        self.dur: Durations = QUICK if args.quick else FULL
        self.state = State()
        self.live: list[Kernel] = []  # every kernel started and not yet shut down
        self.live_lock = threading.Lock()
        self._cpu = CpuWindow()
        self._kernels_cpu = 0.0

    # -- kernels ---------------------------------------------------------------------------

    def new_kernel(self, role: str, extra: tuple[str, ...] = ()) -> Kernel:
        args = EXTRA_ARGS.get(role, ())
        if role != STOCK:
            args = (*args, *self.args.sandbox_arg)
        kernel = Kernel(role, KERNELSPECS[role], self.workdir, self.log, (*args, *extra))
        with self.live_lock:
            self.live.append(kernel)
        return kernel

    def shutdown(self, kernels: list[Kernel]) -> None:
        """Track every process of the trees, then shut the kernels down gracefully, 8 at a time."""
        for kernel in kernels:
            if kernel.km is not None and kernel.km.has_kernel:
                track(self.state, kernel)
                if kernel.role != STOCK:
                    self.state.cgroup_dirs.update(kernel_cgroups(kernel.pid).values())
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(Kernel.shutdown, kernels))
        with self.live_lock:
            self.live = [k for k in self.live if k not in kernels]

    def shutdown_all(self) -> None:
        with self.live_lock:
            kernels = list(self.live)
        self.shutdown(kernels)

    def execute(self, kernel: Kernel, code: str, timeout: float = CELL_TIMEOUT_S) -> Cell:
        return kernel.execute(code, timeout=timeout)

    # -- phases ----------------------------------------------------------------------------

    def run(self) -> None:
        roles = [r for r in (SANDBOX, STOCK) if r in self.args.kinds]
        for role in roles:
            self.state.records[role] = Record()
        if self.args.diagnose:
            self.state.records[NOKILL] = Record()
        for role in roles:
            progress(f"== {role}: one kernel alone")
            self.guarded(f"{role} unloaded", lambda r=role: self.unloaded(r))
            if role == SANDBOX and self.args.diagnose:
                progress(f"== {NOKILL}: one kernel alone (diagnostic)")
                self.guarded(f"{NOKILL} unloaded", lambda: self.unloaded(NOKILL))
            progress(f"== {role}: {self.args.kernels} kernels at once")
            self.guarded(f"{role} load", lambda r=role: self.loaded(r))

    def guarded(self, name: str, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:  # keep going: report what was measured
            self.state.error(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            self.shutdown_all()

    def unloaded(self, role: str) -> None:
        """Trivial-cell latency with one kernel alone, in the same state as under load."""
        rec = self.state.records[role]
        kernel = self.new_kernel(role)
        kernel.start()
        self.check_ok(kernel, self.execute(kernel, SETUP_CELL), "setup")
        for _, code, _, expect in WORK_CELLS:  # warm up: first-run costs of each kind of cell
            self.check_work(kernel, self.execute(kernel, code), expect)
        for _ in range(self.dur.unloaded_cells):
            time.sleep(self.dur.unloaded_pause_s)
            cell = self.execute(kernel, TRIVIAL)
            if self.trivial_ok(cell):
                rec.unloaded_s.append(cell.elapsed_s)
            else:
                self.state.error(f"{role} unloaded: trivial cell failed: {cell.reply}")
        stats = lat_stats(rec.unloaded_s)
        progress(f"  p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms")
        self.shutdown([kernel])

    def loaded(self, role: str) -> None:
        rec, dur, n = self.state.records[role], self.dur, self.args.kernels
        bombs = role == SANDBOX and self.args.bombs
        slots = []
        for index in range(n):
            extra: tuple[str, ...] = ()
            bomb = None
            if bombs and index in BOMBERS:
                bomb = {FORK_BOMBER: "fork", MEMORY_BOMBER: "memory", CPU_BOMBER: "cpu"}[index]
                if bomb in {"fork", "cpu"}:
                    extra = WARN_FORK
                if bomb == "cpu" and dur.spin_wall_s is not None:
                    extra = (*extra, f"--Limits.wall_time_limit_s={dur.spin_wall_s:g}")
            rng = random.Random(self.args.seed * 1000 + index)  # the same schedule for both kinds
            slots.append(Slot(index, self.new_kernel(role, extra), rng, bomb))

        # Start-up, at most --start-batch kernels starting at any time.
        t0 = time.perf_counter()

        def start(slot: Slot) -> None:
            slot.start_s = slot.kernel.start()

        self.parallel(slots, start, workers=self.args.start_batch, what="start")
        rec.start_all_s = time.perf_counter() - t0
        rec.start_s = [s.start_s for s in slots]
        progress(f"  {n} kernels started in {rec.start_all_s:.1f} s")
        if role != STOCK:
            self.check_cgroups(slots, rec)
        time.sleep(dur.settle_s)
        self.memory(slots, rec, "idle")

        # The first cell of every student (imports), spread over the stagger time.
        def setup(slot: Slot) -> None:
            time.sleep(slot.rng.uniform(0, dur.stagger_s))
            cell = self.execute(slot.kernel, SETUP_CELL)
            self.check_ok(slot.kernel, cell, "setup")
            rec.setup_s.append(cell.elapsed_s)

        self.parallel(slots, setup, what="setup")
        progress(f"  set-up cells done; mix for {dur.mix_s:g} s")

        window = self.window(slots, rec, "mix", dur.mix_s)
        self.parallel(slots, lambda s: self.mix(s, rec, window), what="mix")
        self.close_window(slots, rec, window)
        time.sleep(dur.settle_s)
        self.memory(slots, rec, "mix")

        if role == SANDBOX and self.args.spinner and n > SPINNER:
            self.share_windows(slots, rec)

        if bombs and n > len(BOMBERS):
            progress(f"  bombs for {dur.bomb_s:g} s")
            window = self.window(slots, rec, "bombs", dur.bomb_s)

            def step(slot: Slot) -> None:
                if slot.bomb is None:
                    self.mix(slot, rec, window)
                else:
                    self.bomb(slot, rec, window)

            self.parallel(slots, step, what="bombs")
            self.close_window(slots, rec, window)
            self.contained(slots, rec)
        for slot in slots:
            track(self.state, slot.kernel)

    def share_windows(self, slots: list[Slot], rec: Record) -> None:
        """Quiet, spinner, quiet: the others' latency while one kernel's threads spin."""
        spinner = slots[SPINNER]
        others = [s for s in slots if s.index != SPINNER]
        for name in SPIN_WINDOWS:
            progress(f"  CPU share: {name} window for {self.dur.share_window_s:g} s")
            window = self.window(slots, rec, name, self.dur.share_window_s)
            before = tree_cpu_s(spinner.kernel.pid)
            if name == "spinner":
                self.check_ok(spinner.kernel, self.execute(spinner.kernel, THREAD_SPIN), "spin")
            self.parallel(others, lambda s, w=window: self.mix(s, rec, w), what=name)
            used = tree_cpu_s(spinner.kernel.pid) - before
            if name == "spinner":
                self.execute(spinner.kernel, THREAD_SPIN_STOP)
            self.close_window(slots, rec, window)
            rec.spinner[f"{name}_spinner_cores"] = used / (time.monotonic() - window.start)

    def check_cgroups(self, slots: list[Slot], rec: Record) -> None:
        """Whether each sandbox kernel got its own memory and pids cgroup (else: rlimits only)."""
        without = []
        for slot in slots:
            found = kernel_cgroups(slot.kernel.pid)
            if not ({"memory", "pids"} <= found.keys() or "unified" in found):
                stale = [
                    d
                    for d in (
                        os.path.join(p, f"sandbox-kernel-{slot.kernel.pid}")
                        for p in cgroup_parents(slot.kernel.pid).values()
                    )
                    if os.path.isdir(d) and d not in found.values()
                ]
                without.append(
                    {
                        "kernel": slot.index,
                        "pid": slot.kernel.pid,
                        "has": sorted(found),
                        "stale": stale,
                    }
                )
        rec.cgroups = {"kernels": len(slots), "without_own_cgroups": without}
        if without:
            progress(f"  {len(without)} sandbox kernel(s) without their own cgroups: {without}")

    def parallel(
        self, slots: list[Slot], fn: Callable[[Slot], None], what: str, workers: int = 0
    ) -> None:
        def guarded(slot: Slot) -> None:
            try:
                fn(slot)
            except Exception as exc:
                self.state.error(f"{what} kernel {slot.index}: {type(exc).__name__}: {exc}")

        with ThreadPoolExecutor(max_workers=workers or len(slots)) as pool:
            list(pool.map(guarded, slots))

    def window(self, slots: list[Slot], rec: Record, name: str, seconds: float) -> Window:
        self._kernels_cpu = sum(tree_cpu_s(s.kernel.pid) for s in slots)
        self._cpu = CpuWindow()
        rec.loadavg[f"{name}_start"] = list(os.getloadavg())
        now = time.monotonic()
        return Window(name, now, now + seconds)

    def close_window(self, slots: list[Slot], rec: Record, window: Window) -> None:
        """Host CPU busy fraction and the cores our kernels used, over the window."""
        elapsed = time.monotonic() - window.start
        rec.cpu_busy[window.name] = self._cpu.stop()
        used = sum(tree_cpu_s(s.kernel.pid) for s in slots) - self._kernels_cpu
        rec.kernels_cores[window.name] = used / elapsed
        rec.loadavg[f"{window.name}_end"] = list(os.getloadavg())

    def memory(self, slots: list[Slot], rec: Record, when: str) -> None:
        for slot in slots:
            kernel = slot.kernel
            if kernel.km is None or not kernel.km.is_alive():
                self.state.error(f"{kernel.role} kernel {slot.index} dead at PSS '{when}'")
                continue
            track(self.state, kernel)
            mem = tree_memory(kernel.pid)
            if mem.denied:
                self.state.error(f"{kernel.role} kernel {slot.index}: {mem.denied} unreadable")
            rec.pss.setdefault(when, []).append(mem.pss)
            rec.uss.setdefault(when, []).append(mem.uss)
            rec.procs.setdefault(when, []).append(mem.read)
            by_depth = rec.pss_by_depth.setdefault(when, {})
            for depth, proc in tree_procs(kernel.pid):
                with contextlib.suppress(psutil.Error):
                    pss = proc.memory_full_info().pss
                    by_depth.setdefault(str(depth), []).append(pss)
        pss = rec.pss.get(when, [])
        if pss:
            progress(f"  PSS {when}: median {statistics.median(pss) / MIB:.1f} MiB per kernel")

    # -- what a student does -----------------------------------------------------------------

    def think(self, slot: Slot) -> float:
        dur = self.dur
        return min(
            dur.think_max_s, max(dur.think_min_s, slot.rng.expovariate(1 / dur.think_mean_s))
        )

    def mix(self, slot: Slot, rec: Record, window: Window) -> None:
        names = [c[0] for c in WORK_CELLS]
        weights = [c[2] for c in WORK_CELLS]
        kernel = slot.kernel
        while True:
            pause = self.think(slot)
            if pause >= window.remaining():
                break
            time.sleep(pause)
            sent = time.monotonic() - window.start
            try:
                cell = self.execute(kernel, TRIVIAL)
                ok, elapsed = self.trivial_ok(cell), cell.elapsed_s
            except TimeoutError:
                ok, elapsed = False, CELL_TIMEOUT_S
            rec.trivial.append(
                {"window": window.name, "kernel": slot.index, "t": sent, "s": elapsed, "ok": ok}
            )
            if not ok:
                self.state.error(f"{kernel.role} kernel {slot.index}: trivial cell failed")
            name = slot.rng.choices(names, weights)[0]
            _, code, _, expect = WORK_CELLS[names.index(name)]
            try:
                cell = self.execute(kernel, code)
                elapsed, ok = cell.elapsed_s, self.check_work(kernel, cell, expect)
            except TimeoutError:
                elapsed, ok = CELL_TIMEOUT_S, False
            rec.work.append(
                {"window": window.name, "kernel": slot.index, "cell": name, "s": elapsed, "ok": ok}
            )

    def bomb(self, slot: Slot, rec: Record, window: Window) -> None:
        """Run the slot's bomb until the window ends (the CPU spin once: the wall limit ends it)."""
        code = {"fork": FORK_BOMB, "memory": MEMORY_BOMB, "cpu": CPU_SPIN}[slot.bomb or ""]
        kernel = slot.kernel
        while True:
            t = time.monotonic() - window.start
            cell = self.execute(kernel, code, timeout=BOMB_TIMEOUT_S)
            notices = [
                line
                for line in (cell.stream_text("stderr") + cell.stream_text("stdout")).splitlines()
                if line.startswith("[sandbox]")
            ]
            after = self.execute(kernel, TRIVIAL)
            state_cell = self.execute(kernel, STATE_CHECK)
            results = state_cell.of_type("execute_result")
            kept = bool(results) and results[0]["content"]["data"].get("text/plain") == "5000"
            run = {
                "bomb": slot.bomb,
                "kernel": slot.index,
                "t": t,
                "s": cell.elapsed_s,
                "status": cell.reply.get("status"),
                "ename": cell.reply.get("ename"),
                "evalue": str(cell.reply.get("evalue", ""))[:300],
                "notices": notices,
                "next_cell_ok": self.trivial_ok(after),
                "next_cell_notices": [
                    line for line in after.stream_text("stderr").splitlines() if "[sandbox]" in line
                ],
                "state_kept": kept,
            }
            rec.bombs.append(run)
            progress(
                f"  {slot.bomb} bomb: {cell.elapsed_s:.1f} s, {run['ename']}; next cell ok: "
                f"{run['next_cell_ok']}; state kept: {kept}"
            )
            if not kept:  # the executor was restarted empty: give the next run the same state
                self.execute(kernel, SETUP_CELL)
            # The CPU spin runs once (the wall-time limit ends it); the others again while
            # another run of the same length still fits in the window.
            if slot.bomb == "cpu" or window.remaining() < max(5.0, cell.elapsed_s):
                return
            time.sleep(1.0)

    def contained(self, slots: list[Slot], rec: Record) -> None:
        """After the bombs: kernels alive, their trees back to normal, the cgroup counters."""
        out: dict[str, Any] = {}
        time.sleep(2.0)
        neighbour = next(s for s in slots if s.bomb is None)
        for slot in [*(s for s in slots if s.bomb), neighbour]:
            kernel = slot.kernel
            alive = kernel.km is not None and kernel.km.is_alive()
            label = slot.bomb or f"neighbour {slot.index}"
            entry: dict[str, Any] = {"kernel": slot.index, "alive": alive}
            if alive:
                cell = self.execute(kernel, TRIVIAL)
                entry["trivial_ok"] = self.trivial_ok(cell)
                entry["procs"] = len(tree_procs(kernel.pid))
                entry["cgroup"] = cgroup_counters(list(kernel_cgroups(kernel.pid).values()))
            out[label] = entry
        errors = [w for w in rec.work if w["window"] == "bombs" and not w["ok"]]
        trivial_bad = [t for t in rec.trivial if t["window"] == "bombs" and not t["ok"]]
        alive = [
            s.index for s in slots if s.bomb is None and s.kernel.km and s.kernel.km.is_alive()
        ]
        out["neighbours"] = {
            "alive": len(alive),
            "of": len(slots) - len(BOMBERS),
            "failed_work_cells": len(errors),
            "failed_trivial_cells": len(trivial_bad),
        }
        rec.containment = out

    # -- checks --------------------------------------------------------------------------------

    @staticmethod
    def trivial_ok(cell: Cell) -> bool:
        results = cell.of_type("execute_result")
        return (
            cell.reply.get("status") == "ok"
            and len(results) == 1
            and results[0]["content"]["data"].get("text/plain") == "2"
        )

    def check_ok(self, kernel: Kernel, cell: Cell, what: str) -> bool:
        if cell.reply.get("status") != "ok":
            self.state.error(f"{kernel.role}: {what} cell failed: {cell.reply.get('ename')}")
            return False
        return True

    def check_work(self, kernel: Kernel, cell: Cell, expect: str) -> bool:
        if not self.check_ok(kernel, cell, "work"):
            return False
        if expect == "result":
            return bool(cell.of_type("execute_result"))
        if expect == "stream":
            return "mean of x" in cell.stream_text()
        return any("image/png" in m["content"]["data"] for m in cell.of_type("display_data"))


# -- clean-up check ------------------------------------------------------------------------------


def leftovers(state: State, grace_s: float = 10.0) -> dict[str, Any]:
    """Processes of our kernels still alive after shutdown (same pid, same start time)."""
    deadline = time.monotonic() + grace_s
    alive: list[dict[str, Any]] = []
    while True:
        alive = []
        for pid, created in state.tracked.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append({"pid": pid, "cmdline": " ".join(proc.cmdline())[:200]})
        cgroups = sorted(d for d in state.cgroup_dirs if os.path.isdir(d))
        if (not alive and not cgroups) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    killed = []
    for entry in alive:  # ours, by pid: end them so the machine is left clean
        with contextlib.suppress(OSError):
            os.kill(entry["pid"], signal.SIGKILL)
            killed.append(entry["pid"])
    return {
        "tracked_processes": len(state.tracked),
        "left_alive": alive,
        "killed": killed,
        "cgroups_tracked": len(state.cgroup_dirs),
        "cgroups_left": cgroups,
    }


# -- summary and output ---------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(state: State, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role, rec in state.records.items():
        summ: dict[str, Any] = {"unloaded": lat_stats(rec.unloaded_s)}
        for when, values in rec.pss.items():
            summ[f"pss_{when}_mib"] = {
                "median": statistics.median(values) / MIB,
                "min": min(values) / MIB,
                "max": max(values) / MIB,
                "total_gib": sum(values) / MIB / 1024,
                "n": len(values),
            }
            summ[f"uss_{when}_mib_median"] = statistics.median(rec.uss[when]) / MIB
            summ[f"procs_{when}_median"] = statistics.median(rec.procs[when])
            summ[f"pss_{when}_by_depth_mib"] = {
                depth: statistics.median(v) / MIB for depth, v in rec.pss_by_depth[when].items()
            }
        mix = [t["s"] for t in rec.trivial if t["window"] == "mix" and t["ok"]]
        summ["loaded"] = lat_stats(mix)
        others = [t for t in rec.trivial if t["kernel"] not in BOMBERS and t["ok"]]
        summ["neighbours_no_bomb"] = lat_stats([t["s"] for t in others if t["window"] == "mix"])
        summ["neighbours_bombs"] = lat_stats([t["s"] for t in others if t["window"] == "bombs"])
        if rec.spinner:
            share = {
                name: lat_stats([t["s"] for t in rec.trivial if t["window"] == name and t["ok"]])
                for name in SPIN_WINDOWS
            }
            q1, sp, q2 = (share[name].get("p99_ms") for name in SPIN_WINDOWS)
            if q1 is not None and sp is not None and q2 is not None:
                share["noise_p99_ms"] = abs(q1 - q2)
                share["spinner_effect_p99_ms"] = sp - (q1 + q2) / 2
            share["spinner_cores"] = rec.spinner
            summ["cpu_share_windows"] = share
        if rec.setup_s:
            summ["setup_cell"] = lat_stats(rec.setup_s)
        if rec.start_s:
            summ["start"] = lat_stats(rec.start_s) | {"all_s": rec.start_all_s}
        summ["work_cells"] = {
            "n": len(rec.work),
            "failed": sum(not w["ok"] for w in rec.work),
            "by_cell_p50_ms": {
                name: statistics.median(v) * 1e3
                for name in {w["cell"] for w in rec.work}
                if (v := [w["s"] for w in rec.work if w["cell"] == name and w["window"] == "mix"])
            },
        }
        summ["loaded_cells_over_1_s"] = sum(s >= 1.0 for s in mix)
        summ["unloaded_cells_over_1_s"] = sum(s >= 1.0 for s in rec.unloaded_s)
        summ["cpu_busy"] = rec.cpu_busy
        summ["kernels_cores"] = rec.kernels_cores
        out[role] = summ

    sb, st = out.get(SANDBOX, {}), out.get(STOCK, {})
    targets: dict[str, Any] = {}
    idle_ratio = ratio(
        sb.get("pss_idle_mib", {}).get("median"), st.get("pss_idle_mib", {}).get("median")
    )
    targets["pss_idle_ratio"] = {
        "value": idle_ratio,
        "target": "<= 1.5",
        "met": idle_ratio is not None and idle_ratio <= 1.5,
    }
    out["pss_mix_ratio"] = ratio(
        sb.get("pss_mix_mib", {}).get("median"), st.get("pss_mix_mib", {}).get("median")
    )
    for role in (SANDBOX, STOCK):
        summ = out.get(role, {})
        loaded, unloaded = summ.get("loaded", {}), summ.get("unloaded", {})
        value = ratio(loaded.get("p99_ms"), unloaded.get("p99_ms"))
        targets[f"{role}_p99_loaded_vs_unloaded"] = {
            "value": value,
            "vs_unloaded_p50": ratio(loaded.get("p99_ms"), unloaded.get("p50_ms")),
            "target": "<= 2",
            "met": value is not None and value <= 2.0,
        }
    out["targets"] = targets
    return out


def _f(value: float | None, fmt: str = "8.1f") -> str:
    if value is None:
        return f"{'-':>{len(format(0.0, fmt))}}"
    return format(value, fmt)


def report(summary: dict[str, Any], state: State, meta: dict[str, Any]) -> str:
    n = meta["args"]["kernels"]
    sb, st = summary.get(SANDBOX, {}), summary.get(STOCK, {})
    lines = [
        f"Classroom density: {n} kernels of each kind at once on {meta['cpus']} CPUs; "
        "sandbox = sandbox-python --SandboxKernelApp.preset=classroom"
        + "".join(f" {arg}" for arg in meta["args"]["sandbox_arg"])
        + ", stock = python3",
        "",
        f"{'PSS per kernel (whole tree), MiB':<44}{'sandbox':>9}{'stock':>9}{'ratio':>8}",
    ]
    for when, label in (("idle", "idle after start"), ("mix", "after the cell mix")):
        a, b = sb.get(f"pss_{when}_mib", {}), st.get(f"pss_{when}_mib", {})
        lines.append(
            f"  {label + ' (median)':<42}{_f(a.get('median'), '9.1f')}{_f(b.get('median'), '9.1f')}"
            f"{_f(ratio(a.get('median'), b.get('median')), '8.2f')}"
        )
        lines.append(
            f"  {'  min-max':<42}{_f(a.get('min'), '4.0f')}-{_f(a.get('max'), '4.0f')}"
            f"{_f(b.get('min'), '4.0f')}-{_f(b.get('max'), '4.0f')}"
        )
        lines.append(
            f"  {f'  total for {n} kernels, GiB':<42}{_f(a.get('total_gib'), '9.2f')}"
            f"{_f(b.get('total_gib'), '9.2f')}"
        )
    for when in ("idle", "mix"):
        depth = sb.get(f"pss_{when}_by_depth_mib")
        if depth:
            parts = ", ".join(f"d{d} {v:.1f}" for d, v in sorted(depth.items()))
            lines.append(
                f"  sandbox PSS by tree depth, {when} (median MiB; d0 kernel, d1 launcher, "
                f"d2 sandbox init, d3 executor, d4 snapshot): {parts}"
            )
    lines += [
        "",
        f"{'trivial cell `1+1`, ms':<44}{'sandbox':>9}{'stock':>9}{'ratio':>8}",
    ]
    rows = (
        ("unloaded p50 (one kernel alone)", "unloaded", "p50_ms"),
        ("unloaded p99", "unloaded", "p99_ms"),
        (f"under {n}-kernel load p50", "loaded", "p50_ms"),
        (f"under {n}-kernel load p99", "loaded", "p99_ms"),
        ("under load max", "loaded", "max_ms"),
    )
    for label, key, stat in rows:
        a, b = sb.get(key, {}).get(stat), st.get(key, {}).get(stat)
        lines.append(f"  {label:<42}{_f(a, '9.1f')}{_f(b, '9.1f')}{_f(ratio(a, b), '8.2f')}")
    counts = (
        f"  samples: unloaded {sb.get('unloaded', {}).get('n', 0)} / "
        f"{st.get('unloaded', {}).get('n', 0)}, loaded {sb.get('loaded', {}).get('n', 0)} / "
        f"{st.get('loaded', {}).get('n', 0)}"
    )
    lines.append(counts)
    nk = summary.get(NOKILL, {}).get("unloaded", {})
    if nk.get("n"):
        lines.append(
            f"  diagnostic: sandbox classroom with --Limits.kill_cell_processes=False, unloaded: "
            f"p50 {nk['p50_ms']:.1f} ms, p99 {nk['p99_ms']:.1f} ms"
        )
    lines.append(
        f"  sandbox trivial cells taking >= 1 s: unloaded {sb.get('unloaded_cells_over_1_s', 0)}/"
        f"{sb.get('unloaded', {}).get('n', 0)}, loaded {sb.get('loaded_cells_over_1_s', 0)}/"
        f"{sb.get('loaded', {}).get('n', 0)}"
    )
    lines.append("")
    lines.append("targets:")
    for name, t in summary["targets"].items():
        extra = ""
        if "vs_unloaded_p50" in t:
            extra = f" (p99 loaded / p50 unloaded: {_f(t['vs_unloaded_p50'], '.2f')}x)"
        verdict = "MET" if t["met"] else "MISSED"
        lines.append(
            f"  {name:<36} {_f(t['value'], '.2f')}x  target {t['target']}x  {verdict}{extra}"
        )

    share = sb.get("cpu_share_windows")
    if share:
        lines += ["", f"CPU share (sandbox; kernel {SPINNER} leaves 4 hashing threads spinning):"]
        for name in SPIN_WINDOWS:
            w = share.get(name, {})
            lines.append(
                f"  {name:<8} others' trivial cells p50 {_f(w.get('p50_ms'), '.1f')}, p99 "
                f"{_f(w.get('p99_ms'), '.1f')} ms (n={w.get('n', 0)}); the spinner kernel used "
                f"{share['spinner_cores'].get(f'{name}_spinner_cores', 0):.2f} cores"
            )
        lines.append(
            f"  spinner effect on p99: {_f(share.get('spinner_effect_p99_ms'), '.1f')} ms; "
            f"noise (quiet1 vs quiet2): {_f(share.get('noise_p99_ms'), '.1f')} ms"
        )

    nb, bb = sb.get("neighbours_no_bomb", {}), sb.get("neighbours_bombs", {})
    if bb.get("n"):
        lines += [
            "",
            f"noisy neighbours (sandbox; the {n - len(BOMBERS)} other kernels' trivial cells, ms):",
            f"  no bombs: p50 {_f(nb.get('p50_ms'), '.1f')}, p99 {_f(nb.get('p99_ms'), '.1f')}, "
            f"max {_f(nb.get('max_ms'), '.1f')} (n={nb.get('n')})",
            f"  bombs:    p50 {_f(bb.get('p50_ms'), '.1f')}, p99 {_f(bb.get('p99_ms'), '.1f')}, "
            f"max {_f(bb.get('max_ms'), '.1f')} (n={bb.get('n')}); p99 ratio "
            f"{_f(ratio(bb.get('p99_ms'), nb.get('p99_ms')), '.2f')}x",
        ]
        rec = state.records[SANDBOX]
        for run in rec.bombs:
            lines.append(
                f"  {run['bomb']:>6} bomb at {run['t']:5.1f} s: {run['s']:5.1f} s, "
                f"{run['ename']}; next cell ok {run['next_cell_ok']}, state kept "
                f"{run['state_kept']}"
                + (f"; notices: {len(run['notices'])}" if run["notices"] else "")
            )
        for label, entry in rec.containment.items():
            lines.append(f"  {label}: {json.dumps(entry)}")
        busy, cores = rec.cpu_busy, rec.kernels_cores
        lines.append(
            f"  host CPU busy: mix {busy.get('mix', 0):.0%}, bombs {busy.get('bombs', 0):.0%}; "
            f"CPU used by the {n} sandbox kernels: mix {cores.get('mix', 0):.2f} cores, "
            f"bombs {cores.get('bombs', 0):.2f} cores"
        )
    lines.append("")
    for role, summ in ((SANDBOX, sb), (STOCK, st)):
        start, setup = summ.get("start", {}), summ.get("setup_cell", {})
        work = summ.get("work_cells", {})
        lines.append(
            f"{role}: {n} started in {_f(start.get('all_s'), '.1f')} s (<= "
            f"{meta['args']['start_batch']} starting at once; p50 {_f(start.get('p50_ms'), '.0f')}"
            f" ms each); import cell under the storm p50 {_f(setup.get('p50_ms'), '.0f')} ms, "
            f"max {_f(setup.get('max_ms'), '.0f')} ms; {work.get('n', 0)} work cells, "
            f"{work.get('failed', 0)} failed; in the mix the {n} kernels used "
            f"{summ.get('kernels_cores', {}).get('mix', 0):.2f} cores, host CPU busy "
            f"{summ.get('cpu_busy', {}).get('mix', 0):.0%}"
        )
    cg = state.records.get(SANDBOX, Record()).cgroups
    if cg:
        without = cg["without_own_cgroups"]
        lines.append(
            f"sandbox kernels with their own memory+pids cgroup: {cg['kernels'] - len(without)}"
            f"/{cg['kernels']}"
            + "".join(
                f"; kernel {w['kernel']} (pid {w['pid']}) has {w['has'] or 'none'}"
                + (f", a stale directory of its name exists: {w['stale']}" if w["stale"] else "")
                for w in without
            )
        )
    stale0, stale1 = meta.get("stale_cgroups_start", []), meta.get("stale_cgroups_end", [])
    lines.append(
        f"empty sandbox-kernel-* cgroups where kernels create theirs (left by earlier kernels): "
        f"{len(stale0)} before the run, {len(stale1)} after"
    )
    clean = state.cleanup
    lines.append(
        f"clean-up: {clean.get('tracked_processes', 0)} kernel processes tracked, "
        f"{len(clean.get('left_alive', []))} left alive after shutdown"
        + (f" (killed: {clean['killed']})" if clean.get("killed") else "")
        + f"; {clean.get('cgroups_tracked', 0)} kernel cgroups, "
        f"{len(clean.get('cgroups_left', []))} left"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", type=int, help="kernels of each kind at once (default 30)")
    parser.add_argument("--quick", action="store_true", help="8 kernels, short windows")
    parser.add_argument("--start-batch", type=int, default=5, help="kernels starting at once")
    parser.add_argument("--no-bombs", dest="bombs", action="store_false", help="skip the bombs")
    parser.add_argument(
        "--no-spinner",
        dest="spinner",
        action="store_false",
        help="skip the CPU-share windows (one kernel's threads spinning)",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=[SANDBOX, STOCK],
        default=[SANDBOX, STOCK],
        help="which kinds of kernel to run (default both)",
    )
    parser.add_argument(
        "--no-diagnose",
        dest="diagnose",
        action="store_false",
        help="skip the unloaded kill_cell_processes=False diagnostic",
    )
    parser.add_argument(
        "--sandbox-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra kernel argument for every sandbox kernel (repeat), after the preset",
    )
    parser.add_argument("--seed", type=int, default=1, help="think times and cell choices")
    parser.add_argument("--json", type=Path, help="default bench/results/density-<date>.json")
    args = parser.parse_args(argv)
    if args.kernels is None:
        args.kernels = 8 if args.quick else 30
    if args.kernels < 1 or args.start_batch < 1:
        parser.error("--kernels and --start-batch must be at least 1")
    if args.bombs and args.kernels <= len(BOMBERS):
        progress(f"note: bombs need more than {len(BOMBERS)} kernels; skipping them")
        args.bombs = False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp, json_path, log_path = result_paths(args.json, "density")
    meta = environment(args) | {"started": stamp, "loadavg_start": os.getloadavg()}
    meta["stale_cgroups_start"] = stale_cgroups()
    if os.geteuid() != 0:
        progress("warning: not root; PSS of sandboxed processes may be unreadable")
    t0 = time.perf_counter()
    with bench_session("density", log_path) as (workdir, log):
        bench = Density(args, workdir, log)
        meta["durations"] = vars(bench.dur)
        try:
            bench.run()
        except KeyboardInterrupt:
            bench.state.errors.append("interrupted")
        finally:
            bench.shutdown_all()
            bench.state.cleanup = leftovers(bench.state)
    state = bench.state
    meta |= {
        "loadavg_end": os.getloadavg(),
        "wall_s": round(time.perf_counter() - t0, 1),
        "source_digest_end": source_digest(),
        "stale_cgroups_end": stale_cgroups(),
    }
    summary = summarize(state, args)
    data = {
        "meta": meta,
        "summary": summary,
        "records": {role: vars(rec) for role, rec in state.records.items()},
        "cleanup": state.cleanup,
        "errors": state.errors,
    }
    json_path.write_text(json.dumps(data, indent=1, default=str))
    print(report(summary, state, meta))
    print(
        f"load average {meta['loadavg_start'][0]:.2f} -> {meta['loadavg_end'][0]:.2f}; "
        f"{meta['wall_s']:.0f} s; raw numbers: {json_path}; kernel logs: {log_path}"
    )
    if meta["source_digest_start"] != meta["source_digest_end"]:
        print("WARNING: sandbox_kernel sources changed during the run")
    for error in state.errors:
        print(f"ERROR: {error}")
    if "interrupted" in state.errors:
        return 130
    clean = state.cleanup
    return 1 if state.errors or clean["left_alive"] or clean["cgroups_left"] else 0


if __name__ == "__main__":
    sys.exit(main())
