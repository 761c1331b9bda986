"""Side-by-side benchmark of the sandbox kernel against stock ipykernel.

Both kernels are driven through jupyter_client exactly as a frontend drives them
(KernelManager + BlockingKernelClient). Every measurement alternates between the
two kernels, and the order flips on every repetition, so that load from other
work on this shared machine falls on both alike. Each metric reports the median
and the 10th percentile; the table shows the ratio sandbox/stock next to the
target for that ratio. Raw numbers go to ``bench/results/<timestamp>.json``.

Usage::

    .venv/bin/python bench/run.py                 # the full run (about 5-10 minutes)
    .venv/bin/python bench/run.py --quick         # a smoke run for CI (under 3 minutes)
    .venv/bin/python bench/run.py --only trivial,stdout --reps 30

See bench/README.md for what each metric means and the caveats.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import queue
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from traitlets.config import Config

BENCH_DIR = Path(__file__).resolve().parent
SANDBOX, STOCK = "sandbox", "stock"
ROLES = (SANDBOX, STOCK)
METRICS = (
    "startup",
    "memory",
    "restart",
    "trivial",
    "stdout",
    "png",
    "plotly",
    "interrupt",
    "state",
    "shutdown",
    "gate",
    "imports",
)
COLD_METRICS = {"startup", "memory", "setup", "shutdown"}
WARM_METRICS = ("trivial", "stdout", "png", "plotly", "interrupt")
TRIVIAL_PER_REP = 20
# The pause before the trivial cell that follows one (a person's is longer).
PAUSE_S = 0.05
CELL_TIMEOUT_S = 180.0
START_TIMEOUT_S = 90.0
SHUTDOWN_TIMEOUT_S = 20.0
SETTLE_S = 0.5
MIB = 1024 * 1024

STDOUT_LINES = 100_000
STDOUT_CELL = f"for i in range({STDOUT_LINES}):\n    print(i)"
STDOUT_EXPECTED = "".join(f"{i}\n" for i in range(STDOUT_LINES))
IMPORTS_CELL = "import numpy, pandas, matplotlib.pyplot"
SLEEP_CELL = "import time; time.sleep(60)"
BUSY_CELL = "while True:\n    pass"
# Live state for the `state` metric: written, so resident (numpy asks for huge pages).
STATE_CELL = "import numpy as _np\n_bench_state = _np.ones({mib} * 1024 * 1024 // 8)"
STATE_CELLS_PER_REP = 10
STATE_TARGET_S = 0.003  # over stock, whatever the state's size
INTERRUPT_AFTER_S = 0.5
SETUP_RE = re.compile(r"Sandbox set-up took ([0-9.]+) ms\.")

# Runs in the kernel (untimed) and here, to know what the PNGs must decode to.
PNG_SETUP_CELL = r'''
import random as _random, struct as _struct, zlib as _zlib

def _bench_png(seed, side=577):
    """A valid RGB PNG of about 1 MB: random pixels do not compress."""
    row = 3 * side + 1
    raw = bytearray(_random.Random(seed).randbytes(side * row))
    raw[::row] = bytes(side)  # filter type 0 at the start of every row

    def chunk(kind, data):
        body = kind + data
        return _struct.pack(">I", len(data)) + body + _struct.pack(">I", _zlib.crc32(body))

    header = _struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", _zlib.compress(bytes(raw), 1)) + chunk(b"IEND", b""))

_bench_pngs = [_bench_png(seed) for seed in range(10)]
'''
PNG_CELL = (
    "from IPython.display import Image, display\n"
    "for _png in _bench_pngs:\n"
    "    display(Image(data=_png, format='png'))"
)

# A 5 MB plotly HTML output: plotly.js inline with one figure, as to_html() writes it.
PLOTLY_SETUP_CELL = r"""
import plotly.graph_objects as _go, plotly.io as _pio
_plotly_html = _pio.to_html(
    _go.Figure(_go.Scatter(x=list(range(200)), y=[i % 7 for i in range(200)])),
    include_plotlyjs=True, full_html=False)
"""
NEXT_FIGURE = "<div id='fig2'></div><script>Plotly.newPlot('fig2', [])</script>"
PLOTLY_CELL = "from IPython.display import HTML, display\ndisplay(HTML(_plotly_html))"

# (label, interpreter flags, code): what each process of the two kernels imports.
IMPORT_PROBES = (
    ("python -I -c pass", ["-I"], "pass"),
    ("import ipykernel.kernelapp (stock kernel)", ["-I"], "import ipykernel.kernelapp"),
    ("import sandbox_kernel.app (trusted kernel)", ["-I"], "import sandbox_kernel.app"),
    ("import ...launcher.launch (launcher)", ["-P", "-s"], "import sandbox_kernel.launcher.launch"),
    ("import ...child.child (executor)", ["-P", "-s"], "import sandbox_kernel.child.child"),
)


# -- results -------------------------------------------------------------------------


@dataclass
class Results:
    """Raw samples by metric key and role, correctness checks, and errors."""

    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    checks: dict[str, dict[str, list[bool]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, key: str, role: str, value: float) -> None:
        self.samples.setdefault(key, {}).setdefault(role, []).append(value)

    def check(self, key: str, role: str, ok: bool, detail: str = "") -> None:
        self.checks.setdefault(key, {}).setdefault(role, []).append(ok)
        if not ok:
            progress(f"  CHECK FAILED {key} [{role}]: {detail}")

    def failed_checks(self, key: str) -> int:
        return sum(not ok for oks in self.checks.get(key, {}).values() for ok in oks)


@dataclass(frozen=True)
class Row:
    """One line of the table: how to show a metric key and what its ratio should be."""

    key: str
    label: str
    unit: str = "ms"
    scale: float = 1e3
    target: float | None = None
    per_sample_bytes: float | None = None  # set for throughput rows (value = bytes / time)

    @property
    def higher_is_better(self) -> bool:
        return self.per_sample_bytes is not None

    def show(self, raw: float) -> float:
        if self.per_sample_bytes is not None:
            return self.per_sample_bytes / raw / 1e6
        return raw * self.scale


ROWS = (
    Row("startup_s", "start-up to kernel_info_reply", target=1.0),
    Row("restart_s", "restart to kernel_info_reply", target=0.5),
    Row("restart_spawn_s", "restart: old gone, new spawned"),
    Row("from_spare", "start-up from a pre-warmed spare (share)", "", 1.0),
    Row("restart_from_spare", "restart from a pre-warmed spare (share)", "", 1.0),
    Row("spare_pss_bytes", "PSS of the idle spare's tree", "MiB", 1 / MIB),
    Row("shutdown_s", "graceful shutdown: request to exit", target=1.0),
    Row("cell_pass_s", "cell `pass` round trip", target=1.15),
    Row("cell_expr_s", "cell `1+1` round trip", target=1.15),
    Row("cell_paused_s", "cell `1+1` after a 0.05 s pause"),
    Row("cell_state_s", "cell `1+1` with live numpy state"),
    Row("stdout_s", "stdout 100k lines, to idle"),
    Row("stdout_s", "stdout throughput", "MB/s", target=0.9, per_sample_bytes=len(STDOUT_EXPECTED)),
    Row("png_s", "10 x 1 MB PNG displays, to idle", target=1.2),
    Row("plotly_s", "5 MB plotly HTML display, to idle"),
    Row("interrupt_busy_s", "interrupt `while True: pass`", target=1.5),
    Row("interrupt_s", "interrupt `time.sleep`", target=1.5),
    Row("pss_idle_bytes", "PSS of tree, idle after start", "MiB", 1 / MIB, target=1.3),
    Row("pss_imports_bytes", "PSS of tree, after imports", "MiB", 1 / MIB, target=1.5),
    Row("uss_idle_bytes", "USS of tree, idle after start", "MiB", 1 / MIB),
    Row("uss_imports_bytes", "USS of tree, after imports", "MiB", 1 / MIB),
    Row("procs_imports", "processes in tree", "n", 1.0),
    Row("import_cell_s", "cell importing numpy/pandas/mpl"),
    Row("setup_ms", "sandbox set-up (%sandbox line)", "ms", 1.0),
    Row("ready_after_fork_s", "start-up: kernel fork to kernel_info"),
    Row("split_kernel_s", "  kernel fork to launcher fork"),
    Row("split_launcher_s", "  launcher fork to executor fork"),
    Row("split_executor_s", "  executor fork to kernel_info"),
)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- one kernel, driven as a frontend would ---------------------------------------------


@dataclass
class Cell:
    """A finished cell: time from execute_request to idle, its reply and its outputs."""

    elapsed_s: float
    reply: dict[str, Any]
    outputs: list[dict[str, Any]]
    metadata: dict[str, Any] = field(default_factory=dict)  # the execute_reply's metadata

    def stream_text(self, name: str = "stdout") -> str:
        return "".join(
            m["content"]["text"]
            for m in self.outputs
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for m in self.outputs if m["msg_type"] == msg_type]


def settle_spares() -> None:
    """Wait until the sandbox provisioner's spare (if any) has built its sandbox.

    A spare starts right after a kernel does; timing the next start (of either kernel)
    while it still builds would charge its set-up to whichever kernel runs then. Its
    cost is reported on its own (`spare_pss_bytes`), not hidden in another row.
    """
    with contextlib.suppress(ImportError):
        from sandbox_kernel.provisioner import spares_ready

        spares_ready(timeout=START_TIMEOUT_S)
        time.sleep(SETTLE_S)


class Kernel:
    """A kernel started through KernelManager and a BlockingKernelClient.

    ``extra_args`` are appended to the kernelspec's argv (e.g. ``--Limits.rollback=False``).
    """

    def __init__(
        self,
        role: str,
        name: str,
        cwd: Path,
        log: IO[bytes],
        extra_args: tuple[str, ...] = (),
        spares: int | None = None,
    ) -> None:
        self.role, self.name, self.cwd, self.log = role, name, cwd, log
        self.extra_args = extra_args
        # SandboxProvisioner.spares for this kernel's manager (None: its default).
        self.spares = spares
        self.km: KernelManager | None = None
        self.kc: BlockingKernelClient | None = None
        self.boot_t0 = 0.0  # CLOCK_BOOTTIME at start_kernel, for fork times

    @property
    def client(self) -> BlockingKernelClient:
        assert self.kc is not None, "kernel not started"
        return self.kc

    @property
    def manager(self) -> KernelManager:
        assert self.km is not None, "kernel not started"
        return self.km

    @property
    def pid(self) -> int:
        return int(self.manager.provisioner.process.pid)  # type: ignore[union-attr]

    def start(self) -> float:
        """Start the kernel; return seconds from start_kernel to the first kernel_info_reply."""
        config = Config()
        if self.spares is not None:
            config.SandboxProvisioner.spares = self.spares
        self.km = KernelManager(kernel_name=self.name, config=config)
        settle_spares()
        self.boot_t0 = time.clock_gettime(time.CLOCK_BOOTTIME)
        t0 = time.perf_counter()
        self.km.start_kernel(
            cwd=str(self.cwd),
            stdout=self.log,
            stderr=self.log,
            extra_arguments=list(self.extra_args),
        )
        self.kc = self.km.client()
        self.kc.start_channels()
        elapsed = self._first_kernel_info(t0)
        self.kc.wait_for_ready(timeout=START_TIMEOUT_S)  # untimed: also checks IOPub
        return elapsed

    def restart(self) -> tuple[float, float]:
        """Restart as a frontend does (graceful shutdown first).

        Returns seconds from restart_kernel to the first kernel_info_reply, and to the
        return of restart_kernel (the old kernel is gone, the new process spawned).
        """
        settle_spares()
        self.boot_t0 = time.clock_gettime(time.CLOCK_BOOTTIME)
        t0 = time.perf_counter()
        self.manager.restart_kernel(now=False)
        returned = time.perf_counter() - t0
        elapsed = self._first_kernel_info(t0)
        self.client.wait_for_ready(timeout=START_TIMEOUT_S)
        return elapsed, returned

    @property
    def from_spare(self) -> bool:
        """Whether the sandbox kernel's provisioner handed over a pre-warmed spare."""
        return bool(getattr(self.manager.provisioner, "from_spare", False))

    def _first_kernel_info(self, t0: float) -> float:
        kc, km = self.client, self.manager
        sent = {kc.kernel_info()}
        last_sent = time.perf_counter()
        while True:
            now = time.perf_counter()
            if now - t0 > START_TIMEOUT_S:
                raise TimeoutError(f"{self.name}: no kernel_info_reply in {START_TIMEOUT_S:g} s")
            if now - last_sent > 1.0:  # as wait_for_ready does
                sent.add(kc.kernel_info())
                last_sent = now
            try:
                msg = kc.get_shell_msg(timeout=0.25)
            except queue.Empty:
                if not km.is_alive():
                    raise RuntimeError(f"{self.name}: kernel died during start-up") from None
                continue
            parent_id = msg["parent_header"].get("msg_id")
            if msg["msg_type"] == "kernel_info_reply" and parent_id in sent:
                return time.perf_counter() - t0

    def execute(
        self,
        code: str,
        timeout: float = CELL_TIMEOUT_S,
        on_output: Callable[[dict[str, Any]], None] | None = None,
    ) -> Cell:
        """Run a cell; the time is from sending execute_request to the idle status.

        ``on_output`` is called with each output message as it arrives (while the
        cell may still run), e.g. to sample the kernel's memory at a marker.
        """
        kc = self.client
        t0 = time.perf_counter()
        msg_id = kc.execute(code)
        outputs = self._iopub_until_idle(msg_id, t0 + timeout, on_output)
        elapsed = time.perf_counter() - t0
        reply = self._shell_reply(msg_id, t0 + timeout)
        return Cell(elapsed, reply["content"], outputs, reply.get("metadata") or {})

    def _iopub_until_idle(
        self,
        msg_id: str,
        deadline: float,
        on_output: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        outputs: list[dict[str, Any]] = []
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: cell did not go idle in time")
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            msg_type = msg["msg_type"]
            if msg_type == "status":
                if msg["content"]["execution_state"] == "idle":
                    return outputs
            elif msg_type != "execute_input":
                outputs.append(msg)
                if on_output is not None:
                    on_output(msg)

    def _wait_busy(self, msg_id: str, deadline: float) -> None:
        while time.perf_counter() < deadline:
            try:
                msg = self.client.get_iopub_msg(timeout=deadline - time.perf_counter())
            except queue.Empty:
                continue
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "busy"
            ):
                return
        raise TimeoutError(f"{self.name}: cell never went busy")

    def _shell_reply(self, msg_id: str, deadline: float) -> dict[str, Any]:
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no execute_reply in time")
            try:
                msg = self.client.get_shell_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def interrupt_sleep(self, code: str = SLEEP_CELL) -> tuple[float, dict[str, Any]]:
        """Interrupt a running cell (by default a sleeping one); return seconds from
        interrupt_kernel to execute_reply."""
        t_send = time.perf_counter()
        msg_id = self.client.execute(code)
        self._wait_busy(msg_id, t_send + CELL_TIMEOUT_S)
        time.sleep(max(0.0, t_send + INTERRUPT_AFTER_S - time.perf_counter()))
        t0 = time.perf_counter()
        self.manager.interrupt_kernel()
        reply = self._shell_reply(msg_id, t0 + 30.0)
        elapsed = time.perf_counter() - t0
        self._iopub_until_idle(msg_id, t0 + 30.0)
        return elapsed, reply["content"]

    def timed_shutdown(self) -> float:
        """Shut down as a frontend does (shutdown_request on control); return seconds from
        the request until the kernel process has exited (a pidfd, not jupyter_client's
        0.1 s polling). The sandbox kernel ends its sandbox before it exits."""
        proc = self.manager.provisioner.process  # type: ignore[union-attr]
        pidfd = os.pidfd_open(proc.pid)
        try:
            t0 = time.perf_counter()
            self.client.shutdown()
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(SHUTDOWN_TIMEOUT_S * 1000):
                raise TimeoutError(
                    f"{self.name}: still running {SHUTDOWN_TIMEOUT_S:g} s after "
                    f"shutdown_request; its tree: {tree_states(proc.pid)}"
                )
            elapsed = time.perf_counter() - t0
        finally:
            os.close(pidfd)
        proc.wait()
        self.shutdown()  # jupyter_client's own clean-up (connection file, ports)
        return elapsed

    def shutdown(self) -> None:
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
            self.kc = None
        if self.km is not None:
            try:
                if self.km.has_kernel:
                    self.km.shutdown_kernel(now=False)
            except Exception:
                with contextlib.suppress(Exception):
                    self.km.shutdown_kernel(now=True)
            self.km = None


# -- process-tree inspection (root reads every process's smaps and stat) -------------------


@dataclass
class TreeMemory:
    """Memory of a process and all its descendants."""

    pss: int = 0  # proportional set size: shared pages split among all their users
    uss: int = 0  # unique set size: pages only this process maps
    read: int = 0
    denied: int = 0


def tree_memory(pid: int) -> TreeMemory:
    """PSS and USS summed over pid and all its descendants (recursively)."""
    root = psutil.Process(pid)
    total = TreeMemory()
    for proc in [root, *root.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
            total.pss += info.pss
            total.uss += info.uss
            total.read += 1
        except psutil.NoSuchProcess:
            pass
        except psutil.AccessDenied:
            total.denied += 1
    return total


def tree_states(pid: int) -> list[tuple[int, str, str]]:
    """(pid, name, status) of a process and its descendants, for a report."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    states = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            states.append((proc.pid, proc.name(), proc.status()))
    return states


def _boot_start_s(pid: int) -> float:
    """When a process was forked, in CLOCK_BOOTTIME seconds (clock-tick resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def fork_times(pid: int, boot_t0: float) -> dict[str, float]:
    """Fork time of the kernel and of the first process at each depth below it, from boot_t0."""
    times = {"fork_kernel_s": _boot_start_s(pid) - boot_t0}
    level = [psutil.Process(pid)]
    for depth in (1, 2, 3):
        level = [child for proc in level for child in proc.children()]
        starts = []
        for proc in level:
            with contextlib.suppress(psutil.Error, OSError, ValueError):
                starts.append(_boot_start_s(proc.pid))
        if not starts:
            break
        times[f"fork_depth{depth}_s"] = min(starts) - boot_t0
    return times


# -- the benchmark ------------------------------------------------------------------------


def order(rep: int, kernels: dict[str, Kernel]) -> list[Kernel]:
    """Alternate which kernel goes first on each repetition."""
    pair = [kernels[SANDBOX], kernels[STOCK]]
    return pair if rep % 2 == 0 else pair[::-1]


class Bench:
    """Holds the options, the kernels that are running and the results."""

    def __init__(self, args: argparse.Namespace, workdir: Path, log: IO[bytes]) -> None:
        self.args = args
        self.results = Results()
        names = {SANDBOX: args.kernel, STOCK: args.reference}
        self.kernels = {
            role: Kernel(
                role, names[role], workdir, log, spares=args.spares if role == SANDBOX else None
            )
            for role in ROLES
        }
        self.selected: set[str] = set()

    def shutdown_all(self) -> None:
        for kernel in self.kernels.values():
            kernel.shutdown()

    def run(self, selected: set[str]) -> None:
        self.selected = selected
        steps: list[tuple[str, Callable[[], None]]] = []
        if selected & COLD_METRICS:
            steps.append(("cold starts", lambda: self.cold_rounds("memory" in selected)))
        if "restart" in selected:
            steps.append(("restart", self.restart_rounds))
        warm = [m for m in WARM_METRICS if m in selected]
        if warm:
            steps.append(("warm kernels", lambda: self.warm_rounds(warm)))
        if "state" in selected:
            steps.append(("live state", self.state_rounds))
        if "gate" in selected:
            steps.append(("output gate, in process", self.gate_rounds))
        if "imports" in selected:
            steps.append(("imports", self.import_rounds))
        for name, step in steps:
            progress(f"== {name}")
            try:
                step()
            except Exception as exc:  # keep going: report what was measured
                self.results.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                progress(f"  ERROR in {name}: {type(exc).__name__}: {exc}")
            finally:
                self.shutdown_all()

    # -- fresh kernels: start-up, fork timeline, sandbox set-up, memory --------------------

    def cold_rounds(self, memory: bool) -> None:
        # Untimed first round: jupyter_client's one-off costs (provisioner entry points)
        # and a cold page cache would otherwise land on whichever kernel goes first.
        for kernel in self.kernels.values():
            try:
                kernel.start()
            finally:
                kernel.shutdown()
        for rep in range(self.args.reps):
            for kernel in order(rep, self.kernels):
                try:
                    self.cold_round(kernel, memory)
                    if "shutdown" in self.selected:
                        time.sleep(SETTLE_S)
                        self.timed_shutdown(kernel)
                finally:
                    kernel.shutdown()
            progress(f"  round {rep + 1}/{self.args.reps}")

    def timed_shutdown(self, kernel: Kernel) -> None:
        """A kernel that does not exit is a finding (a failed check), not the end of the run."""
        try:
            self.results.add("shutdown_s", kernel.role, kernel.timed_shutdown())
            self.results.check("shutdown_s", kernel.role, True)
        except TimeoutError as exc:
            self.results.check("shutdown_s", kernel.role, False, str(exc))

    def cold_round(self, kernel: Kernel, memory: bool) -> None:
        res, role = self.results, kernel.role
        startup = kernel.start()
        res.add("startup_s", role, startup)
        if role == SANDBOX:
            res.add("from_spare", role, float(kernel.from_spare))
        if role != SANDBOX or not kernel.from_spare:
            # A spare's processes were forked long before: no split to make.
            self.record_start_split(kernel, startup)
        if role == SANDBOX:
            self.record_spare_memory()
        if memory:
            time.sleep(SETTLE_S)
            self.record_memory(kernel, "idle")
        if role == SANDBOX:
            self.record_setup_ms(kernel)
        if memory:
            cell = kernel.execute(IMPORTS_CELL)
            res.check("import_cell_s", role, cell.reply["status"] == "ok", str(cell.reply))
            res.add("import_cell_s", role, cell.elapsed_s)
            time.sleep(SETTLE_S)
            self.record_memory(kernel, "imports")

    def record_start_split(self, kernel: Kernel, startup: float) -> None:
        """Split start-up at the fork of the kernel, the launcher and the deepest process."""
        res, role = self.results, kernel.role
        forks = fork_times(kernel.pid, kernel.boot_t0)
        for key, value in forks.items():
            res.add(key, role, value)
        res.add("ready_after_fork_s", role, startup - forks["fork_kernel_s"])
        depths = sorted(key for key in forks if key.startswith("fork_depth"))
        if depths:
            first, last = forks[depths[0]], forks[depths[-1]]
            res.add("split_kernel_s", role, first - forks["fork_kernel_s"])
            res.add("split_launcher_s", role, last - first)
            res.add("split_executor_s", role, startup - last)

    def record_spare_memory(self) -> None:
        """PSS of the spare's whole tree once it has built its sandbox: what a spare costs."""
        with contextlib.suppress(ImportError):
            from sandbox_kernel.provisioner import POOL

            settle_spares()
            for spare in POOL.snapshot():
                if spare.alive():
                    mem = tree_memory(spare.proc.pid)
                    self.results.add("spare_pss_bytes", SANDBOX, mem.pss)

    def record_memory(self, kernel: Kernel, when: str) -> None:
        mem, res, role = tree_memory(kernel.pid), self.results, kernel.role
        res.add(f"pss_{when}_bytes", role, mem.pss)
        res.add(f"uss_{when}_bytes", role, mem.uss)
        res.add(f"procs_{when}", role, mem.read)
        res.check(f"pss_{when}_bytes", role, mem.denied == 0, f"{mem.denied} unreadable")

    def record_setup_ms(self, kernel: Kernel) -> None:
        cell = kernel.execute("%sandbox")
        match = SETUP_RE.search(cell.stream_text())
        self.results.check("setup_ms", kernel.role, match is not None, cell.stream_text()[-300:])
        if match:
            self.results.add("setup_ms", kernel.role, float(match.group(1)))

    # -- restart --------------------------------------------------------------------------

    def restart_rounds(self) -> None:
        for kernel in self.kernels.values():
            kernel.start()
        for rep in range(self.args.reps):
            for kernel in order(rep, self.kernels):
                to_ready, to_spawned = kernel.restart()
                if kernel.role == SANDBOX:
                    self.results.add("restart_from_spare", kernel.role, float(kernel.from_spare))
                self.results.add("restart_s", kernel.role, to_ready)
                self.results.add("restart_spawn_s", kernel.role, to_spawned)
                if kernel.role == SANDBOX:
                    self.record_setup_ms(kernel)

    # -- warm kernels: cells ------------------------------------------------------------

    def warm_rounds(self, metrics: list[str]) -> None:
        expected_png_digests()  # computed here, not between two measurements
        for kernel in self.kernels.values():
            kernel.start()
            self.warm_up(kernel)
        measure: dict[str, Callable[[Kernel], None]] = {
            "trivial": self.trivial_cells,
            "stdout": self.stdout_cell,
            "png": self.png_cell,
            "plotly": self.plotly_cell,
            "interrupt": self.interrupt,
        }
        for metric in metrics:
            progress(f"  {metric}")
            reps = self.args.reps * (TRIVIAL_PER_REP if metric == "trivial" else 1)
            for rep in range(reps):
                for kernel in order(rep, self.kernels):
                    measure[metric](kernel)

    def warm_up(self, kernel: Kernel) -> None:
        """Untimed: first-run costs (imports, display machinery) and the PNG data."""
        warm_up = ["pass", "1+1", "print('x')", PNG_SETUP_CELL, PNG_CELL]
        if "plotly" in self.selected:
            warm_up += [PLOTLY_SETUP_CELL, PLOTLY_CELL]
        for code in warm_up:
            cell = kernel.execute(code)
            if cell.reply["status"] != "ok":
                raise RuntimeError(f"{kernel.name}: warm-up cell failed: {cell.reply}")

    def trivial_cells(self, kernel: Kernel) -> None:
        res, role = self.results, kernel.role
        cell = kernel.execute("pass")
        res.add("cell_pass_s", role, cell.elapsed_s)
        res.check("cell_pass_s", role, cell.reply["status"] == "ok" and not cell.outputs)
        cell = kernel.execute("1+1")
        res.add("cell_expr_s", role, cell.elapsed_s)
        results = cell.of_type("execute_result")
        ok = len(results) == 1 and results[0]["content"]["data"].get("text/plain") == "2"
        res.check("cell_expr_s", role, ok, str(cell.outputs)[:300])
        # The cells above come back to back, as Run All sends them; a person pauses
        # between cells, and the kernel may use the pause (the sandbox copies the
        # pages the next cell will write: child/hot_pages.py).
        time.sleep(PAUSE_S)
        cell = kernel.execute("1+1")
        res.add("cell_paused_s", role, cell.elapsed_s)
        results = cell.of_type("execute_result")
        ok = len(results) == 1 and results[0]["content"]["data"].get("text/plain") == "2"
        res.check("cell_paused_s", role, ok, str(cell.outputs)[:300])

    def stdout_cell(self, kernel: Kernel) -> None:
        cell = kernel.execute(STDOUT_CELL)
        self.results.add("stdout_s", kernel.role, cell.elapsed_s)
        text = cell.stream_text()
        detail = f"{len(text)} of {len(STDOUT_EXPECTED)} characters, {len(cell.outputs)} messages"
        self.results.check("stdout_s", kernel.role, text == STDOUT_EXPECTED, detail)

    def png_cell(self, kernel: Kernel) -> None:
        cell = kernel.execute(PNG_CELL)
        self.results.add("png_s", kernel.role, cell.elapsed_s)
        displays = cell.of_type("display_data")
        got = [
            hashlib.sha256(base64.b64decode(m["content"]["data"].get("image/png", ""))).hexdigest()
            for m in displays
        ]
        ok = len(displays) == 10 and got == expected_png_digests()
        self.results.check("png_s", kernel.role, ok, f"{len(displays)} display_data messages")

    def plotly_cell(self, kernel: Kernel) -> None:
        cell = kernel.execute(PLOTLY_CELL)
        self.results.add("plotly_s", kernel.role, cell.elapsed_s)
        [display] = cell.of_type("display_data") or [{"content": {"data": {}}}]
        markup = display["content"]["data"].get("text/html", "")
        # Stock relays the scripts as they are; the sandbox isolates them in a frame.
        ok = len(markup) > 4_000_000 and (
            markup.startswith('<iframe class="sandbox-kernel-frame" sandbox="allow-scripts"')
            if kernel.role == SANDBOX
            else "<script" in markup
        )
        self.results.check("plotly_s", kernel.role, ok, f"{len(markup)} bytes: {markup[:80]!r}")

    # -- the output gate alone, in this process (what it adds to the relay) ----------------

    def gate_rounds(self) -> None:
        """Time OutputGate on the same outputs the kernels send (its share of the rows above)."""
        from sandbox_kernel.relay.gate import GateSettings, OutputGate

        namespace: dict[str, Any] = {}
        exec(PNG_SETUP_CELL, namespace)
        pngs = [
            {"image/png": base64.b64encode(p).decode(), "text/plain": "<Image>"}
            for p in namespace["_bench_pngs"]
        ]
        exec(PLOTLY_SETUP_CELL, namespace)
        plotly = {"text/html": namespace["_plotly_html"], "text/plain": "<HTML>"}
        from plotly.offline import get_plotlyjs

        library = {"text/html": f"<script>{get_plotlyjs()}</script>", "text/plain": ""}
        for _ in range(self.args.reps):
            gate = OutputGate(GateSettings())  # isolate, the default
            t0 = time.perf_counter()
            for bundle in pngs:
                gate.bundle(bundle)
            self.results.add("gate:10 x 1 MB PNG bundles", "host", time.perf_counter() - t0)
            t0 = time.perf_counter()
            gate.bundle(plotly)
            self.results.add(
                "gate:5 MB plotly HTML bundle (isolated)", "host", time.perf_counter() - t0
            )
            # init_notebook_mode: plotly.js alone, remembered; a later figure replays it.
            t0 = time.perf_counter()
            gate.bundle(library)
            self.results.add(
                "gate:4.9 MB plotly.js library output", "host", time.perf_counter() - t0
            )
            t0 = time.perf_counter()
            gate.bundle({"text/html": NEXT_FIGURE})
            self.results.add(
                "gate:next figure, its library replayed", "host", time.perf_counter() - t0
            )
            sanitizing = OutputGate(GateSettings(active_content="sanitize"))
            t0 = time.perf_counter()
            sanitizing.bundle(plotly)
            self.results.add(
                "gate:5 MB plotly HTML bundle (sanitized)", "host", time.perf_counter() - t0
            )
        # Streams (the 100k-line stdout case) are text: the gate never sees them.
        self.results.add("gate:100k stdout lines (streams are not gated)", "host", 0.0)

    def interrupt(self, kernel: Kernel) -> None:
        for key, code in (("interrupt_s", SLEEP_CELL), ("interrupt_busy_s", BUSY_CELL)):
            elapsed, reply = kernel.interrupt_sleep(code)
            self.results.add(key, kernel.role, elapsed)
            ok = reply.get("status") == "error" and reply.get("ename") == "KeyboardInterrupt"
            self.results.check(key, kernel.role, ok, f"{reply.get('ename')}")

    # -- trivial cells next to a large live state ----------------------------------------

    def state_rounds(self) -> None:
        """`1+1` on two fresh kernels that each hold --state-mb of numpy array."""
        for kernel in self.kernels.values():
            kernel.start()
            for code in ["pass", "1+1", STATE_CELL.format(mib=self.args.state_mb), "1+1"]:
                cell = kernel.execute(code)
                if cell.reply["status"] != "ok":
                    raise RuntimeError(f"{kernel.name}: state set-up failed: {cell.reply}")
        for rep in range(self.args.reps):
            for kernel in order(rep, self.kernels):
                for _ in range(STATE_CELLS_PER_REP):
                    cell = kernel.execute("1+1")
                    self.results.add("cell_state_s", kernel.role, cell.elapsed_s)
                    results = cell.of_type("execute_result")
                    ok = len(results) == 1 and results[0]["content"]["data"]["text/plain"] == "2"
                    self.results.check("cell_state_s", kernel.role, ok, str(cell.outputs)[:300])

    # -- interpreter import costs (diagnostic) --------------------------------------------

    def import_rounds(self) -> None:
        python = sys.executable
        for rep in range(self.args.reps):
            probes = IMPORT_PROBES if rep % 2 == 0 else IMPORT_PROBES[::-1]
            for label, flags, code in probes:
                t0 = time.perf_counter()
                subprocess.run([python, *flags, "-c", code], check=True, cwd=tempfile.gettempdir())
                self.results.add(f"import:{label}", "host", time.perf_counter() - t0)


_PNG_DIGESTS: list[str] = []


def expected_png_digests() -> list[str]:
    if not _PNG_DIGESTS:
        namespace: dict[str, Any] = {}
        exec(PNG_SETUP_CELL, namespace)  # the same code the kernels run
        _PNG_DIGESTS.extend(hashlib.sha256(p).hexdigest() for p in namespace["_bench_pngs"])
    return _PNG_DIGESTS


# -- statistics and the table ----------------------------------------------------------------


def p10(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[0]


def summarize(row: Row, samples: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"key": row.key, "label": row.label, "unit": row.unit}
    for role in ROLES:
        values = samples.get(role)
        if values:
            # p10 of the time is the best decile; for a throughput row that is bytes / p10 time.
            median, best = statistics.median(values), p10(values)
            out[role] = {"median": row.show(median), "p10": row.show(best), "n": len(values)}
    if SANDBOX in out and STOCK in out:
        for stat in ("median", "p10"):
            stock = out[STOCK][stat]
            out[f"ratio_{stat}"] = out[SANDBOX][stat] / stock if stock else None
    if row.target is not None and out.get("ratio_median") is not None:
        ratio = out["ratio_median"]
        ok = ratio >= row.target if row.higher_is_better else ratio <= row.target
        out["target"] = f"{'>=' if row.higher_is_better else '<='} {row.target:g}x"
        out["verdict"] = "PASS" if ok else "MISS"
    return out


def _num(value: float | None, width: int = 9) -> str:
    if value is None:
        return " " * (width - 1) + "-"
    if abs(value) >= 100:
        return f"{value:{width}.0f}"
    return f"{value:{width}.2f}" if abs(value) >= 10 else f"{value:{width}.3f}"


def format_table(summary: list[dict[str, Any]], results: Results, names: dict[str, str]) -> str:
    head = (
        f"{'metric':<36}{'unit':>5} | {'sandbox':>9}{'p10':>9} | {'stock':>9}{'p10':>9} | "
        f"{'ratio':>7}{'r(p10)':>7} | {'target':>8}  verdict"
    )
    lines = [f"sandbox = {names[SANDBOX]}, stock = {names[STOCK]}; ratio = sandbox/stock", head]
    lines.append("-" * len(head))
    for row in summary:
        cells = []
        for role in ROLES:
            stats = row.get(role, {})
            cells.append(f"{_num(stats.get('median'))}{_num(stats.get('p10'))}")
        ratio = f"{_num(row.get('ratio_median'), 7)}{_num(row.get('ratio_p10'), 7)}"
        verdict = row.get("verdict", "")
        failed = results.failed_checks(row["key"])
        if failed:
            verdict = f"{verdict} CHECK FAILED x{failed}".strip()
        lines.append(
            f"{row['label']:<36}{row['unit']:>5} | {cells[0]} | {cells[1]} | {ratio} | "
            f"{row.get('target', ''):>8}  {verdict}"
        )
    return "\n".join(lines)


def format_gate(results: Results) -> str:
    lines = []
    for key, by_role in results.samples.items():
        if key.startswith("gate:"):
            values = by_role["host"]
            lines.append(
                f"  {key.removeprefix('gate:'):<48} "
                f"median {statistics.median(values) * 1e3:8.1f} ms"
                f"   p10 {p10(values) * 1e3:8.1f} ms"
            )
    return "output gate alone (in this process):\n" + "\n".join(lines) if lines else ""


def format_imports(results: Results) -> str:
    lines = []
    for key, by_role in results.samples.items():
        if key.startswith("import:"):
            values = by_role["host"]
            label = key.removeprefix("import:")
            lines.append(
                f"  {label:<44} median {statistics.median(values) * 1e3:7.0f} ms"
                f"   p10 {p10(values) * 1e3:7.0f} ms"
            )
    return "interpreter start + import (subprocess wall time):\n" + "\n".join(lines)


# -- output ------------------------------------------------------------------------------


def source_digest() -> str:
    """SHA-256 over the sandbox_kernel sources, to notice edits made during a run."""
    import sandbox_kernel

    root = Path(sandbox_kernel.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _git(*argv: str) -> str:
    """Read-only git queries (nothing that changes the repository)."""
    try:
        done = subprocess.run(
            ["git", *argv], cwd=BENCH_DIR, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return ""  # no git (a container built from minimal Debian packages)
    return done.stdout.strip()


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import ipykernel
    import jupyter_client

    import sandbox_kernel

    return {
        "args": vars(args),
        "python": sys.version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "euid": os.geteuid(),
        "versions": {
            "ipykernel": ipykernel.__version__,
            "jupyter_client": jupyter_client.__version__,
            "sandbox_kernel": sandbox_kernel.__version__,
        },
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted": _git("status", "--porcelain", "--", "sandbox_kernel").splitlines(),
        "source_digest_start": source_digest(),
    }


def write_json(path: Path, meta: dict[str, Any], results: Results, summary: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "meta": meta,
        "summary": summary,
        "samples": results.samples,
        "checks": results.checks,
        "errors": results.errors,
    }
    path.write_text(json.dumps(data, indent=1, default=str))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15, help="repetitions per metric and kernel")
    parser.add_argument("--quick", action="store_true", help="3 repetitions: a smoke run for CI")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="METRIC",
        help=f"run only these (repeat or comma-separate): {', '.join(METRICS)}, setup",
    )
    parser.add_argument(
        "--state-mb", type=int, default=1024, help="live numpy state for the `state` metric (MiB)"
    )
    parser.add_argument("--kernel", default="sandbox-python", help="kernelspec under test")
    parser.add_argument("--reference", default="python3", help="kernelspec to compare with")
    parser.add_argument("--json", type=Path, help="where to write the raw numbers")
    parser.add_argument(
        "--spares",
        type=int,
        default=1,
        help="SandboxProvisioner.spares for the sandbox kernel (default 1: what a Jupyter "
        "server's kernels get; this benchmark's own kernel manager would get 0, as "
        "nbclient's does; 0 times every start and restart without a pre-warmed spare)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.reps = 3
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    only = {m.strip() for item in args.only for m in item.split(",") if m.strip()}
    unknown = only - {*METRICS, "setup"}
    if unknown:
        parser.error(f"unknown metric(s): {', '.join(sorted(unknown))}")
    args.only = sorted(only)
    return args


@contextlib.contextmanager
def bench_session(name: str, log_path: Path) -> Iterator[tuple[Path, IO[bytes]]]:
    """A benchmark's working directory and kernel log, with SIGTERM/SIGHUP unwinding
    like Ctrl-C so that the kernels are shut down."""
    with (
        terminate_as_exit(),
        tempfile.TemporaryDirectory(prefix=f"sandbox-{name}-") as workdir,
        open(log_path, "wb") as log,
    ):
        yield Path(workdir), log


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so the finally clauses shut the kernels down."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def result_paths(given: Path | None, kind: str = "") -> tuple[str, Path, Path]:
    """One run's timestamp, JSON path (``given`` or bench/results/[kind-]STAMP.json)
    and the kernels' log next to it."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{kind}-{stamp}.json" if kind else f"{stamp}.json"
    json_path = given or BENCH_DIR / "results" / name
    json_path.parent.mkdir(parents=True, exist_ok=True)
    return stamp, json_path, json_path.with_suffix(".kernels.log")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp, json_path, log_path = result_paths(args.json)
    selected = set(args.only or METRICS)
    meta = environment(args) | {"started": stamp, "loadavg_start": os.getloadavg()}
    if os.geteuid() != 0:
        progress("warning: not root; PSS of sandboxed processes may be unreadable")
    t0 = time.perf_counter()
    with bench_session("bench", log_path) as (workdir, log):
        bench = Bench(args, workdir, log)
        try:
            bench.run(selected)
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
    names = {role: kernel.name for role, kernel in bench.kernels.items()}
    summary = [summarize(r, results.samples[r.key]) for r in ROWS if r.key in results.samples]
    write_json(json_path, meta, results, summary)
    print(format_table(summary, results, names))
    state = results.samples.get("cell_state_s", {})
    if SANDBOX in state and STOCK in state:
        added = statistics.median(state[SANDBOX]) - statistics.median(state[STOCK])
        verdict = "PASS" if added <= STATE_TARGET_S else "MISS"
        print(
            f"`1+1` with {args.state_mb} MiB of live numpy state: sandbox - stock = "
            f"{added * 1e3:+.2f} ms (target <= +{STATE_TARGET_S * 1e3:g} ms)  {verdict}"
        )
    if any(key.startswith("gate:") for key in results.samples):
        print(format_gate(results))
    if any(key.startswith("import:") for key in results.samples):
        print(format_imports(results))
    print(
        f"load average {meta['loadavg_start'][0]:.2f} -> {meta['loadavg_end'][0]:.2f}; "
        f"{meta['wall_s']:.0f} s; raw numbers: {json_path}; kernel logs: {log_path}"
    )
    if meta["source_digest_start"] != meta["source_digest_end"]:
        print("WARNING: sandbox_kernel sources changed during the run; kernels started at")
        print("         different times ran different code.")
    elif meta["uncommitted"]:
        print(f"note: measured with uncommitted changes to {len(meta['uncommitted'])} file(s)")
    for error in results.errors:
        print(f"ERROR: {error}")
    failed = any(results.failed_checks(key) for key in results.checks)
    if "interrupted" in results.errors:
        return 130
    return 1 if results.errors or failed else 0


if __name__ == "__main__":
    sys.exit(main())
