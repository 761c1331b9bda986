"""Reading /proc: a process's children and its stat fields (no dependencies: the
trusted kernel and the sandbox's pid 1 both import this)."""

from __future__ import annotations

import os

__all__ = ["children", "innermost_pid", "stat_fields"]


def children(pid: int, *, strict: bool = False) -> list[int]:
    """The children of every thread of ``pid`` (``/proc/PID/task/TID/children``).

    Reading only this process's files, not every process's, keeps a walk of one tree
    cheap on a busy host. A process or thread that is gone meanwhile has no
    children. Any other error (no access) counts as no children too, unless
    ``strict``: then it raises, so that the caller can look another way.
    """
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    except OSError:
        if strict:
            raise
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(child) for child in f.read().split())
        except FileNotFoundError:
            continue
        except OSError:
            if strict:
                raise
    return found


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None if unreadable.

    The name (field 2) is skipped whole, whatever it holds: index 0 is the state
    (proc(5) field 3), 1 the parent (4), 11 to 14 utime, stime, cutime and cstime
    (14-17), 19 the start time in clock ticks since boot (22).
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def innermost_pid(pid: int) -> int | None:
    """The process's pid in its own pid namespace (the last ``NSpid`` of
    ``/proc/PID/status``: the sandbox's view of a process the host sees as ``pid``),
    or None if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError, IndexError):
        pass
    return None
