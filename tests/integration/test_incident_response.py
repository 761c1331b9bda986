"""SECURITY.md's "Incident response" commands, run as written against real kernels.

Two kernels (users alice and bob, as getpass sees them) write one audit log; the jq
queries are taken from SECURITY.md itself and run with its variables pointed at that
log. The "stop every kernel" pattern is checked with pgrep on this (shared) machine
and used with pkill only on this test's kernels; the lock's timing is checked from
outside: the running kernel keeps its lock, the one started after the edit has it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.utils import execute, kernel_pid, process_tree, running_kernel, wait_gone

ROOT = Path(__file__).resolve().parents[2]
SECTION = (ROOT / "SECURITY.md").read_text().split("## Incident response", 1)[1].split("\n## ")[0]
BLOCKS = re.findall(r"```sh\n(.*?)```", SECTION, re.S)
KERNEL_PATTERN = "-m sandbox_kernel -f "

ALICE_CELLS = [
    "!echo listing",
    "[c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == 'Popen']",
    "import faulthandler\nfaulthandler._sigsegv()",
    "x = 1",
]
BOB_CELLS = ["import ctypes", "y = 2"]


def jq_lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.startswith("jq ")]


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"needs {tool} (apt-get install {tool})")
    return path


@pytest.fixture(scope="module")
def audit_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require("jq")
    base = tmp_path_factory.mktemp("incident")
    base.chmod(0o755)
    log = base / "audit.jsonl"
    start = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    for user, cells in (("alice", ALICE_CELLS), ("bob", BOB_CELLS)):
        ws = base / user
        ws.mkdir()
        ws.chmod(0o755)
        env = {**os.environ, "USER": user, "LOGNAME": user}
        with running_kernel(ws, env=env, extra_arguments=[f"--Policy.audit_log={log}"]) as (
            _,
            kc,
        ):
            for code in cells:
                execute(kc, code, stop_on_error=False)
    end = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    return {"log": log, "start": start, "end": end, "base": base}


def run_query(query: str, run: dict[str, Any], **variables: str) -> list[Any]:
    env = {**os.environ, "LOG": str(run["log"]), "U": "alice", "RULE": "SKP220"}
    env.update({"FROM": run["start"], "TO": run["end"], **variables})
    result = subprocess.run(
        ["bash", "-c", query], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{query}\n{result.stderr}"
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_the_section_gives_the_queries() -> None:
    assert len(BLOCKS) >= 3
    assert len(jq_lines(BLOCKS[0])) == 6
    # The variables the queries use are set in the block itself.
    assert re.search(r"^LOG=", BLOCKS[0], re.M)
    assert re.search(r"^U=\S+ RULE=\S+ FROM=\S+ TO=\S+", BLOCKS[0], re.M)


def test_queries_by_user_rule_and_time(audit_run: dict[str, Any]) -> None:
    by_user, by_rule, by_time, denied, crashed, vouched = jq_lines(BLOCKS[0])
    rows = run_query(by_user, audit_run)
    rules = {rule for row in rows for rule in row[1]}
    assert {"SKP101", "SKP220"} <= rules, rows
    assert "SKP201" not in rules, "bob's ctypes import is not alice's"
    rows = run_query(by_rule, audit_run)
    assert rows
    assert {row[1] for row in rows} == {"alice"}
    assert {row[3] for row in rows} == {"denied"}
    rows = run_query(by_time, audit_run)
    assert {row[1] for row in rows} == {"alice", "bob"}
    assert run_query(by_time, audit_run, FROM="2001-01-01T00:00", TO="2001-01-02T00:00") == []
    (summary,) = run_query(denied, audit_run)
    assert [(row["user"], row["denied"]) for row in summary] == [("alice", 1), ("bob", 1)]
    assert "SKP220" in summary[0]["rules"]
    assert summary[1]["rules"] == ["SKP201"]
    rows = run_query(crashed, audit_run)
    assert [(row[1], row[2]) for row in rows] == [("alice", "ExecutorDied")]
    rows = run_query(vouched, audit_run)
    assert {rule for row in rows for rule in row[2]} >= {"SKP220", "SKP201"}


def test_notebook_cells_are_found_by_hash(audit_run: dict[str, Any]) -> None:
    (hasher,) = [line for line in BLOCKS[1].splitlines() if line.startswith("python3 ")]
    notebook = audit_run["base"] / "notebook.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in ALICE_CELLS])
    nbformat.write(nb, notebook)
    result = subprocess.run(
        ["bash", "-c", hasher.replace("python3", sys.executable, 1)],
        cwd=audit_run["base"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    hashes = dict(line.split() for line in result.stdout.splitlines())
    assert sorted(hashes.values()) == ["1", "2", "3", "4"]
    logged = {json.loads(line)["cell_sha256"] for line in audit_run["log"].read_text().splitlines()}
    assert set(hashes) <= logged
    assert hashlib.sha256(ALICE_CELLS[1].encode()).hexdigest() in hashes


@pytest.fixture
def own_runtime(tmp_path: Path) -> Path:
    """Connection files of this test's kernels in a directory of their own, so that a
    pkill pattern can name them and nobody else's kernels on this machine."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    return runtime


def start(ws: Path, runtime: Path, **kw: Any) -> KernelManager:
    ws.mkdir(exist_ok=True)
    ws.chmod(0o755)
    connection = runtime / f"kernel-{os.urandom(4).hex()}.json"
    km = KernelManager(kernel_name="sandbox-python", connection_file=str(connection))
    km.start_kernel(cwd=str(ws), **kw)
    return km


@contextlib.contextmanager
def client(km: KernelManager) -> Iterator[BlockingKernelClient]:
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield kc
    finally:
        kc.stop_channels()


@pytest.fixture
def two_kernels(tmp_path: Path, own_runtime: Path) -> Iterator[list[KernelManager]]:
    managers = []
    try:
        for name in ("a", "b"):
            managers.append(start(tmp_path / name, own_runtime))
        for km in managers:
            with client(km) as kc:
                execute(kc, "import subprocess\np = subprocess.Popen(['sleep', '300'])")
        yield managers
    finally:
        for km in managers:
            # Also for a kernel that is gone: this closes the manager's ZMQ context.
            km.shutdown_kernel(now=True)


def test_stop_every_kernel(two_kernels: list[KernelManager], own_runtime: Path) -> None:
    require("pkill")
    stop_all, _, check = [line.split("#")[0].strip() for line in BLOCKS[2].splitlines()[:3]]
    assert stop_all == f"pkill -TERM -f -- '{KERNEL_PATTERN}'"
    assert check == f"pgrep -a -f -- '{KERNEL_PATTERN}'"
    ours = [kernel_pid(km) for km in two_kernels]
    tree = [p.pid for pid in ours for p in process_tree(pid)]
    # The sandboxes hold more than the kernels: launcher, pid 1, executor, `sleep`.
    assert len(tree) > 2 * len(ours) + 2, tree
    # The documented pattern finds these kernels, and only sandbox kernels.
    listed = subprocess.run(
        ["pgrep", "-a", "-f", "--", KERNEL_PATTERN], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    found = {int(line.split()[0]): line for line in listed}
    assert set(ours) <= set(found), listed
    for line in found.values():
        assert KERNEL_PATTERN in line, line
    # The same command, narrowed to this test's connection files (this machine is shared).
    subprocess.run(
        ["pkill", "-TERM", "-f", "--", f"{KERNEL_PATTERN}{own_runtime}"], check=True, timeout=30
    )
    assert wait_gone(tree, timeout=30) == [], "a sandbox process outlived its kernel"


def test_a_tightened_lock_applies_to_the_next_kernel(tmp_path: Path, own_runtime: Path) -> None:
    lock = tmp_path / "locks.json"
    lock.write_text(json.dumps({"locked_by": "staff", "locked": {"Limits.max_processes": 100}}))
    env = {**os.environ, "SANDBOX_KERNEL_LOCKS": str(lock)}
    ws = tmp_path / "ws"
    km = start(ws, own_runtime, env=env)
    try:
        with client(km) as kc:
            assert execute(kc, "!echo before").status == "ok"
            lock.write_text(
                json.dumps(
                    {
                        "locked_by": "staff",
                        "locked": {"Limits.max_processes": 100, "Policy.rules": {"shell": "deny"}},
                    }
                )
            )
            # The running kernel keeps the lock it started with, as SECURITY.md says.
            assert execute(kc, "!echo still").status == "ok"
            tree = [p.pid for p in process_tree(kernel_pid(km))]
            subprocess.run(
                ["pkill", "-TERM", "-f", "--", f"{KERNEL_PATTERN}{own_runtime}"], check=True
            )
            assert wait_gone(tree, timeout=30) == []
    finally:
        km.shutdown_kernel(now=True)
    with running_kernel(ws, env=env) as (_, kc):
        refused = execute(kc, "!echo after", stop_on_error=False)
        assert refused.reply["content"]["ename"] == "SandboxPolicyError"
        report = execute(kc, "%sandbox").stdout
        assert f"staff ({lock}): Limits.max_processes=100, Policy.rules={{'shell': 'deny'}}" in (
            report
        )
