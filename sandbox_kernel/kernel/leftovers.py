"""Whether a cell left processes behind, read from the host's /proc by the trusted kernel.

With ``Limits.kill_cell_processes`` every cell ends with a sweep: the supervisor kills
every process of the sandbox but the executor, and only then may the executor take its
next snapshot (kernel/runner.py, ``reap_cell_processes``). Most cells start no process
at all, and the sweep's round trip to the supervisor is then 0.67 ms of a classroom
cell spent killing nothing (bench/README.md). This walk tells the kernel that nothing
is there to kill.

It answers True only for a tree it fully recognises, and False whenever it is unsure,
so that the sweep runs. The sandbox's own processes are:

- the launcher (the kernel's child);
- at the ``namespaces`` level, the sandbox's pid 1, the launcher's only child;
- the executor, the only child of the one above it;
- the executor's children that are its snapshot (as announced, in the sandbox's pid
  namespace) or zombies (which the reap command collects; a sweep cannot kill them).

Anything else is a leftover: a process a cell started, or an orphan adopted by pid 1
(the init of the sandbox's pid namespace) or by the launcher (its child subreaper at
the other levels). A process started after this
walk is one started after the sweep would have been, which the sweep would not have
caught either: ``kill_cell_processes`` ends what is running when the cell ends.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import procfs

__all__ = ["ProcessInfo", "only_own_processes", "process_info"]

# (state letter, pid in the innermost pid namespace: None for a zombie, not needed)
ProcessInfo = tuple[str, int | None]


def process_info(pid: int) -> ProcessInfo | None:
    """The process's state letter and innermost pid; None if it cannot be read."""
    fields = procfs.stat_fields(pid)
    if not fields:
        return None
    if fields[0] == "Z":
        return "Z", None
    nspid = procfs.innermost_pid(pid)
    return None if nspid is None else (fields[0], nspid)


def only_own_processes(
    launcher: int,
    executor: int,
    snapshot: int | None,
    *,
    children: Callable[[int], list[int]] | None = None,
    info: Callable[[int], ProcessInfo | None] = process_info,
) -> bool:
    """True when the sandbox holds nothing but its own processes (see the module's
    docstring); False when it holds more, or when any of it cannot be read.

    ``executor`` is the executor's pid as the kernel sees it; ``snapshot`` the
    snapshot's pid as the executor announced it (its own pid namespace's).
    """
    walk = children or (lambda pid: procfs.children(pid, strict=True))
    try:
        below_launcher = walk(launcher)
        if below_launcher != [executor]:
            if len(below_launcher) != 1:
                return False
            (pid1,) = below_launcher
            if walk(pid1) != [executor]:
                return False
        for child in walk(executor):
            found = info(child)
            if found is None:
                return False
            state, nspid = found
            if state == "Z":
                continue
            if snapshot is None or nspid != snapshot or walk(child):
                return False
    except OSError:
        return False
    return True
