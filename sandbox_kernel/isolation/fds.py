"""File descriptors: the executor keeps only the ones it was given."""

from __future__ import annotations

import os

__all__ = ["apply", "close_all_except"]


def close_all_except(keep: set[int]) -> None:
    """Close every descriptor above 2 that is not in ``keep``.

    The launcher was exec'd with close_fds already; this also drops anything
    opened since (the spec pipe, probe sockets, mount-tree fds).
    """
    highest = 3
    for fd in sorted(keep | {2}):
        if fd >= highest:
            if fd > highest:
                os.closerange(highest, fd)
            highest = fd + 1
    os.closerange(highest, os.sysconf("SC_OPEN_MAX"))


def apply(keep: set[int]) -> None:
    """In the executor, first: nothing the launcher opened may reach user code."""
    close_all_except(keep)
