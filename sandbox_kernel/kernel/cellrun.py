"""One cell's run in the executor, as the trusted side sees it.

A :class:`CellRun` owns what belongs to one cell: its watchdogs (wall time, CPU
time read from /proc on this side), the reason the kernel stopped it, the limits
it hit (processes, disk), and how it ended: a reply, or an outcome without one
(a crash, a kill), which is rolled back to the snapshot from before the cell or
ends in a restart. It says so to the user and records the cell's figures.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Any

import psutil

from ..config import Isolation, Limits
from ..errors import (
    CellInterrupted,
    CellStopped,
    CellTimeout,
    CpuLimitExceeded,
    DiskLimitExceeded,
    ExecutorDied,
    FileSizeLimitExceeded,
    MemoryLimitExceeded,
    ProcessLimitExceeded,
)
from ..log import AuditLog
from ..policy import Verdict
from ..relay.publisher import Publisher
from ..units import MIB
from .runner import CellOutcome, ExecuteRequest, ExecutorProcess
from .sandbox import Sandbox
from .spec import effective_memory_bytes

__all__ = [
    "COPY_AHEAD_NOTES",
    "FILES_NOT_RESTORED",
    "CellRun",
    "copy_ahead_note",
    "error_content",
    "error_reply",
]

# Said with every rollback: what a failed cell did to the workspace stays.
FILES_NOT_RESTORED = (
    "Files were not restored: what the cell wrote, changed or deleted in the workspace "
    "stays as it left it."
)

# Why the copy ahead before a cell (child/hot_pages.py) copied nothing or stopped early,
# beside "pages copied ahead" in %sandbox: a 0 alone reads as a setting that does
# nothing. The executor sends only the key; the words are the kernel's.
COPY_AHEAD_NOTES = {
    "learning": "none: the cells' writes were being learned (now and then two cells "
    "copy nothing, so that what they write shows)",
    "cut_short": "cut short: this cell arrived before the copy was done (cells back to back)",
    "near_memory_limit": "none: the sandbox is near half its memory limit, where copies stop",
}


def copy_ahead_note(key: object) -> str | None:
    """The words for the executor's copy-ahead note, None for none or an unknown one."""
    return COPY_AHEAD_NOTES.get(key) if isinstance(key, str) else None


def error_reply(publisher: Publisher, ename: str, evalue: str, count: int) -> dict[str, Any]:
    """An execute_reply for an error the kernel itself reports (shown in the cell too)."""
    traceback = [f"\x1b[0;31m{ename}\x1b[0m: {evalue}"]
    publisher.error(ename, evalue, traceback)
    return error_content(ename, evalue, traceback, count)


def error_content(ename: str, evalue: str, traceback: list[str], count: int) -> dict[str, Any]:
    """The content of an execute_reply with status error."""
    return {
        "status": "error",
        "execution_count": count,
        "ename": ename,
        "evalue": evalue,
        "traceback": traceback,
        "user_expressions": {},
        "payload": [],
    }


def _user_tasks(uid: int) -> int:
    """Processes and threads of ``uid`` on the host: what RLIMIT_NPROC counts."""
    total = 0
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
                f"[sandbox] {FileSizeLimitExceeded.__name__}: a file may not grow beyond "
                f"{quota} MiB, the workspace's quota (Limits.workspace_quota_mb; "
                f"Limits.max_file_size_mb is {limits.max_file_size_mb} MiB)."
            )
        return (
            f"[sandbox] {FileSizeLimitExceeded.__name__}: a file may not grow beyond "
            f"{limits.max_file_size_mb} MiB (Limits.max_file_size_mb)."
        )
    if evalue.startswith("[Errno 28]"):
        return (
            f"[sandbox] {DiskLimitExceeded.__name__}: the sandbox's private /tmp and home hold "
            f"at most {isolation.tmp_size_mb} MiB each (Isolation.tmp_size_mb); the workspace is "
            "limited by its own disk."
        )
    return None


class CellRun:
    """One cell in the executor: watchdogs, limits, outcome, rollback."""

    def __init__(
        self,
        sandbox: Sandbox,
        executor: ExecutorProcess,
        request: ExecuteRequest,
        verdict: Verdict,
        *,
        audit: AuditLog,
        log: logging.Logger | logging.LoggerAdapter[Any],
    ) -> None:
        self.sandbox = sandbox
        self.executor = executor
        self.request = request
        self.code = request.code
        self.verdict = verdict
        self.limits: Limits = sandbox.limits
        self.isolation: Isolation = sandbox.isolation
        self.publisher: Publisher = sandbox.publisher
        self.audit = audit
        self.log = log
        # From the request going out until the executor answered (or died).
        self.running = False
        # Set when the kernel itself stops the cell.
        self.stop_reason: CellStopped | None = None

    async def run(self, reply_count: int) -> dict[str, Any]:
        """Run the cell under its limits; return the execute_reply's content."""
        sandbox, executor, limits = self.sandbox, self.executor, self.limits
        await sandbox.begin_cell_scan()
        sandbox.cell = self
        self.running = True
        # Counters as they stood after the previous cell (read once per cell, after it).
        oom_before, pids_before = sandbox.cgroup_counts
        if sandbox.cgroup:
            sandbox.cgroup.reset_peak()
        watchers = []
        if limits.wall_time_limit_s:
            watchers.append(asyncio.ensure_future(self._deadline(limits.wall_time_limit_s)))
        if limits.cpu_time_limit_s:
            watchers.append(asyncio.ensure_future(self._cpu_watch(limits.cpu_time_limit_s)))
        try:
            outcome = await executor.execute(self.request)
        except BaseException:
            sandbox.cell_scanning = False
            raise
        finally:
            self.running = False
            for watcher in watchers:
                watcher.cancel()
        # Before the reply: nothing outside may meet what the cell left in the workspace.
        try:
            await sandbox.workspace_hygiene(self.code)
        finally:
            sandbox.cell_scanning = False
        outcome.stats.update(self.publisher.end_cell())
        if outcome.reply is None:
            return await self._recover(outcome, reply_count, oom_before)
        return await self._finish(outcome, reply_count, oom_before, pids_before)

    # -- watchdogs ---------------------------------------------------------------------

    async def _cpu_watch(self, limit: float) -> None:
        """Per-cell CPU time, read from /proc on this side: the executor cannot lie about it."""
        executor = self.executor
        start = executor.executor_cpu_s()
        if start is None:
            self.log.warning("cpu_limit_unavailable reason=executor pid not found")
            return
        while self.running:
            await asyncio.sleep(0.25)
            used = executor.executor_cpu_s()
            if used is not None and used - start > limit and self.stop_reason is None:
                self.stop_reason = CpuLimitExceeded(
                    f"it used more than {limit:g} s of CPU time (Limits.cpu_time_limit_s)"
                )
                await self.stop_over_limit()
                return

    async def _deadline(self, limit: float) -> None:
        await asyncio.sleep(limit)
        if self.running and self.stop_reason is None:
            self.stop_reason = CellTimeout(
                f"it ran longer than the limit of {limit:g} s (Limits.wall_time_limit_s)"
            )
            await self.stop_over_limit()

    async def stop_over_limit(self) -> None:
        """A limit was reached: roll the cell back if there is a snapshot, else interrupt it."""
        executor = self.sandbox.executor
        if executor is None or self.stop_reason is None:
            return
        if executor.snapshot_pid is not None and self.limits.rollback:
            # Its partial effects on the state must not survive a limit: kill,
            # and the snapshot from before the cell takes over.
            executor.kill_executor(self.stop_reason.why)
        else:
            await self.interrupt()

    async def interrupt(self) -> None:
        """Interrupt the cell; kill the executor if it does not stop within the grace."""
        executor = self.sandbox.executor
        if executor is None or not self.running:
            return
        executor.interrupt()
        grace = self.limits.interrupt_grace_s
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if not self.running:
                return
        if self.stop_reason is None:
            self.stop_reason = CellInterrupted(
                f"it did not stop within {grace:g} s of the interrupt (a C extension loop or a "
                "cell that ignores SIGINT), so the executor was killed"
            )
        elif isinstance(self.stop_reason, CellTimeout):
            self.stop_reason = CellTimeout(
                self.stop_reason.why + ", and did not stop when interrupted"
            )
        self.log.warning("interrupt_kill cell=%s grace_s=%s", self.request.parent, grace)
        executor.kill_executor(self.stop_reason.why)

    # -- outcome -----------------------------------------------------------------------

    async def _finish(
        self, outcome: CellOutcome, reply_count: int, oom_before: int, pids_before: int
    ) -> dict[str, Any]:
        """The cell answered: name the limits it hit, end what it left, build the reply."""
        sandbox, executor, limits = self.sandbox, self.executor, self.limits
        assert outcome.reply is not None
        disk = _disk_limit_note(outcome.reply, limits, self.isolation)
        if disk:
            self.publisher.notice(disk)
        cgroup = sandbox.cgroup
        pids_now = cgroup.pids_limit_hits() if cgroup is not None else 0
        sandbox.cgroup_counts = (oom_before, pids_now)
        limit_hit = pids_now > pids_before
        tree = 0
        if cgroup is None:
            tree = executor.tree_size()
            # The cell left processes behind: did they (with the other processes of the
            # uid cells run as, which RLIMIT_NPROC counts too) reach the limit? That uid
            # is this kernel's own when it is unprivileged, the mapped sandbox uid when it
            # runs as root (a root container without a writable cgroup); never host root,
            # for whom RLIMIT_NPROC is not enforced at all.
            # The count is taken while the executor replaces its snapshot after the reply
            # (the old one killed, a new one forked), which moves it by one either way:
            # a cell that met the limit may be counted one short of it.
            cells_uid = executor.executor_host_uid() if tree > sandbox.tree_size else None
            limit_hit = _process_rlimit_hit(outcome.reply) or (
                cells_uid is not None
                and cells_uid != 0
                and _user_tasks(cells_uid) >= limits.max_processes - 1
            )
        if self.stop_reason is not None and outcome.reply["status"] == "error":
            # The kernel interrupted the cell (its time was up) and it stopped cleanly.
            ename, why = self.stop_reason.ename, self.stop_reason.why
            self.publisher.notice(f"[sandbox] {ename}: the cell was interrupted because {why}.")
            outcome.reply.update(ename=ename, evalue=f"The cell was interrupted because {why}.")
            self.record(outcome, ename)
        elif limit_hit:
            self.record(outcome, ProcessLimitExceeded.__name__)
        else:
            self.record(outcome, "ok" if outcome.reply["status"] == "ok" else "error")
        if limit_hit:
            # A fork bomb (or a pool too large) would keep the limit exhausted
            # for every later cell: end what this cell started (and collect the
            # zombies, which still count against the limit).
            await executor.reap_cell_processes()
            how = (
                ""
                if cgroup is not None
                else "; on this host it is RLIMIT_NPROC, which counts every process of the "
                "uid cells run as"
            )
            self.publisher.notice(
                f"[sandbox] {ProcessLimitExceeded.__name__}: this cell reached the limit of "
                f"{limits.max_processes} processes and threads (Limits.max_processes{how}); "
                "the processes it started were stopped."
            )
        elif limits.kill_cell_processes:
            # Most cells start no process: then there is nothing for a sweep to kill.
            await executor.reap_cell_processes(sweep_if_needed=True)
        if cgroup is None:
            # After a reap the tree is smaller than it was at the cell's end.
            reaped = limit_hit or limits.kill_cell_processes
            sandbox.tree_size = executor.tree_size() if reaped else tree
        return self._reply(outcome, reply_count)

    def _reply(self, outcome: CellOutcome, count: int) -> dict[str, Any]:
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

    async def _recover(self, outcome: CellOutcome, count: int, oom_before: int) -> dict[str, Any]:
        """The cell ended without a reply: say exactly why, and restore or restart."""
        sandbox, executor = self.sandbox, self.executor
        cgroup = sandbox.cgroup
        if self.stop_reason is not None:
            ename, why = self.stop_reason.ename, self.stop_reason.why
        elif cgroup is not None and cgroup.oom_kills() > oom_before:
            sandbox.cgroup_counts = (cgroup.oom_kills(), sandbox.cgroup_counts[1])
            limit = effective_memory_bytes(self.limits) >> 20
            ename, why = (
                MemoryLimitExceeded.__name__,
                f"it used more than the memory limit of {limit} MiB, so the executor was killed",
            )
        else:
            ename, why = ExecutorDied.__name__, outcome.failure or "the executor stopped"
        if cgroup is not None:
            # Limit hits of this cell are this cell's (promotion ends its processes),
            # not the next one's.
            sandbox.cgroup_counts = (sandbox.cgroup_counts[0], cgroup.pids_limit_hits())
        skipped = executor.snapshot_skipped
        if self.limits.rollback and await executor.promote():
            state = (
                "The state was restored to what it was before this cell: variables, imports "
                f"and open files of earlier cells are still there. {FILES_NOT_RESTORED}"
            )
            rolled_back = True
        else:
            await sandbox.restart(executor)
            because = f" (no snapshot was kept for this cell: {skipped})" if skipped else ""
            state = (
                "The executor was restarted: variables and imports from earlier cells "
                f"are gone{because}."
            )
            rolled_back = False
        self.record(outcome, ename, rolled_back=rolled_back)
        # A cell that crashed or hit a limit is the cell's outcome, shown to the user and
        # recorded in the audit log: INFO. Lost state is worth an operator's look: WARNING.
        self.log.log(
            logging.INFO if rolled_back else logging.WARNING,
            "cell_failed kind=%s rolled_back=%s why=%s",
            ename,
            rolled_back,
            why,
        )
        return error_reply(self.publisher, ename, f"The cell did not finish: {why}. {state}", count)

    def record(self, outcome: CellOutcome, result: str, *, rolled_back: bool = False) -> None:
        """Per-cell figures for the reply metadata, %sandbox and the audit log."""
        sandbox = self.sandbox
        stats = {**(outcome.reply or {}).get("stats", {}), **outcome.stats}
        peak = sandbox.cgroup.memory_peak() if sandbox.cgroup else stats.get("peak_rss_bytes")
        sandbox.last_cell = {
            "outcome": result,
            "wall_time_s": round(outcome.wall_time_s, 4),
            "cpu_time_s": stats.get("cpu_s"),
            "peak_memory_mb": round(peak / MIB, 1) if isinstance(peak, (int, float)) else None,
            "rolled_back": rolled_back,
            # The state is rolled back, never the workspace's files (SECURITY.md says why).
            "files_restored": False if rolled_back else None,
            "snapshot": stats.get("snapshot"),
            "pages_copied_ahead": stats.get("pages_copied_ahead"),
            "copy_ahead_off": stats.get("copy_ahead_off"),
            "copy_ahead_note": copy_ahead_note(stats.get("copy_ahead_note")),
            "output_bytes": stats.get("output_bytes"),
            "output_dropped_bytes": stats.get("output_dropped_bytes"),
            # Comms to targets outside Output.comm_targets (each in the audit log).
            "comms_refused": stats.get("comms_refused") or None,
        }
        self.audit.record_cell(
            self.code,
            self.verdict,
            resources={k: v for k, v in sandbox.last_cell.items() if v is not None},
            isolation=sandbox.report.get("level", ""),
        )
