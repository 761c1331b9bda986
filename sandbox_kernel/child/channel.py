"""The executor's end of the relay: write frames, read commands (runs inside the sandbox)."""

from __future__ import annotations

import json
import queue
import select
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from ..framing import DEFAULT_MAX_FRAME_BYTES, HEADER, encode_frame, encode_frame_parts

# Bound at import, like the encoder: cells share this interpreter and may rebind json.loads.
_decode = json.JSONDecoder().decode

__all__ = ["Channel", "install_interrupt_handler", "interrupts_deferred"]


class _InterruptGate:
    """Defers SIGINT while a frame is being written.

    A KeyboardInterrupt raised half-way through ``sendall`` would leave half a
    frame on the socket and desynchronise the relay for good. The handler
    therefore only records the interrupt while a send is in progress; the send
    raises it once the frame is complete.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False

    def handler(self, signum: int, frame: Any) -> None:
        # IPython leaves frames that set this out of tracebacks (and does not
        # spend time highlighting them).
        __tracebackhide__ = True
        if self.depth:
            self.pending = True
            return
        raise KeyboardInterrupt

    def release(self) -> None:
        __tracebackhide__ = True
        if self.pending and not self.depth:
            self.pending = False
            raise KeyboardInterrupt


_gate = _InterruptGate()


class interrupts_deferred:
    """Hold SIGINT back in the main thread for a block that must finish (sending a reply)."""

    def __enter__(self) -> None:
        _gate.depth += 1

    def __exit__(self, *exc: object) -> None:
        _gate.depth -= 1
        _gate.release()


def install_interrupt_handler() -> None:
    """Make SIGINT raise KeyboardInterrupt in the main thread, but never mid-frame."""
    signal.signal(signal.SIGINT, _gate.handler)


class Channel:
    """Blocking, thread-safe frame I/O over the inherited socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()
        self._buffer = bytearray()
        self.closed = False
        # Called with every output frame so the current request id can be stamped on it.
        self.stamp: Callable[[dict[str, Any]], None] | None = None
        # The kernel reads no longer frame (a broken protocol, which costs the
        # executor); an output too large for it travels as a small stand-in.
        self.max_frame_bytes = DEFAULT_MAX_FRAME_BYTES
        # Commands a reader thread took off the socket (once start_reader ran).
        self._commands: queue.SimpleQueue[dict[str, Any] | Exception | None] | None = None

    def send(self, message: dict[str, Any], *, stamp: bool = True) -> None:
        if self.closed:
            return
        if stamp and self.stamp is not None:
            self.stamp(message)
        parts, length = encode_frame_parts(message)
        if length > self.max_frame_bytes:
            stand_in = {
                "type": "oversized",
                "kind": str(message.get("type")),
                "bytes": length + HEADER.size,
            }
            if "parent" in message:
                stand_in["parent"] = message["parent"]
            parts = [encode_frame(stand_in)]
        main = threading.current_thread() is threading.main_thread()
        if main:
            _gate.depth += 1
        try:
            with self._send_lock:
                self._send_parts(parts)
        except OSError:
            # The trusted side is gone; nothing more can be said to it.
            self.closed = True
        finally:
            if main:
                _gate.depth -= 1
                _gate.release()

    def _send_parts(self, parts: list[bytes]) -> None:
        """Write one frame's parts in order, without joining them (an attached image
        would otherwise be copied once more)."""
        if len(parts) == 1:
            self.sock.sendall(parts[0])
            return
        views = [memoryview(p) for p in parts]
        while views:
            sent = self.sock.sendmsg(views)
            while sent and views:
                if sent >= len(views[0]):
                    sent -= len(views.pop(0))
                else:
                    views[0] = views[0][sent:]
                    sent = 0

    def after_fork_in_child(self) -> None:
        """A forked child is not the executor: it must never touch the relay.

        Its lock may have been held by another thread at the moment of the
        fork, and frames from two processes would interleave. The child
        writes its output to fds 1 and 2 instead, which the executor relays.
        """
        self._send_lock = threading.Lock()
        self.closed = True
        # The reader thread, if any, did not come along.
        self._commands = None

    def resume(self) -> str:
        """In a promoted snapshot: find the kernel's resume frame and reopen the relay.

        The executor that died may have left part of a command unread, so the
        stream is scanned for the exact bytes of the resume frame instead of
        being parsed from where it stands. Returns the token to echo.
        """
        self.closed = False
        marker = b'{"op":"resume","token":"'
        while True:
            start = self._buffer.find(marker)
            end = self._buffer.find(b'"}', start + len(marker)) if start >= 0 else -1
            if end >= 0:
                token = self._buffer[start + len(marker) : end].decode("ascii", "replace")
                del self._buffer[: end + 2]
                return token
            # Keep a tail that may hold the start of the marker.
            if start < 0 and len(self._buffer) > len(marker):
                del self._buffer[: len(self._buffer) - len(marker)]
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the kernel closed the relay")
            self._buffer += chunk

    def _read_exact(self, n: int) -> bytes | None:
        while len(self._buffer) < n:
            try:
                chunk = self.sock.recv(max(65536, n - len(self._buffer)))
            except InterruptedError:
                continue
            if not chunk:
                return None
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def start_reader(
        self, take: Callable[[dict[str, Any]], bool], mark: Callable[[threading.Thread], None]
    ) -> None:
        """From now on a thread reads the commands: those ``take`` accepts (the debugger's)
        are handled at once, even while a cell runs or is paused; recv() gets the rest.
        ``mark`` prepares the thread before it starts (the debugger must never pause it)."""
        if self._commands is not None:
            return
        self._commands = queue.SimpleQueue()

        def read() -> None:
            assert self._commands is not None
            while True:
                try:
                    command = self._recv_frame()
                except Exception as exc:
                    self._commands.put(exc)
                    return
                if command is not None and take(command):
                    continue
                self._commands.put(command)
                if command is None:
                    return

        thread = threading.Thread(target=read, name="sandbox-relay-reader", daemon=True)
        mark(thread)
        thread.start()

    def pending(self) -> bool:
        """Whether a command is waiting to be read (recv() would not block for long)."""
        if self._commands is not None:
            return not self._commands.empty()
        if self._buffer:
            return True
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def recv(self) -> dict[str, Any] | None:
        """Next command from the trusted kernel, or None when it has gone away."""
        if self._commands is None:
            return self._recv_frame()
        command = self._commands.get()
        if isinstance(command, Exception):
            raise command
        return command

    def _recv_frame(self) -> dict[str, Any] | None:
        header = self._read_exact(HEADER.size)
        if header is None:
            return None
        (length,) = HEADER.unpack(header)
        body = self._read_exact(length)
        if body is None:
            return None
        message = _decode(body.decode("utf-8"))
        if not isinstance(message, dict):
            raise ValueError("command is not an object")
        return message
