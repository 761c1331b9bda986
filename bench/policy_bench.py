"""What the static policy check costs per cell: p50/p99 over the corpus, and a 10,000-line cell.

Run from the repository root: ``python bench/policy_bench.py`` (``--help`` for options).
Each cell is timed as the best of several runs, so the figures describe the checker
rather than the scheduler; a calibration loop shows how fast the machine was.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox_kernel.policy import PolicySettings, check_cell  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "notebooks"
TARGET_P99_MS = 2.0


def corpus_cells(directory: Path) -> list[str]:
    cells = []
    for path in sorted(directory.glob("*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for cell in notebook.get("cells", []):
            if cell.get("cell_type") == "code":
                source = cell.get("source", "")
                cells.append("".join(source) if isinstance(source, list) else source)
    return cells


def best_of(source: str, settings: PolicySettings, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        check_cell(source, settings)
        best = min(best, time.perf_counter() - start)
    return best


def big_cell(lines: int) -> str:
    templates = (
        "x{i} = np.sum(data[{i}:{i} + 10]) * {i}",
        "name{i} = 'col' + str({i})",
        "result{i} = getattr(obj, 'attr{i}', None)",
        "label{i} = f'value {{x{i}:>8}}'",
        "items{i} = [k for k in range({i}) if k % 3]",
    )
    return "\n".join(templates[i % len(templates)].format(i=i) for i in range(lines))


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def calibrate() -> float:
    start = time.perf_counter()
    sum(range(1_000_000))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        help="directory of .ipynb files (default: the shared corpus)",
    )
    parser.add_argument("--preset", default="standard", help="policy preset to check with")
    parser.add_argument("--repeat", type=int, default=5, help="runs per cell (best is kept)")
    parser.add_argument("--lines", type=int, default=10_000, help="size of the big cell")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)

    if not args.corpus.is_dir():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    settings = PolicySettings(args.preset)
    cells = corpus_cells(args.corpus)
    for source in cells:  # warm up imports and caches
        check_cell(source, settings)

    times = sorted(best_of(source, settings, args.repeat) for source in cells)
    big = big_cell(args.lines)
    big_time = best_of(big, settings, 3)
    calibration = calibrate()

    ms = 1000.0
    results = {
        "preset": args.preset,
        "cells": len(cells),
        "p50_ms": percentile(times, 0.50) * ms,
        "p90_ms": percentile(times, 0.90) * ms,
        "p99_ms": percentile(times, 0.99) * ms,
        "max_ms": times[-1] * ms,
        "mean_ms": statistics.fmean(times) * ms,
        "big_cell_lines": args.lines,
        "big_cell_s": big_time,
        "calibration_ms": calibration * ms,
    }
    rows = [
        ("corpus code cells", f"{results['cells']}"),
        ("p50 per cell", f"{results['p50_ms']:.3f} ms"),
        ("p90 per cell", f"{results['p90_ms']:.3f} ms"),
        ("p99 per cell", f"{results['p99_ms']:.3f} ms  (target < {TARGET_P99_MS} ms)"),
        ("max per cell", f"{results['max_ms']:.3f} ms"),
        ("mean per cell", f"{results['mean_ms']:.3f} ms"),
        (f"{args.lines:,}-line cell", f"{results['big_cell_s'] * ms:.0f} ms"),
        ("calibration: sum(range(1e6))", f"{results['calibration_ms']:.1f} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"check_cell cost, preset {args.preset!r}, best of {args.repeat} runs per cell")
    print("-" * (width + 30))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
