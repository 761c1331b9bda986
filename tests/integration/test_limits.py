"""Per-cell limits and crash rollback: a failing cell costs that cell and nothing else."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.utils import execute, kernel_pid, process_tree, running_kernel, strip_ansi, wait_gone

LIMITS = [
    "--Limits.wall_time_limit_s=4",
    "--Limits.interrupt_grace_s=1",
    "--Limits.cpu_time_limit_s=3",
    "--Limits.memory_limit_mb=768",
    "--Limits.max_processes=96",
    "--Limits.max_file_size_mb=16",
    "--Isolation.tmp_size_mb=64",
]


# The CPU-limit cells run where no wall-clock limit can end them first: on a busy
# machine 3 s of CPU can take longer than a 4 s wall limit, and a test must not
# depend on which of two limits fires first.
CPU_ONLY_LIMITS = [
    "--Limits.wall_time_limit_s=0",
    *(arg for arg in LIMITS if not arg.startswith("--Limits.wall_time_limit_s=")),
]


@pytest.fixture(scope="module")
def cpu_limited(
    module_workspace: Path,
) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    with running_kernel(module_workspace, extra_arguments=CPU_ONLY_LIMITS) as pair:
        yield pair


@pytest.fixture(scope="module")
def limited(module_workspace: Path) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    with running_kernel(module_workspace, extra_arguments=LIMITS) as pair:
        yield pair


def _check_failure(kc: BlockingKernelClient, code: str, ename: str, *phrases: str) -> dict:
    marker = uuid.uuid4().hex
    execute(kc, f"before = {marker!r}")
    res = execute(kc, code, stop_on_error=False, timeout=120)
    content = res.reply["content"]
    assert content["status"] == "error", res.outputs
    text = strip_ansi(content["evalue"]) + res.stderr
    assert content["ename"] == ename, text
    for phrase in phrases:
        assert phrase in text, text
    after = execute(kc, "before")
    assert after.of_type("execute_result")[0]["data"]["text/plain"] == repr(marker), (
        "state was not kept"
    )
    return res.reply["metadata"].get("sandbox", {})


@pytest.mark.parametrize(
    ("code", "ename", "phrases"),
    [
        pytest.param(
            "import faulthandler\nbefore = 0\nfaulthandler._sigsegv()",
            "ExecutorDied",
            ["segmentation fault", "restored"],
            id="segfault",
        ),
        pytest.param(
            "import os\nbefore = 0\nos._exit(3)",
            "ExecutorDied",
            ["exited with status 3", "restored"],
            id="os-exit",
        ),
        pytest.param(
            "import os, signal\nbefore = 0\nos.kill(os.getpid(), signal.SIGKILL)",
            "ExecutorDied",
            ["killed (SIGKILL)", "restored"],
            id="self-kill",
        ),
        pytest.param(
            "import time\nbefore = 0\nwhile True: time.sleep(0.05)",
            "CellTimeout",
            ["longer than the limit of 4 s", "restored"],
            id="timeout",
        ),
        pytest.param(
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nbefore = 0\ntime.sleep(100)",
            "CellTimeout",
            ["longer than the limit of 4 s", "restored"],
            id="timeout-ignoring-SIGINT",
        ),
    ],
)
def test_failing_cell_keeps_earlier_state(
    limited, code: str, ename: str, phrases: list[str]
) -> None:
    _, kc = limited
    meta = _check_failure(kc, code, ename, *phrases)
    assert meta["outcome"] in (ename, "error", "ok") or meta["outcome"] == ename


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("before = 0\nx = 0\nwhile True: x += 1", id="cpu"),
        pytest.param("before = 0\nsum(range(10**14))", id="cpu-C-loop"),
    ],
)
def test_cpu_limit_keeps_earlier_state(cpu_limited, code: str) -> None:
    _, kc = cpu_limited
    meta = _check_failure(kc, code, "CpuLimitExceeded", "CPU time", "restored")
    assert meta["outcome"] in ("CpuLimitExceeded", "error", "ok")


def test_memory_limit(limited) -> None:
    _, kc = limited
    res = execute(kc, "%sandbox")
    if "[on ] cgroup" in res.stdout:
        meta = _check_failure(
            kc,
            "before = 0\nblob = bytearray(4 << 30)\nblob[::4096] = b'x' * len(blob[::4096])",
            "MemoryLimitExceeded",
            "memory limit of 768 MiB",
            "restored",
        )
        assert meta["rolled_back"] is True
    else:
        # Without a cgroup the limit is RLIMIT_AS: the allocation fails inside the cell.
        res = execute(kc, "blob = bytearray(4 << 30)")
        assert res.reply["content"]["ename"] == "MemoryError"


def _bomb_gone(km: KernelManager, timeout: float = 10.0) -> list[str]:
    """Wait until the sandbox is back to its few own processes (the bomb's copies were
    killed, and a killed process takes a moment to exit on a loaded machine); the
    command lines of what is still there if it is not."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for proc in process_tree(kernel_pid(km))[1:]:
            with contextlib.suppress(psutil.Error):
                left.append(" ".join(proc.cmdline()) or proc.name())
        if len(left) < 10 or time.monotonic() > deadline:
            return [] if len(left) < 10 else left
        time.sleep(0.05)


@pytest.fixture(scope="module")
def limited_by_rlimits(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """A root kernel where no cgroup is delegated (a plain ``docker run`` as root, its
    cgroups read-only): RLIMIT_NPROC on the sandbox uid its cells run as."""
    if os.geteuid() != 0:
        pytest.skip("needs root: an unprivileged kernel here has no cgroup anyway ('limited')")
    workspace = tmp_path_factory.mktemp("rlimits")
    workspace.chmod(0o755)
    with running_kernel(
        workspace, extra_arguments=[*LIMITS, "--Isolation.cgroups=disabled"]
    ) as pair:
        yield pair


@pytest.mark.parametrize("kernel", ["limited", "limited_by_rlimits"])
def test_fork_bomb_costs_one_cell(kernel: str, request: pytest.FixtureRequest) -> None:
    km, kc = request.getfixturevalue(kernel)
    execute(kc, "survivor = 'yes'")
    code = (
        "import os, time\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(120); os._exit(0)\n"
        "except OSError as e:\n"
        "    print('fork refused:', e.errno)\n"
    )
    res = execute(kc, code, timeout=120)
    assert "fork refused: 11" in res.stdout
    assert "ProcessLimitExceeded" in res.stderr
    assert execute(kc, "survivor").of_type("execute_result")[0]["data"]["text/plain"] == "'yes'"
    # From outside: the bomb's processes are gone, the sandbox is back to its few own.
    assert _bomb_gone(km) == []
    assert execute(kc, "import subprocess; subprocess.run(['true']).returncode").status == "ok"


def test_naive_fork_bomb_costs_one_cell(limited) -> None:
    """Every copy forks again and the EAGAIN escapes in each of them, not only in the cell."""
    km, kc = limited
    execute(kc, "survivor = 'still here'")
    res = execute(kc, "import os\nwhile True:\n    os.fork()", timeout=120)
    assert res.reply["content"]["status"] == "error"
    assert "ProcessLimitExceeded" in res.stderr, res.stderr
    # The copies end quietly with one line each instead of IPython tracebacks. (Under
    # RLIMIT_NPROC, which counts the user's other processes too, the very first fork
    # may fail: then there are no copies.)
    if "RLIMIT_NPROC" not in res.stderr:
        assert "a process the cell forked" in res.stderr
    value = execute(kc, "survivor").of_type("execute_result")[0]["data"]["text/plain"]
    assert value == "'still here'"
    assert _bomb_gone(km) == []


def test_a_forked_child_that_runs_past_the_cell_leaves_the_relay_alone(limited) -> None:
    """A child that is not told to exit reaches the end of the cell: it must end there,
    not go on reading the kernel's next commands in the executor's place."""
    km, kc = limited
    execute(kc, "pass")
    before = {p.pid for p in process_tree(kernel_pid(km))[1:]}
    res = execute(kc, "import os\npid = os.fork()\nprint('parent' if pid else 'child')")
    assert "parent" in res.stdout
    for i in range(5):
        res = execute(kc, f"print('next', {i})", timeout=20)
        assert res.stdout.strip() == f"next {i}", res.stdout + res.stderr
    # From outside: the child ended with its cell (only the snapshot was replaced).
    after = [p.pid for p in process_tree(kernel_pid(km))[1:] if p.pid not in before and _running(p)]
    assert len(after) <= 1, after


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_file_size_and_tmp_limits_are_named(limited) -> None:
    _, kc = limited
    res = execute(kc, "open('big.bin', 'wb').write(b'x' * (32 << 20))", stop_on_error=False)
    assert res.reply["content"]["ename"] == "OSError"
    assert "FileSizeLimitExceeded" in res.stderr
    assert "Limits.max_file_size_mb" in res.stderr
    res = execute(
        kc,
        "for i in range(8):\n    open(f'/tmp/fill{i}', 'wb').write(b'x' * (12 << 20))",
        stop_on_error=False,
    )
    if "Sandbox level: namespaces" in execute(kc, "%sandbox").stdout:
        assert "DiskLimitExceeded" in res.stderr
        assert "Isolation.tmp_size_mb" in res.stderr
    execute(
        kc,
        "import glob, os\nfor f in glob.glob('/tmp/fill*') + ['big.bin']:\n    os.path.exists(f) and os.remove(f)",
    )


def test_rollback_off_says_the_state_is_lost(workspace: Path) -> None:
    with running_kernel(workspace, extra_arguments=["--Limits.rollback=False"]) as (_, kc):
        execute(kc, "x = 1")
        res = execute(kc, "import faulthandler; faulthandler._sigsegv()", stop_on_error=False)
        text = strip_ansi(res.reply["content"]["evalue"])
        assert "variables and imports from earlier cells are gone" in text
        assert "rollback is turned off" in text
        assert "NameError" in execute(kc, "x", stop_on_error=False).reply["content"]["ename"]


def test_snapshot_is_skipped_with_threads_running_and_the_user_is_told(workspace: Path) -> None:
    with running_kernel(workspace) as (_, kc):
        execute(
            kc,
            "import threading, time\nthreading.Thread(target=time.sleep, args=(600,), daemon=True).start()\nx = 1",
        )
        res = execute(kc, "import faulthandler; faulthandler._sigsegv()", stop_on_error=False)
        text = strip_ansi(res.reply["content"]["evalue"])
        assert "background thread" in text, text


def test_accounting_in_metadata_and_sandbox_magic(workspace: Path) -> None:
    with running_kernel(workspace) as (_, kc):
        res = execute(kc, "sum(i * i for i in range(10**6))")
        meta = res.reply["metadata"]["sandbox"]
        assert meta["outcome"] == "ok"
        assert meta["wall_time_s"] > 0
        assert meta["cpu_time_s"] is not None
        assert meta["cpu_time_s"] > 0
        assert meta["snapshot"] == "taken"
        text = execute(kc, "%sandbox").stdout
        if meta["peak_memory_mb"] is None:
            # The peak comes from the memory cgroup, or from the executor where it may
            # reset its own (an unprivileged user namespace may not): neither here.
            assert "[on ] cgroup " not in text, "a memory cgroup is in force but no peak came"
        else:
            assert meta["peak_memory_mb"] > 1
        assert "Last cell:" in text
        assert "wall time s" in text


def test_kill_cell_processes(workspace: Path) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    with running_kernel(workspace, extra_arguments=["--Limits.kill_cell_processes=True"]) as (
        _,
        kc,
    ):
        code = (
            "import subprocess, sys\n"
            f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}], start_new_session=True)\n"
        )
        execute(kc, code)
        found = [
            p.pid for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])
        ]
        assert wait_gone(found) == []
        assert execute(kc, "1").status == "ok"
        # Ending the cell's processes spares the snapshot for the next cell: a crash
        # still rolls back to the state before it, not to an older one.
        execute(kc, "kept = 'second cell'")
        res = execute(kc, "kept = 'lost'\nimport os\nos._exit(1)", stop_on_error=False)
        assert res.reply["content"]["ename"] == "ExecutorDied"
        assert "restored" in strip_ansi(res.reply["content"]["evalue"])
        assert (
            execute(kc, "kept").of_type("execute_result")[0]["data"]["text/plain"]
            == "'second cell'"
        )


@pytest.mark.parametrize("level", ["namespaces", "landlock"])
@pytest.mark.parametrize("kill_cell_processes", [True, False], ids=["kill", "control"])
def test_kill_cell_processes_ends_children_and_adopted_orphans(
    workspace: Path, level: str, kill_cell_processes: bool
) -> None:
    """The kernel leaves out the supervisor's sweep when the cell left no process
    (kernel/leftovers.py). A cell that left a child, or an orphan that pid 1 or the
    launcher adopted, still has them ended; a cell that left only a zombie (no sweep)
    still has it collected. The control, with the setting off, shows the same
    processes outlive their cell and the zombie wait for its parent."""
    marker = f"marker-{uuid.uuid4().hex}"
    args = [f"--Limits.kill_cell_processes={kill_cell_processes}", f"--Isolation.level={level}"]
    with running_kernel(workspace, extra_arguments=args) as (_, kc):
        info = kc.kernel_info(reply=True, timeout=60)["content"]
        if info["sandbox"]["level"] != level:
            # The ladder fell back: this host lacks what the level needs (user
            # namespaces for namespaces, Landlock for landlock); the kernel says why.
            pytest.skip(
                f"needs the {level} level, which this host cannot give: it runs at "
                f"{info['sandbox']['level']} ({info['sandbox']})"
            )
        execute(kc, "kept = 'before'\nimport os, subprocess, sys, time")
        # Only a zombie left: no sweep, and the reap command collects it.
        zombie = execute(
            kc,
            "z = subprocess.Popen([sys.executable, '-c', 'pass'])\ntime.sleep(0.5)\nprint(z.pid)",
        ).stdout.split()[-1]
        waited = execute(kc, f"print(os.waitpid({zombie}, os.WNOHANG)[0])", stop_on_error=False)
        if kill_cell_processes:
            assert "ChildProcessError" in str(waited.reply["content"]), waited.reply["content"]
        else:
            assert waited.stdout.strip() == zombie, waited.reply["content"]
        # A child and an adopted orphan: seen alive while the cell runs.
        sleeper = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)"
        code = (
            f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', "
            f"{marker + '-child'!r}])\n"
            f"subprocess.run([sys.executable, '-c', {sleeper!r}, {marker + '-orphan'!r}])\n"
            "print('started', flush=True)\n"
            "time.sleep(3)"
        )
        msg_id = kc.execute(code)
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "stream"
                and "started" in msg["content"]["text"]
            ):
                break
        found: dict[int, str] = {}
        try:
            for _ in range(50):
                found = {
                    p.pid: p.info["cmdline"][-1]
                    for p in psutil.process_iter(["cmdline"])
                    if marker in " ".join(p.info["cmdline"] or [])
                }
                if len(found) == 2:
                    break
                time.sleep(0.1)
            assert sorted(found.values()) == [f"{marker}-child", f"{marker}-orphan"], found
            while True:
                reply = kc.get_shell_msg(timeout=60)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            assert reply["content"]["status"] == "ok", reply["content"]
            if kill_cell_processes:
                assert wait_gone(list(found)) == []
            else:
                time.sleep(0.5)
                assert all(psutil.pid_exists(pid) for pid in found), found
        finally:
            for pid in found:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
        # Rollback still falls back on the state before the crashing cell.
        res = execute(kc, "kept = 'lost'\nos._exit(1)", stop_on_error=False)
        assert res.reply["content"]["ename"] == "ExecutorDied"
        assert execute(kc, "print(kept)").stdout == "before\n"


@pytest.mark.parametrize("kill_cell_processes", [False, True], ids=["standard", "reaping"])
def test_a_crash_after_pages_were_copied_ahead_still_rolls_back(
    workspace: Path, kill_cell_processes: bool
) -> None:
    """After each snapshot the executor copies the pages the cells have been writing
    (child/hot_pages.py), so that the next cell need not. The state a crash falls back on
    is the snapshot's, which the copying never touches: it is still the one from before
    the cell, to the last element.

    With ``kill_cell_processes`` (the classroom preset) the next snapshot is taken by the
    kernel's reap command, after the old one was dropped; what the cells write must be
    learned all the same (it once was not, and nothing was ever copied there)."""
    args = [f"--Limits.kill_cell_processes={kill_cell_processes}"]
    with running_kernel(workspace, extra_arguments=args) as (_, kc):
        execute(kc, "kept = list(range(1000))")
        copied = []
        for _ in range(6):
            time.sleep(0.2)  # a person between cells: the copy runs to its end
            meta = execute(kc, "kept.append(len(kept))").reply["metadata"]["sandbox"]
            if meta.get("copy_ahead_off"):
                pytest.skip(f"this host does not copy pages ahead: {meta['copy_ahead_off']}")
            copied.append(meta["pages_copied_ahead"])
            # A 0 always comes with its reason (here: the first cells are learned from).
            if not meta["pages_copied_ahead"]:
                assert meta.get("copy_ahead_note"), meta
        assert max(copied) > 0, copied
        time.sleep(0.2)
        res = execute(kc, "kept.append('lost')\nimport os; os._exit(3)", stop_on_error=False)
        assert res.reply["content"]["ename"] == "ExecutorDied", res.reply["content"]
        assert "restored" in strip_ansi(res.reply["content"]["evalue"])
        assert execute(kc, "print(len(kept), kept[-1])").stdout.split() == ["1006", "1005"]
        text = execute(kc, "%sandbox").stdout
        assert "pages copied ahead:" in text, text


def test_rollback_holds_when_requests_arrive_back_to_back(limited) -> None:
    """nbclient sends the next cell the moment a reply arrives: the snapshot announced
    just before the fatal cell must still be the one that takes over."""
    _, kc = limited
    for round_ in range(5):
        cells = [f"kept = {round_}", "1/0", "import os; os._exit(0)", "print(kept)"]
        ids = [kc.execute(code, stop_on_error=False) for code in cells]
        replies: dict[str, dict] = {}
        while not all(msg_id in replies for msg_id in ids):
            msg = kc.get_shell_msg(timeout=60)
            replies[msg["parent_header"].get("msg_id")] = msg["content"]
        assert replies[ids[2]]["ename"] == "ExecutorDied"
        assert "restored" in strip_ansi(replies[ids[2]]["evalue"]), replies[ids[2]]["evalue"]
        assert replies[ids[3]]["status"] == "ok"
