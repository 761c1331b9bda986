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


def test_the_cpu_share_becomes_a_cfs_quota() -> None:
    from sandbox_kernel.isolation.cgroups import CPU_PERIOD_US, cpu_quota_us

    assert cpu_quota_us(1.0) == CPU_PERIOD_US
    assert cpu_quota_us(0.5) == CPU_PERIOD_US // 2
    assert cpu_quota_us(2.0) == 2 * CPU_PERIOD_US
    assert cpu_quota_us(0.001) == 1000  # the kernel's minimum


def test_the_report_says_when_the_share_is_not_enforced() -> None:
    from sandbox_kernel.isolation.cgroups import Cgroup
    from sandbox_kernel.kernel.spec import cpu_share_layer

    without = cpu_share_layer(1.0, None, "cgroup v2 is not mounted")
    assert without["on"] is False
    assert "NOT enforced" in without["detail"]
    assert "cgroup v2 is not mounted" in without["detail"]
    no_controller = Cgroup(2, {"unified": "/x"}, cpu_unavailable="the cpu controller is missing")
    assert "the cpu controller is missing" in cpu_share_layer(1.0, no_controller, None)["detail"]
    enforced = cpu_share_layer(0.5, Cgroup(1, {"cpu": "/x"}, cpu_share=0.5), None)
    assert enforced["on"] is True
    assert cpu_share_layer(0.0, None, None)["on"] is False
