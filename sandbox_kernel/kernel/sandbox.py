"""The sandbox's lifecycle, on the trusted side: start, restart, stop.

One :class:`Sandbox` per kernel holds what outlives a single executor (the private
directory, the cgroup, the egress proxy, the workspace's guard and meter) and the
executor in force. It starts the executor (spec, environment, launcher) and checks
the level it reports, replaces it when it dies, and watches the workspace while it
lives: the quota, and what the sandbox leaves there for programs outside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .. import own_memory
from ..config import Isolation, Limits, Output, level_rank
from ..errors import DiskQuotaExceeded, ExecutorDied
from ..framing import frame_limit
from ..identity import home_dir
from ..isolation import cgroups
from ..isolation.spec import SandboxSpec
from ..isolation.userns import sandbox_uid_range
from ..log import AuditLog
from ..network.kernel_side import KernelNetwork
from ..policy import PolicySettings
from ..relay.publisher import Publisher
from ..units import MIB
from .hygiene import Finding, WorkspaceGuard, frozen_trees, mount_view
from .quota import (
    IDLE_INTERVAL_S,
    MIN_INTERVAL_S,
    WorkspaceMeter,
    sandbox_cpu_ns,
    sandbox_write_bytes,
    writes_counted,
)
from .runner import ExecutorProcess
from .spec import build_environment, build_spec, effective_memory_bytes
from .stdin import RelaySink, Stdin

if TYPE_CHECKING:
    from .cellrun import CellRun

__all__ = ["Sandbox"]

# Control files and shadow modules bound read-only at the namespaces level; past
# this many (a tree with a checkpoint directory in each of hundreds of folders)
# the rest are guarded by the scan alone.
MAX_READ_ONLY_BINDS = 64
# A workspace scan at a cell's start or end runs inline when the last one took less:
# handing it to a thread costs more (0.3-0.4 ms per hop, measured on a loaded 2-core
# machine: bench/README.md, per-cell profile) than the scan of an unchanged workspace
# (0.03 ms here, about 1 ms for 10,000 files). A slower one goes to a thread, so that
# it does not hold up the event loop.
INLINE_SCAN_S = 0.005
T = TypeVar("T")


@dataclass(frozen=True)
class WarmRecord:
    """An executor built before this kernel was assigned (``%sandbox`` says so)."""

    built_s_before: float  # how long before assignment its start began
    setup_s: float  # how long its set-up took then


class _NoSink:
    """Outputs before attach(): none is expected (no cell has run), none is published."""

    def publish(self, message: dict[str, Any]) -> None:
        pass

    async def request_input(self, prompt: str, password: bool, parent: str) -> str:
        raise ExecutorDied("no kernel is attached to this sandbox yet")


class Sandbox:
    """The executor in force and what outlives it, for one kernel."""

    # The kernel's side, given at attach(): a warm sandbox (``warm.py``) is built
    # before its kernel has a connection file, so before there is an IOPub to publish on.
    publisher: Publisher
    stdin: Stdin
    audit: AuditLog

    def __init__(
        self,
        *,
        isolation: Isolation,
        limits: Limits,
        output: Output,
        policy: PolicySettings,
        workspace: str,
        log: logging.Logger | logging.LoggerAdapter[Any],
    ) -> None:
        self.isolation = isolation
        self.limits = limits
        self.output = output
        self.policy = policy
        self.workspace = workspace
        self.log = log
        self.attached = False
        # Paths no cell may reach (the kernel's own ipc sockets), asked at each start.
        # Until attach() there is no connection file, hence no ipc socket.
        self.hidden: Callable[[], list[str]] = list
        # Until attach(): what the launcher and the proxy report is kept and replayed,
        # so that nothing they say before the kernel exists is lost.
        self._early: list[tuple[str, Any]] = []
        self.on_log: Callable[[str, str], None] = lambda level, msg: self._early.append(
            ("log", (level, msg))
        )
        self.on_audit: Callable[[dict[str, Any]], None] = lambda r: self._early.append(("audit", r))
        self.on_network: Callable[[dict[str, Any]], None] = lambda r: self._early.append(
            ("network", r)
        )
        self.on_debug_event: Callable[[dict[str, Any]], None] | None = None
        # Set when the executor in force was built before this kernel was assigned.
        self.warm: WarmRecord | None = None
        self.warm_built_at = 0.0
        self._warm_pending: asyncio.Future[ExecutorProcess | str] | None = None
        self._cgroup_reason: str | None = None

        self.executor: ExecutorProcess | None = None
        self.starting: asyncio.Future[ExecutorProcess | str] | None = None
        self.setup_failure: str | None = None
        # What the launcher reported it set up (level, layers): the banner, %sandbox.
        self.report: dict[str, Any] = {}
        self.private_dir: str | None = None
        self.network: KernelNetwork | None = None
        self.cgroup: cgroups.Cgroup | None = None
        # The running cell, if any (set by CellRun while it runs).
        self.cell: CellRun | None = None
        # The last cell's figures: reply metadata, %sandbox.
        self.last_cell: dict[str, Any] = {}
        # (OOM kills, process-limit hits) of the cgroup, as of the last cell's end.
        self.cgroup_counts = (0, 0)
        # Without a pids cgroup: the sandbox's process count after the previous cell.
        self.tree_size = 0
        # Said at the start of the next cell (something happened between cells).
        self.pending_notices: list[str] = []
        # The workspace quota: its size when the kernel started, measured from outside.
        self.meter: WorkspaceMeter | None = None
        # Links, special files, control files and shadow modules a cell leaves behind.
        self.guard: WorkspaceGuard | None = None
        self.hygiene_findings = 0
        self._quota_watch: asyncio.Task[None] | None = None
        # One scan of the workspace at a time: the cell's start and end, and the scans
        # between cells when the sandbox writes while no cell runs.
        self.guard_lock = asyncio.Lock()
        # From a cell's start until its own scan has run: writes then are the cell's.
        self.cell_scanning = False

    @property
    def level(self) -> str:
        return str(self.report.get("level", ""))

    def attach(
        self,
        *,
        publisher: Publisher,
        stdin: Stdin,
        audit: AuditLog,
        hidden: Callable[[], list[str]],
        on_log: Callable[[str, str], None],
        on_audit: Callable[[dict[str, Any]], None],
        on_network: Callable[[dict[str, Any]], None],
        on_debug_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Give the sandbox its kernel: where outputs, input requests and reports go."""
        self.publisher, self.stdin, self.audit = publisher, stdin, audit
        self.hidden = hidden
        self.on_log, self.on_audit, self.on_network = on_log, on_audit, on_network
        self.on_debug_event = on_debug_event
        self.attached = True
        early, self._early = self._early, []
        for kind, item in early:
            if kind == "log":
                on_log(*item)
            elif kind == "audit":
                on_audit(item)
            else:
                on_network(item)
        if self.executor is not None:
            self.executor.sink = self._sink()

    # Looked up at each call: a warm sandbox gets its kernel's callbacks at attach().
    def _log_record(self, level: str, message: str) -> None:
        self.on_log(level, message)

    def _audit_record(self, record: dict[str, Any]) -> None:
        self.on_audit(record)

    def _network_record(self, record: dict[str, Any]) -> None:
        self.on_network(record)

    def _sink(self) -> RelaySink:
        return RelaySink(self.publisher, self.stdin.request_input, self.on_debug_event)

    # -- start, restart, stop ----------------------------------------------------------

    def begin_start(self) -> asyncio.Future[ExecutorProcess | str]:
        if self._warm_pending is not None:
            # The first start of an assigned spare: the executor built ahead of need is
            # kept only if a fresh start would build the same sandbox now.
            pending, self._warm_pending = self._warm_pending, None
            self.starting = asyncio.ensure_future(self._adopt(pending))
        elif self.starting is None or self.starting.done():
            self.starting = asyncio.ensure_future(self._start())
        return self.starting

    def start_warm(self) -> asyncio.Future[ExecutorProcess | str]:
        """Before the kernel is assigned (a spare, ``warm.py``): build the executor now.

        The workspace quota's baseline and the watch between cells start at
        assignment, as a fresh kernel's do at its start (``_adopt``).
        """
        self.warm_built_at = time.monotonic()
        self._warm_pending = asyncio.ensure_future(self._start(watch=False))
        return self._warm_pending

    def warm_future(self) -> asyncio.Future[ExecutorProcess | str]:
        """The start begun by start_warm(), until the kernel's own start takes it over."""
        assert self._warm_pending is not None, "no warm start under way"
        return self._warm_pending

    def discard_warm(self) -> None:
        """Take down what start_warm() built (the kernel starts its own sandbox).

        Runs before the kernel's event loop does, so that the new sandbox's cgroup
        (named after this process) is not destroyed by the old one's teardown.
        """
        pending, self._warm_pending = self._warm_pending, None

        async def end() -> None:
            if pending is not None:
                with contextlib.suppress(BaseException):
                    await pending
            await self.stop()

        asyncio.get_event_loop().run_until_complete(end())

    async def wait_started(self) -> None:
        """Wait (bounded) for a start under way: a failure is reported as such."""
        if self.starting is not None and not self.starting.done():
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self.starting), self.limits.startup_timeout_s)

    async def for_cell(self) -> ExecutorProcess | str:
        """The executor to run a cell in (started if need be), or why there is none."""
        executor = self.executor
        if executor is not None and executor.alive:
            return executor
        if executor is not None:
            # It died between cells (a background thread crashed it, say).
            self.publisher.notice(
                f"[sandbox] the executor stopped after the previous cell ({executor.dead_reason}); "
                "a new one was started and earlier state is gone."
            )
        self.executor = None
        return await self.begin_start()

    async def restart(self, executor: ExecutorProcess) -> None:
        """Kill ``executor`` and start a new one (its state is gone)."""
        await executor.kill()
        self.executor = None
        self.begin_start()

    def _build_spec(self) -> SandboxSpec:
        """The spec a start now would give the launcher (also the warm sandbox's check)."""
        assert self.network is not None
        assert self.private_dir is not None
        return build_spec(
            self.isolation,
            self.limits,
            workspace=self.workspace,
            home=home_dir(),
            private_dir=self.private_dir,
            cgroup=self.cgroup,
            cgroup_reason=self._cgroup_reason,
            policy=self.policy.to_dict(),
            hidden=self.hidden(),
            network=self.network.spec(),
            network_mounts=self.network.mounts(),
            # The executor sends a small stand-in for an output its frame could not carry.
            max_frame_bytes=frame_limit(self.output.max_message_bytes),
        )

    def _bind_guarded(self, spec: SandboxSpec) -> SandboxSpec:
        """The spec with the workspace's guarded entries bound read-only (namespaces)."""
        if self.guard is None:
            return spec
        inside = tuple(self.guard.top_entries(MAX_READ_ONLY_BINDS))
        return spec._replace(isolation=spec.isolation._replace(read_only_inside=inside))

    async def _start(self, *, watch: bool = True) -> ExecutorProcess | str:
        """Start an executor; return it, or the reason there is none."""
        self.warm = None  # a new executor is never the one built ahead of need
        if self.private_dir is None:
            self.private_dir = tempfile.mkdtemp(prefix="sandbox-kernel-")
        if self.cgroup is None and self.isolation.cgroups != "disabled":
            created = cgroups.create(
                f"sandbox-kernel-{os.getpid()}",
                effective_memory_bytes(self.limits),
                self.limits.max_processes,
                self.limits.cpu_share,
            )
            if isinstance(created, cgroups.Cgroup):
                self.cgroup = created
                cgroup_reason = None
            else:
                cgroup_reason = created
                enclosing = cgroups.enclosing_limits().describe()
                if enclosing:
                    cgroup_reason = f"{created}; {enclosing}"
                if self.isolation.cgroups == "required":
                    return f"cgroup required but unavailable: {created}"
        else:
            cgroup_reason = "disabled by configuration" if self.cgroup is None else None
        if self.network is None:
            self.network = KernelNetwork(
                self.isolation,
                private_dir=self.private_dir,
                audit=self._network_record,
            )
            try:
                self.network.start()
            except OSError as exc:
                self.network.stop()
                return f"the egress proxy for Isolation.allowed_hosts could not start ({exc})"
        self._cgroup_reason = cgroup_reason
        spec = self._build_spec()
        if self.guard is None and self.isolation.workspace_writable:
            with contextlib.suppress(OSError):  # an unreachable workspace fails below
                self.guard = await asyncio.to_thread(
                    WorkspaceGuard,
                    self.workspace,
                    list(self.isolation.control_files),
                    list(self.isolation.shadow_modules),
                    list(spec.isolation.protected),
                    sandbox_uids=sandbox_uid_range(self.isolation.sandbox_uid_base),
                )
        spec = self._bind_guarded(spec)
        executor = ExecutorProcess(
            spec,
            # Before attach() no cell runs, so nothing is published; attach() sets the sink.
            sink=self._sink() if self.attached else _NoSink(),
            env=build_environment(self.isolation, self.limits),
            cwd=self.workspace,
            max_frame_bytes=frame_limit(self.output.max_message_bytes),
            frame_deadline_s=self.output.frame_deadline_s,
            on_log=self._log_record,
            on_audit=self._audit_record,
            headroom=own_memory.headroom,
        )
        try:
            ready = await executor.start(self.limits.startup_timeout_s)
        except ExecutorDied as exc:
            reason = executor.setup_failure or str(exc)
            self.log.error("executor_start_failed reason=%s", reason)
            self.setup_failure = reason
            return reason
        except OSError as exc:
            # The launcher could not even be started (the workspace is not reachable
            # for this user, the interpreter is gone ...): say so, and keep serving.
            where = f"{exc.filename}: " if exc.filename else ""
            reason = f"the executor could not be started ({where}{exc.strerror or exc})"
            self.log.error("executor_start_failed reason=%s", reason)
            await executor.kill()
            self.setup_failure = reason
            return reason
        report = ready.get("isolation", {})
        level = report.get("level", "none")
        if level_rank(level) < level_rank(self.isolation.required_isolation):
            # The launcher enforces this too; a report below the bar means the
            # executor cannot be trusted to have done so.
            await executor.kill()
            required = self.isolation.required_isolation
            return (
                f"the executor reported isolation level {level!r}, below the required {required!r}"
            )
        self.report = report
        self.setup_failure = None
        self.executor = executor
        if self.attached:
            # attach() may have come while this start was under way (it replaces the
            # sink of the executor in force only): outputs go to the kernel's IOPub.
            executor.sink = self._sink()
        if watch:
            await self._watch_quota(executor, list(spec.isolation.protected))
        if self.guard is not None:
            # Checked in the executor's own view: only a bind really in force makes a
            # change there someone else's, or a tree one the sandbox cannot change.
            view = mount_view(executor.executor_host_pid())
            requested = spec.isolation.read_only_inside
            root = self.guard.root
            self.guard.bound = {os.path.relpath(p, root) for p in requested if view.get(p)}
            protected = spec.isolation.protected  # masked, and never walked anyway
            frozen = frozen_trees(view, root, exclude=[*requested, *protected])
            async with self.guard_lock:  # the watch between cells may be scanning
                await asyncio.to_thread(self.guard.freeze, frozen)
        self.log.info("executor_ready level=%s setup_s=%.3f", level, executor.setup_time_s or 0)
        return executor

    async def _adopt(self, pending: asyncio.Future[ExecutorProcess | str]) -> ExecutorProcess | str:
        """The spare was assigned: keep the executor it built ahead of need, or start afresh.

        It is kept only if it is alive and a fresh start now would build the very same
        sandbox (spec, environment, the workspace's read-only binds); any doubt, and it
        is discarded with everything made for it, and a fresh one starts. Never reused
        by another kernel: it lives and dies with this process.
        """
        try:
            result = await pending
        except Exception as exc:  # a warm start that raised is a doubt, not an error
            result = f"{type(exc).__name__}: {exc}"
        why = await self._warm_mismatch(result)
        if why is None and isinstance(result, ExecutorProcess):
            executor = result
            self.warm = WarmRecord(
                built_s_before=time.monotonic() - self.warm_built_at,
                setup_s=executor.setup_time_s or 0.0,
            )
            await self._watch_quota(executor, list(executor.spec.isolation.protected))
            self.log.info("executor_ready_warm level=%s", self.level)
            return executor
        self.log.info("warm_sandbox_discarded reason=%s", why)
        self.starting = None
        await self.stop()
        self.guard = None
        self.report = {}
        self.setup_failure = None
        return await self._start()

    async def _warm_mismatch(self, result: ExecutorProcess | str) -> str | None:
        """Why the executor built ahead of need is not the one a start now would build."""
        if not isinstance(result, ExecutorProcess):
            return f"its start failed ({result})"
        if not result.alive:
            return f"its executor is gone ({result.dead_reason or result.executor_lost})"
        if self.hidden():
            return "this kernel's ipc sockets must be hidden from the cells"
        if self.guard is not None:
            # What the user changed in the workspace while the spare waited is theirs;
            # the read-only binds must be those a fresh start would make now.
            await asyncio.to_thread(self.guard.begin_cell)
        spec = self._bind_guarded(self._build_spec())
        built = result.spec
        if spec != built:
            changed = [f for f in spec._fields if getattr(spec, f) != getattr(built, f)]
            return f"the sandbox a start now would build differs ({', '.join(changed)})"
        if build_environment(self.isolation, self.limits) != result.env:
            return "the environment a start now would give differs"
        return None

    async def stop(self) -> None:
        """End everything: the executor, the cgroup, the proxy, the private directory."""
        if self.starting is not None and not self.starting.done():
            self.starting.cancel()
        if self._quota_watch is not None:
            self._quota_watch.cancel()
            self._quota_watch = None
        if self.executor is not None:
            await self.executor.kill()
            self.executor = None
        if self.cgroup is not None:
            self.cgroup.destroy()
            self.cgroup = None
        if self.network is not None:
            self.network.stop()
            self.network = None
        if self.private_dir is not None:
            shutil.rmtree(self.private_dir, ignore_errors=True)
            self.private_dir = None

    # -- the workspace, watched while the executor lives ----------------------------------

    async def _watch_quota(self, executor: ExecutorProcess, protected: list[str]) -> None:
        """Watch the sandbox's writes for this executor's life: the workspace quota (the
        baseline is the kernel's start), and the workspace's hygiene between cells."""
        if not self.isolation.workspace_writable:
            return
        quota_on = bool(self.limits.workspace_quota_mb)
        if not quota_on and self.guard is None:
            return
        if quota_on and self.meter is None:
            self.meter = await asyncio.to_thread(WorkspaceMeter, self.workspace, protected)
        if self._quota_watch is not None:
            self._quota_watch.cancel()
        self._quota_watch = asyncio.ensure_future(self._quota_loop(executor))

    def _cell_running(self) -> bool:
        return self.cell is not None and self.cell.running

    async def _quota_loop(self, executor: ExecutorProcess) -> None:
        """Measure the workspace whenever the sandbox has written to disk since last time.

        The sandbox's write counter (``/proc/<pid>/io``, a few small reads) is looked
        at every MIN_INTERVAL_S while a cell runs (IDLE_INTERVAL_S between cells); the
        workspace is measured only when it moved, and
        not more often than the measurement's own cost allows, so an idle kernel
        with a large workspace costs nothing.
        """
        meter = self.meter
        quota = self.limits.workspace_quota_mb * MIB
        written: int | None = None
        # The write count the last hygiene scan between cells (or the last cell) covered.
        scanned: int | None = None
        measured_at = 0.0
        # Measurements in a row that found the workspace growing past the quota while
        # no cell ran: the first may be the last writes of a cell just stopped.
        idle_strikes = 0
        # On a tmpfs the write counter stays still whatever the sandbox writes.
        counted = await asyncio.to_thread(writes_counted, self.workspace)
        while self.executor is executor and executor.dead_reason is None:
            await asyncio.sleep(MIN_INTERVAL_S if self._cell_running() else IDLE_INTERVAL_S)
            pids = executor.tree_pids()
            now = sandbox_write_bytes(pids) if counted else None
            # Without the write counter, any CPU the sandbox used is taken as a sign it
            # may have written (a scan of an unchanged workspace costs about 1 ms).
            activity = now if now is not None else sandbox_cpu_ns(pids)
            if self._cell_running() or self.cell_scanning:
                scanned = activity  # what a cell writes, the scan at its end examines
            elif activity is not None and activity != scanned:
                # No cell runs, yet the sandbox wrote: a thread or a process an earlier
                # cell left. What it left for trusted programs is undone now, not taken
                # as the user's own at the next cell's start (git would meet it first).
                scanned = activity
                await self._hygiene_between_cells()
            if meter is None:
                continue
            # Unknown (no access to /proc/<pid>/io): the sandbox is taken to have written.
            if now is not None and now == written:
                continue
            if time.monotonic() - measured_at < meter.interval():
                continue  # measured recently; the writes are seen next time
            written = now
            previous = meter.last
            meter.last = await asyncio.to_thread(meter.measure)
            measured_at = time.monotonic()
            if not (meter.growth > quota and meter.last > previous):
                idle_strikes = 0
            elif self._cell_running():
                idle_strikes = 0
                await self._over_quota(executor, meter.growth)
            else:
                idle_strikes += 1
                await self._over_quota_between_cells(executor, meter.growth, idle_strikes)

    def _quota_reason(self, growth: int) -> str:
        return (
            f"the workspace grew by {growth / MIB:.0f} MiB during this kernel's life, past its "
            f"quota of {self.limits.workspace_quota_mb} MiB (Limits.workspace_quota_mb); "
            "delete files in it to make room"
        )

    async def _over_quota_between_cells(
        self, executor: ExecutorProcess, growth: int, strikes: int
    ) -> None:
        """No cell runs, yet the sandbox writes past the quota: a process or a thread an
        earlier cell left. Its processes are ended first; if the writing goes on, it is
        the executor's own threads, and the executor is stopped."""
        if strikes == 1:
            return  # maybe the last writes of a cell that was just stopped
        why = self._quota_reason(growth)
        self.log.warning("workspace_quota_exceeded_between_cells growth_mib=%d", growth // MIB)
        if strikes == 2:
            keep = [executor.snapshot_pid] if executor.snapshot_pid is not None else []
            executor.end_cell_processes(keep=keep)
            self.pending_notices.append(
                f"[sandbox] {DiskQuotaExceeded.__name__}: while no cell was running, {why}. "
                "The processes "
                "earlier cells had started were stopped."
            )
            return
        await executor.kill()
        if self.executor is executor:
            self.executor = None
        self.pending_notices.append(
            f"[sandbox] {DiskQuotaExceeded.__name__}: while no cell was running, {why}. "
            "The executor's own "
            "threads went on writing, so it was stopped; variables and imports are gone."
        )

    async def _over_quota(self, executor: ExecutorProcess, growth: int) -> None:
        """A running cell made the workspace grow past its quota: stop what is writing."""
        cell = self.cell
        if cell is None or cell.stop_reason is not None:
            return
        self.log.warning("workspace_quota_exceeded growth_mib=%d", growth // MIB)
        cell.stop_reason = DiskQuotaExceeded(self._quota_reason(growth))
        # Everything else the cell started stops first: it may be the writer.
        keep = [executor.snapshot_pid] if executor.snapshot_pid is not None else []
        executor.end_cell_processes(keep=keep)
        await cell.stop_over_limit()

    async def begin_cell_scan(self) -> None:
        """A cell starts: what is in the workspace now is the user's own."""
        if self.guard is not None:
            self.cell_scanning = True
            async with self.guard_lock:
                await self._guard_work(self.guard.begin_cell)

    async def _hygiene_between_cells(self) -> None:
        """Undo what the sandbox put in the workspace while no cell ran; say so at the next cell."""
        guard = self.guard
        if guard is None or self.cell_scanning or self.guard_lock.locked():
            return  # a cell's own scan is under way: it examines the same entries
        async with self.guard_lock:
            findings = await asyncio.to_thread(guard.scan)
        self._report_hygiene(findings, source=None)

    async def workspace_hygiene(self, source: str) -> None:
        """Undo what the cell (or a process it left running) put in the workspace; say so."""
        guard = self.guard
        if guard is None:
            return
        async with self.guard_lock:
            findings = await self._guard_work(guard.scan)
        self._report_hygiene(findings, source=source)

    async def _guard_work(self, work: Callable[[], T]) -> T:
        """A cell's own scan: inline when the last scan was quick, else in a thread."""
        guard = self.guard
        if guard is not None and guard.stats.seconds < INLINE_SCAN_S:
            return work()
        return await asyncio.to_thread(work)

    def _report_hygiene(self, findings: list[Finding], *, source: str | None) -> None:
        """Audit what was undone; tell the user in this cell, or (``source`` None: no
        cell ran) at the start of the next one."""
        between_cells = source is None
        guard = self.guard
        assert guard is not None
        self.hygiene_findings += len(findings)
        self.log.debug(
            "workspace_scan dirs=%d entries=%d s=%.4f",
            guard.stats.dirs,
            guard.stats.entries_examined,
            guard.stats.seconds,
        )
        for finding in findings:
            self.audit.record_violation(
                {
                    "event": "workspace",
                    "rule": "WORKSPACE",
                    "action": finding.action,
                    "detail": finding.line(),
                },
                source=source,
                reported_by="kernel",
            )
        if not findings:
            return
        shown = "; ".join(f.line() for f in findings[:8])
        more = f" (and {len(findings) - 8} more, in the audit log)" if len(findings) > 8 else ""
        shared = (
            "[sandbox] The workspace is shared with programs outside the sandbox (the "
            "Jupyter server, git, graders, your next kernel); "
        )
        if between_cells:
            # No cell to show it in: the next cell's output says it. A change of the
            # user's own made at the same moment is undone with it, hence the last words.
            self.log.info("workspace_undone_between_cells entries=%d", len(findings))
            self.pending_notices.append(
                f"{shared}while no cell was running, a thread or process an earlier cell "
                f"started left there for them: {shown}{more}. If you changed one of these "
                "yourself at that moment, make the change again."
            )
        else:
            self.publisher.notice(f"{shared}what this cell left there for them: {shown}{more}")
