"""A cell's runtime policy reports reach the kernel before its reply, under its own request.

The audit hook only queues a record; the stream-flusher thread and the executor's main
thread (just before a reply) both drain the queue. CI once showed the tour's network
warning in the next cell's output: the flusher had taken the record off the queue, the
main thread found the queue empty and sent the reply, and the record went after it,
stamped with the parent of whichever request was current by then.
"""

from __future__ import annotations

import threading
from typing import Any

from sandbox_kernel.child.shell import Outbox


class SlowChannel:
    """Records frames; the flusher thread's first send waits until the test lets it go."""

    def __init__(self) -> None:
        self.stamp: Any = None
        self.sent: list[dict[str, Any]] = []
        self.flusher_sending = threading.Event()
        self.let_go = threading.Event()

    def send(self, message: dict[str, Any], *, stamp: bool = True) -> None:
        if stamp and self.stamp is not None:
            self.stamp(message)
        if threading.current_thread().name == "flusher":
            self.flusher_sending.set()
            assert self.let_go.wait(10)
        self.sent.append(message)


def _audit(detail: str) -> dict[str, Any]:
    return {"type": "audit", "event": "socket.connect", "rule": "SKP204", "action": "warn",
            "detail": detail}  # fmt: skip


def test_the_reply_waits_for_a_report_the_flusher_is_sending() -> None:
    channel = SlowChannel()
    outbox = Outbox(channel)  # type: ignore[arg-type]
    outbox.parent_msg_id = "cell-1"
    outbox.queue_audit(_audit("('151.101.0.223', 443)"))
    flusher = threading.Thread(target=outbox.send_audits, name="flusher")
    flusher.start()
    assert channel.flusher_sending.wait(10)

    def reply() -> None:  # as Executor.execute ends a cell
        outbox.send_audits()
        channel.send({"type": "execute_reply"})

    main = threading.Thread(target=reply, name="main-side")
    main.start()
    main.join(0.3)
    assert main.is_alive(), "the reply went out while a report of the cell was still unsent"
    channel.let_go.set()
    main.join(10)
    flusher.join(10)
    assert [m["type"] for m in channel.sent] == ["audit", "execute_reply"]


def test_a_report_names_the_request_that_caused_it_not_the_one_current_when_sent() -> None:
    channel = SlowChannel()
    outbox = Outbox(channel)  # type: ignore[arg-type]
    outbox.parent_msg_id = "cell-1"
    outbox.queue_audit(_audit("x"))
    outbox.parent_msg_id = "cell-2"  # the next cell began before the flusher woke
    outbox.send_audits()
    assert channel.sent[0]["parent"] == "cell-1"


def test_a_forked_child_does_not_inherit_a_held_drain_lock() -> None:
    channel = SlowChannel()
    outbox = Outbox(channel)  # type: ignore[arg-type]
    outbox._audit_lock.acquire()  # as if the flusher held it at the fork
    outbox.after_fork_in_child()
    outbox.queue_audit(_audit("y"))
    outbox.send_audits()  # would block for ever on the inherited lock
    assert len(channel.sent) == 1
