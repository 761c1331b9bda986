"""Bytes written straight to fds 1 and 2 (C extensions, subprocesses) become stream output.

Runs inside the sandbox. Each fd is a pipe whose read end one pump thread forwards
to the cell's stream. The executor also drains both pipes itself at the end of
every cell, before its reply: what a subprocess or a C library wrote last belongs
to that cell, ahead of the reply and of the kernel's ``idle``. Clients stop reading
a cell's output at ``idle`` (nbclient, JupyterLab), so before this, a cell's last
``os.write(1, ...)`` or ``subprocess.run(["echo", ...])`` line often reached them
after it and was lost (forwarded whenever the thread next got the GIL).

Every read of a pipe happens under the pump's lock, and only once ``poll`` has said
the descriptor is ready: the thread waits for the pipe to become readable *without*
the lock, then takes it to read. So when ``drain()`` holds the lock and finds the pipe
empty, every byte written before it was called is in the stream already; no read can
be half done in another thread. Asking ``poll`` before each read, rather than relying
on the read end's ``O_NONBLOCK`` alone, keeps that true when a cell makes the read end
blocking again, or puts another file on its number: no read under the lock can block,
so the end of the cell cannot hang on it.
"""

from __future__ import annotations

import codecs
import os
import select
import threading
from typing import Protocol

__all__ = ["DRAIN_MAX_BYTES", "FdPump", "capture_fds"]

READ_BYTES = 65536
# A drain reads what was written before the cell ended, not a writer that never
# stops (a background `yes`): the pump thread forwards the rest as it comes.
DRAIN_MAX_BYTES = 1 << 20


class TextSink(Protocol):
    def write(self, text: str) -> int: ...


class FdPump:
    """One pipe's read end, forwarded to a text stream."""

    def __init__(self, read_end: int, stream: TextSink) -> None:
        os.set_blocking(read_end, False)
        self.read_end = read_end
        self.stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._lock = threading.Lock()
        # Used under the lock only (a poll object may not be polled by two threads at once).
        self._ready = select.poll()
        self._ready.register(read_end, select.POLLIN)
        self._thread: threading.Thread | None = None
        # The process whose pump this is: the executor, or the snapshot promoted in its place.
        self._owner = os.getpid()

    def start(self) -> None:
        """Start (after a fork: restart) the forwarding thread."""
        # A fresh lock: after a fork the old one may be held by a thread that does
        # not exist in this process.
        self._lock = threading.Lock()
        self._owner = os.getpid()
        self._thread = threading.Thread(
            target=self._run, name=f"fd{self.read_end}-pump", daemon=True
        )
        self._thread.start()

    def drain(self) -> None:
        """Forward everything written to the pipe so far (up to DRAIN_MAX_BYTES).

        Not in a process a cell forked that runs on to the end of the cell: its copy
        of the lock may be held for good, and what it read would be the executor's.
        """
        if os.getpid() != self._owner:
            return
        with self._lock:
            self._read_available(DRAIN_MAX_BYTES)

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.read_end, select.POLLIN)
        while True:
            try:
                poller.poll()
            except InterruptedError:
                continue
            # One read per turn of the lock: a writer that never stops must not
            # keep drain() (the end of the cell) waiting for it.
            with self._lock:
                if not self._read_available(READ_BYTES):
                    return

    def _read_available(self, limit: int) -> bool:
        """Read until the pipe is empty (or ``limit`` bytes); False at end of file."""
        taken = 0
        while taken < limit:
            try:
                if not self._ready.poll(0):
                    return True
                data = os.read(self.read_end, READ_BYTES)
            except BlockingIOError:
                return True
            except InterruptedError:
                continue
            except OSError:
                return False
            if not data:
                return False
            taken += len(data)
            self.stream.write(self._decoder.decode(data))
        return True


def capture_fds(stdout: TextSink, stderr: TextSink) -> list[FdPump]:
    """Point fds 1 and 2 at pipes whose contents become stream output; start their pumps."""
    pumps = []
    for fd, stream in ((1, stdout), (2, stderr)):
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        pump = FdPump(read_end, stream)
        pump.start()
        pumps.append(pump)
    return pumps
