"""The executor's fd pumps: what was written to fds 1 and 2 before a cell ended is its output.

The executor drains both pipes itself before the cell's reply (child/fd_capture.py).
Before, only a thread forwarded them, whenever it next got the GIL: a cell's last
``os.write(1, ...)`` or subprocess line then often came after the reply and the
kernel's ``idle``, where clients no longer read that cell's output
(tests/integration/test_outputs.py shows it through the kernel).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sandbox_kernel.child.fd_capture import READ_BYTES, FdPump


class _Sink:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            self.parts.append(text)
        return len(text)

    @property
    def text(self) -> str:
        with self.lock:
            return "".join(self.parts)


class _Pipe:
    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        self.pumps: list[FdPump] = []

    def pump(self, sink: _Sink, *, start: bool = True) -> FdPump:
        pump = FdPump(self.read_end, sink)
        if start:
            pump.start()
        self.pumps.append(pump)
        return pump

    def close_write_end(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.write_end)


@pytest.fixture
def pipe() -> Iterator[_Pipe]:
    pipe = _Pipe()
    yield pipe
    # The writer first: the pump thread sees the end of file and stops, so it can
    # never poll a descriptor number that a later test reuses.
    pipe.close_write_end()
    for pump in pipe.pumps:
        if pump._thread is not None:
            pump._thread.join(5)
            assert not pump._thread.is_alive()
    os.close(pipe.read_end)


def test_drain_forwards_everything_written_before_it(pipe: _Pipe) -> None:
    write_end = pipe.write_end
    sink = _Sink()
    pump = pipe.pump(sink)
    for round_ in range(300):
        expected = "".join(f"line {round_} {i}\n" for i in range(5))
        before = len(sink.text)
        os.write(write_end, expected.encode())
        # No wait: right after the write, as the end of a cell comes right after it.
        pump.drain()
        assert sink.text[before:] == expected


def test_drain_without_the_thread_reads_the_pipe(pipe: _Pipe) -> None:
    write_end = pipe.write_end
    sink = _Sink()
    pump = pipe.pump(sink, start=False)  # only drain() reads
    os.write(write_end, "é and ✓\n".encode())
    pump.drain()
    pump.drain()  # an empty pipe: returns at once
    assert sink.text == "é and ✓\n"


def test_a_character_split_between_reads_is_decoded_whole(pipe: _Pipe) -> None:
    write_end = pipe.write_end
    sink = _Sink()
    pump = pipe.pump(sink, start=False)
    data = "✓".encode()
    os.write(write_end, data[:1])
    pump.drain()
    os.write(write_end, data[1:])
    pump.drain()
    assert sink.text == "✓"


def test_a_writer_that_never_stops_does_not_hold_drain(pipe: _Pipe) -> None:
    write_end = pipe.write_end
    sink = _Sink()
    pump = pipe.pump(sink)
    stop = threading.Event()

    def flood() -> None:
        chunk = b"y\n" * (READ_BYTES // 2)
        while not stop.is_set():
            try:
                os.write(write_end, chunk)
            except OSError:
                return

    writer = threading.Thread(target=flood, daemon=True)
    writer.start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        for _ in range(5):
            pump.drain()
        # Bounded by DRAIN_MAX_BYTES a call, not by the writer.
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        writer.join(5)
    assert len(sink.text) > 0


def test_the_thread_ends_when_every_writer_is_gone(pipe: _Pipe) -> None:
    write_end = pipe.write_end
    sink = _Sink()
    pump = pipe.pump(sink)
    os.write(write_end, b"last words\n")
    pipe.close_write_end()
    assert pump._thread is not None
    pump._thread.join(5)
    assert not pump._thread.is_alive()
    assert sink.text == "last words\n"


def test_restarted_after_a_fork_with_the_lock_held(pipe: _Pipe) -> None:
    """A promoted snapshot restarts its pumps; the lock may have been held at the fork."""
    write_end = pipe.write_end
    sink = _Sink()
    pump = pipe.pump(sink, start=False)
    pump._lock.acquire()  # as a pump thread mid-read would leave it in the copy
    pump.start()
    os.write(write_end, b"after the promotion\n")
    pump.drain()
    assert sink.text == "after the promotion\n"


def test_drain_in_a_process_a_cell_forked_does_nothing(pipe: _Pipe) -> None:
    """A cell's forked child that runs on to the end of the cell must neither wait for
    the lock (its copy may be held for good) nor take the executor's output."""
    sink = _Sink()
    pump = pipe.pump(sink, start=False)
    os.write(pipe.write_end, b"the executor's\n")
    pump._lock.acquire()  # held at the fork, by a thread the child does not have
    child = os.fork()
    if child == 0:
        pump.drain()  # would block forever, or read the pipe
        os._exit(0)
    deadline = time.monotonic() + 5
    done, status = os.waitpid(child, os.WNOHANG)
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
        done, status = os.waitpid(child, os.WNOHANG)
    if not done:
        os.kill(child, 9)
        os.waitpid(child, 0)
    pump._lock.release()
    assert done, "drain() in the forked child waited for the lock"
    assert os.waitstatus_to_exitcode(status) == 0
    pump.drain()
    assert sink.text == "the executor's\n"


def _returns_within(call: Callable[[], None], seconds: float = 5.0) -> bool:
    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(seconds)
    return not worker.is_alive()


def test_a_cell_that_makes_the_read_end_blocking_cannot_hang_the_end_of_the_cell(
    pipe: _Pipe,
) -> None:
    """A cell can clear O_NONBLOCK on the read end (it is the executor's own descriptor).
    The thread's second read in a turn, or a drain's, would then block holding the
    lock, and the end of every later cell would wait for it."""
    sink = _Sink()
    pump = pipe.pump(sink)
    os.set_blocking(pipe.read_end, True)
    for i in range(50):
        os.write(pipe.write_end, f"part {i}\n".encode())  # partial reads: the pipe empties
        assert _returns_within(pump.drain), f"drain blocked after write {i}"
    assert sink.text == "".join(f"part {i}\n" for i in range(50))


def test_another_file_on_the_read_ends_number_cannot_hang_the_drain(pipe: _Pipe) -> None:
    sink = _Sink()
    pump = pipe.pump(sink, start=False)
    quiet_read, quiet_write = os.pipe()  # blocking, and never written
    try:
        os.dup2(quiet_read, pipe.read_end)
        assert _returns_within(pump.drain)
        assert sink.text == ""
    finally:
        os.close(quiet_read)
        os.close(quiet_write)
