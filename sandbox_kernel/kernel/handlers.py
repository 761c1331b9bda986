"""The trusted kernel: speaks the Jupyter protocol, runs no user code, relays to the executor."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

import psutil
from ipykernel.kernelbase import Kernel
from jupyter_client.session import json_packer

from .. import __version__, own_memory
from ..config import Isolation, Limits, Output, Policy, level_rank
from ..errors import ExecutorDied
from ..identity import home_dir, user_name
from ..isolation import cgroups, privs
from ..isolation.userns import sandbox_uid_range
from ..log import AuditLog
from ..network.kernel_side import KernelNetwork
from ..policy import PolicySettings, Verdict, check_cell
from ..policy.rules import RULES
from ..relay.budget import OutputLimits
from ..relay.framing import frame_limit
from ..relay.gate import GateSettings
from ..relay.publisher import Publisher
from ..relay.reports import escape_for_log
from ..sandbox_magic import SANDBOX_MAGIC_DOC, SUBCOMMANDS, rules_table
from .hygiene import Finding, WorkspaceGuard, read_only_mounts
from .quota import (
    IDLE_INTERVAL_S,
    MIB,
    MIN_INTERVAL_S,
    WorkspaceMeter,
    sandbox_cpu_ns,
    sandbox_write_bytes,
)
from .runner import CellOutcome, ExecuteRequest, ExecutorProcess
from .spec import build_environment, build_spec, effective_memory_bytes
from .stdin import RelaySink, Stdin

__all__ = ["SandboxKernel"]

# ``%sandbox`` alone in a cell, after IPython's transformation.
SANDBOX_MAGIC = re.compile(r"^get_ipython\(\)\.run_line_magic\('sandbox', '([^']*)'\)\s*$")
COMPLETE_TIMEOUT_S = 10.0
# Said with every rollback: what a failed cell did to the workspace stays.
FILES_NOT_RESTORED = (
    "Files were not restored: what the cell wrote, changed or deleted in the workspace "
    "stays as it left it."
)
COMM_TIMEOUT_S = 30.0


# Control files and shadow modules bound read-only at the namespaces level; past
# this many (a tree with a checkpoint directory in each of hundreds of folders)
# the rest are guarded by the scan alone.
MAX_READ_ONLY_BINDS = 64


def _audit_log_path(setting: str) -> str | None:
    if not setting:
        return None
    if setting == "default":
        from jupyter_core.paths import jupyter_data_dir

        return os.path.join(jupyter_data_dir(), "sandbox_kernel", "audit.jsonl")
    return os.path.expanduser(setting)


def _user_tasks() -> int:
    """Processes and threads of this user on the host: what RLIMIT_NPROC counts."""
    uid, total = os.getuid(), 0
    for proc in psutil.process_iter(["uids", "num_threads"]):
        uids, threads = proc.info["uids"], proc.info["num_threads"]
        if uids is not None and uids.real == uid and threads:
            total += threads
    return total


def _process_rlimit_hit(reply: dict[str, Any]) -> bool:
    """Whether a cell failed on the process limit where RLIMIT_NPROC enforces it.

    Without a pids cgroup there is no counter to read: fork and clone fail with
    EAGAIN, which reaches the cell as BlockingIOError (os.fork, subprocess) or as
    threading's "can't start new thread".
    """
    if reply.get("status") != "error":
        return False
    ename, evalue = reply.get("ename"), str(reply.get("evalue", ""))
    return (ename == "BlockingIOError" and evalue.startswith(f"[Errno {errno.EAGAIN}]")) or (
        ename == "RuntimeError" and "can't start new thread" in evalue
    )


def _disk_limit_note(reply: dict[str, Any], limits: Limits, isolation: Isolation) -> str | None:
    """Name the sandbox limit behind an ENOSPC/EFBIG error, which Python reports only by errno."""
    if reply.get("status") != "error":
        return None
    evalue = str(reply.get("evalue", ""))
    if evalue.startswith("[Errno 27]"):
        quota = limits.workspace_quota_mb
        if quota and quota < limits.max_file_size_mb:
            return (
                f"[sandbox] FileSizeLimitExceeded: a file may not grow beyond {quota} MiB, "
                "the workspace's quota (Limits.workspace_quota_mb; Limits.max_file_size_mb "
                f"is {limits.max_file_size_mb} MiB)."
            )
        return (
            "[sandbox] FileSizeLimitExceeded: a file may not grow beyond "
            f"{limits.max_file_size_mb} MiB (Limits.max_file_size_mb)."
        )
    if evalue.startswith("[Errno 28]"):
        return (
            "[sandbox] DiskLimitExceeded: the sandbox's private /tmp and home hold at most "
            f"{isolation.tmp_size_mb} MiB each (Isolation.tmp_size_mb); the workspace is "
            "limited by its own disk."
        )
    return None


def _sandbox_magic_argument(code: str) -> str | None:
    """The argument of a ``%sandbox`` alone in the cell ("" for none); None for other cells."""
    from IPython.core.inputtransformer2 import TransformerManager

    if "sandbox" not in code:
        return None
    try:
        match = SANDBOX_MAGIC.match(TransformerManager().transform_cell(code).strip())
    except Exception:
        return None
    return match.group(1).strip() if match else None


class SandboxKernel(Kernel):
    """A Python kernel whose cells run in a sandboxed executor process."""

    implementation = "sandbox-kernel"
    implementation_version = __version__
    language_info = {
        "name": "python",
        "version": sys.version.split()[0],
        "mimetype": "text/x-python",
        "codemirror_mode": {"name": "ipython", "version": sys.version_info[0]},
        "pygments_lexer": "ipython3",
        "nbconvert_exporter": "python",
        "file_extension": ".py",
    }
    help_links = [
        {"text": "Python Reference", "url": "https://docs.python.org/3/"},
        {"text": "IPython Reference", "url": "https://ipython.readthedocs.io/en/stable/"},
    ]
    msg_types = [*Kernel.msg_types, "comm_open", "comm_msg", "comm_close"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.isolation = Isolation(parent=self)
        self.limits = Limits(parent=self)
        self.output = Output(parent=self)
        self.policy = Policy(parent=self)
        self.policy_settings = PolicySettings.from_configurable(self.policy)
        self.audit = AuditLog(
            _audit_log_path(self.policy.audit_log),
            logger=self.log,
            kernel_id=self.ident,
            user=user_name(),
            secrets=[self.session.key] if self.session is not None else [],
            max_bytes=self.policy.audit_log_max_mb * 1024 * 1024,
        )
        self.publisher = Publisher(
            self._send_iopub,
            OutputLimits(
                max_message_bytes=self.output.max_message_bytes,
                max_cell_bytes=self.output.max_cell_output_bytes,
                max_messages_per_s=self.output.max_messages_per_s,
                max_comm_bytes=self.output.max_comm_bytes,
                max_comm_messages_per_s=self.output.max_comm_messages_per_s,
            ),
            GateSettings(
                active_content=self.output.effective_active_content(),
                renderer_mime_types=frozenset(self.output.renderer_mime_types),
                comm_targets=frozenset(self.output.comm_targets),
                widget_modules=frozenset(self.output.widget_modules),
                drop_frontend_payloads=self.output.drop_frontend_payloads,
                library_bytes=self.output.isolated_library_bytes,
            ),
            pack=self.session.pack if self.session is not None else json_packer,
            on_cap=self._mute_executor,
            on_comm_refused=self._comm_refused,
        )
        self.stdin = Stdin(
            self.session,
            self.stdin_socket,
            lambda msg_id: self.publisher.parents.get(msg_id) or self.publisher.current,
            self.log,
        )
        self.workspace = os.path.realpath(self.isolation.workspace or os.getcwd())
        self._execution_count = 1
        self._history: list[tuple[int, int, str]] = []
        self._executor: ExecutorProcess | None = None
        self._starting: asyncio.Future[ExecutorProcess | str] | None = None
        self._setup_failure: str | None = None
        self._running: str | None = None
        # Set when the kernel itself stops a cell: (ename, why).
        self._stop_reason: tuple[str, str] | None = None
        self._last_cell: dict[str, Any] = {}
        self._verdict: Verdict | None = None
        self._cell_code = ""
        # (OOM kills, process-limit hits) of the cgroup, as of the last cell's end.
        self._cgroup_counts = (0, 0)
        # Without a pids cgroup: the sandbox's process count after the previous cell.
        self._tree_size = 0
        self._private_dir: str | None = None
        self.network: KernelNetwork | None = None
        self._cgroup: cgroups.Cgroup | None = None
        self._isolation_report: dict[str, Any] = {}
        # The workspace quota: its size when the kernel started, measured from outside.
        self._workspace_meter: WorkspaceMeter | None = None
        # Links, special files, control files and shadow modules a cell leaves behind.
        self._guard: WorkspaceGuard | None = None
        self._hygiene_findings = 0
        self._quota_watch: asyncio.Task[None] | None = None
        # One scan of the workspace at a time: the cell's start and end, and the scans
        # between cells when the sandbox writes while no cell runs.
        self._guard_lock = asyncio.Lock()
        # From a cell's start until its own scan has run: writes then are the cell's.
        self._cell_scanning = False
        # Said at the start of the next cell (something happened between cells).
        self._pending_notices: list[str] = []
        # Not dumpable: a sandboxed process of the same uid (landlock level)
        # cannot read this process's memory or environment via /proc.
        privs.set_not_dumpable()
        # Frames are decoded here, outside the sandbox's memory cgroup: a limit of
        # our own is the backstop behind the bounded parser.
        problem = own_memory.limit_own_memory(self.limits.kernel_memory_mb * 1024 * 1024)
        if problem is not None:
            self.log.warning("kernel_memory_limit_unavailable reason=%s", problem)
        locks = getattr(self.parent, "locks", None)
        self.locked = locks.describe() if locks is not None else {}
        self.locked_files: dict[str, dict[str, Any]] = dict(locks.declared) if locks else {}
        for attempt in getattr(self.parent, "lock_attempts", []):
            self.log.warning(
                "lock_refused user=%s setting=%s attempted=%r locked=%r",
                self.audit.user,
                attempt.setting,
                attempt.attempted,
                attempt.locked,
            )
            self.audit.record_violation(
                {
                    "event": "lock",
                    "rule": "LOCK",
                    "action": "deny",
                    "detail": f"{attempt.setting}: {attempt.attempted!r} refused, "
                    f"locked to {attempt.locked!r}",
                },
                reported_by="kernel",
            )

    # -- execution count, as IPython counts it -----------------------------------

    @property
    def execution_count(self) -> int:
        return self._execution_count

    @execution_count.setter
    def execution_count(self, value: int) -> None:
        # The base class increments on every non-silent request; IPython only
        # counts cells stored in history, and so do we.
        pass

    # -- start-up -------------------------------------------------------------------

    def start(self) -> None:
        super().start()
        # Interrupts in "signal" mode arrive as SIGINT on this process.
        signal.signal(signal.SIGINT, self._on_sigint)
        self._begin_executor_start()

    def pre_handler_hook(self) -> None:
        # The base class makes SIGINT raise KeyboardInterrupt inside handlers;
        # here SIGINT means "interrupt the executor", never "break the relay".
        pass

    def post_handler_hook(self) -> None:
        pass

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.io_loop.add_callback_from_signal(self._interrupt)

    def _send_interrupt_children(self) -> None:
        # interrupt_request (message mode) arrives on the control thread.
        self.io_loop.add_callback(self._interrupt)

    def _begin_executor_start(self) -> asyncio.Future[ExecutorProcess | str]:
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._start_executor())
        return self._starting

    def _own_socket_paths(self) -> list[str]:
        """This kernel's ipc sockets: never reachable from a cell, wherever they are.

        jupyter_client names them after the connection file, in the runtime
        directory; without a connection file its default is relative ("kernel-ipc"),
        which puts them in the kernel's cwd, the notebook directory.
        """
        app = self.parent
        if app is None or getattr(app, "transport", "tcp") != "ipc":
            return []
        names = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
        return [os.path.abspath(f"{app.ip}-{getattr(app, name)}") for name in names]

    async def _start_executor(self) -> ExecutorProcess | str:
        """Start an executor; return it, or the reason there is none."""
        if self._private_dir is None:
            self._private_dir = tempfile.mkdtemp(prefix="sandbox-kernel-")
        if self._cgroup is None and self.isolation.cgroups != "disabled":
            created = cgroups.create(
                f"sandbox-kernel-{os.getpid()}",
                effective_memory_bytes(self.limits),
                self.limits.max_processes,
                self.limits.cpu_share,
            )
            if isinstance(created, cgroups.Cgroup):
                self._cgroup = created
                cgroup_reason = None
            else:
                cgroup_reason = created
                enclosing = cgroups.enclosing_limits().describe()
                if enclosing:
                    cgroup_reason = f"{created}; {enclosing}"
                if self.isolation.cgroups == "required":
                    return f"cgroup required but unavailable: {created}"
        else:
            cgroup_reason = "disabled by configuration" if self._cgroup is None else None
        if self.network is None:
            self.network = KernelNetwork(
                self.isolation, private_dir=self._private_dir, audit=self._on_network
            )
            try:
                self.network.start()
            except OSError as exc:
                self.network.stop()
                return f"the egress proxy for Isolation.allowed_hosts could not start ({exc})"
        spec = build_spec(
            self.isolation,
            self.limits,
            workspace=self.workspace,
            home=home_dir(),
            private_dir=self._private_dir,
            cgroup=self._cgroup,
            cgroup_reason=cgroup_reason,
            policy=self.policy_settings.to_dict(),
            hidden=self._own_socket_paths(),
        )
        spec["isolation"]["extra_mounts"] += self.network.mounts()
        spec["network"] = self.network.spec()
        # The executor sends a small stand-in for an output its frame could not carry.
        spec["limits"]["max_frame_bytes"] = frame_limit(self.output.max_message_bytes)
        if self._guard is None and self.isolation.workspace_writable:
            with contextlib.suppress(OSError):  # an unreachable workspace fails below
                self._guard = await asyncio.to_thread(
                    WorkspaceGuard,
                    self.workspace,
                    list(self.isolation.control_files),
                    list(self.isolation.shadow_modules),
                    spec["isolation"]["protected"],
                    sandbox_uids=sandbox_uid_range(self.isolation.sandbox_uid_base),
                )
        if self._guard is not None:
            spec["isolation"]["read_only_inside"] = self._guard.top_entries(MAX_READ_ONLY_BINDS)
        executor = ExecutorProcess(
            spec,
            sink=RelaySink(self.publisher, self.stdin.request_input),
            env=build_environment(self.isolation, self.limits),
            cwd=self.workspace,
            max_frame_bytes=frame_limit(self.output.max_message_bytes),
            frame_deadline_s=self.output.frame_deadline_s,
            on_log=self._executor_log,
            on_audit=self._on_audit,
            headroom=own_memory.headroom,
        )
        try:
            ready = await executor.start(self.limits.startup_timeout_s)
        except ExecutorDied as exc:
            reason = executor.setup_failure or str(exc)
            self.log.error("executor_start_failed reason=%s", reason)
            self._setup_failure = reason
            return reason
        except OSError as exc:
            # The launcher could not even be started (the workspace is not reachable
            # for this user, the interpreter is gone ...): say so, and keep serving.
            where = f"{exc.filename}: " if exc.filename else ""
            reason = f"the executor could not be started ({where}{exc.strerror or exc})"
            self.log.error("executor_start_failed reason=%s", reason)
            await executor.kill()
            self._setup_failure = reason
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
        self._isolation_report = report
        self._setup_failure = None
        self._executor = executor
        await self._watch_quota(executor, spec["isolation"]["protected"])
        if self._guard is not None:
            # Checked in the executor's own view: only a bind really in force makes a
            # change there someone else's.
            bound = read_only_mounts(
                executor.executor_host_pid(), spec["isolation"].get("read_only_inside", [])
            )
            self._guard.bound = {os.path.relpath(p, self._guard.root) for p in bound}
        self.log.info("executor_ready level=%s setup_s=%.3f", level, executor.setup_time_s or 0)
        return executor

    async def _watch_quota(self, executor: ExecutorProcess, protected: list[str]) -> None:
        """Watch the sandbox's writes for this executor's life: the workspace quota (the
        baseline is the kernel's start), and the workspace's hygiene between cells."""
        if not self.isolation.workspace_writable:
            return
        quota_on = bool(self.limits.workspace_quota_mb)
        if not quota_on and self._guard is None:
            return
        if quota_on and self._workspace_meter is None:
            self._workspace_meter = await asyncio.to_thread(
                WorkspaceMeter, self.workspace, protected
            )
        if self._quota_watch is not None:
            self._quota_watch.cancel()
        self._quota_watch = asyncio.ensure_future(self._quota_loop(executor))

    async def _quota_loop(self, executor: ExecutorProcess) -> None:
        """Measure the workspace whenever the sandbox has written to disk since last time.

        The sandbox's write counter (``/proc/<pid>/io``, a few small reads) is looked
        at every MIN_INTERVAL_S while a cell runs (IDLE_INTERVAL_S between cells); the
        workspace is measured only when it moved, and
        not more often than the measurement's own cost allows, so an idle kernel
        with a large workspace costs nothing.
        """
        meter = self._workspace_meter
        quota = self.limits.workspace_quota_mb * MIB
        written: int | None = None
        # The write count the last hygiene scan between cells (or the last cell) covered.
        scanned: int | None = None
        measured_at = 0.0
        # Measurements in a row that found the workspace growing past the quota while
        # no cell ran: the first may be the last writes of a cell just stopped.
        idle_strikes = 0
        while self._executor is executor and executor.dead_reason is None:
            await asyncio.sleep(MIN_INTERVAL_S if self._running else IDLE_INTERVAL_S)
            pids = executor.tree_pids()
            now = sandbox_write_bytes(pids)
            # Without the write counter, any CPU the sandbox used is taken as a sign it
            # may have written (a scan of an unchanged workspace costs about 1 ms).
            activity = now if now is not None else sandbox_cpu_ns(pids)
            if self._running is not None or self._cell_scanning:
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
            elif self._running is not None:
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
            self._pending_notices.append(
                f"[sandbox] DiskQuotaExceeded: while no cell was running, {why}. The processes "
                "earlier cells had started were stopped."
            )
            return
        await executor.kill()
        if self._executor is executor:
            self._executor = None
        self._pending_notices.append(
            f"[sandbox] DiskQuotaExceeded: while no cell was running, {why}. The executor's own "
            "threads went on writing, so it was stopped; variables and imports are gone."
        )

    async def _over_quota(self, executor: ExecutorProcess, growth: int) -> None:
        """A running cell made the workspace grow past its quota: stop what is writing."""
        if self._stop_reason is not None:
            return
        self.log.warning("workspace_quota_exceeded growth_mib=%d", growth // MIB)
        self._stop_reason = ("DiskQuotaExceeded", self._quota_reason(growth))
        # Everything else the cell started stops first: it may be the writer.
        keep = [executor.snapshot_pid] if executor.snapshot_pid is not None else []
        executor.end_cell_processes(keep=keep)
        await self._stop_over_limit()

    async def _hygiene_between_cells(self) -> None:
        """Undo what the sandbox put in the workspace while no cell ran; say so at the next cell."""
        guard = self._guard
        if guard is None or self._cell_scanning or self._guard_lock.locked():
            return  # a cell's own scan is under way: it examines the same entries
        async with self._guard_lock:
            findings = await asyncio.to_thread(guard.scan)
        self._report_hygiene(findings, between_cells=True)

    async def _workspace_hygiene(self) -> None:
        """Undo what the cell (or a process it left running) put in the workspace; say so."""
        guard = self._guard
        if guard is None:
            return
        async with self._guard_lock:
            findings = await asyncio.to_thread(guard.scan)
        self._report_hygiene(findings, between_cells=False)

    def _report_hygiene(self, findings: list[Finding], *, between_cells: bool) -> None:
        guard = self._guard
        assert guard is not None
        self._hygiene_findings += len(findings)
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
                source=None if between_cells else self._cell_code,
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
            self._pending_notices.append(
                f"{shared}while no cell was running, a thread or process an earlier cell "
                f"started left there for them: {shown}{more}. If you changed one of these "
                "yourself at that moment, make the change again."
            )
        else:
            self.publisher.notice(f"{shared}what this cell left there for them: {shown}{more}")

    async def _executor_for_cell(self) -> ExecutorProcess | str:
        executor = self._executor
        if executor is not None and executor.alive:
            return executor
        if executor is not None:
            # It died between cells (a background thread crashed it, say).
            self.publisher.notice(
                f"[sandbox] the executor stopped after the previous cell ({executor.dead_reason}); "
                "a new one was started and earlier state is gone."
            )
        self._executor = None
        return await self._begin_executor_start()

    # -- banner and reporting --------------------------------------------------------

    @property
    def banner(self) -> str:  # type: ignore[override]
        lines = [f"Python {sys.version.split()[0]} | sandbox-kernel {__version__}"]
        report = self._isolation_report
        if self._setup_failure:
            lines.append(f"Sandbox: NOT RUNNING - {self._setup_failure}")
        elif report:
            on = [name for name, layer in report.get("layers", {}).items() if layer.get("on")]
            lines.append(f"Sandbox level: {report.get('level')} ({', '.join(on)})")
            if report.get("level") == "none":
                lines.append(
                    "WARNING: the filesystem and processes are not isolated at this level."
                )
        else:
            lines.append("Sandbox: starting")
        lines.append("Type %sandbox for details.")
        return "\n".join(lines)

    async def kernel_info_request(self, stream: Any, ident: Any, parent: Any) -> None:
        # The banner must say what sandbox is in force, so wait for the
        # executor to report (bounded: a failure is reported as such).
        if self._starting is not None and not self._starting.done():
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(
                    asyncio.shield(self._starting), self.limits.startup_timeout_s
                )
        await super().kernel_info_request(stream, ident, parent)

    @property
    def kernel_info(self) -> dict[str, Any]:
        from ipykernel._version import kernel_protocol_version

        return {
            "protocol_version": kernel_protocol_version,
            "implementation": self.implementation,
            "implementation_version": self.implementation_version,
            "language_info": self.language_info,
            "banner": self.banner,
            "help_links": self.help_links,
            # No debugger (user code never runs here) and no subshells (one
            # executor runs one cell at a time).
            "supported_features": [],
            "sandbox": {
                "level": self._isolation_report.get("level"),
                "failure": self._setup_failure,
            },
        }

    def sandbox_report(self) -> str:
        from ..isolation.report import render_report

        if self._setup_failure:
            return f"Sandbox level: NOT RUNNING\n  {self._setup_failure}"
        executor = self._executor
        info = {
            "isolation": self._isolation_report,
            "limits": self._limits_report(),
            "setup_ms": round(executor.setup_time_s * 1000, 1)
            if executor and executor.setup_time_s
            else None,
            "last_cell": {k: v for k, v in self._last_cell.items() if v is not None},
            "locked": self.locked_files,
            "network": self._network_report(),
            "policy": {
                "preset": self.policy_settings.preset,
                # Only where the actions differ from the preset's (a lock on the preset
                # pins every rule at its preset action): %sandbox rules lists them all.
                "rule overrides": self._rule_overrides() or "none",
                "runtime audit hooks": "on" if self.policy_settings.runtime_hooks else "off",
                "audit log": self.audit.path
                if self.audit.path and not self.audit.error
                else f"kernel log only ({self.audit.error or 'no file configured'})",
            },
        }
        return render_report(info)

    def _limits_report(self) -> dict[str, Any]:
        from .spec import limits_dict

        limits: dict[str, Any] = limits_dict(self.limits)
        if self.limits.rollback:
            limits["rollback"] = (
                "the state (variables, imports); files in the workspace are not rolled back"
            )
        meter = self._workspace_meter
        if meter is not None:
            limits["workspace_growth"] = (
                f"{meter.growth / MIB:.1f} MiB since the kernel started (measured from outside "
                f"every {meter.interval():.2g} s)"
            )
        guard = self._guard
        if guard is not None:
            bound = f"; read-only inside: {', '.join(sorted(guard.bound))}" if guard.bound else ""
            limits["workspace_hygiene"] = (
                f"{self._hygiene_findings} entries undone this session (links, special files, "
                "Isolation.control_files, Isolation.shadow_modules); last check "
                f"{guard.stats.seconds * 1000:.1f} ms over {guard.stats.dirs} directories{bound}"
            )
        return limits

    def _rule_overrides(self) -> dict[str, str]:
        preset = self.policy_settings.preset
        return {
            rid: action
            for rid, action in self.policy_settings.actions.items()
            if action != RULES[rid].default(preset)
        }

    async def _sandbox_magic(self, argument: str) -> str | None:
        """The text of ``%sandbox ARGUMENT``; None for an unknown subcommand."""
        if argument == "":
            await self._executor_for_cell()
            return self.sandbox_report()
        if argument == "rules":
            locked = self.locked.get("Policy.rules", ({}, ""))[0]
            return rules_table(
                self.policy_settings.actions, self.policy_settings.preset, dict(locked)
            )
        if argument == "help":
            return SANDBOX_MAGIC_DOC.rstrip()
        return None

    def _network_report(self) -> dict[str, Any]:
        network = self.network
        if self.isolation.allow_network:
            return {"network": "the host's network (Isolation.allow_network)"}
        if network is None:
            return {}
        level = self._isolation_report.get("level")
        if not network.enabled:
            hosts = "none: the network is off (Isolation.allowed_hosts is empty)"
        elif level != "namespaces":
            hosts = f"{network.allow.describe()}, but not reachable at the '{level}' level"
        else:
            hosts = f"{network.allow.describe()} (through the kernel's egress proxy)"
        where = network.prefix + ("" if network.persistent else " (until the kernel stops)")
        return {
            "allowed hosts": hosts,
            "package directory": where,
            "installed with %pip": ", ".join(network.installed()) or "nothing yet",
        }

    def _executor_log(self, level: str, message: str) -> None:
        # The text may come from the cell: one line, control characters escaped,
        # so that it cannot forge a line of the server's log.
        getattr(self.log, level if level in {"debug", "info", "warning", "error"} else "info")(
            "%s", escape_for_log(message)
        )

    def _on_network(self, record: dict[str, Any]) -> None:
        """A connection through the egress proxy (its thread): host, port, bytes, verdict."""
        self.audit.record_network(record)

    def _comm_refused(self, target: str) -> None:
        """A comm to a target outside Output.comm_targets: audited and logged (the gate
        notes it in the cell)."""
        self.audit.record_violation(
            {
                "event": "comm_refused",
                "rule": "Output.comm_targets",
                "action": "deny",
                "detail": f"comm_open to the frontend target {target[:200]!r} was not relayed",
            },
            source=self._cell_code if self._running else None,
            reported_by="kernel",
        )
        self.log.info("comm_refused target=%s", escape_for_log(target[:200]))

    def _on_audit(self, record: dict[str, Any]) -> None:
        """A runtime report: the executor's audit hook, or the seccomp supervisor."""
        self.audit.record_violation(
            record,
            source=self._cell_code if self._running else None,
            reported_by=str(record.get("reported_by", "cell")),
        )
        if record.get("event") == "seccomp":
            self.publisher.notice(f"[sandbox] blocked {record.get('detail')}", key="seccomp")
        elif record.get("event") == "forged_reply":
            self.publisher.notice(
                f"[sandbox] ignored {record.get('detail')}: the cell wrote it to the "
                "executor's channel; the cell is still running and its limits still apply",
                key="forged",
            )
        elif record.get("action") == "warn":
            # The static check has already warned about this rule for this cell.
            already = (
                self._running
                and self._verdict is not None
                and record.get("rule") in self._verdict.rule_ids
            )
            if not already:
                self.publisher.notice(
                    f"[sandbox] warning [{record.get('rule')}] {record.get('detail')}",
                    key="warning",
                )

    # -- IOPub -----------------------------------------------------------------------

    def _send_iopub(
        self,
        kind: str,
        content: dict[str, Any] | bytes,
        parent: dict[str, Any],
        buffers: list[Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Sign and send one message on IOPub (the publisher's ``send``)."""
        if self.session is None:
            return
        self.session.send(
            self.iopub_socket,
            kind,
            # Session.serialize passes packed content through as it is.
            content,  # type: ignore[arg-type]
            parent,
            ident=f"kernel.{self.ident}.{kind}".encode(),
            buffers=buffers,
            metadata=metadata,
        )

    # -- execute ---------------------------------------------------------------------

    async def do_execute(
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        allow_stdin: bool = False,
        *,
        cell_meta: dict[str, Any] | None = None,
        cell_id: str | None = None,
    ) -> dict[str, Any]:
        parent = self.get_parent("shell")
        msg_id = parent.get("header", {}).get("msg_id", "")
        self.publisher.begin_cell(parent)
        while self._pending_notices:
            self.publisher.notice(self._pending_notices.pop(0), parent)
        if self.network is not None:
            self.network.begin_cell()
        if allow_stdin:
            self.stdin.allow(msg_id, self._get_shell_context_var(self._shell_parent_ident))
        # IPython never stores (or counts) a silent cell, whatever the request says.
        store_history = store_history and not silent
        count = self._execution_count
        reply_count = count if store_history else count - 1
        if store_history:
            self._execution_count += 1
            self._history.append((0, count, code))

        magic_argument = _sandbox_magic_argument(code)
        if magic_argument is not None:
            # Answered here, from the kernel's own record of what the launcher
            # set up: a cell cannot make the executor misreport its sandbox.
            text = await self._sandbox_magic(magic_argument)
            if text is None:
                return self._error_reply(
                    "UsageError",
                    f"%sandbox {magic_argument}: unknown subcommand; use one of "
                    f"{', '.join(SUBCOMMANDS)} (or nothing)",
                    reply_count,
                )
            if not silent:
                self.publisher.send("stream", {"name": "stdout", "text": text + "\n"}, parent)
            return {
                "status": "ok",
                "execution_count": reply_count,
                "user_expressions": {},
                "payload": [],
            }
        verdict = check_cell(code, self.policy_settings)
        self._verdict = verdict
        if not verdict.allowed:
            # Refused before anything runs: no cell is half-run by a policy decision.
            ename, evalue, traceback = verdict.as_error()
            self.publisher.error(ename, evalue, traceback, parent)
            self.audit.record_cell(code, verdict, isolation=self._isolation_report.get("level", ""))
            self._last_cell = {"outcome": "denied", "rules": verdict.rule_ids}
            return {
                "status": "error",
                "execution_count": reply_count,
                "ename": ename,
                "evalue": evalue,
                "traceback": traceback,
                "user_expressions": {},
                "payload": [],
            }
        warning = verdict.as_warning()
        if warning and not silent:
            self.publisher.notice(warning, parent)
        self._cell_code = code
        executor = await self._executor_for_cell()
        if isinstance(executor, str):
            return self._error_reply(
                "SandboxUnavailable",
                f"The sandbox could not start, so this cell did not run. {executor}",
                reply_count,
            )
        if self._guard is not None:
            self._cell_scanning = True
            async with self._guard_lock:
                await asyncio.to_thread(self._guard.begin_cell)
        self._running = msg_id
        self._stop_reason = None
        # Counters as they stood after the previous cell (read once per cell, after it).
        oom_before, pids_before = self._cgroup_counts
        if self._cgroup:
            self._cgroup.reset_peak()
        watchers = []
        if self.limits.wall_time_limit_s:
            watchers.append(
                asyncio.ensure_future(self._cell_deadline(msg_id, self.limits.wall_time_limit_s))
            )
        if self.limits.cpu_time_limit_s:
            watchers.append(
                asyncio.ensure_future(
                    self._cpu_watch(executor, msg_id, self.limits.cpu_time_limit_s)
                )
            )
        try:
            outcome = await executor.execute(
                ExecuteRequest(
                    code=code,
                    silent=silent,
                    store_history=store_history,
                    user_expressions=user_expressions or {},
                    allow_stdin=allow_stdin,
                    execution_count=count,
                    parent=msg_id,
                    reap_after=self.limits.kill_cell_processes,
                )
            )
        except BaseException:
            self._cell_scanning = False
            raise
        finally:
            self._running = None
            for watcher in watchers:
                watcher.cancel()
        # Before the reply: nothing outside may meet what the cell left in the workspace.
        try:
            await self._workspace_hygiene()
        finally:
            self._cell_scanning = False
        outcome.stats.update(self.publisher.end_cell())
        if outcome.reply is None:
            return await self._recover(executor, outcome, reply_count, oom_before)
        disk = _disk_limit_note(outcome.reply, self.limits, self.isolation)
        if disk:
            self.publisher.notice(disk)
        pids_now = self._cgroup.pids_limit_hits() if self._cgroup is not None else 0
        self._cgroup_counts = (oom_before, pids_now)
        limit_hit = pids_now > pids_before
        tree = 0
        if self._cgroup is None:
            tree = executor.tree_size()
            limit_hit = _process_rlimit_hit(outcome.reply) or (
                # The cell left processes behind: did they (with the user's others,
                # which RLIMIT_NPROC counts too) reach the limit? Only an unprivileged
                # kernel's executor runs as its own uid (as root it runs as a mapped
                # uid, or as root, for whom RLIMIT_NPROC is not enforced at all).
                os.getuid() != 0
                and tree > self._tree_size
                and _user_tasks() >= self.limits.max_processes
            )
        if self._stop_reason is not None and outcome.reply["status"] == "error":
            # The kernel interrupted the cell (its time was up) and it stopped cleanly.
            ename, why = self._stop_reason
            self.publisher.notice(f"[sandbox] {ename}: the cell was interrupted because {why}.")
            outcome.reply.update(ename=ename, evalue=f"The cell was interrupted because {why}.")
            self._record_cell(outcome, ename)
        elif limit_hit:
            self._record_cell(outcome, "ProcessLimitExceeded")
        else:
            self._record_cell(outcome, "ok" if outcome.reply["status"] == "ok" else "error")
        if limit_hit:
            # A fork bomb (or a pool too large) would keep the limit exhausted
            # for every later cell: end what this cell started (and collect the
            # zombies, which still count against the limit).
            await executor.reap_cell_processes()
            how = (
                ""
                if self._cgroup is not None
                else "; on this host it is RLIMIT_NPROC, which counts every process of your user"
            )
            self.publisher.notice(
                "[sandbox] ProcessLimitExceeded: this cell reached the limit of "
                f"{self.limits.max_processes} processes and threads (Limits.max_processes{how}); "
                "the processes it started were stopped."
            )
        elif self.limits.kill_cell_processes:
            await executor.reap_cell_processes()
        if self._cgroup is None:
            # After a reap the tree is smaller than it was at the cell's end.
            reaped = limit_hit or self.limits.kill_cell_processes
            self._tree_size = executor.tree_size() if reaped else tree
        return self._reply_for(outcome, reply_count)

    def _reply_for(self, outcome: CellOutcome, count: int) -> dict[str, Any]:
        reply = outcome.reply
        assert reply is not None
        # Replies carry renderable content too: the same gate as every output.
        gate = self.publisher.gate
        payload, notes = gate.payloads(reply.get("payload", []))
        expressions, more = gate.user_expressions(reply.get("user_expressions", {}))
        self.publisher.notes(notes + more)
        content: dict[str, Any] = {
            "status": reply["status"],
            "execution_count": count,
            "user_expressions": expressions,
            "payload": payload,
        }
        if reply["status"] == "error":
            content.update(
                ename=reply["ename"], evalue=reply["evalue"], traceback=reply["traceback"]
            )
        return content

    async def _recover(
        self, executor: ExecutorProcess, outcome: CellOutcome, count: int, oom_before: int
    ) -> dict[str, Any]:
        """The cell ended without a reply: say exactly why, and restore or restart."""
        if self._stop_reason is not None:
            ename, why = self._stop_reason
        elif self._cgroup is not None and self._cgroup.oom_kills() > oom_before:
            self._cgroup_counts = (self._cgroup.oom_kills(), self._cgroup_counts[1])
            limit = effective_memory_bytes(self.limits) >> 20
            ename, why = (
                "MemoryLimitExceeded",
                f"it used more than the memory limit of {limit} MiB, so the executor was killed",
            )
        else:
            ename, why = "ExecutorDied", outcome.failure or "the executor stopped"
        if self._cgroup is not None:
            # Limit hits of this cell are this cell's (promotion ends its processes),
            # not the next one's.
            self._cgroup_counts = (self._cgroup_counts[0], self._cgroup.pids_limit_hits())
        skipped = executor.snapshot_skipped
        if self.limits.rollback and await executor.promote():
            state = (
                "The state was restored to what it was before this cell: variables, imports "
                f"and open files of earlier cells are still there. {FILES_NOT_RESTORED}"
            )
            rolled_back = True
        else:
            await executor.kill()
            self._executor = None
            self._begin_executor_start()
            because = f" (no snapshot was kept for this cell: {skipped})" if skipped else ""
            state = (
                "The executor was restarted: variables and imports from earlier cells "
                f"are gone{because}."
            )
            rolled_back = False
        self._record_cell(outcome, ename, rolled_back=rolled_back)
        # A cell that crashed or hit a limit is the cell's outcome, shown to the user and
        # recorded in the audit log: INFO. Lost state is worth an operator's look: WARNING.
        self.log.log(
            logging.INFO if rolled_back else logging.WARNING,
            "cell_failed kind=%s rolled_back=%s why=%s",
            ename,
            rolled_back,
            why,
        )
        return self._error_reply(ename, f"The cell did not finish: {why}. {state}", count)

    def _mute_executor(self) -> None:
        executor = self._executor
        if executor is not None:
            executor.mute()

    def _record_cell(self, outcome: CellOutcome, result: str, *, rolled_back: bool = False) -> None:
        """Per-cell figures for the reply metadata, %sandbox and the audit log."""
        stats = {**(outcome.reply or {}).get("stats", {}), **outcome.stats}
        peak = self._cgroup.memory_peak() if self._cgroup else stats.get("peak_rss_bytes")
        self._last_cell = {
            "outcome": result,
            "wall_time_s": round(outcome.wall_time_s, 4),
            "cpu_time_s": stats.get("cpu_s"),
            "peak_memory_mb": round(peak / (1 << 20), 1)
            if isinstance(peak, (int, float))
            else None,
            "rolled_back": rolled_back,
            # The state is rolled back, never the workspace's files (SECURITY.md says why).
            "files_restored": False if rolled_back else None,
            "snapshot": stats.get("snapshot"),
            "output_bytes": stats.get("output_bytes"),
            "output_dropped_bytes": stats.get("output_dropped_bytes"),
            # Comms to targets outside Output.comm_targets (each in the audit log).
            "comms_refused": stats.get("comms_refused") or None,
        }
        self.audit.record_cell(
            self._cell_code,
            self._verdict,
            resources={k: v for k, v in self._last_cell.items() if v is not None},
            isolation=self._isolation_report.get("level", ""),
        )

    def finish_metadata(
        self, parent: Any, metadata: dict[str, Any], reply_content: dict[str, Any]
    ) -> dict[str, Any]:
        metadata = super().finish_metadata(parent, metadata, reply_content)
        metadata["sandbox"] = {"level": self._isolation_report.get("level"), **self._last_cell}
        return metadata

    async def _cpu_watch(self, executor: ExecutorProcess, msg_id: str, limit: float) -> None:
        """Per-cell CPU time, read from /proc on this side: the executor cannot lie about it."""
        start = executor.executor_cpu_s()
        if start is None:
            self.log.warning("cpu_limit_unavailable reason=executor pid not found")
            return
        while self._running == msg_id:
            await asyncio.sleep(0.25)
            used = executor.executor_cpu_s()
            if used is not None and used - start > limit and self._stop_reason is None:
                self._stop_reason = (
                    "CpuLimitExceeded",
                    f"it used more than {limit:g} s of CPU time (Limits.cpu_time_limit_s)",
                )
                await self._stop_over_limit()
                return

    async def _cell_deadline(self, msg_id: str, limit: float) -> None:
        await asyncio.sleep(limit)
        if self._running == msg_id and self._stop_reason is None:
            self._stop_reason = (
                "CellTimeout",
                f"it ran longer than the limit of {limit:g} s (Limits.wall_time_limit_s)",
            )
            await self._stop_over_limit()

    async def _stop_over_limit(self) -> None:
        """A limit was reached: roll the cell back if there is a snapshot, else interrupt it."""
        executor = self._executor
        if executor is None or self._stop_reason is None:
            return
        if executor.snapshot_pid is not None and self.limits.rollback:
            # Its partial effects on the state must not survive a limit: kill,
            # and the snapshot from before the cell takes over.
            executor.kill_executor(self._stop_reason[1])
        else:
            await self._interrupt()

    def _error_reply(self, ename: str, evalue: str, count: int) -> dict[str, Any]:
        traceback = [f"\x1b[0;31m{ename}\x1b[0m: {evalue}"]
        self.publisher.error(ename, evalue, traceback)
        return {
            "status": "error",
            "execution_count": count,
            "ename": ename,
            "evalue": evalue,
            "traceback": traceback,
            "user_expressions": {},
            "payload": [],
        }

    async def _interrupt(self) -> None:
        executor, running = self._executor, self._running
        if executor is None or running is None:
            return
        executor.interrupt()
        grace = self.limits.interrupt_grace_s
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if self._running != running:
                return
        if self._stop_reason is None:
            self._stop_reason = (
                "CellInterrupted",
                f"it did not stop within {grace:g} s of the interrupt (a C extension loop or a "
                "cell that ignores SIGINT), so the executor was killed",
            )
        elif self._stop_reason[0] == "CellTimeout":
            self._stop_reason = (
                "CellTimeout",
                self._stop_reason[1] + ", and did not stop when interrupted",
            )
        self.log.warning("interrupt_kill cell=%s grace_s=%s", running, grace)
        executor.kill_executor(self._stop_reason[1])

    # -- other requests -------------------------------------------------------------

    async def do_complete(self, code: str, cursor_pos: int | None) -> dict[str, Any]:
        cursor_pos = len(code) if cursor_pos is None else cursor_pos
        empty = {
            "status": "ok",
            "matches": [],
            "cursor_start": cursor_pos,
            "cursor_end": cursor_pos,
            "metadata": {},
        }
        executor = self._executor
        if executor is None or not executor.alive:
            return empty
        try:
            reply = await asyncio.wait_for(
                executor.request({"op": "complete", "code": code, "cursor_pos": cursor_pos}),
                COMPLETE_TIMEOUT_S,
            )
        except (TimeoutError, ExecutorDied):
            return empty
        return {
            "status": "ok",
            "matches": reply["matches"],
            "cursor_start": reply["cursor_start"],
            "cursor_end": reply["cursor_end"],
            "metadata": reply["metadata"],
        }

    async def do_inspect(
        self, code: str, cursor_pos: int, detail_level: int = 0, omit_sections: Any = ()
    ) -> dict[str, Any]:
        not_found = {"status": "ok", "found": False, "data": {}, "metadata": {}}
        executor = self._executor
        if executor is None or not executor.alive:
            return not_found
        try:
            reply = await asyncio.wait_for(
                executor.request(
                    {
                        "op": "inspect",
                        "code": code,
                        "cursor_pos": cursor_pos,
                        "detail_level": detail_level,
                        "omit_sections": list(omit_sections),
                    }
                ),
                COMPLETE_TIMEOUT_S,
            )
        except (TimeoutError, ExecutorDied):
            return not_found
        return {
            "status": "ok",
            "found": reply["found"],
            "data": self.publisher.gate.inspect_data(reply["data"]),
            "metadata": reply["metadata"],
        }

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        # Pure parsing: no user code runs, so the trusted side can answer.
        from IPython.core.inputtransformer2 import TransformerManager

        status, indent = TransformerManager().check_complete(code)
        reply: dict[str, Any] = {"status": status}
        if status == "incomplete":
            reply["indent"] = " " * (indent or 0)
        return reply

    async def do_history(
        self,
        hist_access_type: str,
        output: bool,
        raw: bool,
        session: int | None = None,
        start: int | None = None,
        stop: int | None = None,
        n: int | None = None,
        pattern: str | None = None,
        unique: bool = False,
    ) -> dict[str, Any]:
        history = self._history
        if hist_access_type == "tail":
            items = history[-n:] if n else list(history)
        elif hist_access_type == "range":
            lo = start or 0
            items = [h for h in history if h[1] >= lo and (stop is None or h[1] < stop)]
        elif hist_access_type == "search":
            import fnmatch

            items = [h for h in history if fnmatch.fnmatchcase(h[2], pattern or "*")]
            if unique:
                seen: set[str] = set()
                items = [h for h in items if not (h[2] in seen or seen.add(h[2]))]  # type: ignore[func-returns-value]
            if n:
                items = items[-n:]
        else:
            items = []
        if output:
            return {"status": "ok", "history": [(s, line, (text, None)) for s, line, text in items]}
        return {"status": "ok", "history": list(items)}

    async def comm_info_request(self, stream: Any, ident: Any, parent: Any) -> None:
        if self.session is None:
            return
        target = parent["content"].get("target_name")
        comms = {
            cid: {"target_name": name}
            for cid, name in self.publisher.comms.items()
            if target in (None, name)
        }
        self.session.send(
            stream, "comm_info_reply", {"status": "ok", "comms": comms}, parent, ident
        )

    async def comm_open(self, stream: Any, ident: Any, parent: Any) -> None:
        content = parent["content"]
        if isinstance(content.get("comm_id"), str):
            target = str(content.get("target_name", ""))
            self.publisher.comms[content["comm_id"]] = target
            self.publisher.gate.frontend_comm(content["comm_id"], target)
        await self._relay_comm("comm_open", parent)

    async def comm_msg(self, stream: Any, ident: Any, parent: Any) -> None:
        await self._relay_comm("comm_msg", parent)

    async def comm_close(self, stream: Any, ident: Any, parent: Any) -> None:
        self.publisher.comms.pop(parent["content"].get("comm_id"), None)
        await self._relay_comm("comm_close", parent)

    async def _relay_comm(self, op: str, parent: dict[str, Any]) -> None:
        executor = self._executor
        if executor is None or not executor.alive:
            self.log.warning("comm_dropped op=%s reason=no executor", op)
            return
        self.publisher.remember(parent)
        command = {
            "op": op,
            "content": parent.get("content", {}),
            "metadata": parent.get("metadata", {}),
            "buffers": [
                base64.b64encode(bytes(b)).decode("ascii") for b in parent.get("buffers") or []
            ],
            "parent": parent.get("header", {}).get("msg_id", ""),
        }
        try:
            if self._running is not None:
                # The executor runs one thing at a time; it takes this up
                # after the cell, as ipykernel does for synchronous cells.
                await executor.send_deferred(command)
            else:
                await asyncio.wait_for(executor.request(command), COMM_TIMEOUT_S)
        except (TimeoutError, ExecutorDied) as exc:
            self.log.warning("comm_failed op=%s reason=%s", op, exc)

    async def create_subshell_request(self, socket: Any, ident: Any, parent: Any) -> None:
        assert self.session is not None
        content = {
            "status": "error",
            "ename": "NotImplementedError",
            "evalue": "this kernel runs cells one at a time in its sandbox; "
            "subshells are not supported",
            "traceback": [],
        }
        self.session.send(socket, "create_subshell_reply", content, parent, ident)

    # -- shutdown ------------------------------------------------------------------

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        await self.stop_sandbox()
        return {"status": "ok", "restart": restart}

    async def stop_sandbox(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self._quota_watch is not None:
            self._quota_watch.cancel()
            self._quota_watch = None
        if self._executor is not None:
            await self._executor.kill()
            self._executor = None
        if self._cgroup is not None:
            self._cgroup.destroy()
            self._cgroup = None
        if self.network is not None:
            self.network.stop()
            self.network = None
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None
        self.audit.close()
