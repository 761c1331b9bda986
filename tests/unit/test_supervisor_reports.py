"""The supervisor's report of a call a cell made is shown under that cell.

The supervisor answers a blocked call (seccomp's user notification) only after it has
written its report, and the kernel reads the supervisor's channel before it takes the
cell's reply. Before, the supervisor answered first and the kernel read its channel in
a task of its own: under load the report came after the reply, with no cell to show it
under (a fresh-container run: "FIFOs, sockets and device nodes cannot be made" missing
from test_trap_entries_are_refused_or_gone_before_a_reader_runs).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox_kernel.framing import encode_frame
from sandbox_kernel.kernel.runner import ExecutorProcess


class _Sink:
    def publish(self, message: dict[str, Any]) -> None:
        pass

    async def request_input(self, prompt: str, password: bool, parent: str) -> str:
        return ""


_SOCKETS: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    yield
    while _SOCKETS:
        _SOCKETS.pop().close()


def _process(events: list[str]) -> tuple[ExecutorProcess, socket.socket]:
    process = ExecutorProcess(
        None,  # type: ignore[arg-type]  # the spec is not read here
        sink=_Sink(),
        env={},
        cwd="/",
        max_frame_bytes=1 << 20,
        frame_deadline_s=5.0,
        on_log=lambda level, message: events.append(f"log {message}"),
        on_audit=lambda record: events.append(f"audit {record['detail']}"),
    )
    ours, supervisor = socket.socketpair()
    _SOCKETS.extend((ours, supervisor))
    ours.setblocking(False)
    process.supervisor = ours
    process.executor_pid = 7
    return process, supervisor


def _reply_pending(process: ExecutorProcess, events: list[str]) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.add_done_callback(
        lambda f: events.append("reply" if not f.exception() else f"died {f.exception()}")
    )
    process._pending[1] = future
    process._expected[1] = ("execute_reply", "token")
    process._next_id = 2
    return future


REPLY = {
    "type": "execute_reply",
    "id": 1,
    "token": "token",
    "status": "ok",
    "user_expressions": {},
    "payload": [],
    "stats": {},
}
REPORT = {
    "type": "audit",
    "event": "seccomp",
    "rule": "SECCOMP",
    "action": "deny",
    "detail": "mknodat(S_IFIFO): FIFOs cannot be made",
}


def test_a_report_written_before_the_reply_is_handled_before_it() -> None:
    async def run() -> list[str]:
        events: list[str] = []
        process, supervisor = _process(events)
        future = _reply_pending(process, events)
        supervisor.sendall(encode_frame(REPORT))
        process._dispatch(dict(REPLY))
        await asyncio.sleep(0)  # the future's callbacks
        assert future.result()["status"] == "ok"
        return events

    assert asyncio.run(run()) == ["audit mknodat(S_IFIFO): FIFOs cannot be made", "reply"]


def test_an_exit_already_reported_does_not_undo_the_reply() -> None:
    """The executor replied and then exited: the reply stands, the exit follows it."""

    async def run() -> tuple[list[str], ExecutorProcess]:
        events: list[str] = []
        process, supervisor = _process(events)
        future = _reply_pending(process, events)
        supervisor.sendall(encode_frame({"type": "exit", "pid": 7, "code": 0, "signal": 0}))
        supervisor.sendall(encode_frame(REPORT))
        process._dispatch(dict(REPLY))
        await asyncio.sleep(0)
        assert future.result()["status"] == "ok"
        return events, process

    events, process = asyncio.run(run())
    assert events[0].startswith("audit ")
    assert events[1] == "reply"
    assert process.executor_lost, "the exit was not handled after the reply"


def test_a_partial_frame_is_left_for_the_channels_own_task() -> None:
    async def run() -> list[str]:
        events: list[str] = []
        process, supervisor = _process(events)
        _reply_pending(process, events)
        frame = encode_frame(REPORT)
        supervisor.sendall(frame[:10])
        process._dispatch(dict(REPLY))
        await asyncio.sleep(0)
        supervisor.sendall(frame[10:])
        assert process._supervisor_data(process.supervisor.recv(65536))  # type: ignore[union-attr]
        return events

    assert asyncio.run(run()) == ["reply", "audit mknodat(S_IFIFO): FIFOs cannot be made"]


def test_nothing_waiting_is_nothing_to_do() -> None:
    events: list[str] = []
    process, _ = _process(events)
    assert process._drain_supervisor() == []
    assert events == []


def test_a_broken_channel_is_given_up_and_said_once() -> None:
    """Read from two places (before a reply, and by the channel's own task), a channel
    that sent a frame the reader rejects outright is reported once, not at each read."""

    async def run() -> list[str]:
        events: list[str] = []
        process, supervisor = _process(events)
        _reply_pending(process, events)
        supervisor.sendall(b"\xff" * 16)  # not a frame header the reader accepts
        process._dispatch(dict(REPLY))
        await asyncio.sleep(0)
        assert not process._supervisor_data(encode_frame(REPORT))
        return events

    events = asyncio.run(run())
    assert [e for e in events if e.startswith("log supervisor channel")] == events[:1], events
    assert "reply" in events
    assert not any(e.startswith("audit") for e in events), events
