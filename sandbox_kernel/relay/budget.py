"""Output budgets: how much a cell may send to the frontend, and how fast.

The Jupyter server's own rate limiter covers the websocket only, so
nbclient, papermill and nbgrader would take an endless print loop into memory.
These caps apply to every client: a message over the per-message size, output
over the per-cell total, or messages faster than the rate are not relayed, and
the frontend is told once per cell, with the setting to change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CellBudget", "OutputLimits", "message_size"]

# Comm traffic keeps widgets working: it is rate-limited but never cut off by size.
EXEMPT_FROM_CELL_CAP = frozenset({"comm_open", "comm_msg", "comm_close", "clear_output"})


@dataclass(frozen=True)
class OutputLimits:
    max_message_bytes: int
    max_cell_bytes: int
    max_messages_per_s: float


def message_size(message: dict[str, Any]) -> int:
    """Roughly the bytes a message puts on the wire (text and MIME payloads dominate)."""
    kind = message["type"]
    if kind == "stream":
        return len(message["text"])
    if kind == "error":
        return sum(len(line) for line in message["traceback"]) + len(message["evalue"])
    size = 0
    for value in (message.get("data") or {}).values():
        size += len(value) if isinstance(value, str) else len(str(value))
    return size + sum(len(b) for b in message.get("buffers") or [])


@dataclass
class CellBudget:
    limits: OutputLimits
    sent_bytes: int = 0
    dropped_bytes: int = 0
    dropped_messages: int = 0
    capped: bool = False
    _tokens: float = field(default=0.0, init=False)
    _refilled: float = field(default_factory=time.monotonic, init=False)
    _warned: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self._tokens = self.limits.max_messages_per_s

    def _rate_ok(self) -> bool:
        now = time.monotonic()
        rate = self.limits.max_messages_per_s
        self._tokens = min(rate, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def admit(self, message: dict[str, Any]) -> str | None:
        """None to relay the message, or the reason it must be dropped ("size", "cell", "rate")."""
        size = message_size(message)
        kind = message["type"]
        reason = None
        if size > self.limits.max_message_bytes:
            reason = "size"
        elif (
            kind not in EXEMPT_FROM_CELL_CAP and self.sent_bytes + size > self.limits.max_cell_bytes
        ):
            reason = "cell"
            self.capped = True
        elif not self._rate_ok():
            reason = "rate"
        if reason is None:
            self.sent_bytes += size
        else:
            self.dropped_bytes += size
            self.dropped_messages += 1
        return reason

    def first_time(self, reason: str) -> bool:
        """Whether this is the first drop for ``reason`` in this cell (to notify once)."""
        if reason in self._warned:
            return False
        self._warned.add(reason)
        return True
