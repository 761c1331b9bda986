"""The trusted kernel's protocol handlers: speaks Jupyter, runs no user code.

Each request is answered here or relayed to the executor. What lives elsewhere:
the sandbox's lifecycle (``sandbox.py``), one cell's run with its limits and
outcome (``cellrun.py``), the banner and ``%sandbox`` (``report.py``), the stdin
channel (``stdin.py``), the executor's process and relay (``runner.py``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import inspect
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ipykernel.kernelbase import Kernel
from jupyter_client.session import json_packer
from traitlets import Float

from .. import __version__, own_memory
from ..config import Isolation, Limits, Output, Policy
from ..errors import ExecutorDied
from ..identity import user_name
from ..isolation import privs
from ..log import AuditLog
from ..policy import PolicySettings, Verdict
from ..policy.check import CellChecker
from ..relay.budget import OutputLimits
from ..relay.gate import GateSettings
from ..relay.publisher import IOPub, Publisher
from ..relay.reports import escape_for_log
from ..sandbox_magic import SUBCOMMANDS
from . import report, requests
from .cellrun import CellRun, error_content, error_reply
from .debug import DebugRelay
from .runner import ExecuteRequest
from .sandbox import Sandbox
from .stdin import Stdin
from .warm import warm_settings_match

__all__ = ["SandboxKernel"]

COMPLETE_TIMEOUT_S = 10.0
COMM_TIMEOUT_S = 30.0
#: The ``ename`` of a reply to a request whose handling failed on our side.
KERNEL_ERROR = "SandboxKernelError"


def _kernel_error(kernel: Kernel, request: str, exc: Exception) -> dict[str, Any]:
    """The error reply's content for a bug of ours met while answering ``request``."""
    kernel.log.exception("kernel_error request=%s", request)
    return {
        "status": "error",
        "ename": KERNEL_ERROR,
        "evalue": f"sandbox-kernel failed while answering this {request} "
        f"({type(exc).__name__}: {escape_for_log(str(exc))[:300]}). This is a bug in "
        "sandbox-kernel, not in your code; the kernel log has the details, and the "
        "kernel keeps serving.",
        "traceback": [],
    }


_Handler = TypeVar("_Handler", bound=Callable[..., Awaitable[dict[str, Any]]])


def _answers_on_error(request: str) -> Callable[[_Handler], _Handler]:
    """A reply even when the handler fails: ipykernel only logs an exception from a
    handler and sends nothing, so the frontend would wait for ever."""

    def wrap(method: _Handler) -> _Handler:
        @functools.wraps(method)
        async def answered(self: Kernel, *args: Any, **kwargs: Any) -> dict[str, Any]:
            try:
                return await method(self, *args, **kwargs)
            except Exception as exc:
                return _kernel_error(self, request, exc)

        return answered  # type: ignore[return-value]

    return wrap


def _audit_log_path(setting: str) -> str | None:
    if not setting:
        return None
    if setting == "default":
        from jupyter_core.paths import jupyter_data_dir

        return os.path.join(jupyter_data_dir(), "sandbox_kernel", "audit.jsonl")
    return os.path.expanduser(setting)


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

    # ipykernel sleeps after every cell, before its reply, so that its own sys.stdout
    # has flushed to IOPub ("FIXME" in kernelbase.py). Nothing a cell prints passes
    # through this process's sys.stdout: the relay publishes it through the IOPub
    # thread's queue as it arrives, before the reply frame is even read, and `idle`
    # follows in the same queue; the sleep blocks the main thread, so no relayed
    # frame is published during it either. It was 0.5 ms of every cell's latency.
    _execute_sleep = Float(
        0.0,
        help="Seconds to sleep after a cell before its execute_reply (ipykernel's 0.5 ms "
        "is for output written to the kernel process's own sys.stdout; cells print "
        "through the relay).",
    ).tag(config=True, lock=False)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Every request's content is checked before its handler sees it (requests.py).
        for handlers in (self.shell_handlers, self.control_handlers):
            for msg_type, handler in handlers.items():
                handlers[msg_type] = self._checked(msg_type, handler)
        self.isolation = Isolation(parent=self)
        self.limits = Limits(parent=self)
        self.output = Output(parent=self)
        self.policy = Policy(parent=self)
        self.policy_settings = PolicySettings.from_configurable(self.policy)
        # A cell run again is not parsed and walked again (verdicts by source digest).
        self.checker = CellChecker(self.policy_settings)
        self.audit = AuditLog(
            _audit_log_path(self.policy.audit_log),
            logger=self.log,
            kernel_id=self.ident,
            user=user_name(),
            secrets=[self.session.key] if self.session is not None else [],
            max_bytes=self.policy.audit_log_max_mb * 1024 * 1024,
        )
        self.publisher = Publisher(
            IOPub(self.session, self.iopub_socket, self.ident),
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
        # A spare (kernel/warm.py) built its sandbox before it was assigned, from the
        # same configuration; it is kept only if the settings are the same here, and
        # checked again against a fresh start when the kernel starts (Sandbox._adopt).
        warm = getattr(self.parent, "warm_sandbox", None)
        if warm is not None and not warm_settings_match(warm, self):
            self.log.info("warm_sandbox_discarded reason=settings differ")
            warm.discard_warm()
            warm = None
        if warm is not None:
            self.sandbox = warm
        else:
            self.sandbox = Sandbox(
                isolation=self.isolation,
                limits=self.limits,
                output=self.output,
                policy=self.policy_settings,
                workspace=self.workspace,
                log=self.log,
            )
        self.sandbox.attach(
            publisher=self.publisher,
            stdin=self.stdin,
            audit=self.audit,
            hidden=self._own_socket_paths,
            on_log=self._executor_log,
            on_audit=self._on_audit,
            on_network=self._on_network,
            on_debug_event=self._debug_event,
        )
        self.debugger = DebugRelay(
            self.sandbox,
            self.policy_settings,
            self.audit,
            lambda: self.publisher.gate,
            lambda content, parent: self.publisher.send("debug_event", content, parent),
        )
        self._execution_count = 1
        self._history: list[tuple[int, int, str]] = []
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
        self.sandbox.begin_start()

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

    async def _interrupt(self) -> None:
        cell = self._running_cell()
        if cell is not None:
            await cell.interrupt()

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

    # -- banner and kernel_info ------------------------------------------------------

    @property
    def banner(self) -> str:  # type: ignore[override]
        return report.banner(self.sandbox)

    async def kernel_info_request(self, stream: Any, ident: Any, parent: Any) -> None:
        # The banner must say what sandbox is in force, so wait for the
        # executor to report (bounded: a failure is reported as such).
        await self.sandbox.wait_started()
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
            # The debugger runs in the executor, where its port stays inside the
            # sandbox (debug.py); no subshells (one executor, one cell at a time).
            "supported_features": [] if self.debugger.unavailable() else ["debugger"],
            "debugger": self.debugger.unavailable() is None,
            "sandbox": {
                "level": self.sandbox.report.get("level"),
                "failure": self.sandbox.setup_failure,
                # Why each stronger level is not in force here (the probe's words).
                "unavailable": dict(self.sandbox.report.get("unavailable") or {}),
            },
        }

    async def do_debug_request(self, content: dict[str, Any]) -> dict[str, Any]:
        """A debug_request arrives on the control thread: the main loop, which owns the
        relay, checks and relays it (debug.py)."""
        future = asyncio.run_coroutine_threadsafe(
            self.debugger.request(content, self.get_parent("control")),
            self.io_loop.asyncio_loop,  # type: ignore[attr-defined]
        )
        return await asyncio.wrap_future(future)

    def _debug_event(self, content: dict[str, Any]) -> None:
        self.debugger.event(content)

    def sandbox_report(self) -> str:
        return report.sandbox_report(
            self.sandbox,
            policy=self.policy_settings,
            audit=self.audit,
            locked_files=self.locked_files,
        )

    # -- what the sandbox reports -----------------------------------------------------

    def _running_cell(self) -> CellRun | None:
        cell = self.sandbox.cell
        return cell if cell is not None and cell.running else None

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
        cell = self._running_cell()
        self.audit.record_violation(
            {
                "event": "comm_refused",
                "rule": "Output.comm_targets",
                "action": "deny",
                "detail": f"comm_open to the frontend target {target[:200]!r} was not relayed",
            },
            source=cell.code if cell is not None else None,
            reported_by="kernel",
        )
        self.log.info("comm_refused target=%s", escape_for_log(target[:200]))

    def _on_audit(self, record: dict[str, Any]) -> None:
        """A runtime report: the executor's audit hook, or the seccomp supervisor."""
        cell = self._running_cell()
        self.audit.record_violation(
            record,
            source=cell.code if cell is not None else None,
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
            # Shown under the request the executor says caused it: a report that
            # comes late must not appear in the next cell's output.
            # The static check has already warned about this rule for this cell.
            already = (
                cell is not None
                and record.get("parent") in (None, cell.request.parent)
                and record.get("rule") in cell.verdict.rule_ids
            )
            if not already:
                self.publisher.notice(
                    f"[sandbox] warning [{record.get('rule')}] {record.get('detail')}",
                    self.publisher.parent_for(record),
                    key="warning",
                )

    def _mute_executor(self) -> None:
        executor = self.sandbox.executor
        if executor is not None:
            executor.mute()

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
        self._begin_request(parent, msg_id, allow_stdin)
        # IPython never stores (or counts) a silent cell, whatever the request says.
        store_history = store_history and not silent
        count = self._count(code, store_history)
        reply_count = count if store_history else count - 1
        try:
            return await self._execute(
                code, silent, store_history, user_expressions, allow_stdin, count, reply_count
            )
        except Exception as exc:
            # The cell says what happened (see _answers_on_error).
            error = _kernel_error(self, "execute_request", exc)
            return error_reply(self.publisher, error["ename"], error["evalue"], reply_count)

    async def _execute(
        self,
        code: str,
        silent: bool,
        store_history: bool,
        user_expressions: dict[str, str] | None,
        allow_stdin: bool,
        count: int,
        reply_count: int,
    ) -> dict[str, Any]:
        parent = self.get_parent("shell")
        msg_id = parent.get("header", {}).get("msg_id", "")
        argument = report.magic_argument(code)
        if argument is not None:
            return await self._sandbox_magic(argument, silent, parent, reply_count)
        verdict = self.checker.check(code)
        if not verdict.allowed:
            return self._refused(code, verdict, parent, reply_count)
        warning = verdict.as_warning()
        if warning and not silent:
            self.publisher.notice(warning, parent)
        executor = await self.sandbox.for_cell()
        if isinstance(executor, str):
            return error_reply(
                self.publisher,
                "SandboxUnavailable",
                f"The sandbox could not start, so this cell did not run. {executor}",
                reply_count,
            )
        request = ExecuteRequest(
            code=code,
            silent=silent,
            store_history=store_history,
            user_expressions=user_expressions or {},
            allow_stdin=allow_stdin,
            execution_count=count,
            parent=msg_id,
            reap_after=self.limits.kill_cell_processes,
        )
        cell = CellRun(self.sandbox, executor, request, verdict, audit=self.audit, log=self.log)
        return await cell.run(reply_count)

    def _checked(
        self, msg_type: str, handler: Callable[..., Any]
    ) -> Callable[[Any, Any, dict[str, Any]], Awaitable[None]]:
        """The handler, behind a check of the request's shape (requests.py)."""

        async def checked(stream: Any, idents: Any, msg: dict[str, Any]) -> None:
            problem = requests.malformed(msg_type, msg.get("content"))
            if problem is None:
                result = handler(stream, idents, msg)
                if inspect.isawaitable(result):
                    await result
                return
            self._answer_malformed(stream, idents, msg, msg_type, problem)

        return checked

    def _answer_malformed(
        self, stream: Any, idents: Any, msg: dict[str, Any], msg_type: str, problem: str
    ) -> None:
        """An error reply naming the field: the frontend does not wait for ever."""
        self.log.warning("malformed_request type=%s why=%s", msg_type, escape_for_log(problem))
        kind = requests.reply_type(msg_type)
        if kind is None or self.session is None:
            return
        content: dict[str, Any] = {
            "status": "error",
            "ename": requests.MALFORMED,
            "evalue": f"The kernel did not act on this {msg_type}: {problem}. "
            "It keeps serving other requests.",
            "traceback": [],
        }
        if msg_type == "execute_request":
            content.update(execution_count=self.execution_count, user_expressions={}, payload=[])
        self.session.send(stream, kind, content, msg, ident=idents)

    def _begin_request(self, parent: dict[str, Any], msg_id: str, allow_stdin: bool) -> None:
        """Outputs from here on belong to this request; say what happened meanwhile."""
        self.publisher.begin_cell(parent)
        while self.sandbox.pending_notices:
            self.publisher.notice(self.sandbox.pending_notices.pop(0), parent)
        if self.sandbox.network is not None:
            self.sandbox.network.begin_cell()
        if allow_stdin:
            self.stdin.allow(msg_id, self._get_shell_context_var(self._shell_parent_ident))

    def _count(self, code: str, store_history: bool) -> int:
        """This cell's execution count; a stored cell goes into the history."""
        count = self._execution_count
        if store_history:
            self._execution_count += 1
            self._history.append((0, count, code))
        return count

    async def _sandbox_magic(
        self, argument: str, silent: bool, parent: dict[str, Any], count: int
    ) -> dict[str, Any]:
        """``%sandbox``: answered here, from the kernel's own record of what the launcher
        set up: a cell cannot make the executor misreport its sandbox."""
        if argument == "":
            await self.sandbox.for_cell()
        text = report.magic_text(
            argument,
            self.sandbox,
            policy=self.policy_settings,
            audit=self.audit,
            locked=self.locked,
            locked_files=self.locked_files,
        )
        if text is None:
            return error_reply(
                self.publisher,
                "UsageError",
                f"%sandbox {argument}: unknown subcommand; use one of "
                f"{', '.join(SUBCOMMANDS)} (or nothing)",
                count,
            )
        if not silent:
            self.publisher.send("stream", {"name": "stdout", "text": text + "\n"}, parent)
        return {"status": "ok", "execution_count": count, "user_expressions": {}, "payload": []}

    def _refused(
        self, code: str, verdict: Verdict, parent: dict[str, Any], count: int
    ) -> dict[str, Any]:
        """Refused by the policy before anything runs: no cell is half-run by a policy
        decision."""
        ename, evalue, traceback = verdict.as_error()
        self.publisher.error(ename, evalue, traceback, parent)
        self.audit.record_cell(code, verdict, isolation=self.sandbox.report.get("level", ""))
        self.sandbox.last_cell = {"outcome": "denied", "rules": verdict.rule_ids}
        return error_content(ename, evalue, traceback, count)

    def finish_metadata(
        self, parent: Any, metadata: dict[str, Any], reply_content: dict[str, Any]
    ) -> dict[str, Any]:
        metadata = super().finish_metadata(parent, metadata, reply_content)
        metadata["sandbox"] = {
            "level": self.sandbox.report.get("level"),
            **self.sandbox.last_cell,
        }
        return metadata

    # -- other requests -------------------------------------------------------------

    @_answers_on_error("complete_request")
    async def do_complete(self, code: str, cursor_pos: int | None) -> dict[str, Any]:
        cursor_pos = len(code) if cursor_pos is None else cursor_pos
        empty = {
            "status": "ok",
            "matches": [],
            "cursor_start": cursor_pos,
            "cursor_end": cursor_pos,
            "metadata": {},
        }
        executor = self.sandbox.executor
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

    @_answers_on_error("inspect_request")
    async def do_inspect(
        self, code: str, cursor_pos: int, detail_level: int = 0, omit_sections: Any = ()
    ) -> dict[str, Any]:
        not_found = {"status": "ok", "found": False, "data": {}, "metadata": {}}
        executor = self.sandbox.executor
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

    @_answers_on_error("is_complete_request")
    async def do_is_complete(self, code: str) -> dict[str, Any]:
        # Pure parsing: no user code runs, so the trusted side can answer.
        from IPython.core.inputtransformer2 import TransformerManager

        status, indent = TransformerManager().check_complete(code)
        reply: dict[str, Any] = {"status": status}
        if status == "incomplete":
            reply["indent"] = " " * (indent or 0)
        return reply

    @_answers_on_error("history_request")
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
        executor = self.sandbox.executor
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
            if self._running_cell() is not None:
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
        await self.sandbox.stop()
        self.audit.close()
