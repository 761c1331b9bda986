"""What a workspace's size costs per cell (the quota's measurement): empty and large workspace.

The kernel measures the workspace from outside (``sandbox_kernel/kernel/quota.py``)
whenever the sandbox has written to disk, so its cost grows with the number of
files in the workspace. Two workspaces: empty, and 10,000 files of 100 KiB
(about 1 GB) in 100 directories. In each, ``sandbox-python`` (default
settings) and stock ``python3`` run the same cells, interleaved (the order
alternates on every repetition): a trivial cell (``1+1``) and a cell that
writes a small file (which makes the kernel measure the workspace). Reported:
p50/p99 per cell and kind, the ratio to stock, the time one measurement of the
workspace takes, and the trusted kernel's CPU while idle and while cells write.

Files are not rolled back (SECURITY.md), so there is no per-cell copy or
commit of the workspace to measure; this is the whole per-workspace cost.

Usage::

    .venv/bin/python bench/workspace.py              # 200 repetitions, about 5 minutes
    .venv/bin/python bench/workspace.py --reps 40    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import psutil
from run import MIB, Kernel, bench_session, environment, progress, result_paths, source_digest

from sandbox_kernel.kernel.quota import WorkspaceMeter

KINDS = {"sandbox": "sandbox-python", "stock": "python3"}
TRIVIAL = "1+1"
WRITE = "open('bench-out.txt', 'w').write('x' * 1000)"
FILES, DIRS, FILE_BYTES = 10_000, 100, 100 * 1024


def fill(workspace: Path) -> None:
    block = b"\0" * FILE_BYTES
    for d in range(DIRS):
        sub = workspace / f"dir{d:03d}"
        sub.mkdir()
        for f in range(FILES // DIRS):
            (sub / f"file{f:03d}.bin").write_bytes(block)


def kernel_cpu_s(kernel: Kernel) -> float:
    times = psutil.Process(kernel.pid).cpu_times()
    return float(times.user + times.system)


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(values),
        "p50_ms": statistics.median(values) * 1e3,
        "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1e3,
    }


def run_setup(
    name: str, workspace: Path, log: Any, reps: int, sandbox_args: tuple[str, ...]
) -> dict[str, Any]:
    meter = WorkspaceMeter(str(workspace))
    scans = [meter.measure() and meter.scan_s for _ in range(5)]
    out: dict[str, Any] = {"measure_ms": statistics.median(scans) * 1e3}
    progress(f"== {name}: one measurement of the workspace takes {out['measure_ms']:.1f} ms")
    kernels = {
        kind: Kernel(kind, spec, workspace, log, sandbox_args if kind == "sandbox" else ())
        for kind, spec in KINDS.items()
    }
    try:
        for kernel in kernels.values():
            kernel.start()
            for _ in range(5):  # warm up
                kernel.execute(TRIVIAL)
                kernel.execute(WRITE)
        time.sleep(2.0)
        idle0 = {k: kernel_cpu_s(v) for k, v in kernels.items()}
        time.sleep(10.0)
        out["idle_kernel_cores"] = {
            k: (kernel_cpu_s(v) - idle0[k]) / 10.0 for k, v in kernels.items()
        }
        samples: dict[str, dict[str, list[float]]] = {
            k: {"trivial": [], "write": []} for k in KINDS
        }
        busy0 = {k: kernel_cpu_s(v) for k, v in kernels.items()}
        t0 = time.monotonic()
        for rep in range(reps):
            order = list(kernels) if rep % 2 == 0 else list(reversed(kernels))
            for kind in order:
                for cell, code in (("trivial", TRIVIAL), ("write", WRITE)):
                    result = kernels[kind].execute(code)
                    if result.reply.get("status") != "ok":
                        raise RuntimeError(f"{kind} {cell}: {result.reply}")
                    samples[kind][cell].append(result.elapsed_s)
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        out["kernel_cores_while_writing"] = {
            k: (kernel_cpu_s(v) - busy0[k]) / elapsed for k, v in kernels.items()
        }
        out["cells"] = {k: {c: stats(v) for c, v in cells.items()} for k, cells in samples.items()}
    finally:
        for kernel in kernels.values():
            kernel.shutdown()
    return out


def report(results: dict[str, Any]) -> str:
    lines = [
        f"{'workspace':<12}{'cell':<9}{'sandbox p50/p99 ms':>20}{'stock p50/p99 ms':>20}"
        f"{'p50 ratio':>11}"
    ]
    for name, res in results.items():
        sb, st = res["cells"]["sandbox"], res["cells"]["stock"]
        for cell in ("trivial", "write"):
            a, b = sb[cell], st[cell]
            lines.append(
                f"{name:<12}{cell:<9}{a['p50_ms']:>11.1f} /{a['p99_ms']:>6.1f}"
                f"{b['p50_ms']:>12.1f} /{b['p99_ms']:>6.1f}{a['p50_ms'] / b['p50_ms']:>10.2f}x"
            )
    lines.append("")
    for name, res in results.items():
        idle, busy = res["idle_kernel_cores"], res["kernel_cores_while_writing"]
        lines.append(
            f"{name}: one measurement {res['measure_ms']:.1f} ms; trusted kernel CPU idle "
            f"{idle['sandbox']:.3f} cores (stock {idle['stock']:.3f}), while cells write "
            f"{busy['sandbox']:.3f} cores (stock {busy['stock']:.3f})"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--sandbox-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the sandbox kernel (repeat), e.g. --Limits.workspace_quota_mb=0",
    )
    args = parser.parse_args()
    stamp, json_path, log_path = result_paths(args.json, "workspace")
    meta = environment(args) | {"started": stamp, "source": source_digest()}
    results: dict[str, Any] = {}
    with bench_session("workspace", log_path) as (workdir, log):
        for name in ("empty", "10k-1GB"):
            workspace = workdir / name
            workspace.mkdir()
            os.chmod(workspace, 0o755)
            if name != "empty":
                progress(f"filling {name}: {FILES} files, {FILES * FILE_BYTES / MIB:.0f} MiB")
                fill(workspace)
            results[name] = run_setup(name, workspace, log, args.reps, tuple(args.sandbox_arg))
    text = report(results)
    print(text)
    json_path.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    progress(f"results: {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
