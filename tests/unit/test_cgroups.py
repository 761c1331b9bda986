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


def test_a_container_that_sees_only_its_own_part_of_the_hierarchy(
    tmp_path: Path, monkeypatch
) -> None:
    """Docker on cgroup v1 without a cgroup namespace: /proc/self/cgroup says
    /docker/<id>, and /docker/<id> is what is mounted at /sys/fs/cgroup/memory. The
    kernel's cgroup goes under the mount point, not under <mount>/docker/<id> (which
    does not exist there: every cgroup failed with ENOENT in the fresh container)."""
    from sandbox_kernel.isolation import cgroups

    own = "/docker/806637efe088"
    memory = tmp_path / "memory dir"  # a space: mountinfo escapes it as \040
    pids = tmp_path / "pids"
    memory.mkdir()
    pids.mkdir()
    files = {
        "/proc/self/cgroup": f"8:pids:{own}\n4:memory:{own}\n0::/\n",
        "/proc/self/mountinfo": (
            "83 82 0:46 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
            f"87 83 0:32 {own} {str(memory).replace(' ', chr(92) + '040')} rw,nosuid "
            "- cgroup cgroup rw,memory\n"
            f"88 83 0:33 {own} {pids} rw shared:5 - cgroup cgroup rw,pids\n"
            # Another mount of the same hierarchy that shows a different part of it.
            f"89 83 0:33 /other /elsewhere rw - cgroup cgroup rw,pids\n"
        ),
    }
    monkeypatch.setattr(cgroups, "_read", lambda path: files[path])
    assert cgroups._own_dir("memory") == str(memory)
    assert cgroups._own_dir("pids") == str(pids)
    # A process further down (its own cgroup below the container's) gets that one.
    (pids / "sub").mkdir()
    files["/proc/self/cgroup"] = f"8:pids:{own}/sub\n"
    assert cgroups._own_dir("pids") == str(pids / "sub")
    # Where mountinfo has no such mount, the path is read under ROOT as before.
    assert cgroups._own_dir("cpu") is None
    files["/proc/self/cgroup"] = f"3:cpu:{own}\n"
    assert cgroups._own_dir("cpu") == os.path.join(cgroups.ROOT, "cpu", own.lstrip("/"))


def test_a_host_that_sees_the_whole_hierarchy(tmp_path: Path, monkeypatch) -> None:
    from sandbox_kernel.isolation import cgroups

    (tmp_path / "user.slice").mkdir()
    files = {
        "/proc/self/cgroup": "0::/user.slice\n",
        "/proc/self/mountinfo": f"30 25 0:26 / {tmp_path} rw - cgroup2 cgroup2 rw,nsdelegate\n",
    }
    monkeypatch.setattr(cgroups, "_read", lambda path: files[path])
    assert cgroups._own_dir(None) == str(tmp_path / "user.slice")
