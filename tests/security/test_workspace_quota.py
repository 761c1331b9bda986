"""The workspace quota holds at both levels, measured on the host's disk from outside.

A cell fills the workspace with many files, each below the per-file limit (the
attack that ``max_file_size_mb`` alone did not stop). From outside, the test
measures the workspace's allocated size before and after: it may grow by at
most the quota and the margin SECURITY.md states, the cell fails with
``DiskQuotaExceeded`` naming the setting, and the kernel keeps serving.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.conftest import OS_LAYER_ONLY, Host, Sandbox, start_sandbox
from tests.utils import strip_ansi

MIB = 1024 * 1024
QUOTA_MB = 64
# SECURITY.md: what a cell writes in one measurement interval. 0.1 s at the page
# cache's speed; 512 MiB leaves room for a loaded machine and is still an eighth
# of what the cell below tries to write.
MARGIN_MB = 512
FILL_MB = 4096


def disk_use(root: Path) -> int:
    """Allocated bytes under ``root``, each inode once, as du counts them."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            info = os.lstat(os.path.join(directory, name))
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total


@pytest.fixture(scope="module", params=["namespaces", "landlock"])
def quota_box(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, host: Host
) -> Iterator[Sandbox]:
    workspace = tmp_path_factory.mktemp(f"quota-{request.param}")
    workspace.chmod(0o777)
    box = start_sandbox(
        request.param,
        workspace,
        host,
        extra=[*OS_LAYER_ONLY, f"--Limits.workspace_quota_mb={QUOTA_MB}"],
    )
    try:
        yield box
    finally:
        box.close()


def test_filling_the_workspace_stops_at_the_quota(quota_box: Sandbox) -> None:
    ws = quota_box.workspace
    quota_box.run("kept = 'before the fill'")
    before = disk_use(ws)
    # Many files, each far below the per-file limit, written as fast as Python can.
    code = (
        "chunk = b'x' * (8 << 20)\n"
        f"for i in range({FILL_MB // 8}):\n"
        "    with open(f'fill-{i}.bin', 'wb') as f:\n"
        "        f.write(chunk)\n"
    )
    res = quota_box.run(code, timeout=300)
    grown = disk_use(ws) - before
    print(f"{quota_box.level}: the workspace grew by {grown / MIB:.0f} MiB (quota {QUOTA_MB})")
    content = res.reply["content"]
    assert content["status"] == "error", res.outputs
    assert content["ename"] == "DiskQuotaExceeded", content
    text = strip_ansi(content["evalue"])
    assert "Limits.workspace_quota_mb" in text, text
    assert grown <= (QUOTA_MB + MARGIN_MB) * MIB, f"the workspace grew by {grown / MIB:.0f} MiB"
    assert grown >= QUOTA_MB * MIB, "the cell was stopped before it reached the quota"
    # The kernel keeps serving, and the state from before the cell is there.
    assert quota_box.run("kept").of_type("execute_result")[0]["data"]["text/plain"] == repr(
        "before the fill"
    )
    assert "workspace growth" in quota_box.run("%sandbox").stdout
    # Over the quota, a cell that writes more is stopped again; one that frees space runs.
    more = (
        "import time\n"
        "for i in range(64):\n"
        "    open(f'more-{i}.bin', 'wb').write(b'y' * (1 << 20))\n"
        "    time.sleep(0.02)\n"
    )
    again = quota_box.run(more, timeout=120)
    assert again.reply["content"]["ename"] == "DiskQuotaExceeded", again.outputs
    freed = quota_box.run("import glob, os\nfor f in glob.glob('*.bin'):\n    os.remove(f)")
    assert freed.status == "ok", freed.outputs
    assert disk_use(ws) <= before + MIB
    assert quota_box.run("open('small.txt', 'w').write('fits')").status == "ok"


def test_one_file_cannot_exceed_the_quota(quota_box: Sandbox) -> None:
    """The per-file limit is never above the quota: a single large file stops at once."""
    res = quota_box.run("open('one.bin', 'wb').write(b'z' * (96 << 20))", timeout=120)
    # RLIMIT_FSIZE refuses the write (OSError, named in a notice), unless the
    # measurement caught the file at the quota first.
    content = res.reply["content"]
    assert content["ename"] in {"OSError", "DiskQuotaExceeded"}, res.outputs
    assert "Limits.workspace_quota_mb" in res.stderr + strip_ansi(content["evalue"]), res.outputs
    size = (quota_box.workspace / "one.bin").stat().st_size
    assert size <= QUOTA_MB * MIB
    quota_box.run("import os; os.remove('one.bin')")


def test_a_background_writer_is_stopped_between_cells(quota_box: Sandbox) -> None:
    """A thread that writes after its cell ended: no cell runs to be stopped, the executor is."""
    ws = quota_box.workspace
    before = disk_use(ws)
    code = (
        "import threading, time\n"
        "def fill():\n"
        f"    for i in range({FILL_MB}):\n"
        "        open(f'bg-{i}.bin', 'wb').write(b'w' * (1 << 20))\n"
        "        time.sleep(0.002)\n"
        "threading.Thread(target=fill, daemon=True).start()\n"
    )
    assert quota_box.run(code).status == "ok"
    # From outside: wait until the workspace stops growing (it would go on for 4 GiB).
    last, deadline = -1, time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = disk_use(ws)
        if now == last:
            break
        last = now
    grown = disk_use(ws) - before
    print(f"{quota_box.level}: a background thread grew the workspace by {grown / MIB:.0f} MiB")
    assert grown <= (QUOTA_MB + MARGIN_MB) * MIB, f"the workspace grew by {grown / MIB:.0f} MiB"
    res = quota_box.run("print('next')")
    assert "next" in res.stdout
    assert "DiskQuotaExceeded" in res.stderr, res.stderr
    assert "while no cell was running" in res.stderr, res.stderr
    assert "Limits.workspace_quota_mb" in res.stderr, res.stderr
    quota_box.run("import glob, os\nfor f in glob.glob('bg-*.bin'):\n    os.remove(f)")
