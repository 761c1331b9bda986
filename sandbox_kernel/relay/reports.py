"""What the executor may put in the kernel log and the audit log, per cell.

``log`` and ``audit`` frames come from the executor, where the cell runs: a
cell can send them itself, as many as it likes, saying what it likes. They
reach files on the host (the Jupyter server's log, the audit log) that
administrators read and trust. So each kind has a quota per cell (records and
bytes), what is over it is counted and summed up in one record; text is escaped
so that no frame can start a line of its own; and every record says who
reported it, because the audit log can vouch for who said something, not for
whether it is true.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LOG_ESCAPES", "Quota", "escape_for_log"]

# C0 and C1 controls (newlines, carriage returns, ANSI escapes), DEL, Unicode line
# and paragraph separators, and bidirectional overrides, which can make a line
# read as something else.
LOG_ESCAPES = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_for_log(text: str, limit: int = 2000) -> str:
    """One line of printable text: control characters as escapes, at most ``limit`` chars."""
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit:,} more characters)"
    return LOG_ESCAPES.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


@dataclass
class Quota:
    """At most ``max_records`` records and ``max_bytes`` bytes of one kind per cell."""

    max_records: int
    max_bytes: int
    records: int = 0
    size: int = 0
    dropped: int = 0

    def admit(self, size: int) -> bool:
        if self.records >= self.max_records or self.size + size > self.max_bytes:
            self.dropped += 1
            return False
        self.records += 1
        self.size += size
        return True

    def take_dropped(self) -> int:
        """How many were dropped since the last call (for one summary record)."""
        dropped, self.dropped = self.dropped, 0
        return dropped

    def reset(self) -> None:
        self.records = self.size = 0
