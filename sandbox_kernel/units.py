"""Units shared by every zone (no dependencies: the launcher and the executor import this)."""

from __future__ import annotations

__all__ = ["MIB"]

MIB = 1024 * 1024
