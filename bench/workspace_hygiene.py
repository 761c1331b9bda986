"""What the workspace scan (sandbox_kernel/kernel/hygiene.py) costs per cell.

Two parts:

* the trusted side's own work, timed in this process on a synthetic project of
  ``--files`` files (default 10,000 in 100 directories, with a git repository
  whose ``.git/objects`` holds 2,000 files): the kernel's start (a full walk and
  the copies of guarded files), a cell's start (``begin_cell``) and end
  (``scan``) when the cell wrote nothing, one file, or 1,000 files in 10
  directories;
* a ``pass`` cell's round trip through a real kernel in that project, in an
  empty one and in the project that holds the virtualenv this runs from (the
  checkout and its ``.venv``: the kernel's own prefix, read-only in the sandbox at
  the namespaces level and left out of the scans), interleaved with stock
  ipykernel (``--kernels``).

    .venv/bin/python bench/workspace_hygiene.py [--files 10000] [--reps 30] [--kernels]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sandbox_kernel.config import CONTROL_FILES, SHADOW_MODULES
from sandbox_kernel.kernel.hygiene import WorkspaceGuard


def make_project(root: Path, files: int) -> None:
    per_dir = 100
    for i in range(files):
        d = root / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.csv").write_text("a,b\n1,2\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    objects = root / ".git" / "objects"
    for i in range(2000):
        sub = objects / f"{i % 256:02x}"
        sub.mkdir(exist_ok=True)
        (sub / f"{i:038x}").write_bytes(b"x")
    time.sleep(0.02)  # one tick of the clock file times come from


def timed(
    fn: Callable[[], object], reps: int, before: Callable[[], object] | None = None
) -> list[float]:
    out = []
    for _ in range(reps):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def row(name: str, samples: list[float]) -> None:
    med = statistics.median(samples) * 1000
    p90 = sorted(samples)[int(len(samples) * 0.9) - 1] * 1000
    print(f"| {name} | {med:.2f} | {p90:.2f} |")


def guard_costs(root: Path, reps: int) -> None:
    print("| trusted side (ms) | median | p90 |\n| --- | --- | --- |")
    row(
        "kernel start: full walk, copies of guarded files",
        timed(lambda: WorkspaceGuard(str(root), list(CONTROL_FILES), list(SHADOW_MODULES)), 5),
    )
    guard = WorkspaceGuard(str(root), list(CONTROL_FILES), list(SHADOW_MODULES))
    time.sleep(0.01)
    row("cell start (begin_cell), nothing changed", timed(guard.begin_cell, reps))
    row("cell end (scan), the cell wrote nothing", timed(guard.scan, reps))
    counter = iter(range(10**9))

    def write_one() -> None:
        (root / "d050" / f"new{next(counter)}.txt").write_text("x")
        time.sleep(0.005)

    row("cell end (scan), one file written", timed(guard.scan, reps, before=write_one))

    def write_many() -> None:
        n = next(counter)
        for i in range(1000):
            (root / f"d{i % 10:03d}" / f"bulk{n}-{i}.txt").write_text("x")
        time.sleep(0.005)

    row("cell end (scan), 1,000 files in 10 directories", timed(guard.scan, 5, before=write_many))
    print(
        f"\n(last scan: {guard.stats.dirs} directories opened, "
        f"{guard.stats.entries_examined} entries examined)"
    )


def kernel_costs(root: Path, empty: Path, reps: int) -> None:
    from jupyter_client.manager import KernelManager

    kernels = {}
    places = [
        ("sandbox, 10,000 files", "sandbox-python", root),
        ("sandbox, empty", "sandbox-python", empty),
        ("stock, 10,000 files", "python3", root),
    ]
    if sys.prefix != sys.base_prefix:  # a virtualenv: the project that holds it
        project = Path(sys.prefix).parent
        venv = Path(sys.prefix).name
        places += [
            (
                f"sandbox, {project} (next to its {venv})",
                "sandbox-python",
                project,
            ),
            (f"stock, {project}", "python3", project),
        ]
    for name, kernel, cwd in places:
        km = KernelManager(kernel_name=kernel)
        km.start_kernel(cwd=str(cwd))
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        kc.execute_interactive("pass", timeout=60)
        kernels[name] = (km, kc)
    samples: dict[str, list[float]] = {name: [] for name in kernels}
    try:
        for _ in range(reps):
            for name, (_, kc) in kernels.items():  # interleaved
                t = time.perf_counter()
                kc.execute_interactive("pass", timeout=60)
                samples[name].append(time.perf_counter() - t)
    finally:
        for km, kc in kernels.values():
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    print("\n| `pass` round trip (ms) | median | p90 |\n| --- | --- | --- |")
    for name, values in samples.items():
        row(name, values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--kernels", action="store_true", help="also time pass cells")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hygiene-bench-") as tmp:
        root = Path(tmp) / "project"
        empty = Path(tmp) / "empty"
        empty.mkdir()
        os.chmod(tmp, 0o755)
        make_project(root, args.files)
        print(f"{args.files} files in {args.files // 100} directories, 2,000 git objects\n")
        guard_costs(root, args.reps)
        if args.kernels:
            kernel_costs(root, empty, args.reps)


if __name__ == "__main__":
    main()
