"""What the per-cell rollback snapshot costs: sandbox with rollback on, off, and stock ipykernel.

Three kernels run side by side, driven through jupyter_client as bench/run.py drives
them (its ``Kernel`` and helpers are reused): ``sandbox-python`` as configured by
default (rollback on: the executor forks a copy-on-write snapshot after every
cell), ``sandbox-python --Limits.rollback=False``, and stock ``python3``. For each
kind of live state (none, a 1 GiB numpy array, 1 GiB of small Python objects) the
three kernels get the same state and then the same interleaved trivial cells
(the order of the three rotates on every repetition). It reports round trips,
when the next snapshot is in place, the executor's minor page faults, the
tree's PSS/USS, and what touching every page of the state costs with a snapshot
holding the old pages. See bench/README.md ("Rollback snapshot cost").

Usage::

    .venv/bin/python bench/rollback.py                 # full run (about 6-10 minutes)
    .venv/bin/python bench/rollback.py --quick         # smoke run (about 3 minutes)
    .venv/bin/python bench/rollback.py --states none,numpy --reps 60
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import os
import re
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil
from run import (
    MIB,
    Cell,
    Kernel,
    Results,
    _num,
    bench_session,
    environment,
    p10,
    progress,
    result_paths,
    source_digest,
    tree_memory,
    write_json,
)

ON, OFF, STOCK = "on", "off", "stock"
ROLES = (ON, OFF, STOCK)
# Every rotation of the three, forwards and backwards: each kernel goes first, second
# and third equally often, after each of the other two.
ORDERS = ((ON, OFF, STOCK), (OFF, STOCK, ON), (STOCK, ON, OFF),
          (STOCK, OFF, ON), (OFF, ON, STOCK), (ON, STOCK, OFF))  # fmt: skip
CELLS = ("pass", "1+1")
MODES = ("idle", "b2b")
MODE_LABEL = {"idle": "after idle", "b2b": "back-to-back"}
WARM_CELLS = 4
PAUSE_S = 0.1  # "after idle": the pause before the cell, once the snapshot is in place
SETTLE_TIMEOUT_S = 30.0
HOLD_S = 1.0  # the touch cell sleeps this long after its marker: memory is sampled then
FORK_REPS = 10  # plus one untimed: the first fork in a process is slower
RATIO_TARGET = 1.25  # trivial cell, no state: rollback on / stock
DELTA_TARGET_MS = 5.0  # trivial cell, 1 GiB state: rollback on - stock
MARKER_RE = re.compile(r"(\w+)_s=([0-9.eE+-]+)")

NUMPY_SETUP = "import numpy as np\nbig = np.ones(1024**3 // 8)  # 1 GiB of float64, all written"
# 15M distinct str of 1-8 digits: 64-byte objects plus an 8-byte list slot, about 1 GiB,
# all in 4 KiB pages (obmalloc arenas, no huge pages).
PYOBJ_SETUP = "small = [str(i) for i in range(15_000_000)]"
FORK_CELL = """\
import os as _os, time as _time
_t0 = _time.perf_counter()
_pid = _os.fork()
if _pid == 0:
    _os._exit(0)
_fork_s = _time.perf_counter() - _t0
_os.waitpid(_pid, 0)
print(f"fork_s={_fork_s!r}")"""


def touch_cell(statement: str) -> str:
    """Time the statement in the kernel, print a marker, then hold (memory is sampled then)."""
    return (
        "import time as _time\n"
        "_t0 = _time.perf_counter()\n"
        f"{statement}\n"
        "print(f'touch_s={_time.perf_counter() - _t0!r}', flush=True)\n"
        f"_time.sleep({HOLD_S})"
    )


@dataclass(frozen=True)
class State:
    """Live state the three kernels hold while their trivial cells are timed."""

    key: str
    label: str
    setup: str | None = None
    touch: str | None = None  # a statement that writes every page of the state
    touch_label: str = ""
    retime_after_touch: bool = False  # time the trivial cells again after the touches


STATES = (
    State("none", "no state"),
    State(
        "numpy",
        "1 GiB numpy array",
        NUMPY_SETUP,
        "big += 1",
        "`big += 1` (writes every page)",
        retime_after_touch=True,
    ),
    State(
        "pyobj",
        "1 GiB in 15M str",
        PYOBJ_SETUP,
        "_n = sum(map(len, small))",
        "`sum(map(len, small))` (reads every object)",
    ),
)
STATE_KEYS = tuple(s.key for s in STATES)
AFTER_TOUCH = "numpy+touched"
# Short names for the table (the legend above it spells them out).
PHASE_LABEL = {
    "none": "no state",
    "numpy": "numpy 1G",
    AFTER_TOUCH: "numpy 1G split",
    "pyobj": "str 1G",
}
LEGEND = (
    "states: no state = fresh kernel; numpy 1G = `big = np.ones(1024**3 // 8)` (1 GiB, huge\n"
    "pages); numpy 1G split = the same kernels after the `big += 1` rounds (with rollback on,\n"
    "copy-on-write split the executor's huge pages into 4 KiB ones); str 1G = 15M small str\n"
    "objects (about 1 GiB in 4 KiB pages)."
)


# -- what one copy-on-write fault costs on this machine ---------------------------------


def cow_fault_calibration(results: Results, reps: int = 15, pages: int = 1000) -> None:
    """Time the first write to each of ``pages`` 4 KiB pages in this process.

    ``calib_copy_s``: while a forked child shares them (each write copies a page: what an
    executor's writes cost while its snapshot is alive). ``calib_reuse_s``: after the
    child is gone (write-protected still, but nothing to copy). ``calib_none_s``: pages
    already written since (no fault: the loop itself). Run before any kernel or client
    thread exists, so forking here is safe; the executor also pays its cgroup's charge.
    """
    size = pages * mmap.PAGESIZE
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # 4 KiB pages
    buf.write(b"\1" * size)
    offsets = range(0, size, mmap.PAGESIZE)

    def write_all(value: int) -> float:
        t0 = time.perf_counter()
        for off in offsets:
            buf[off] = value
        return (time.perf_counter() - t0) / pages

    try:
        for rep in range(reps):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the sharer: wait until the parent is done, touch nothing
                os.close(write_end)
                os.read(read_end, 1)
                os._exit(0)
            os.close(read_end)
            results.add("calib_copy_s", "host", write_all(rep % 200 + 2))
            os.close(write_end)
            os.waitpid(pid, 0)
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            results.add("calib_reuse_s", "host", write_all(rep % 200 + 3))
            results.add("calib_none_s", "host", write_all(rep % 200 + 4))
    finally:
        buf.close()


# -- the executor and its snapshot, seen from outside through /proc --------------------


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on, or None if the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _cpu_s(pid: int) -> float | None:
    """Time the process's main thread has run, in seconds (/proc/PID/schedstat, in ns).

    Readable for a zombie too: a killed snapshot's teardown is in it.
    """
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def _minflt(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[7])  # field 10 of /proc/PID/stat


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _live_descendants(pid: int) -> dict[int, int]:
    """RSS of every descendant of pid that is not a zombie (dropped snapshots linger as one)."""
    out: dict[int, int] = {}
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    out[proc.pid] = proc.memory_info().rss
    return out


def _cells_rss(kernel: Kernel) -> int:
    """RSS of the process running the cells: the largest descendant, or the stock kernel."""
    rss = _live_descendants(kernel.pid)
    if rss:
        return max(rss.values())
    return int(psutil.Process(kernel.pid).memory_info().rss)


def _tree_pids(pid: int) -> set[int]:
    with contextlib.suppress(psutil.Error):
        return {pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))}
    return set()


@dataclass
class Probe:
    """One kernel and the process that runs its cells (the executor; stock: the kernel)."""

    kernel: Kernel
    executor: int
    snapshots: bool  # rollback on: the executor keeps one snapshot child

    @classmethod
    def find(cls, kernel: Kernel, snapshots: bool) -> Probe:
        """The executor is the largest-RSS descendant that survives a cell.

        A snapshot is as large as the executor (it shares all its pages) but is
        replaced after every cell, so it is not in both listings.
        """
        first = _live_descendants(kernel.pid)
        kernel.execute("pass")
        time.sleep(0.5)
        second = _live_descendants(kernel.pid)
        stable = {pid: rss for pid, rss in second.items() if pid in first}
        executor = max(stable, key=stable.__getitem__) if stable else kernel.pid
        return cls(kernel, executor, snapshots)

    def minflt(self) -> int:
        faults = _minflt(self.executor)
        if faults is None:
            raise RuntimeError(f"{self.kernel.role}: executor {self.executor} is gone")
        return faults

    def cpu_s(self) -> float:
        """CPU time of the executor's main thread (cells, the fork's page-table copy, faults)."""
        return _cpu_s(self.executor) or 0.0

    def snapshot_pids(self) -> set[int]:
        """Live (not yet killed or still tearing down) children of the executor."""
        try:
            text = Path(f"/proc/{self.executor}/task/{self.executor}/children").read_text()
        except OSError:
            return set()
        return {pid for pid in map(int, text.split()) if _alive(pid)}

    def anon_huge_bytes(self) -> int:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.executor}/smaps_rollup").read_text().splitlines():
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) * 1024
        return 0

    def settle(self, pause: float) -> None:
        """Wait until the next cell's snapshot is in place (the old one gone), then pause."""
        if self.snapshots:
            deadline = time.perf_counter() + SETTLE_TIMEOUT_S
            while len(self.snapshot_pids()) != 1:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{self.kernel.role}: no single snapshot process")
                time.sleep(0.001)
        time.sleep(pause)

    def watch_refresh(self, before: set[int], t_idle: float) -> tuple[float, float]:
        """Seconds from idle until a new snapshot is visible, and until the old ones are gone.

        A forked child shows in the parent's ``children`` only once its page tables
        are copied, so "visible" is when fork() has done its work. Polled every 0.5 ms.
        """
        new_at = gone_at = None
        deadline = t_idle + SETTLE_TIMEOUT_S
        while new_at is None or gone_at is None:
            now = time.perf_counter()
            if now > deadline:
                raise TimeoutError(f"{self.kernel.role}: snapshot not refreshed")
            live = self.snapshot_pids()
            if new_at is None and live - before:
                new_at = now - t_idle
            if gone_at is None and not live & before:
                gone_at = now - t_idle
            time.sleep(0.0005)
        return new_at, gone_at


# -- the benchmark ------------------------------------------------------------------------


class RollbackBench:
    """Holds the options, the kernels of the current state and the results."""

    def __init__(self, args: argparse.Namespace, workdir: Path, log: IO[bytes]) -> None:
        self.args, self.workdir, self.log = args, workdir, log
        self.results = Results()
        self.kernels: dict[str, Kernel] = {}
        self.phases: list[str] = []
        self.touch_labels: dict[str, str] = {}

    def add(self, key: str, role: str, value: float) -> None:
        self.results.add(key, role, value)

    def new_kernels(self) -> dict[str, Kernel]:
        extra = {ON: (), OFF: ("--Limits.rollback=False",), STOCK: ()}
        names = {ON: self.args.kernel, OFF: self.args.kernel, STOCK: self.args.reference}
        return {
            role: Kernel(role, names[role], self.workdir, self.log, extra[role]) for role in ROLES
        }

    def run(self, states: list[State]) -> None:
        for state in states:
            progress(f"== {state.label}")
            try:
                self.run_state(state)
            except Exception as exc:  # keep going: report what was measured
                self.results.errors.append(f"{state.key}: {type(exc).__name__}: {exc}")
                progress(f"  ERROR in {state.key}: {type(exc).__name__}: {exc}")
            finally:
                self.shutdown_all()

    def shutdown_all(self) -> None:
        """Shut every kernel down; anything of their trees still alive 10 s later is killed."""
        pids: set[int] = set()
        for kernel in self.kernels.values():
            with contextlib.suppress(AssertionError, AttributeError, TypeError):
                pids |= _tree_pids(kernel.pid)
            kernel.shutdown()
        self.kernels = {}
        deadline = time.monotonic() + 10.0
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = sorted(pid for pid in pids if _alive(pid))
        if left:
            self.results.errors.append(f"processes left after shutdown, killed: {left}")
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def run_state(self, state: State) -> None:
        self.kernels = kernels = self.new_kernels()  # shut down by run()'s finally
        for kernel in kernels.values():
            kernel.start()
        for kernel in kernels.values():
            for code in CELLS * (WARM_CELLS // 2):
                self.expect_ok(kernel, code)
        if state.setup:
            progress("  building the state")
            for kernel in kernels.values():
                rss0 = _cells_rss(kernel)
                cell = self.expect_ok(kernel, state.setup)
                self.add(f"setup_s:{state.key}", kernel.role, cell.elapsed_s)
                time.sleep(0.5)
                self.add(f"state_bytes:{state.key}", kernel.role, _cells_rss(kernel) - rss0)
            for kernel in kernels.values():
                for code in CELLS * (WARM_CELLS // 2):
                    self.expect_ok(kernel, code)
        probes = {role: Probe.find(kernels[role], role == ON) for role in ROLES}
        self.check_snapshots(state.key, kernels)
        progress(f"  trivial cells, {self.args.reps} rounds")
        self.trivial_rounds(state.key, probes)
        self.idle_memory(state.key, probes)
        if state.touch:
            progress(f"  touching every page, {self.args.touch_reps} rounds")
            self.touch_labels[state.key] = state.touch_label
            self.touch_rounds(state, probes)
            if state.retime_after_touch:
                progress(f"  trivial cells again, {self.args.reps} rounds")
                self.trivial_rounds(AFTER_TOUCH, probes)
                self.idle_memory(AFTER_TOUCH, probes)
        # Last: after a fork every page of the stock kernel is write-protected, and its
        # next writes would fault (cheaply: no copy once the child is gone).
        self.fork_in_cell(state.key, kernels[STOCK])

    def expect_ok(self, kernel: Kernel, code: str) -> Cell:
        cell = kernel.execute(code)
        if cell.reply.get("status") != "ok":
            raise RuntimeError(f"{kernel.role}: cell {code[:40]!r} failed: {cell.reply}")
        return cell

    def check_snapshots(self, phase: str, kernels: dict[str, Kernel]) -> None:
        """Rollback on must really take snapshots with this state, and off must not."""
        for role in (ON, OFF):
            cell = kernels[role].execute("pass")
            said = str(cell.metadata.get("sandbox", {}).get("snapshot"))
            ok = said == "taken" if role == ON else said != "taken"
            self.results.check(f"snapshot:{phase}", role, ok, f"reply metadata: {said}")

    # -- trivial cells ------------------------------------------------------------------

    def trivial_rounds(self, phase: str, probes: dict[str, Probe]) -> None:
        self.phases.append(phase)
        for rep in range(self.args.reps):
            first, second = CELLS if rep % 2 == 0 else CELLS[::-1]
            for role in ORDERS[rep % len(ORDERS)]:
                self.trivial_burst(phase, probes[role], first, second)

    def trivial_burst(self, phase: str, probe: Probe, first: str, second: str) -> None:
        """One cell after idle, timed with the snapshot refresh; then idle, b2b, b2b.

        "after idle": sent once the snapshot for it is in place, plus a pause (a
        person running one cell). "back-to-back": sent as soon as the previous
        cell went idle (Run All): the fork of its snapshot may still be going on.
        """
        role = probe.kernel.role
        probe.settle(self.args.pause)
        faults, cpu = probe.minflt(), probe.cpu_s()
        before = probe.snapshot_pids()
        # The snapshot is asleep in sigwait: what it ran so far is its after-fork work.
        old_cpu = {pid: _cpu_s(pid) for pid in before}
        t_send = time.perf_counter()
        elapsed = self.timed_cell(phase, probe, first, "idle")
        if probe.snapshots:
            t_idle = t_send + elapsed
            new_at, gone_at = probe.watch_refresh(before, t_idle)
            self.add(f"fork_visible_s:{phase}", role, new_at)
            self.add(f"drop_gone_s:{phase}", role, gone_at)
        probe.settle(self.args.pause)
        self.add(f"minflt:{phase}", role, probe.minflt() - faults)
        self.add(f"exec_cpu_s:{phase}", role, probe.cpu_s() - cpu)
        if probe.snapshots:
            self.snapshot_cpu(phase, probe, before, old_cpu)
        self.timed_cell(phase, probe, second, "idle")
        self.timed_cell(phase, probe, first, "b2b")
        self.timed_cell(phase, probe, second, "b2b")

    def snapshot_cpu(
        self, phase: str, probe: Probe, before: set[int], old_cpu: dict[int, float | None]
    ) -> None:
        """CPU and faults of the new snapshot (after fork, until sigwait), and the old one's
        teardown (its zombie's CPU time now minus what it had before it was killed)."""
        role = probe.kernel.role
        for pid in probe.snapshot_pids() - before:
            cpu, faults = _cpu_s(pid), _minflt(pid)
            if cpu is not None and faults is not None:
                self.add(f"snap_cpu_s:{phase}", role, cpu)
                self.add(f"snap_minflt:{phase}", role, faults)
        for pid, start in old_cpu.items():
            end = _cpu_s(pid)  # a zombie until the executor collects it after the next cell
            if start is not None and end is not None:
                self.add(f"drop_cpu_s:{phase}", role, end - start)

    def timed_cell(self, phase: str, probe: Probe, code: str, mode: str) -> float:
        kernel = probe.kernel
        cell = kernel.execute(code)
        key = f"cell:{phase}:{code}:{mode}"
        self.add(key, kernel.role, cell.elapsed_s)
        if code == "pass":
            ok = cell.reply.get("status") == "ok" and not cell.outputs
        else:
            results = cell.of_type("execute_result")
            ok = len(results) == 1 and results[0]["content"]["data"].get("text/plain") == "2"
        self.results.check(key, kernel.role, ok, f"{cell.reply.get('status')} {cell.outputs}"[:300])
        return cell.elapsed_s

    # -- memory, fork, touching every page ---------------------------------------------------

    def idle_memory(self, phase: str, probes: dict[str, Probe]) -> None:
        for rep in range(3):
            for role in ORDERS[rep]:
                probe = probes[role]
                probe.settle(0.3)
                self.record_memory(f"{phase}:idle", role, probe.kernel.pid)
                self.add(f"anon_huge_bytes:{phase}", role, probe.anon_huge_bytes())

    def record_memory(self, when: str, role: str, pid: int) -> None:
        mem = tree_memory(pid)
        self.add(f"pss_bytes:{when}", role, mem.pss)
        self.add(f"uss_bytes:{when}", role, mem.uss)
        self.results.check(f"pss_bytes:{when}", role, mem.denied == 0, f"{mem.denied} unreadable")

    def fork_in_cell(self, phase: str, kernel: Kernel) -> None:
        """fork() of a process holding this state, timed inside a stock-kernel cell."""
        self.expect_ok(kernel, FORK_CELL)
        for _ in range(FORK_REPS):
            cell = self.expect_ok(kernel, FORK_CELL)
            found = dict(MARKER_RE.findall(cell.stream_text()))
            self.results.check(f"fork_cell_s:{phase}", kernel.role, "fork" in found, str(found))
            if "fork" in found:
                self.add(f"fork_cell_s:{phase}", kernel.role, float(found["fork"]))

    def touch_rounds(self, state: State, probes: dict[str, Probe]) -> None:
        assert state.touch is not None
        code, phase = touch_cell(state.touch), state.key
        for rep in range(self.args.touch_reps):
            for role in ORDERS[rep % len(ORDERS)]:
                self.touch_once(phase, probes[role], code)

    def touch_once(self, phase: str, probe: Probe, code: str) -> None:
        """Touch every page; sample memory and faults while the cell holds after its marker."""
        kernel, role = probe.kernel, probe.kernel.role
        probe.settle(self.args.pause)
        faults = probe.minflt()
        before = probe.snapshot_pids()
        seen: dict[str, float] = {}

        def at_marker(msg: dict[str, Any]) -> None:
            text = msg["content"].get("text", "") if msg["msg_type"] == "stream" else ""
            if "touch_s=" in text and not seen:
                seen["faults"] = probe.minflt() - faults
                self.record_memory(f"{phase}:touched", role, kernel.pid)
                seen["sampled"] = time.perf_counter()

        t_send = time.perf_counter()
        cell = kernel.execute(code, on_output=at_marker)
        t_idle = t_send + cell.elapsed_s
        found = dict(MARKER_RE.findall(cell.stream_text()))
        ok = cell.reply.get("status") == "ok" and "touch" in found and bool(seen)
        if role != STOCK:  # the snapshot for this cell: taken with rollback on only
            said = cell.metadata.get("sandbox", {}).get("snapshot")
            ok = ok and (said == "taken") == (role == ON)
        # The sample must fall inside the hold, while the old pages are still held.
        ok = ok and t_idle - seen["sampled"] > HOLD_S / 4
        self.results.check(f"touch_s:{phase}", role, ok, f"{cell.reply.get('status')} {found}")
        if not ok:
            return
        self.add(f"touch_s:{phase}", role, float(found["touch"]))
        self.add(f"touch_minflt:{phase}", role, seen["faults"])
        if probe.snapshots:
            new_at, gone_at = probe.watch_refresh(before, t_idle)
            self.add(f"touch_fork_visible_s:{phase}", role, new_at)
            self.add(f"touch_drop_gone_s:{phase}", role, gone_at)
        probe.settle(0.3)
        self.record_memory(f"{phase}:after", role, kernel.pid)


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One row: a metric key, how to show it, and an optional target."""

    key: str
    label: str
    unit: str = "ms"
    scale: float = 1e3
    target: str | None = None  # "ratio" (on/stock) or "delta" (on - stock, ms)


MIB_UNIT = ("MiB", 1 / MIB)


def stats(values: list[float] | None, scale: float) -> tuple[float, float] | None:
    if not values:
        return None
    return statistics.median(values) * scale, p10(values) * scale


def render(line: Line, samples: dict[str, list[float]], failed: int) -> str:
    got = {role: stats(samples.get(role), line.scale) for role in ROLES}
    cells = "".join(
        f"{_num(s[0] if s else None)}{_num(s[1] if s else None)} |" for s in got.values()
    )
    on, off, stock = got[ON], got[OFF], got[STOCK]
    ratio = ratio_p10 = None
    if on and stock and stock[1] > 0 and line.unit != "n":
        ratio, ratio_p10 = on[0] / stock[0], on[1] / stock[1]
    delta = on[0] - stock[0] if on and stock else None
    snap = on[0] - off[0] if on and off else None
    target = verdict = ""
    if line.target == "ratio" and ratio is not None:
        target, verdict = f"<= {RATIO_TARGET:g}x", "PASS" if ratio <= RATIO_TARGET else "MISS"
    elif line.target == "delta" and delta is not None:
        target = f"<= +{DELTA_TARGET_MS:g}"
        verdict = "PASS" if delta <= DELTA_TARGET_MS else "MISS"
    if failed:
        verdict = f"{verdict} CHECK FAILED x{failed}".strip()
    return (
        f"{line.label:<44}{line.unit:>4} |{cells}{_num(ratio, 7)}{_num(ratio_p10, 7)} |"
        f"{_num(delta, 8)}{_num(snap, 8)} | {target:>8} {verdict}"
    )


def lines_for(bench: RollbackBench) -> list[tuple[str, list[Line]]]:
    sections: list[tuple[str, list[Line]]] = []
    trivial = []
    for phase in bench.phases:
        kind = "ratio" if phase == "none" else "delta"
        for mode in MODES:
            for code in CELLS:
                label = f"{PHASE_LABEL[phase]}: `{code}` {MODE_LABEL[mode]}"
                trivial.append(Line(f"cell:{phase}:{code}:{mode}", label, target=kind))
    sections.append(("trivial-cell round trip", trivial))
    snap = []
    for phase in bench.phases:
        name = PHASE_LABEL[phase]
        snap += [
            Line(f"fork_visible_s:{phase}", f"{name}: idle -> snapshot forked"),
            Line(f"drop_gone_s:{phase}", f"{name}: idle -> old snapshot gone"),
            Line(f"minflt:{phase}", f"{name}: executor faults/cell", "n", 1.0),
            Line(f"exec_cpu_s:{phase}", f"{name}: executor CPU/cell"),
            Line(f"snap_cpu_s:{phase}", f"{name}: new snapshot's own CPU"),
            Line(f"snap_minflt:{phase}", f"{name}: new snapshot's own faults", "n", 1.0),
            Line(f"drop_cpu_s:{phase}", f"{name}: old snapshot's teardown CPU"),
            Line(f"fork_cell_s:{phase}", f"{name}: fork() in a cell"),
            Line(f"anon_huge_bytes:{phase}", f"{name}: executor AnonHugePages", *MIB_UNIT),
        ]
    sections.append(("snapshot refresh, page faults, fork", snap))
    mem = []
    for phase in bench.phases:
        name = PHASE_LABEL[phase]
        size_label = f"{name}: state size (RSS growth)"
        mem.append(Line(f"state_bytes:{phase}", size_label, *MIB_UNIT))
        mem.append(Line(f"pss_bytes:{phase}:idle", f"{name}: PSS of tree, idle", *MIB_UNIT))
        mem.append(Line(f"uss_bytes:{phase}:idle", f"{name}: USS of tree, idle", *MIB_UNIT))
    sections.append(("memory (snapshot in place)", mem))
    for phase, label in bench.touch_labels.items():
        touch = [
            Line(f"touch_s:{phase}", "in-kernel time of the statement"),
            Line(f"touch_minflt:{phase}", "executor minor faults during it", "n", 1.0),
            Line(f"pss_bytes:{phase}:touched", "PSS of tree, right after it", *MIB_UNIT),
            Line(f"uss_bytes:{phase}:touched", "USS of tree, right after it", *MIB_UNIT),
            Line(f"pss_bytes:{phase}:after", "PSS, next snapshot in place", *MIB_UNIT),
            Line(f"touch_fork_visible_s:{phase}", "after it: idle -> snapshot forked"),
            Line(f"touch_drop_gone_s:{phase}", "after it: idle -> old snapshot gone"),
        ]
        sections.append((f"{PHASE_LABEL[phase]}: {label}", touch))
    return sections


def format_report(bench: RollbackBench) -> str:
    results = bench.results
    head = (
        f"{'metric':<44}{'unit':>4} |{'on':>9}{'p10':>9} |{'off':>9}{'p10':>9} |"
        f"{'stock':>9}{'p10':>9} |{'on/stk':>7}{'r(p10)':>7} |{'on-stk':>8}{'on-off':>8} |"
        f" {'target':>8} verdict"
    )
    out = [
        LEGEND,
        f"on = {bench.args.kernel} (rollback on, default), off = {bench.args.kernel} "
        f"--Limits.rollback=False, stock = {bench.args.reference}",
        "median and p10 per kernel; on/stk = on/stock (medians, then p10s); "
        "on-stk and on-off = differences of medians",
        head,
    ]
    for title, lines in lines_for(bench):
        rows = [ln for ln in lines if ln.key in results.samples]
        if not rows:
            continue
        out.append(f"-- {title} " + "-" * max(0, len(head) - len(title) - 4))
        for line in rows:
            failed = results.failed_checks(line.key)
            if line.key.startswith("cell:"):
                failed += results.failed_checks(f"snapshot:{line.key.split(':')[1]}")
            out.append(render(line, results.samples[line.key], failed))
    return "\n".join(out)


def attribution(bench: RollbackBench) -> str:
    """What the snapshot adds per cell, next to fork wait, drop and page-fault figures."""
    samples = bench.results.samples

    def med(key: str, role: str) -> float:
        values = samples.get(key, {}).get(role)
        return statistics.median(values) if values else float("nan")

    # Cost of one copy-on-write fault: the touch rounds' extra time over their extra faults.
    per_fault: dict[str, float] = {}
    for phase in bench.touch_labels:
        extra = med(f"touch_minflt:{phase}", ON) - med(f"touch_minflt:{phase}", OFF)
        if extra > 1000:
            slower = med(f"touch_s:{phase}", ON) - med(f"touch_s:{phase}", OFF)
            per_fault[phase] = slower / extra
    out = ["attribution (medians; on - off = what the snapshot adds):"]
    copy = med("calib_copy_s", "host") - med("calib_none_s", "host")
    reuse = med("calib_reuse_s", "host") - med("calib_none_s", "host")
    out.append(
        f"  4 KiB copy-on-write fault, 1000 pages in this process: {copy * 1e6:.1f} us "
        f"(write-protect fault without a copy: {reuse * 1e6:.1f} us)"
    )
    for phase, cost in per_fault.items():
        label = bench.touch_labels[phase].split(" (")[0]
        out.append(f"  bulk copy-on-write, {label}: {cost * 1e6:.1f} us per extra fault")
    for phase in bench.phases:
        added = {}
        for mode in MODES:
            keys = [f"cell:{phase}:{code}:{mode}" for code in CELLS]
            added[mode] = statistics.mean(med(key, ON) - med(key, OFF) for key in keys)
        visible = med(f"fork_visible_s:{phase}", ON)
        gone = med(f"drop_gone_s:{phase}", ON)
        faults = med(f"minflt:{phase}", ON) - med(f"minflt:{phase}", OFF)
        cpu = med(f"exec_cpu_s:{phase}", ON) - med(f"exec_cpu_s:{phase}", OFF)
        snap, drop = med(f"snap_cpu_s:{phase}", ON), med(f"drop_cpu_s:{phase}", ON)
        out += [
            f"  {PHASE_LABEL[phase]}: round trip after idle {added['idle'] * 1e3:+.1f} ms, "
            f"back-to-back {added['b2b'] * 1e3:+.1f} ms",
            f"    executor: {faults:+.0f} faults/cell (x calibration = "
            f"{faults * copy * 1e3:.1f} ms), CPU/cell {cpu * 1e3:+.1f} ms (faults and fork)",
            f"    new snapshot forked {visible * 1e3:.1f} ms after idle, its own after-fork "
            f"work {snap * 1e3:.1f} ms CPU; old one gone {gone * 1e3:.1f} ms after idle, "
            f"teardown {drop * 1e3:.1f} ms CPU",
        ]
    return "\n".join(out)


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=50, help="trivial-cell rounds per state")
    parser.add_argument("--touch-reps", type=int, default=5, help="touch rounds per state")
    parser.add_argument("--quick", action="store_true", help="--reps 6 --touch-reps 2")
    parser.add_argument(
        "--states",
        default=",".join(STATE_KEYS),
        help=f"comma-separated, in this order: {', '.join(STATE_KEYS)}",
    )
    parser.add_argument("--pause", type=float, default=PAUSE_S, help="'after idle' pause, s")
    parser.add_argument("--kernel", default="sandbox-python", help="kernelspec under test")
    parser.add_argument("--reference", default="python3", help="kernelspec to compare with")
    parser.add_argument("--json", type=Path, help="where to write the raw numbers")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.touch_reps = 6, 2
    if args.reps < 1 or args.touch_reps < 1:
        parser.error("--reps and --touch-reps must be at least 1")
    chosen = {s.strip() for s in args.states.split(",") if s.strip()}
    unknown = chosen - set(STATE_KEYS)
    if unknown:
        parser.error(f"unknown state(s): {', '.join(sorted(unknown))}")
    args.states = [key for key in STATE_KEYS if key in chosen]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp, json_path, log_path = result_paths(args.json, "rollback")
    meta = environment(args) | {"started": stamp, "loadavg_start": os.getloadavg()}
    if os.geteuid() != 0:
        progress("warning: not root; /proc of the sandboxed processes may be unreadable")
    t0 = time.perf_counter()
    states = [s for s in STATES if s.key in args.states]
    with bench_session("rollback", log_path) as (workdir, log):
        bench = RollbackBench(args, workdir, log)
        try:
            cow_fault_calibration(bench.results)
            bench.run(states)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: report what was measured
            bench.results.errors.append("interrupted")
        finally:
            bench.shutdown_all()
    meta |= {
        "loadavg_end": os.getloadavg(),
        "wall_s": round(time.perf_counter() - t0, 1),
        "source_digest_end": source_digest(),
    }
    results = bench.results
    summary = {"table": format_report(bench), "attribution": attribution(bench)}
    write_json(json_path, meta, results, summary)
    print(summary["table"])
    print(summary["attribution"])
    print(
        f"load average {meta['loadavg_start'][0]:.2f} -> {meta['loadavg_end'][0]:.2f}; "
        f"{meta['wall_s']:.0f} s; raw numbers: {json_path}; kernel logs: {log_path}"
    )
    if meta["source_digest_start"] != meta["source_digest_end"]:
        print("WARNING: sandbox_kernel sources changed during the run.")
    elif meta["uncommitted"]:
        print(f"note: measured with uncommitted changes to {len(meta['uncommitted'])} file(s)")
    for error in results.errors:
        print(f"ERROR: {error}")
    if "interrupted" in results.errors:
        return 130
    failed = any(results.failed_checks(key) for key in results.checks)
    return 1 if results.errors or failed else 0


if __name__ == "__main__":
    sys.exit(main())
