"""The isolation levels, strongest first (no dependencies: the launcher imports this)."""

from __future__ import annotations

__all__ = ["ISOLATION_LEVELS", "level_rank"]

# "none" means rlimits and a scrubbed environment only.
ISOLATION_LEVELS = ("namespaces", "landlock", "none")


def level_rank(level: str) -> int:
    """Higher is stronger: namespaces=2, landlock=1, none=0."""
    return len(ISOLATION_LEVELS) - 1 - ISOLATION_LEVELS.index(level)
