"""The executor's main loop: serve the trusted kernel's commands (runs inside the sandbox).

Everything here runs after the sandbox is in place. Nothing in this process is
trusted by the kernel: it reads our replies through the hostile-input parser.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..paths import PACKAGE_DIR
from .channel import Channel, install_interrupt_handler, interrupts_deferred
from .explain import PREFIX, Explainer, installs_packages
from .fd_capture import capture_fds
from .hot_pages import PAGE_SIZE, HotPages
from .packages import pip_magic_installs
from .shell import (
    ExecutorShell,
    FrameStream,
    Outbox,
    StreamFlusher,
    jsonable,
)
from .snapshot import Snapshots

# The executor's own threads: the stream flusher and the two fd pumps.
OWN_THREADS = 3

__all__ = ["BOOTSTRAP_FILES", "BOOTSTRAP_MODULES", "serve"]

# The top-level modules imported before the first cell (for the test that plants
# modules of these names in the workspace).
BOOTSTRAP_MODULES: frozenset[str] = frozenset()
# The files of every module imported before the first cell: the executor's and the
# libraries it runs cells with (IPython, traitlets, re, tokenize, ...). The debugger
# leaves them out of stepping and stack traces, as ipykernel leaves out the modules
# loaded at its start: otherwise a breakpoint on raised exceptions stops at each
# exception those libraries raise and catch while a cell is compiled (re's cache
# misses, traitlets' lookups: hundreds of stops before the cell's first line).
BOOTSTRAP_FILES: tuple[str, ...] = ()


class Executor:
    """Dispatches commands to the IPython shell and answers each one."""

    def __init__(self, channel: Channel, info: dict[str, Any]) -> None:
        self.channel = channel
        self.info = info
        self.outbox = Outbox(channel)
        self.flusher = StreamFlusher()
        self.stdout = FrameStream("stdout", self.outbox, self.flusher)
        self.stderr = FrameStream("stderr", self.outbox, self.flusher)
        self.flusher.streams = [self.stdout, self.stderr]
        self.flusher.outbox = self.outbox
        self.outbox.flusher = self.flusher
        self.flusher.start()
        self.pumps = capture_fds(self.stdout, self.stderr)
        sys.stdout = self.stdout
        sys.stderr = self.stderr
        limits = info.get("limits", {})
        self.snapshots = Snapshots(
            enabled=bool(limits.get("rollback", True)),
            max_bytes=int(limits.get("snapshot_max_bytes", 0)),
            own_threads=OWN_THREADS,
        )
        # A descriptor of /proc/self/pagemap, opened by the launcher before confinement.
        self.hot_pages = HotPages(
            info.pop("pagemap_fd", None),
            max_pages=int(limits.get("copy_ahead_bytes", 0)) // PAGE_SIZE,
            memory_limit=int(limits.get("memory_bytes", 0)),
        )
        os.register_at_fork(after_in_child=self._after_fork_in_child)

        self.shell = ExecutorShell.instance(outbox=self.outbox, config=_shell_config())
        self.shell.read_input = self.read_input
        self.shell.sandbox_info = info  # type: ignore[attr-defined]
        # The kernel takes exactly one snapshot announcement after "ready", after each
        # reply and after a promotion. A snapshot skipped after the last reply (a thread
        # was running, such as %%script's event loop) is not retried before the next
        # cell: that announcement was made, and another would be refused as forged.
        self.announcement_owed = True
        facts = info.get("explain") or {}
        self.shell.explainer = Explainer(facts)
        self.no_network = not facts.get("allow_network", True) and not facts.get("allowed_hosts")
        # One-time notices (the first write to the private /tmp or HOME), shown at the
        # end of the cell that caused them.
        self.notices: list[str] = []
        _install_comms(self.outbox)
        from .magics import FrontendMagics

        self.shell.register_magics(FrontendMagics)
        from .runfile import install as install_runfile

        install_runfile()
        from .packages import PackageMagics, add_package_dirs, install_proxy_shim

        install_proxy_shim()

        # After IPython's own %pip, which this replaces.
        self.shell.register_magics(PackageMagics)
        add_package_dirs(info.get("network") or {})
        # As IPython's kernel application does by default.
        self.shell.extension_manager.load_extension("storemagic")  # type: ignore[union-attr]
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "execute": self.execute,
            "complete": self.complete,
            "inspect": self.inspect,
            "comm_open": self.comm,
            "comm_msg": self.comm,
            "comm_close": self.comm,
            "info": self.update_info,
            "reap": self.reap,
            "debug": self.debug,
        }
        self.debugger: Any = None
        # The execute command whose reply has not gone out yet (_answer_failed_cell).
        self.reply_owed: dict[str, Any] | None = None

    # -- the loop --------------------------------------------------------------

    def serve(self) -> None:
        command: dict[str, Any] | None
        while True:
            try:
                if self.shell.deferred_commands:
                    command = self.shell.deferred_commands.popleft()
                else:
                    command = self.channel.recv()
                if command is None:
                    return
                handler = self.handlers.get(str(command.get("op")))
                if handler is None:
                    self.log("warning", f"unknown command {command.get('op')!r}")
                    continue
                handler(command)
            except KeyboardInterrupt:
                # An interrupt that arrived between cells has nothing to stop.
                continue
            except Exception as exc:
                self.log("error", "executor command failed:\n" + traceback.format_exc())
                self._answer_failed_cell(exc)

    def _answer_failed_cell(self, exc: Exception) -> None:
        """A cell whose handling failed here still gets its reply: the kernel waits for
        one (until a limit or the user's interrupt ends the cell) and runs nothing else
        meanwhile."""
        command, self.reply_owed = self.reply_owed, None
        if command is None:
            return
        why = (
            f"the sandbox's executor failed while handling this cell "
            f"({type(exc).__name__}: {str(exc)[:300]}); the kernel log has the details"
        )
        with contextlib.suppress(Exception):
            # Shown in the cell: the reply alone is not displayed by a frontend.
            self.stderr.write(f"{PREFIX} {why[0].upper()}{why[1:]}.\n")
            self.stderr.flush()
        self.channel.send(
            {
                "type": "execute_reply",
                "id": command["id"],
                "token": command.get("token", ""),
                "status": "error",
                "ename": "SandboxExecutorError",
                "evalue": why,
                "traceback": [],
                "user_expressions": {},
                "payload": [],
            }
        )

    def _after_fork_in_child(self) -> None:
        # Any fork (a cell's os.fork, multiprocessing, our own snapshot) makes
        # a process that is not the executor: it must not touch the relay.
        self.channel.after_fork_in_child()
        self.outbox.after_fork_in_child()
        for stream in (self.stdout, self.stderr):
            stream.after_fork_in_child(raw=True)
        shell = getattr(self, "shell", None)
        if shell is not None:
            shell.forked_child = True

    def _become_executor(self) -> None:
        """In a snapshot that was just promoted: take over from the executor that died."""
        # The kernel expects the promoted snapshot to announce its own before a cell.
        self.announcement_owed = True
        self.hot_pages.give_up("a promoted snapshot's descriptor shows the dead executor's pages")
        token = self.channel.resume()
        self.shell.forked_child = False
        for stream in (self.stdout, self.stderr):
            stream.after_fork_in_child(raw=False)
        self.flusher.start()
        for pump in self.pumps:
            pump.start()
        from . import audit

        audit.adopt_process()
        # Exactly these bytes are what the kernel scans for: no parent stamp.
        self.channel.send({"type": "restored", "token": token, "pid": os.getpid()}, stamp=False)

    def log(self, level: str, message: str) -> None:
        self.channel.send({"type": "log", "level": level, "message": message[:10_000]})

    def read_input(self, prompt: str, password: bool) -> str:
        """input()/getpass(): ask the frontend through the kernel and wait for the answer."""
        self.stdout.flush()
        self.stderr.flush()
        self.outbox.send({"type": "input_request", "prompt": prompt, "password": password})
        while True:
            command = self.channel.recv()
            if command is None:
                raise EOFError("the kernel went away while waiting for input")
            if command.get("op") == "input_reply":
                if command.get("error"):
                    raise EOFError(str(command["error"]))
                value = str(command.get("value", ""))
                if value == "\x04":
                    raise EOFError
                return value
            # A widget message or the like: handle it once the cell is done.
            self.shell.deferred_commands.append(command)

    # -- commands ------------------------------------------------------------

    def execute(self, command: dict[str, Any]) -> None:
        self.reply_owed = command
        # Normally the snapshot for this cell was taken when the previous
        # command ended, off the critical path; the first cell takes its own.
        if self.snapshots.pid is None and self.announcement_owed:
            if self.snapshots.take():
                # This is the snapshot, promoted: the cell below killed the
                # executor, and must not run again. Carry on from before it.
                self.reply_owed = None
                self._become_executor()
                return
            self._announce_snapshot()
        self._run_cell(command)
        if command.get("reap_after"):
            # The kernel's reap command, which ends the cell's processes (a new
            # snapshot among them, were it taken now), takes the next one. The old
            # one holds the state before this cell: it must never stand in for it.
            # What the cell wrote is learned first, while that snapshot still shares
            # the rest: the reap's refresh finds no snapshot to learn against.
            if self.snapshots.pid is not None:
                self.hot_pages.before_drop()
            self.snapshots.drop()
        else:
            self.refresh_snapshot()

    def _announce_snapshot(self) -> None:
        """Tell the kernel which process holds the state to fall back on (or why none does)."""
        self.announcement_owed = False
        self.channel.send(
            {
                "type": "snapshot",
                "pid": self.snapshots.pid or 0,
                "skipped": self.snapshots.skipped or "",
            }
        )

    def refresh_snapshot(self) -> None:
        """Replace the snapshot with one of the state as it is now, for the next cell.

        Runs after the reply has gone out. If the cell that follows kills the
        executor, this is the copy that takes over: it returns from here (as
        if from the fork) and carries on serving.
        """
        # What the next cell reports: nothing copied unless this refresh copies.
        self.hot_pages.copied, self.hot_pages.note = 0, None
        if self.snapshots.pid is not None:
            # Now, while the old snapshot still shares every page the cell did not write.
            self.hot_pages.before_drop()
        self.snapshots.drop()
        if self.snapshots.take():
            self._become_executor()
            return
        self._announce_snapshot()
        if self.snapshots.pid is not None:
            self.hot_pages.after_fork(stop=self.channel.pending)

    def _run_cell(self, command: dict[str, Any]) -> None:
        shell = self.shell
        usage = _Usage()
        self.outbox.muted = False
        self.outbox.parent_msg_id = str(command.get("parent", ""))
        self.outbox.set_thread_parent("")
        shell.execution_count = int(command.get("execution_count", shell.execution_count))
        silent = bool(command.get("silent", False))
        store_history = bool(command.get("store_history", not silent))
        restore_input = shell.forward_input(bool(command.get("allow_stdin", False)))
        code = str(command.get("code", ""))
        # %pip says it itself, with the setting that would allow the index (packages.py).
        if self.no_network and installs_packages(code) and not pip_magic_installs(code):
            self.stderr.write(
                f"{PREFIX} The network is off in this sandbox: pip can install only from "
                "files already here. An administrator can turn it on with "
                "c.Isolation.allow_network = True.\n"
            )
        reply: dict[str, Any] = {
            "type": "execute_reply",
            "id": command["id"],
            "token": command.get("token", ""),
        }
        try:
            try:
                result = shell.run_cell(code, store_history=store_history, silent=silent)
                error = result.error_before_exec or result.error_in_exec
                failed = not result.success or shell._last_traceback_during_displayhook
            except KeyboardInterrupt as exc:
                # Interrupted inside IPython's own machinery, outside user code.
                shell.showtraceback()
                error, failed = exc, True
        finally:
            with interrupts_deferred():
                restore_input()
                # What subprocesses and C code wrote belongs to this cell (fd_capture.py).
                for pump in self.pumps:
                    pump.drain()
                while self.notices:
                    self.stderr.write(self.notices.pop(0) + "\n")
                self.stdout.flush()
                self.stderr.flush()
        if self.shell.forked_child:
            # A process the cell forked ran on to the end of the cell. It is not
            # the executor: were it to go on serving, it would read the kernel's
            # next command off the relay in the executor's place.
            os._exit(1 if failed else 0)
        with interrupts_deferred():
            if failed:
                reply.update(
                    status="error",
                    ename=type(error).__name__ if error is not None else "UnknownError",
                    evalue=str(error) if error is not None else "",
                    traceback=[str(t) for t in (shell._last_traceback or [])],
                    user_expressions={},
                )
            else:
                reply.update(
                    status="ok",
                    user_expressions=jsonable(
                        shell.user_expressions(command.get("user_expressions") or {})
                    ),
                )
            reply["payload"] = shell.payloads
            shell.payloads = []
            reply["stats"] = {
                **usage.finish(),
                "snapshot": self.snapshots.skipped or "taken",
                # Copied after the previous cell, so that this one did not copy them.
                "pages_copied_ahead": self.hot_pages.copied,
            }
            if self.hot_pages.unavailable is not None:
                reply["stats"]["copy_ahead_off"] = self.hot_pages.unavailable
            elif self.hot_pages.note is not None:
                reply["stats"]["copy_ahead_note"] = self.hot_pages.note
            # Runtime policy reports belong to this cell: before its reply.
            self.outbox.send_audits()
            self.channel.send(reply)
            self.reply_owed = None

    def complete(self, command: dict[str, Any]) -> None:
        code = str(command.get("code", ""))
        cursor_pos = command.get("cursor_pos")
        if not isinstance(cursor_pos, int):
            cursor_pos = len(code)
        from IPython.core.completer import provisionalcompleter, rectify_completions

        with provisionalcompleter():
            completions = list(
                rectify_completions(code, self.shell.Completer.completions(code, cursor_pos))
            )
        details = [
            {
                "start": c.start,
                "end": c.end,
                "text": c.text,
                "type": c.type,
                "signature": c.signature,
            }
            for c in completions
        ]
        start, end = (
            (completions[0].start, completions[0].end) if completions else (cursor_pos, cursor_pos)
        )
        self.channel.send(
            {
                "type": "complete_reply",
                "id": command["id"],
                "token": command.get("token", ""),
                "matches": [c.text for c in completions],
                "cursor_start": start,
                "cursor_end": end,
                "metadata": {"_jupyter_types_experimental": details},
            }
        )

    def inspect(self, command: dict[str, Any]) -> None:
        from IPython.utils.tokenutil import token_at_cursor

        code = str(command.get("code", ""))
        cursor_pos = command.get("cursor_pos")
        name = token_at_cursor(code, cursor_pos if isinstance(cursor_pos, int) else len(code))
        reply: dict[str, Any] = {
            "type": "inspect_reply",
            "id": command["id"],
            "token": command.get("token", ""),
            "found": False,
            "data": {},
        }
        try:
            bundle = self.shell.object_inspect_mime(
                name,
                detail_level=int(command.get("detail_level", 0)),
                omit_sections=tuple(command.get("omit_sections", ())),
            )
            if not self.shell.enable_html_pager:
                bundle.pop("text/html", None)
            reply.update(found=True, data=jsonable(bundle))
        except KeyError:
            pass
        self.channel.send(reply)

    def comm(self, command: dict[str, Any]) -> None:
        import comm

        op = str(command["op"])
        content = command.get("content") or {}
        msg = {
            "header": {"msg_id": command.get("parent", ""), "msg_type": op},
            "parent_header": {},
            "metadata": command.get("metadata") or {},
            "content": content,
            "buffers": [base64.b64decode(b) for b in command.get("buffers", [])],
        }
        self.outbox.set_thread_parent(str(command.get("parent", "")))
        try:
            manager = comm.get_comm_manager()
            getattr(manager, op)(None, None, msg)
        finally:
            for pump in self.pumps:
                pump.drain()
            self.stdout.flush()
            self.stderr.flush()
            self.outbox.set_thread_parent("")
            if "id" in command:
                self.channel.send(
                    {"type": "done", "id": command["id"], "token": command.get("token", "")}
                )
        # Widget callbacks change the state: the next cell's snapshot must include that.
        self.refresh_snapshot()

    def reap(self, command: dict[str, Any]) -> None:
        """Collect the processes the supervisor has just killed, then take the next snapshot.

        Zombies still hold a pid each, so they must go before the next cell. The
        supervisor killed every process but this one, so waiting ends when no
        child is left (our snapshot is dropped first, in case it escaped the kill).
        """
        self.snapshots.drop()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.002)
        self.channel.send({"type": "done", "id": command["id"], "token": command.get("token", "")})
        self.refresh_snapshot()

    def debug(self, command: dict[str, Any]) -> None:
        """The first debug request (every later one goes to the debugger's own thread)."""
        if self.debugger is None:
            try:
                import runpy

                import IPython

                from .debugger import SandboxDebugger, mark_daemon

                # Left out of stack traces and stepping, as ipykernel leaves its own
                # modules out: the executor's code (its frames hold the request's
                # token), IPython's cell machinery, the interpreter's start, and every
                # module loaded before the first cell (ipykernel's kernel_modules).
                hidden = [
                    PACKAGE_DIR + os.sep + "**",
                    os.path.dirname(os.path.abspath(IPython.__file__)) + os.sep + "**",
                    os.path.abspath(runpy.__file__),
                    *BOOTSTRAP_FILES,
                ]
                debugger = SandboxDebugger(
                    lambda frame: self.channel.send(frame, stamp=False), hidden
                )
                # pydevd's threads run for the executor's life: a fork would copy
                # its state half-way (the snapshot taken before stays).
                self.snapshots.blocked = "the debugger is running (forking then is unsafe)"
                # A paused cell holds the main thread: from now on a thread reads the relay.
                self.channel.start_reader(debugger.route, mark_daemon)
            except Exception as exc:
                self.channel.send(
                    {
                        "type": "debug_reply",
                        "id": command.get("id"),
                        "token": command.get("token", ""),
                        "content": {
                            "type": "response",
                            "request_seq": 0,
                            "success": False,
                            "command": "initialize",
                            "message": f"the debugger could not start: {exc}",
                        },
                    }
                )
                return
            self.debugger = debugger
        self.debugger.route(command)

    def update_info(self, command: dict[str, Any]) -> None:
        self.info.update(command.get("info") or {})


class _Usage:
    """CPU time and peak memory of one cell, as the executor itself sees them."""

    # Whether /proc/self/clear_refs can be written here (it cannot under Landlock).
    can_reset_peak = True

    def __init__(self) -> None:
        import resource

        self._resource = resource
        # Writing 5 to clear_refs resets the peak resident size (VmHWM), so the
        # peak below is this cell's, not the process's lifetime maximum.
        if _Usage.can_reset_peak:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                _Usage.can_reset_peak = False
        self._cpu = self._cpu_now()

    def _cpu_now(self) -> float:
        r = self._resource
        own, children = r.getrusage(r.RUSAGE_SELF), r.getrusage(r.RUSAGE_CHILDREN)
        return float(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime)

    def finish(self) -> dict[str, Any]:
        peak = None
        if _Usage.can_reset_peak:
            with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = int(line.split()[1]) * 1024
        return {"cpu_s": round(self._cpu_now() - self._cpu, 4), "peak_rss_bytes": peak}


def _shell_config() -> Any:
    from traitlets.config import Config

    config = Config()
    # History lives in memory: HOME is a private tmpfs, and the kernel keeps
    # the session's history for history_request itself.
    config.HistoryManager.hist_file = ":memory:"
    return config


def _install_comms(outbox: Outbox) -> None:
    """Make ``comm.create_comm`` produce comms that talk through the relay."""
    import comm
    from comm.base_comm import BaseComm, CommManager

    class RelayComm(BaseComm):
        def publish_msg(
            self,
            msg_type: str,
            data: Any = None,
            metadata: Any = None,
            buffers: Any = None,
            **keys: Any,
        ) -> None:
            message: dict[str, Any] = {
                "type": msg_type,
                "comm_id": self.comm_id,
                "data": jsonable(data or {}),
                "metadata": jsonable(metadata or {}),
                # Raw bytes: the channel attaches them after the frame's JSON head.
                "buffers": [bytes(b) for b in buffers or []],
            }
            for key in ("target_name", "target_module"):
                if keys.get(key) is not None:
                    message[key] = str(keys[key])
            outbox.send(message)

    manager = CommManager()
    comm.create_comm = RelayComm
    comm.get_comm_manager = lambda: manager


def _prepare_sys_path() -> None:
    # As IPython does for kernels: the working directory (the workspace) is
    # importable, after the standard library. This is inside the sandbox, so a
    # module shadowed there can only affect the sandbox itself.
    if "" in sys.path:
        return
    for index, path in enumerate(sys.path):
        if os.path.basename(path) in {"site-packages", "dist-packages"}:
            sys.path.insert(index, "")
            return
    sys.path.insert(0, "")


def _module_files() -> tuple[str, ...]:
    """The source files of the modules imported so far."""
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path:
            files.add(os.path.abspath(path))
    return tuple(sorted(files))


def serve(sock: socket.socket, info: dict[str, Any]) -> None:
    """Run the executor on an already-sandboxed process until the kernel hangs up."""
    install_interrupt_handler()
    import signal

    channel = Channel(sock)
    limit = info.get("limits", {}).get("max_frame_bytes")
    if isinstance(limit, int) and limit > 0:
        channel.max_frame_bytes = limit
    executor = Executor(channel, info)

    def mute(signum: int, frame: Any) -> None:
        executor.outbox.muted = True

    signal.signal(signal.SIGUSR2, mute)
    import IPython

    from . import audit

    # Last step before the first cell: from here on, every import, open,
    # subprocess and socket of the cells goes through the policy's hook.
    audit.install(
        info.get("policy") or {},
        executor.outbox.queue_audit,
        os.getcwd(),
        notify=executor.notices.append,
    )

    global BOOTSTRAP_MODULES, BOOTSTRAP_FILES
    BOOTSTRAP_MODULES = frozenset(name.partition(".")[0] for name in sys.modules)
    BOOTSTRAP_FILES = _module_files()
    # Only now, after every import of the executor's own and the audit hook: a
    # module in the notebook's directory named like one of them (comm.py) would
    # otherwise run before the hooks, in the executor's place.
    _prepare_sys_path()
    channel.send(
        {
            "type": "ready",
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "ipython": IPython.__version__,
            "isolation": info.get("isolation", {}),
        }
    )
    executor.serve()
