"""Tracebacks as stock ipykernel shows them: without the sandbox's own frames.

The executor's code can sit between a cell and the exception it sees: the SIGINT
handler that raises ``KeyboardInterrupt`` (``channel.py``), the audit hook that raises
``SandboxPolicyError`` (``audit.py``), the streams behind ``print``. IPython hides
frames that set ``__tracebackhide__`` except the last one, which is exactly where
those exceptions are raised, so the frames are taken out of the traceback itself
(``tb_next`` is writable) before IPython formats it.
"""

from __future__ import annotations

import os
from types import TracebackType

from ..paths import PACKAGE_DIR

__all__ = ["OWN_DIR", "without_own_frames"]

# The sandbox_kernel package.
OWN_DIR = PACKAGE_DIR + os.sep
_MAX_CHAIN = 100


def _is_own(tb: TracebackType) -> bool:
    return tb.tb_frame.f_code.co_filename.startswith(OWN_DIR)


def _pruned(tb: TracebackType | None) -> TracebackType | None:
    """The traceback without entries of this package's code; None if nothing else is left."""
    head = tb
    while head is not None and _is_own(head):
        head = head.tb_next
    current = head
    while current is not None:
        following = current.tb_next
        while following is not None and _is_own(following):
            following = following.tb_next
        current.tb_next = following
        current = following
    return head


def without_own_frames(exc: BaseException) -> BaseException:
    """Take this package's frames out of ``exc``'s traceback and of every exception
    chained to it (``__cause__``, ``__context__``). Returns ``exc``.

    A traceback made only of the package's frames (an error of the executor itself,
    outside any cell) is left whole: it is a bug report, and hiding all of it would
    hide the bug.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending and len(seen) < _MAX_CHAIN:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        tb = current.__traceback__
        pruned = _pruned(tb)
        if pruned is not None and pruned is not tb:
            current.__traceback__ = pruned
        pending += [current.__cause__, current.__context__]
    return exc
