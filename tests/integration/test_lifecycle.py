"""Start, restart and shutdown: fast, honest about the sandbox, and no process survives."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import psutil
import pytest
from jupyter_client.manager import KernelManager

from tests.utils import (
    KERNEL_NAME,
    execute,
    kernel_info,
    kernel_pid,
    process_tree,
    running_kernel,
    wait_gone,
)

# Two ways a cell leaves a process behind: a classic double-forked, setsid
# daemon, and a subprocess in a new session. Both carry a marker in argv so
# the test can find them on the host from outside.
DAEMON = (
    "import os, subprocess, sys\n"
    "argv = [sys.executable, '-c', 'import time; time.sleep(3600)', '{marker}']\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        os.execv(sys.executable, argv)\n"
    "    os._exit(0)\n"
    "os.wait()\n"
    "subprocess.Popen(argv, start_new_session=True)\n"
)


def _marked(marker: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in (proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def test_banner_reports_the_sandbox(workspace: Path) -> None:
    with running_kernel(workspace) as (_, kc):
        reply = kernel_info(kc)
        banner = reply["content"]["banner"]
        assert "Sandbox level:" in banner
        level = reply["content"]["sandbox"]["level"]
        assert level in banner
        res = execute(kc, "%sandbox")
        assert f"Sandbox level: {level}" in res.stdout


def test_shutdown_leaves_no_process(workspace: Path) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    with running_kernel(workspace) as (km, kc):
        execute(kc, DAEMON.format(marker=marker))
        # A daemon's exec may come a moment after the cell ends: wait for it, not a guess.
        deadline = time.monotonic() + 30
        while len(_marked(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_marked(marker)) == 2, "the cell's daemons did not start"
        tree = [p.pid for p in process_tree(kernel_pid(km))]
        assert len(tree) >= 3
    assert wait_gone(tree) == []
    assert wait_gone(_marked(marker)) == []


def test_a_shutdown_sends_its_replies_before_the_kernel_exits(workspace: Path) -> None:
    """The kernel leaves without Python's teardown (app.py): its last messages still go out."""
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(cwd=str(workspace))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        process = km.provisioner.process  # type: ignore[union-attr]
        msg_id = kc.shutdown()
        reply = kc.control_channel.get_msg(timeout=30)
        assert reply["msg_type"] == "shutdown_reply"
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok"
        broadcast = []
        deadline = time.monotonic() + 30
        while not broadcast and time.monotonic() < deadline:
            msg = kc.iopub_channel.get_msg(timeout=30)
            if msg["msg_type"] == "shutdown_reply":
                broadcast.append(msg)
        assert broadcast, "no shutdown_reply on IOPub"
        assert process.wait(30) == 0
    finally:
        kc.stop_channels()
        km.cleanup_resources()


def test_restart_is_clean(workspace: Path) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    with running_kernel(workspace) as (km, kc):
        execute(kc, "x = 1\n" + DAEMON.format(marker=marker))
        old_tree = [p.pid for p in process_tree(kernel_pid(km))]
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=60)
        assert wait_gone(old_tree) == []
        assert wait_gone(_marked(marker)) == []
        res = execute(kc, "'x' in globals()")
        assert res.of_type("execute_result")[0]["data"]["text/plain"] == "False"


@pytest.mark.parametrize(
    "kernel_name", [KERNEL_NAME, "sandbox-python-docker"], ids=["namespaces", "landlock"]
)
def test_killed_kernel_takes_the_sandbox_with_it(workspace: Path, kernel_name: str) -> None:
    """SIGKILL to the kernel: the executor, its snapshot and the cell's daemons all go."""
    marker = f"marker-{uuid.uuid4().hex}"
    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel(cwd=str(workspace))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        execute(kc, DAEMON.format(marker=marker))
        execute(kc, "pass")  # the next cell's snapshot is in place
        tree = [p.pid for p in process_tree(kernel_pid(km))]
        os.kill(kernel_pid(km), signal.SIGKILL)
        assert wait_gone(tree) == []
        assert wait_gone(_marked(marker)) == []
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_a_vanished_workspace_is_reported_and_the_kernel_recovers(workspace: Path) -> None:
    """The notebook's folder is deleted under a running kernel: cells fail clearly, none hang."""
    with running_kernel(workspace, extra_arguments=["--Limits.rollback=False"]) as (_, kc):
        execute(kc, "x = 1")
        workspace.rmdir()
        # The executor dies; without rollback a new one must be started in the workspace.
        execute(kc, "import os; os._exit(3)", stop_on_error=False)
        res = execute(kc, "print('runs')", stop_on_error=False)
        assert res.reply["content"]["ename"] == "SandboxUnavailable"
        assert str(workspace) in res.reply["content"]["evalue"]
        assert "No such file or directory" in res.reply["content"]["evalue"]
        workspace.mkdir()
        assert execute(kc, "print('runs again')").stdout == "runs again\n"
