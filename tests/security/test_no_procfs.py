"""A sandbox that shows no /proc: pid 1 still ends what a cell leaves running.

A container that masks parts of its /proc (Docker's default, the simulated
``k8s-unconfined`` pod: user namespaces allowed, /proc masked) keeps the sandbox's pid
namespace from mounting a procfs of its own, so the sandbox has none. Pid 1 then
cannot list the namespace's processes; it finds them by their pids instead
(supervisor._pids_in_use). The crash rollback there is checked by the boundary suite
(test_no_core_dump_and_the_kernel_survives_a_segfault[k8s-unconfined]).
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.security.conftest import HOST_KERNELS, OS_LAYER_ONLY, Host, Sandbox, start_sandbox
from tests.utils import kernel_pid, process_tree


@pytest.fixture
def pod(tmp_path_factory: pytest.TempPathFactory, host: Host) -> Iterator[Sandbox]:
    if os.geteuid() != 0:
        pytest.skip("needs root: masking the pod's /proc needs CAP_SYS_ADMIN")
    from tests.security.restricted_host import POD_USER

    workspace = tmp_path_factory.mktemp("pod-workspace")
    base = tmp_path_factory.getbasetemp()
    for directory in (base.parent, base):
        directory.chmod(directory.stat().st_mode | 0o011)
    user = pwd.getpwnam(POD_USER)
    os.chown(workspace, user.pw_uid, user.pw_gid)
    kernel_name, level = HOST_KERNELS["k8s-unconfined"]
    box = start_sandbox(
        level,
        workspace,
        host,
        extra=[*OS_LAYER_ONLY, "--Limits.kill_cell_processes=True"],
        kernel_name=kernel_name,
    )
    try:
        yield box
    finally:
        box.close()


def _left_running(box: Sandbox, name: str) -> list[psutil.Process]:
    found = []
    for proc in process_tree(kernel_pid(box.km)):
        try:
            if proc.name() == name and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_a_cells_processes_are_ended_without_proc(pod: Sandbox, tmp_path: Path) -> None:
    view = pod.run("import os\nprint(os.path.exists('/proc/self'))")
    assert view.stdout.strip() == "False", "the pod's sandbox has a /proc: nothing to test"
    started = pod.run(
        "import subprocess\n"
        "left = [subprocess.Popen(['sleep', '300']) for _ in range(3)]\n"
        # A double fork: its process is pid 1's, not the executor's.
        "subprocess.run(['sh', '-c', 'sleep 301 & exit 0'])\n"
        "print(len(left))"
    )
    assert started.stdout.strip() == "3", started.stderr
    deadline = time.monotonic() + 10
    while _left_running(pod, "sleep") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _left_running(pod, "sleep") == []
    # The executor was kept, with its state.
    after = pod.run("print(len(left))")
    assert after.stdout.strip() == "3", (
        after.reply["content"].get("ename"),
        after.reply["content"].get("evalue"),
    )
