"""Helpers to drive a real kernel through jupyter_client, as a frontend would."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
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
