"""The Jupyter debugger inside the sandbox (runs in the executor, with the cells).

debugpy's debugger (pydevd) runs in this process with its own DAP server
(``in_process_debug_adapter``: no adapter subprocess), listening on 127.0.0.1
of the sandbox's own network namespace, which holds nothing but its loopback:
no process outside the sandbox can reach that port (the kernel offers the
debugger only where the namespace is in force). This module is its only
client; it speaks DAP to it over that socket and to the kernel in frames:

- ``{"op": "debug", "id", "token", "request": {...DAP request...}}`` in,
- ``{"type": "debug_reply", "id", "token", "content": {...}}`` back,
- ``{"type": "debug_event", "content": {...DAP event...}}`` whenever pydevd says.

The Jupyter-specific requests (dumpCell, debugInfo, inspectVariables,
richInspectVariables, copyToGlobals, modules, source) are answered here the way
ipykernel's debugger answers them. Nothing here is trusted: the kernel checks
every request before it comes here and every frame that comes back.

A paused cell blocks the main thread, so the kernel's requests are read by a
thread from the first debug request on (Channel.start_reader), and the threads
of this module are pydevd's "daemon" threads, which it never pauses or traces.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["SandboxDebugger"]

# How long one request to pydevd may take before its reply says it did not answer.
DAP_TIMEOUT_S = 30.0
HOST = "127.0.0.1"
# Names ipykernel's debugger leaves out of the variable views (IPython's own).
HIDDEN_VARIABLES = frozenset(
    {
        "__name__",
        "__doc__",
        "__package__",
        "__loader__",
        "__spec__",
        "__annotations__",
        "__builtins__",
        "__builtin__",
        "__display__",
        "get_ipython",
        "debugpy",
        "exit",
        "quit",
        "In",
        "Out",
        "_oh",
        "_dh",
        "_",
        "__",
        "___",
    }
)


def _visible(name: str) -> bool:
    return not (
        name in HIDDEN_VARIABLES or name[:2] == "_i" or (name[:1] == "_" and name[1:2].isdigit())
    )


def _response(request: dict[str, Any], success: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "type": "response",
        "request_seq": request.get("seq", 0),
        "success": success,
        "command": request.get("command", ""),
        **extra,
    }


def _load_pydevd() -> None:
    """Import pydevd with its pure-Python tracer.

    Its compiled tracer reads frame attributes from C, with the paused cell's frame
    as the innermost Python frame: the runtime hooks take that for the cell walking
    frames (SKP222) and refuse it. The pure-Python tracer is debugpy's own code, a
    library to the hooks like any other: no exemption is made for it, so a cell
    gains nothing here it does not already have through any library.
    """
    os.environ["PYDEVD_USE_CYTHON"] = "NO"
    os.environ["PYDEVD_USE_FRAME_EVAL"] = "NO"
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    import debugpy.server.api  # noqa: F401  (puts pydevd's bundle on sys.path)


def mark_daemon(thread: threading.Thread) -> None:
    """Make a thread one pydevd neither traces nor pauses (it would pause our own I/O)."""
    _load_pydevd()
    from _pydevd_bundle.pydevd_daemon_thread import (  # type: ignore[import-not-found]
        mark_as_pydevd_daemon_thread,
    )

    mark_as_pydevd_daemon_thread(thread)


def _daemon_thread(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    mark_daemon(thread)
    return thread


class SandboxDebugger:
    """The executor's side of the Jupyter debug protocol."""

    def __init__(self, send: Callable[[dict[str, Any]], None], hidden: list[str]) -> None:
        # send(frame): write one frame to the kernel (Channel.send, thread-safe).
        self.send = send
        # Paths (globs) of code left out of stepping and stack traces.
        self.hidden = hidden
        self.started = False
        self.sock: socket.socket | None = None
        self.breakpoints: dict[str, list[dict[str, Any]]] = {}
        self.stopped_threads: set[int] = set()
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._waiting: dict[int, queue.SimpleQueue[dict[str, Any]]] = {}
        self._work: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._explorer: Any = None
        self._capabilities: dict[str, Any] | None = None
        self._attached = False

    # -- from the kernel ------------------------------------------------------------

    def route(self, command: dict[str, Any]) -> bool:
        """Take a debug command (from the relay's reader thread); leave the rest."""
        if command.get("op") != "debug":
            return False
        if self._worker is None:
            self._worker = _daemon_thread(self._serve, "sandbox-debugger")
            self._worker.start()
        self._work.put(command)
        return True

    def _serve(self) -> None:
        while True:
            command = self._work.get()
            request = command.get("request")
            if not isinstance(request, dict):
                request = {}
            try:
                content = self.process(request)
            except Exception as exc:  # answered, so the kernel's request does not hang
                content = _response(request, False, message=f"{type(exc).__name__}: {exc}")
            self.send(
                {
                    "type": "debug_reply",
                    "id": command.get("id"),
                    "token": command.get("token", ""),
                    "content": content,
                }
            )

    def process(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request.get("command")
        if command == "initialize":
            if not self.started:
                self._start()
            if self._capabilities is None:
                response = self._forward(request)
                if response.get("success"):
                    self._capabilities = response.get("body") or {}
                return response
            # pydevd serves one session for the executor's life: a frontend that
            # disconnected and comes back gets the same one.
            return _response(request, body=self._capabilities)
        handler = getattr(self, f"_do_{command}", None)
        if command in STATIC_COMMANDS and handler is not None:
            return handler(request)  # type: ignore[no-any-return]
        if not self.started:
            return _response(request, False, message="the debugger is not started")
        if handler is not None:
            return handler(request)  # type: ignore[no-any-return]
        return self._forward(request)

    # -- pydevd ---------------------------------------------------------------------

    def _start(self) -> None:
        _load_pydevd()
        import debugpy
        import pydevd  # type: ignore[import-not-found]

        from . import shell

        host, port = debugpy.listen((HOST, 0), in_process_debug_adapter=True)
        self.sock = socket.create_connection((host, port))
        # pydevd would take any later connection in place of this one (a cell's, on the
        # sandbox's loopback): it stops listening once its one client is here ...
        debugger = pydevd.get_global_debugger()
        deadline = time.monotonic() + DAP_TIMEOUT_S
        while getattr(debugger, "reader", None) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        debugger._waiting_for_connection_thread.do_kill_pydev_thread()
        # ... and that client must be this one, not something that connected first.
        reader = getattr(debugger, "reader", None)
        peer = getattr(getattr(reader, "sock", None), "getpeername", lambda: None)()
        if peer != self.sock.getsockname():
            self.sock.close()
            raise RuntimeError(
                "another program in the sandbox connected to the debugger's port first"
            )
        _daemon_thread(self._read_dap, "sandbox-debugger-dap").start()
        # Cells run from now on are named as ipykernel names them (the frontend
        # finds a cell's file by that name), with their leading empty lines kept
        # so that breakpoints land on the lines the frontend shows.
        shell.CellCompiler.debugging = True
        from IPython import get_ipython
        from IPython.core.inputtransformer2 import leading_empty_lines

        cleanup = get_ipython().input_transformer_manager.cleanup_transforms
        if leading_empty_lines in cleanup:
            cleanup.remove(leading_empty_lines)
        self.started = True

    def _send_dap(self, request: dict[str, Any]) -> int:
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        body = json.dumps({**request, "seq": seq}, ensure_ascii=False).encode("utf-8")
        assert self.sock is not None
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return seq

    def _forward(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send a request to pydevd under our own sequence number; its response, renumbered."""
        answer: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with self._seq_lock:
            seq = self._seq + 1
            self._waiting[seq] = answer
        try:
            self._send_dap({k: v for k, v in request.items() if k != "seq"})
            response = answer.get(timeout=DAP_TIMEOUT_S)
        except queue.Empty:
            return _response(request, False, message="the debugger did not answer")
        finally:
            self._waiting.pop(seq, None)
        response["request_seq"] = request.get("seq", 0)
        return response

    def _read_dap(self) -> None:
        assert self.sock is not None
        buffer = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while True:
                head, sep, rest = buffer.partition(b"\r\n\r\n")
                if not sep:
                    break
                length = int(head.split(b":", 1)[1])
                if len(rest) < length:
                    break
                message = json.loads(rest[:length])
                buffer = rest[length:]
                self._from_pydevd(message)

    def _from_pydevd(self, message: dict[str, Any]) -> None:
        if message.get("type") == "response":
            waiter = self._waiting.get(message.get("request_seq", -1))
            if waiter is not None:
                waiter.put(message)
            return
        if message.get("type") != "event":
            return
        body = message.get("body") or {}
        event = message.get("event")
        if event == "stopped" and isinstance(body.get("threadId"), int):
            self.stopped_threads.add(body["threadId"])
        elif event == "continued":
            if body.get("allThreadsContinued", True):
                self.stopped_threads.clear()
            else:
                self.stopped_threads.discard(body.get("threadId"))
        self.send({"type": "debug_event", "content": message})

    # -- requests answered here, as ipykernel's debugger answers them ---------------

    def _do_attach(self, request: dict[str, Any]) -> dict[str, Any]:
        arguments = dict(request.get("arguments") or {})
        # pydevd is already listening, here; where to connect is not the frontend's say.
        for key in ("connect", "listen", "host", "port", "processId", "subProcess"):
            arguments.pop(key, None)
        arguments["justMyCode"] = bool(arguments.get("justMyCode", False))
        if not arguments["justMyCode"]:
            arguments["debugOptions"] = ["DebugStdLib"]
        # The executor's own frames are never shown or stepped into.
        arguments["rules"] = [{"path": path, "include": False} for path in self.hidden]
        if self._attached:
            return _response(request)
        response = self._forward({**request, "arguments": arguments})
        # ipykernel sends configurationDone once the session is set up, and answers
        # the frontend's own configurationDone itself.
        self._forward({"type": "request", "command": "configurationDone"})
        self._attached = bool(response.get("success"))
        return response

    def _do_configurationDone(self, request: dict[str, Any]) -> dict[str, Any]:
        return _response(request)

    def _do_dumpCell(self, request: dict[str, Any]) -> dict[str, Any]:
        from .cellnames import cell_file_name

        code = str((request.get("arguments") or {}).get("code", ""))
        path = cell_file_name(code)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(code)
        return _response(request, body={"sourcePath": path})

    def _do_setBreakpoints(self, request: dict[str, Any]) -> dict[str, Any]:
        arguments = request.get("arguments") or {}
        source = str((arguments.get("source") or {}).get("path", ""))
        response = self._forward(request)
        if response.get("success"):
            self.breakpoints[source] = [
                {"line": b.get("line")} for b in (response.get("body") or {}).get("breakpoints", [])
            ]
        return response

    def _do_source(self, request: dict[str, Any]) -> dict[str, Any]:
        path = str(((request.get("arguments") or {}).get("source") or {}).get("path", ""))
        try:
            with open(path, encoding="utf-8") as f:
                return _response(request, body={"content": f.read()})
        except (OSError, UnicodeDecodeError):
            return _response(request, False, message="source unavailable", body={})

    def _do_debugInfo(self, request: dict[str, Any]) -> dict[str, Any]:
        from .cellnames import HASH_SEED, cell_directory

        return _response(
            request,
            body={
                "isStarted": self.started,
                "hashMethod": "Murmur2",
                "hashSeed": HASH_SEED,
                "tmpFilePrefix": cell_directory() + os.sep,
                "tmpFileSuffix": ".py",
                "breakpoints": [
                    {"source": k, "breakpoints": v} for k, v in self.breakpoints.items()
                ],
                "stoppedThreads": sorted(self.stopped_threads),
                "richRendering": True,
                "exceptionPaths": ["Python Exceptions"],
                "copyToGlobals": True,
            },
        )

    def _variables(
        self, request: dict[str, Any], variables: list[dict[str, Any]]
    ) -> dict[str, Any]:
        shown = [v for v in variables if _visible(str(v.get("name", "")))]
        return _response(request, body={"variables": shown})

    def _do_inspectVariables(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._explorer is not None:
            self._explorer.untrack_all()
        self._explorer = _VariableExplorer()
        return self._variables(request, self._explorer.children())

    def _do_variables(self, request: dict[str, Any]) -> dict[str, Any]:
        if not self.stopped_threads:
            reference = (request.get("arguments") or {}).get("variablesReference")
            if self._explorer is None:
                return self._variables(request, [])
            return self._variables(request, self._explorer.children(reference))
        response = self._forward(request)
        body = response.get("body") or {}
        response["body"] = {
            **body,
            "variables": [v for v in body.get("variables", []) if _visible(str(v.get("name")))],
        }
        return response

    def _do_richInspectVariables(self, request: dict[str, Any]) -> dict[str, Any]:
        arguments = request.get("arguments") or {}
        name = str(arguments.get("variableName", ""))
        if not name.isidentifier():
            ok = name in ("special variables", "function variables")
            return _response(request, ok, body={"data": {}, "metadata": {}})
        data: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        if not self.stopped_threads:
            from IPython import get_ipython

            result = get_ipython().user_expressions({name: name})[name]
            if result.get("status") == "ok":
                data, metadata = result.get("data", {}), result.get("metadata", {})
        else:
            answer = self._forward(
                {
                    "type": "request",
                    "command": "evaluate",
                    "arguments": {
                        "expression": f"get_ipython().display_formatter.format({name})",
                        "frameId": arguments.get("frameId"),
                        "context": "clipboard",
                    },
                }
            )
            if answer.get("success"):
                with contextlib.suppress(ValueError, SyntaxError, TypeError):
                    # A literal (the repr of two dicts); never evaluated as code.
                    data, metadata = ast.literal_eval(answer["body"]["result"])
        from .shell import jsonable

        return _response(
            request,
            body={
                "data": jsonable(data),
                "metadata": jsonable({k: v for k, v in metadata.items() if k in data}),
            },
        )

    def _do_copyToGlobals(self, request: dict[str, Any]) -> dict[str, Any]:
        arguments = request.get("arguments") or {}
        target, source = (
            str(arguments.get("dstVariableName")),
            str(arguments.get("srcVariableName")),
        )
        if not (target.isidentifier() and source.isidentifier()):
            return _response(
                request, False, message="dstVariableName and srcVariableName must be identifiers"
            )
        return self._forward(
            {
                "type": "request",
                "command": "setExpression",
                "arguments": {
                    "expression": f"globals()['{target}']",
                    "value": source,
                    "frameId": arguments.get("srcFrameId"),
                },
            }
        )

    def _do_modules(self, request: dict[str, Any]) -> dict[str, Any]:
        modules = list(sys.modules.values())
        shown = []
        for index, module in enumerate(modules):
            origin = getattr(getattr(module, "__spec__", None), "origin", None)
            if isinstance(origin, str) and origin.endswith(".py"):
                shown.append({"id": index, "name": module.__name__, "path": origin})
        return _response(request, body={"modules": shown, "totalModules": len(modules)})

    def _do_disconnect(self, request: dict[str, Any]) -> dict[str, Any]:
        """The frontend leaves: no breakpoint stays, no thread stays paused. pydevd's
        session itself stays for the next time (it listens once per process)."""
        for source in list(self.breakpoints):
            self._forward(
                {
                    "type": "request",
                    "command": "setBreakpoints",
                    "arguments": {"source": {"path": source}, "breakpoints": []},
                }
            )
        self.breakpoints.clear()
        if self.stopped_threads:
            thread = min(self.stopped_threads)
            self._forward(
                {"type": "request", "command": "continue", "arguments": {"threadId": thread}}
            )
        self.stopped_threads.clear()
        return _response(request)


class _VariableExplorer:
    """The user namespace as pydevd presents a frame's variables (between cells, when
    nothing is paused), as ipykernel's VariableExplorer does."""

    def __init__(self) -> None:
        from _pydevd_bundle import pydevd_frame_utils  # type: ignore[import-not-found]
        from _pydevd_bundle.pydevd_api import PyDevdAPI  # type: ignore[import-not-found]
        from _pydevd_bundle.pydevd_suspended_frames import (  # type: ignore[import-not-found]
            SuspendedFramesManager,
            _FramesTracker,
        )
        from IPython import get_ipython

        from .cellnames import cell_file_name

        class _PyDB:
            variable_presentation = PyDevdAPI.VariablePresentation()

        class _Code:
            co_filename = cell_file_name("sys._getframe()")
            co_name = "<module>"

        namespace = get_ipython().user_ns

        class _Frame:
            f_code = _Code()
            f_globals = namespace
            f_locals = namespace
            f_back = None

        self.frame = _Frame()
        self.manager = SuspendedFramesManager()
        self.tracker = _FramesTracker(self.manager, _PyDB())
        self.tracker.track("thread1", pydevd_frame_utils.create_frames_list_from_frame(self.frame))

    def children(self, reference: Any = None) -> list[dict[str, Any]]:
        variable = self.manager.get_variable(reference or id(self.frame))
        return [child.get_var_data() for child in variable.get_children_variables()]

    def untrack_all(self) -> None:
        self.tracker.untrack_all()


# Answered whether or not the debugger runs (as ipykernel's static_debug_msg_types).
STATIC_COMMANDS = frozenset(
    {"debugInfo", "inspectVariables", "richInspectVariables", "modules", "copyToGlobals"}
)
