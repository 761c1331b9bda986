"""kernel/leftovers.py: the sweep is left out only for a tree of the sandbox's own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sandbox_kernel.kernel.leftovers import ProcessInfo, only_own_processes, process_info

LAUNCHER, PID1, EXECUTOR, SNAPSHOT, OTHER = 100, 101, 102, 103, 104
# The snapshot's pid as the executor announced it (in the sandbox's pid namespace).
SNAPSHOT_NS = 7


def check(
    tree: dict[int, list[int]],
    info: dict[int, ProcessInfo] | None = None,
    snapshot: int | None = SNAPSHOT_NS,
) -> bool:
    known = {SNAPSHOT: ("S", SNAPSHOT_NS), OTHER: ("S", 9), **(info or {})}
    return only_own_processes(
        LAUNCHER,
        EXECUTOR,
        snapshot,
        children=lambda pid: tree.get(pid, []),
        info=known.get,
    )


def test_the_sandboxs_own_tree_needs_no_sweep() -> None:
    # namespaces: launcher -> pid 1 -> executor -> snapshot
    assert check({LAUNCHER: [PID1], PID1: [EXECUTOR], EXECUTOR: [SNAPSHOT]})
    # landlock and below: the launcher supervises the executor itself
    assert check({LAUNCHER: [EXECUTOR], EXECUTOR: [SNAPSHOT]})
    # the snapshot already collected, or dropped and a zombie
    assert check({LAUNCHER: [PID1], PID1: [EXECUTOR]})
    assert check({LAUNCHER: [EXECUTOR], EXECUTOR: [SNAPSHOT]}, {SNAPSHOT: ("Z", SNAPSHOT_NS)})


@pytest.mark.parametrize(
    "tree",
    [
        # a process the cell started, still the executor's child
        {LAUNCHER: [PID1], PID1: [EXECUTOR], EXECUTOR: [SNAPSHOT, OTHER]},
        # an orphan pid 1 adopted (setsid and a double fork)
        {LAUNCHER: [PID1], PID1: [EXECUTOR, OTHER], EXECUTOR: [SNAPSHOT]},
        # an orphan the launcher adopted as subreaper (landlock level)
        {LAUNCHER: [EXECUTOR, OTHER], EXECUTOR: [SNAPSHOT]},
        # a child that claims the snapshot's place is not it (another namespace pid)
        {LAUNCHER: [EXECUTOR], EXECUTOR: [OTHER]},
        # the snapshot with a child of its own
        {LAUNCHER: [EXECUTOR], EXECUTOR: [SNAPSHOT], SNAPSHOT: [OTHER]},
        # a child whose status cannot be read
        {LAUNCHER: [EXECUTOR], EXECUTOR: [105]},
        # the executor not where it should be
        {LAUNCHER: [PID1], PID1: [OTHER]},
        {LAUNCHER: []},
    ],
    ids=[
        "cells-child",
        "orphan-under-pid1",
        "orphan-under-launcher",
        "not-the-snapshot",
        "snapshot-with-child",
        "unreadable",
        "no-executor",
        "empty",
    ],
)
def test_anything_else_is_swept(tree: dict[int, list[int]]) -> None:
    assert not check(tree)


def test_without_a_snapshot_announced_a_live_child_is_swept() -> None:
    assert not check({LAUNCHER: [EXECUTOR], EXECUTOR: [SNAPSHOT]}, snapshot=None)


def test_a_tree_that_cannot_be_read_is_swept() -> None:
    def unreadable(pid: int) -> list[int]:
        raise PermissionError(pid)

    assert not only_own_processes(LAUNCHER, EXECUTOR, SNAPSHOT_NS, children=unreadable)


def test_process_info_reads_state_and_innermost_pid() -> None:
    assert process_info(os.getpid()) == ("R", os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    # Exited, not yet waited for: a zombie, whose pid is not needed.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert process_info(child.pid) == ("Z", None)
    child.wait()
    assert process_info(child.pid) is None  # reaped: gone
