"""The IPython shell inside the executor, with every output turned into a frame.

Runs inside the sandbox. It mirrors what ipykernel's ZMQInteractiveShell does
(display publisher, displayhook, stream capture, payloads, comms, stdin) but
writes frames to the relay instead of signing Jupyter messages: the executor
holds no key and no ZMQ socket.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import datetime
import getpass as getpass_module
import io
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from IPython.core.compilerop import CachingCompiler
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets import Any as AnyTrait
from traitlets import Instance, Type

from ..framing import STREAM_FRAME_CHARS
from .channel import Channel
from .explain import Explainer
from .tracebacks import without_own_frames

__all__ = ["ExecutorShell", "FrameStream", "jsonable"]

STREAM_FLUSH_INTERVAL_S = 0.05
STREAM_CHUNK_CHARS = 256 * 1024


def jsonable(obj: Any, _depth: int = 0) -> Any:
    """Make display data and metadata JSON-serialisable, as ipykernel's json_clean does."""
    if _depth > 60:
        return repr(obj)
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        # JSON has no NaN/Infinity; ipykernel sends them as strings too.
        return obj if math.isfinite(obj) else repr(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, dict):
        return {str(k): jsonable(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v, _depth + 1) for v in obj]
    if isinstance(obj, (datetime.datetime, datetime.date)):
        return obj.isoformat()
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        try:
            return jsonable(item(), _depth + 1)
        except Exception:
            pass
    return repr(obj)


class Outbox:
    """Where the shell's outputs go: the channel, stamped with the current parent."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.parent_msg_id = ""
        self._local = threading.local()
        # Set by SIGUSR2 when the kernel has cut this cell's output off: then
        # text is not even sent (a 30 s print loop should cost no relay traffic).
        self.muted = False
        self.audit_queue: deque[dict[str, Any]] = deque()
        # Held while a drain of the queue sends: the main thread's drain before a
        # reply must wait for a record the flusher thread took but has not sent
        # yet, or that record reaches the kernel after the reply, in the next cell.
        self._audit_lock = threading.Lock()
        self.flusher: StreamFlusher | None = None
        channel.stamp = self._stamp

    def current_parent(self) -> str:
        """The request the calling thread is working for (a thread may set its own)."""
        return getattr(self._local, "parent", None) or self.parent_msg_id

    def _stamp(self, message: dict[str, Any]) -> None:
        parent = self.current_parent()
        if parent and "parent" not in message:
            message["parent"] = parent

    def set_thread_parent(self, msg_id: str) -> None:
        self._local.parent = msg_id

    def queue_audit(self, record: dict[str, Any]) -> None:
        """Called from inside the audit hook, possibly mid-send on this very thread:
        never take the channel's lock here, only queue (deque appends are atomic).

        The record names its request now: stamped when sent, it would take the
        parent of whatever request is current by then."""
        parent = self.current_parent()
        if parent:
            record["parent"] = parent
        self.audit_queue.append(record)
        if self.flusher is not None:
            self.flusher.wake()

    def send_audits(self) -> None:
        with self._audit_lock:
            while self.audit_queue:
                self.send(self.audit_queue.popleft())

    def after_fork_in_child(self) -> None:
        # The flusher thread may have held the lock at the fork; it did not come along.
        self._audit_lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        self.channel.send(message)


class FrameStream(io.TextIOBase):
    """sys.stdout / sys.stderr: buffered text, flushed as ``stream`` frames.

    A background thread flushes pending text every 50 ms, so output appears
    while a cell runs, not only when it ends.
    """

    def __init__(self, name: str, outbox: Outbox, flusher: StreamFlusher) -> None:
        super().__init__()
        self.name = name
        self._outbox = outbox
        self._flusher = flusher
        self._lock = threading.RLock()
        self._parts: list[str] = []
        self._size = 0
        # Text belongs to the request that was current when it was written,
        # even if the flusher thread sends it later.
        self._parent = ""
        # In a process forked by a cell (not the executor), text goes straight
        # to fd 1/2, whose pipes the executor relays.
        self.raw = False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "strict"

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        # fds 1 and 2 are pipes that the executor forwards to the same stream,
        # so handing them out (subprocess, faulthandler) keeps the output.
        return 1 if self.name == "stdout" else 2

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        if self.raw:
            with contextlib.suppress(OSError):
                os.write(self.fileno(), text.encode("utf-8", "backslashreplace"))
            return len(text)
        if self._outbox.muted:
            return len(text)
        parent = self._outbox.current_parent()
        with self._lock:
            if self._parts and parent != self._parent:
                self._flush_locked()
            self._parent = parent
            first = not self._parts
            self._parts.append(text)
            self._size += len(text)
            if self._size >= STREAM_CHUNK_CHARS:
                self._flush_locked()
            elif first:
                self._flusher.wake()
        return len(text)

    def flush(self) -> None:
        if self.raw:
            return
        with self._lock:
            self._flush_locked()

    def after_fork_in_child(self, *, raw: bool) -> None:
        self._lock = threading.RLock()
        self._parts.clear()
        self._size = 0
        self.raw = raw

    def _flush_locked(self) -> None:
        if not self._parts:
            return
        text = "".join(self._parts)
        self._parts.clear()
        self._size = 0
        # Bounded frames: one huge print becomes many, so no frame nears the
        # relay's size limit and the kernel can cut the output off on the way.
        for start in range(0, len(text), STREAM_FRAME_CHARS):
            if self._outbox.muted:
                return
            message = {
                "type": "stream",
                "name": self.name,
                "text": text[start : start + STREAM_FRAME_CHARS],
            }
            if self._parent:
                message["parent"] = self._parent
            self._outbox.send(message)


class StreamFlusher:
    """One daemon thread that flushes the streams shortly after they get text."""

    def __init__(self) -> None:
        self.streams: list[FrameStream] = []
        self.outbox: Outbox | None = None
        self._event = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # A fresh event: after a fork the old one's lock may be held by a thread
        # that does not exist in this process.
        self._event = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-flusher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._event.set()

    def _run(self) -> None:
        while True:
            self._event.wait()
            time.sleep(STREAM_FLUSH_INTERVAL_S)
            self._event.clear()
            for stream in self.streams:
                stream.flush()
            if self.outbox is not None:
                self.outbox.send_audits()


def _have_pty() -> bool:
    try:
        primary, secondary = os.openpty()
    except OSError:
        return False
    os.close(primary)
    os.close(secondary)
    return True


class FrameDisplayPublisher(DisplayPublisher):
    """display() and clear_output() as frames."""

    outbox: Outbox | None = None

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        assert self.outbox is not None
        self.outbox.send(
            {
                "type": "update_display_data" if update else "display_data",
                "data": jsonable(data),
                "metadata": jsonable(metadata or {}),
                "transient": jsonable(transient or {}),
            }
        )

    def clear_output(self, wait: bool = False) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        assert self.outbox is not None
        self.outbox.send({"type": "clear_output", "wait": bool(wait)})


class FrameDisplayHook(DisplayHook):
    """The value of a cell's last expression as an ``execute_result`` frame."""

    outbox: Outbox | None = None
    message: dict[str, Any] | None = None

    def start_displayhook(self) -> None:
        self.message = {"type": "execute_result", "data": {}, "metadata": {}}

    def write_output_prompt(self) -> None:
        if self.message is not None:
            self.message["execution_count"] = self.prompt_count

    def write_format_data(self, format_dict: dict[str, Any], md_dict: Any = None) -> None:
        if self.message is not None:
            self.message["data"] = jsonable(format_dict)
            self.message["metadata"] = jsonable(md_dict or {})

    def finish_displayhook(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        message, self.message = self.message, None
        if message and message["data"] and self.outbox is not None:
            message.setdefault("execution_count", self.prompt_count)
            self.outbox.send(message)


class SessionShim:
    """``get_ipython().kernel.session``: lets code that sends its own IOPub messages work.

    Some notebooks (and nbclient's own tests) build display messages by hand
    with ``kernel.session.send(kernel.iopub_socket, ...)``. Here that becomes a
    frame like any other output, validated by the kernel, which signs it. The
    executor has no key, so nothing here can produce a signed message.
    """

    ALLOWED = frozenset(
        {"display_data", "update_display_data", "execute_result", "stream", "clear_output", "error"}
    )

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def send(
        self,
        stream: Any,
        msg_or_type: Any,
        content: Any = None,
        parent: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if isinstance(msg_or_type, dict):
            msg_type = msg_or_type.get("header", {}).get("msg_type") or msg_or_type.get("msg_type")
            content = msg_or_type.get("content", content)
            parent = msg_or_type.get("parent_header", parent)
        else:
            msg_type = msg_or_type
        if msg_type not in self.ALLOWED:
            raise ValueError(f"the sandbox relays only output messages, not {msg_type!r}")
        message = {"type": msg_type, **jsonable(dict(content or {}))}
        msg_id = (
            (parent or {}).get("header", {}).get("msg_id") if isinstance(parent, dict) else None
        )
        if isinstance(msg_id, str) and msg_id:
            message["parent"] = msg_id
        sys.stdout.flush()
        sys.stderr.flush()
        self._outbox.send(message)


def _stock_repr(obj: object, name: str) -> str:
    return f"<{name} object at {id(obj):#x}>"


class Kernel:
    """input() and getpass() as ipykernel binds them: methods of the kernel object.

    Named as ipykernel's base class, so that a notebook printing ``input`` sees
    ``<bound method Kernel.raw_input of <ipykernel.ipkernel.IPythonKernel ...>>`` as
    under the stock kernel; the frontend is asked through the relay.
    """

    read_input: Callable[[str, bool], str] | None = None
    allow_stdin = False

    def raw_input(self, prompt: object = "") -> str:
        """Forward raw_input to frontends."""
        if not self.allow_stdin:
            raise StdinNotImplementedError(
                "raw_input was called, but this frontend does not support input requests."
            )
        assert self.read_input is not None
        return self.read_input(str(prompt), False)

    def getpass(self, prompt: str = "Password: ", stream: Any = None) -> str:
        """Forward getpass to frontends."""
        if not self.allow_stdin:
            raise StdinNotImplementedError(
                "getpass was called, but this frontend does not support input requests."
            )
        assert self.read_input is not None
        return self.read_input(str(prompt), True)


class KernelShim(Kernel):
    """The bits of ``get_ipython().kernel`` that libraries look for (ipywidgets' Output)."""

    # A stand-in: only SessionShim.send accepts it.
    iopub_socket = "iopub"

    def __init__(self, shell: ExecutorShell) -> None:
        self._shell = shell
        assert shell.outbox is not None
        self.session = SessionShim(shell.outbox)

    def __repr__(self) -> str:
        return _stock_repr(self, "ipykernel.ipkernel.IPythonKernel")

    def get_parent(self, channel: str = "shell") -> dict[str, Any]:
        return self._shell.get_parent()

    @property
    def _parent_header(self) -> dict[str, Any]:
        return self._shell.get_parent()

    @property
    def comm_manager(self) -> Any:
        import comm

        return comm.get_comm_manager()


class CellCompiler(CachingCompiler):
    """Names each cell ``<tmp>/ipykernel_<pid>/<hash>.py``, as ipykernel does.

    Tracebacks and warnings then read exactly as under the stock kernel, and
    tools that recognise ipykernel's cell files keep working.
    """

    # Set once the debugger runs: cells are then named by ipykernel's Murmur2 hash,
    # by which the frontend finds the file of a cell it set breakpoints in.
    debugging = False

    def get_code_name(self, raw_code: str, transformed_code: str, number: int) -> str:
        if CellCompiler.debugging:
            from .cellnames import cell_file_name

            return cell_file_name(raw_code)
        import tempfile
        import zlib

        digest = zlib.crc32(raw_code.encode("utf-8", "surrogatepass"))
        return f"{tempfile.gettempdir()}/ipykernel_{os.getpid()}/{digest}.py"


class ExecutorShell(InteractiveShell):
    """An InteractiveShell whose outputs, payloads and input go through the relay.

    Named ZMQInteractiveShell, as ipykernel's: libraries and notebooks tell a Jupyter
    kernel from a terminal by ``get_ipython().__class__.__name__``, and a notebook
    printing ``get_ipython`` sees what it sees under the stock kernel.
    """

    def __repr__(self) -> str:
        return _stock_repr(self, "ipykernel.zmqshell.ZMQInteractiveShell")

    compiler_class = Type(CellCompiler)
    displayhook_class = Type(FrameDisplayHook)
    display_pub_class = Type(FrameDisplayPublisher)
    kernel = AnyTrait(None)
    outbox = Instance(Outbox, allow_none=True)

    # Inputs that need a frontend reply (input(), getpass()) read through this.
    read_input: Callable[[str, bool], str] | None = None
    # Adds the sandbox's note to errors it caused (set by the executor).
    explainer: Explainer | None = None

    def __init__(self, *args: Any, outbox: Outbox, **kwargs: Any) -> None:
        self._pending_outbox = outbox
        super().__init__(*args, outbox=outbox, **kwargs)
        self.kernel = KernelShim(self)
        self._last_traceback: list[str] | None = None
        self._last_traceback_during_displayhook = False
        self.payloads: list[dict[str, Any]] = []
        self.deferred_commands: deque[dict[str, Any]] = deque()
        # True in a process the cell forked (until a snapshot is promoted).
        self.forked_child = False
        if not _have_pty():
            self.system = self._system_pipes  # type: ignore[method-assign]

    # -- construction ------------------------------------------------------

    def init_displayhook(self) -> None:
        super().init_displayhook()
        self.displayhook.outbox = self._pending_outbox  # type: ignore[attr-defined]

    def init_display_pub(self) -> None:
        super().init_display_pub()
        self.display_pub.outbox = self._pending_outbox  # type: ignore[attr-defined]

    def init_environment(self) -> None:
        # As ipykernel: colours for tools that detect them, no interactive pagers.
        env = os.environ
        env["TERM"] = "xterm-color"
        env["CLICOLOR"] = "1"
        env["FORCE_COLOR"] = "1"
        env["CLICOLOR_FORCE"] = "1"
        env["PAGER"] = "cat"
        env["GIT_PAGER"] = "cat"

    def init_hooks(self) -> None:
        super().init_hooks()
        from IPython.core import page

        self.set_hook("show_in_pager", page.as_hook(self._page_payload), 99)

    # ``!cmd`` output must go through sys.stdout, not to the (captured) fd.
    # IPython runs it on a pty (as ipykernel does, so ``ls`` prints columns);
    # where the sandbox has no pty, plain pipes. Bound at start-up rather than
    # dispatched per call: ``$name`` expansion reads the caller's frame.
    system = InteractiveShell.system_piped

    def _system_pipes(self, cmd: str) -> None:
        import subprocess

        if cmd.rstrip().endswith("&"):
            raise OSError("Background processes not supported.")
        command = self.var_expand(cmd, depth=1)
        sys.stdout.flush()
        with subprocess.Popen(
            command,
            shell=True,
            executable="/bin/sh",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as proc:
            assert proc.stdout is not None
            while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]
                sys.stdout.write(chunk.decode("utf-8", "replace"))
            exit_code = proc.wait()
        self.user_ns["_exit_code"] = exit_code
        if self.system_raise_on_error and exit_code != 0:
            raise subprocess.CalledProcessError(exit_code, cmd)

    # -- parent tracking (ipywidgets' Output widget reads it) --------------

    def get_parent(self) -> dict[str, Any]:
        assert self.outbox is not None
        msg_id = getattr(self.outbox._local, "parent", None) or self.outbox.parent_msg_id
        return {"header": {"msg_id": msg_id}} if msg_id else {}

    @property
    def parent_header(self) -> dict[str, Any]:
        return self.get_parent()

    def set_parent(self, parent: dict[str, Any]) -> None:
        assert self.outbox is not None
        msg_id = (parent or {}).get("header", {}).get("msg_id", "")
        if isinstance(msg_id, str):
            self.outbox.set_thread_parent(msg_id)

    # -- errors and payloads -------------------------------------------------

    def showtraceback(self, *args: Any, **kwargs: Any) -> None:
        if self.forked_child:
            # An exception escaped a cell in a process the cell forked. It cannot
            # reach the frontend's error display, and formatting IPython's traceback
            # in each child is what makes a fork bomb slow (and large): one line on
            # stderr, which the executor relays, and the process ends.
            etype, value = sys.exc_info()[:2]
            name = etype.__name__ if etype is not None else "an exception"
            line = f"[sandbox] a process the cell forked (pid {os.getpid()}) ended: {name}: {value}"
            with contextlib.suppress(Exception):
                os.write(2, (line[:300] + "\n").encode("utf-8", "replace"))
            os._exit(1)
        exc_tuple = kwargs.get("exc_tuple", args[0] if args else None)
        value = exc_tuple[1] if exc_tuple else sys.exc_info()[1]
        if isinstance(value, BaseException):
            if self.explainer is not None:
                self.explainer.explain(value)
            without_own_frames(value)
            if args:
                args = ((type(value), value, value.__traceback__), *args[1:])
            else:
                kwargs["exc_tuple"] = (type(value), value, value.__traceback__)
        super().showtraceback(*args, **kwargs)

    def _showtraceback(self, etype: type, evalue: BaseException, stb: list[str]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        if getattr(self.displayhook, "message", None) is not None:
            self._last_traceback_during_displayhook = True
        assert self.outbox is not None
        self.outbox.send(
            {
                "type": "error",
                "ename": str(etype.__name__),
                "evalue": str(evalue),
                "traceback": [str(line) for line in stb],
            }
        )
        self._last_traceback = stb

    def _page_payload(
        self, strg: Any, start: int = 0, screen_lines: int = 0, pager_cmd: Any = None
    ) -> None:
        data = strg if isinstance(strg, dict) else {"text/plain": strg}
        self.payloads.append(
            {"source": "page", "data": jsonable(data), "start": max(0, int(start))}
        )

    def set_next_input(self, text: str, replace: bool = False) -> None:
        self.payloads.append(
            {"source": "set_next_input", "text": str(text), "replace": bool(replace)}
        )

    def ask_exit(self) -> None:
        self.payloads.append({"source": "ask_exit", "keepkernel": False})

    # Backends that draw in the browser need no event loop in the kernel.
    BROWSER_BACKENDS = frozenset(
        {None, "inline", "nbagg", "notebook", "ipympl", "widget", "webagg"}
    )

    def enable_gui(self, gui: str | None = None) -> None:
        if gui not in self.BROWSER_BACKENDS:
            raise UsageError(
                f"GUI event loop {gui!r} is not available: the sandbox has no display. "
                "Use %matplotlib inline."
            )

    def run_cell(self, *args: Any, **kwargs: Any) -> Any:
        self._last_traceback = None
        self._last_traceback_during_displayhook = False
        return super().run_cell(*args, **kwargs)

    # -- stdin ---------------------------------------------------------------

    def forward_input(self, allow_stdin: bool) -> Callable[[], None]:
        """Route input()/getpass() to the frontend for one cell; return the undo."""
        saved_input, saved_getpass = builtins.input, getpass_module.getpass
        kernel = self.kernel
        kernel.read_input = self.read_input
        kernel.allow_stdin = allow_stdin
        builtins.input = kernel.raw_input
        getpass_module.getpass = kernel.getpass

        def restore() -> None:
            kernel.allow_stdin = False
            builtins.input = saved_input
            getpass_module.getpass = saved_getpass

        return restore


ExecutorShell.__name__ = ExecutorShell.__qualname__ = "ZMQInteractiveShell"
