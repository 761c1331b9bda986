"""Output budgets: how much a cell may send to the frontend, and how fast.

The Jupyter server's own rate limiter covers the websocket only, so
nbclient, papermill and nbgrader would take an endless print loop into memory.
These caps apply to every client. A message is measured as it is sent: its
serialised content (data, MIME types, metadata inside it, text), its metadata
and its buffers. A message over the per-message size, output over the per-cell
total, or messages faster than the rate are not relayed, and the frontend is
told once per cell, with the setting to change.

Comm traffic (widgets) has a budget of its own, so a busy widget cannot starve
a cell's output of its share, nor get past the caps by being a widget.
The sandbox's own notices count too, and only a few of each kind are shown
per cell; the rest are counted and summed up once at the cell's end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["COMM_TYPES", "CellBudget", "NoticeBudget", "OutputLimits", "RateLimit"]

COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})


@dataclass(frozen=True)
class OutputLimits:
    max_message_bytes: int
    max_cell_bytes: int
    max_messages_per_s: float
    max_comm_bytes: int
    max_comm_messages_per_s: float


@dataclass
class RateLimit:
    """A token bucket: ``rate`` messages per second, bursts of up to one second's worth."""

    rate: float
    _tokens: float = field(default=0.0, init=False)
    _refilled: float = field(default_factory=time.monotonic, init=False)

    def __post_init__(self) -> None:
        self._tokens = self.rate

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@dataclass
class _Lane:
    """One kind of traffic's share of a cell: bytes so far, against a cap, at a rate."""

    max_bytes: int
    rate: RateLimit
    sent_bytes: int = 0
    capped: bool = False


@dataclass
class CellBudget:
    limits: OutputLimits
    dropped_bytes: int = 0
    dropped_messages: int = 0
    _warned: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        limits = self.limits
        self._output = _Lane(limits.max_cell_bytes, RateLimit(limits.max_messages_per_s))
        self._comm = _Lane(limits.max_comm_bytes, RateLimit(limits.max_comm_messages_per_s))

    @property
    def sent_bytes(self) -> int:
        return self._output.sent_bytes + self._comm.sent_bytes

    @property
    def capped(self) -> bool:
        return self._output.capped

    def admit(self, kind: str, size: int, *, replay: bool = False) -> str | None:
        """None to relay a message of ``size`` serialised bytes, or why it must be dropped:
        "size", "cell" (the cell's output cap), "comm" (the comm cap) or "rate".

        ``replay``: a display update held back by the rate limit, sent at the cell's
        end; its bytes count like any other's, the rate no longer applies.
        """
        lane = self._comm if kind in COMM_TYPES else self._output
        reason = None
        if size > self.limits.max_message_bytes:
            reason = "size"
        elif lane.sent_bytes + size > lane.max_bytes:
            reason = "comm" if lane is self._comm else "cell"
            lane.capped = True
        elif not replay and not lane.rate.take():
            reason = "rate"
        if reason is None:
            lane.sent_bytes += size
        else:
            self.dropped_bytes += size
            self.dropped_messages += 1
        return reason

    def charge(self, size: int, *, essential: bool = False) -> bool:
        """Count one of the sandbox's own notices against the cell's output; False if
        it no longer fits (the notice is then summed up instead of shown).

        ``essential``: one of the kernel's own few notices per cell (a limit hit, the
        state restored): it is always shown, and counted all the same.
        """
        lane = self._output
        if not essential and lane.sent_bytes + size > lane.max_bytes + NOTICE_ALLOWANCE_BYTES:
            return False
        lane.sent_bytes += size
        return True

    def first_time(self, reason: str) -> bool:
        """Whether this is the first drop for ``reason`` in this cell (to notify once)."""
        if reason in self._warned:
            return False
        self._warned.add(reason)
        return True


# The sandbox's own notices may go a little past a full cell, so the user still
# learns why the output stopped.
NOTICE_ALLOWANCE_BYTES = 64 * 1024


@dataclass
class NoticeBudget:
    """How many of each kind of the sandbox's own notices a cell shows.

    A hostile executor can make the kernel say something per frame (a malformed
    frame, a forged report): only the first few of a kind are shown, at most
    ``max_per_s`` a second overall; the rest are counted for one summary line.
    """

    per_kind: int = 3
    max_per_s: float = 20.0
    # Kinds shown once a cell: one line says all there is to say.
    once: frozenset[str] = frozenset({"violation"})
    suppressed: dict[str, int] = field(default_factory=dict)
    _shown: dict[str, int] = field(default_factory=dict, init=False)
    _rate: RateLimit = field(init=False)

    def __post_init__(self) -> None:
        self._rate = RateLimit(self.max_per_s)

    def admit(self, kind: str) -> bool:
        shown = self._shown.get(kind, 0)
        limit = 1 if kind in self.once else self.per_kind
        if shown < limit and self._rate.take():
            self._shown[kind] = shown + 1
            return True
        self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
        return False

    def total(self, kind: str) -> int:
        """How many notices of ``kind`` this cell had, shown or not."""
        return self._shown.get(kind, 0) + self.suppressed.get(kind, 0)
