"""The trusted kernel's own memory limit (RLIMIT_DATA), and how much of it is left.

The executor's frames are decoded in this process, which sits outside the
sandbox's memory cgroup. Bounded parsing (``relay/reader.py``) keeps each
frame's cost proportional to its size; this limit is the backstop behind it:
past it an allocation fails with ``MemoryError`` (which the frame reader turns
into a rejected frame) instead of the host swapping. RLIMIT_DATA counts the
heap and private writable mappings, so it tracks memory actually used far more
closely than RLIMIT_AS, which the reserved thread stacks and malloc arenas of
ZMQ's threads inflate.
"""

from __future__ import annotations

import contextlib
import resource

__all__ = ["data_bytes", "headroom", "limit_own_memory", "release_inherited_limit"]


def data_bytes() -> int | None:
    """This process's data size as RLIMIT_DATA counts it (VmData), or None."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return None


def limit_own_memory(limit_bytes: int) -> str | None:
    """Cap this process's data size; return why it could not be done, or None."""
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY and hard < limit_bytes:
            limit_bytes = hard
        resource.setrlimit(resource.RLIMIT_DATA, (limit_bytes, hard))
    except (ValueError, OSError) as exc:
        return str(exc)
    return None


def headroom() -> int | None:
    """Bytes this process may still allocate under its RLIMIT_DATA; None if unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_DATA)
    used = data_bytes()
    if soft == resource.RLIM_INFINITY or used is None:
        return None
    return max(0, soft - used)


def release_inherited_limit() -> None:
    """In a process exec'd by the kernel (the launcher): drop the kernel's own limit.

    Only the soft limit was lowered, so it can be raised back to the hard one;
    the executor gets its own memory limit from the sandbox.
    """
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))
