"""Stale cgroups of kernels that died without cleaning up are removed, and only those."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sandbox_kernel.isolation.cgroups import _sweep_stale


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_the_directories_of_dead_kernels_go(tmp_path: Path) -> None:
    dead = tmp_path / f"sandbox-kernel-{_dead_pid()}"
    alive = tmp_path / f"sandbox-kernel-{os.getppid()}"
    busy = tmp_path / f"sandbox-kernel-{_dead_pid()}"
    other = tmp_path / "user.slice"
    for d in (dead, alive, busy, other):
        d.mkdir(exist_ok=True)
    # A cgroup that still holds processes cannot be removed; a plain directory with
    # a file stands in for one here (rmdir fails the same way).
    (busy / "cgroup.procs").write_text("1234\n")
    _sweep_stale(str(tmp_path), f"sandbox-kernel-{os.getpid()}")
    assert not dead.exists()
    assert alive.exists()
    assert other.exists()
    if busy != dead:
        assert busy.exists()
