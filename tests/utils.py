"""Helpers to drive a real kernel through jupyter_client, as a frontend would."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

KERNEL_NAME = "sandbox-python"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


TIMEOUT = 60


@dataclass
class Result:
    reply: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m["content"] for m in self.outputs if m["msg_type"] == msg_type]

    @property
    def stdout(self) -> str:
        return "".join(c["text"] for c in self.of_type("stream") if c["name"] == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(c["text"] for c in self.of_type("stream") if c["name"] == "stderr")

    @property
    def error(self) -> dict[str, Any] | None:
        errors = self.of_type("error")
        return errors[-1] if errors else None

    def text(self) -> str:
        parts = [self.stdout, self.stderr]
        for kind in ("execute_result", "display_data"):
            parts.extend(str(c["data"].get("text/plain", "")) for c in self.of_type(kind))
        if self.error:
            parts.append(f"{self.error['ename']}: {self.error['evalue']}")
        return "\n".join(parts)


def execute(kc: BlockingKernelClient, code: str, timeout: float = TIMEOUT, **kwargs: Any) -> Result:
    outputs: list[dict[str, Any]] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] not in {"status", "execute_input"}:
            outputs.append(msg)

    reply = kc.execute_interactive(code, output_hook=hook, timeout=timeout, **kwargs)
    return Result(reply, outputs)


class CellHung(AssertionError):
    """A request got no idle status or no reply in time (the message names what was seen)."""


@dataclass
class Run:
    """One request followed on the wire: every IOPub message read until its idle status
    (those of other requests too, in arrival order), and its shell reply."""

    msg_id: str
    reply: dict[str, Any] | None
    iopub: list[dict[str, Any]]
    started: float  # time.monotonic() when the request was sent (or followed)
    finished: float  # time.monotonic() when the idle status (or the reply) arrived

    @property
    def elapsed(self) -> float:
        return self.finished - self.started

    def own(self) -> list[dict[str, Any]]:
        """The IOPub messages whose parent is this request."""
        return [m for m in self.iopub if m["parent_header"].get("msg_id") == self.msg_id]


# How often ``poll`` runs while execute_until_idle waits for IOPub.
POLL_S = 0.5


def messages(
    get: Callable[[float], dict[str, Any]], timeout: float, hung: Callable[[], str]
) -> Iterator[dict[str, Any]]:
    """Messages from ``get(seconds)`` (a channel's get_*_msg) until the caller stops, or
    CellHung with ``hung()`` once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CellHung(hung())
        try:
            msg = get(left)
        except queue.Empty:
            continue
        yield msg


def reply_to(kc: BlockingKernelClient, msg_id: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The shell reply to ``msg_id``, passing over replies to other requests (a late
    kernel_info_reply from start-up, say)."""
    for reply in messages(
        lambda left: kc.get_shell_msg(timeout=left),
        timeout,
        lambda: f"no shell reply to {msg_id} within {timeout:g} s",
    ):
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply
    raise AssertionError("unreachable")  # messages() ends only by raising


def wait_for_output(
    kc: BlockingKernelClient, msg_id: str, marker: str, timeout: float = TIMEOUT
) -> list[dict[str, Any]]:
    """Read IOPub until the streams of request ``msg_id`` contain ``marker`` (a cell saying
    it got to a point: wait for that, not for a guessed number of seconds). Returns the
    messages read; raises CellHung if the marker did not come within ``timeout``."""
    read: list[dict[str, Any]] = []
    printed: list[str] = []
    for msg in messages(
        lambda left: kc.get_iopub_msg(timeout=left),
        timeout,
        lambda: f"{marker!r} not printed within {timeout:g} s; printed: {printed[-20:]!r}",
    ):
        read.append(msg)
        if msg["msg_type"] == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            printed.append(msg["content"]["text"])
            if marker in "".join(printed):
                return read
    raise AssertionError("unreachable")


def control_round_trip(kc: BlockingKernelClient, timeout: float = 10) -> float:
    """Seconds for a kernel_info_request on the control channel to be answered (raises
    queue.Empty if it is not within ``timeout``): the kernel's own liveness, whatever
    its cell is doing."""
    request = kc.session.msg("kernel_info_request")
    started = time.monotonic()
    kc.control_channel.send(request)
    while (
        kc.get_control_msg(timeout=timeout)["parent_header"].get("msg_id")
        != request["header"]["msg_id"]
    ):
        pass
    return time.monotonic() - started


def kernel_info(kc: BlockingKernelClient, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Send kernel_info_request and return its reply."""
    return reply_to(kc, kc.kernel_info(), timeout)


def execute_until_idle(
    kc: BlockingKernelClient,
    code: str | None = None,
    *,
    msg_id: str | None = None,
    timeout: float = TIMEOUT,
    reply: bool = True,
    on_message: Callable[[dict[str, Any]], None] | None = None,
    poll: Callable[[], None] | None = None,
    **execute_kwargs: Any,
) -> Run:
    """Send ``code`` (or follow the request ``msg_id`` already sent), read IOPub until that
    request's idle status, then, with ``reply``, its shell reply.

    Every IOPub message read is kept, whatever its parent: a test of what reached the
    frontend must see the messages of no request too. ``on_message`` sees each one as it
    arrives (to act on a marker the cell printed); ``poll`` runs at least every POLL_S
    while waiting (to probe the kernel while the cell runs). Raises CellHung, with what
    was seen, when ``timeout`` (for the whole run) passes first.
    """
    if (code is None) == (msg_id is None):
        raise TypeError("execute_until_idle takes either code or msg_id")
    started = time.monotonic()
    if code is not None:
        msg_id = kc.execute(code, **execute_kwargs)
    assert msg_id is not None
    iopub: list[dict[str, Any]] = []

    def hung() -> str:
        seen = [(m["msg_type"], m["content"].get("execution_state")) for m in iopub]
        return f"no idle status within {timeout:g} s for {(code or msg_id)[:60]!r}: {seen}"

    def get(left: float) -> dict[str, Any]:
        if poll is None:
            return kc.get_iopub_msg(timeout=left)
        poll()
        return kc.get_iopub_msg(timeout=min(left, POLL_S))

    for msg in messages(get, timeout, hung):
        iopub.append(msg)
        if on_message is not None:
            on_message(msg)
        if (
            msg["msg_type"] == "status"
            and msg["parent_header"].get("msg_id") == msg_id
            and msg["content"]["execution_state"] == "idle"
        ):
            break
    left = started + timeout - time.monotonic()
    if reply and left <= 0:
        raise CellHung(f"no shell reply within {timeout:g} s for {(code or msg_id)[:60]!r}")
    shell = reply_to(kc, msg_id, left) if reply else None
    return Run(msg_id, shell, iopub, started, time.monotonic())


@contextlib.contextmanager
def running_kernel(
    cwd: str | os.PathLike[str], kernel_name: str = KERNEL_NAME, **kw: Any
) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel(cwd=str(cwd), **kw)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _exists(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait until none of ``pids`` exists; return the survivors."""
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if _exists(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _exists(p)]
    return alive


def kernel_pid(km: KernelManager) -> int:
    return int(km.provisioner.process.pid)  # type: ignore[union-attr]
