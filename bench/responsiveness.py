"""Timings that used to be asserted in tests, measured here instead (issue 11: targets
live in benchmarks, never in timed tests). Each prints the number, its target, and where
there is a reference, the ratio sandbox/reference.

- ``flood``: control-channel kernel_info round trip while a cell prints as fast as it can,
  sandbox kernel vs stock ipykernel (was: ``max(latencies) < 2.0`` in
  tests/integration/test_output_limits.py).
- ``audit``: one ``open()`` under the executor's audit hooks vs without them (was:
  ``per_open_us < 200`` in tests/unit/test_audit_hooks.py).
- ``growth``: the policy check of a 8,000-line cell over a 2,000-line one (was:
  ``ratio < 8`` in tests/unit/test_policy_robustness.py; linear is about 4, quadratic 16).

The interrupt latency (was: ``latency < 2.0`` in tests/integration/test_interrupt.py) is
the ``interrupt`` row of bench/run.py.

Usage: ``.venv/bin/python bench/responsiveness.py [--only flood,audit,growth]``
Targets are goals, not assertions: the exit status is 0 unless a step raised.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.utils import control_round_trip, execute_until_idle, running_kernel  # noqa: E402

FLOOD_TARGET_MAX_S = 2.0
AUDIT_TARGET_US = 200.0
GROWTH_TARGET = 8.0


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def flood_latencies(kernel_name: str, seconds: float) -> list[float]:
    """kernel_info round trips on the control channel, one a second, while a cell floods."""
    code = (
        f"import time\nt = time.time()\nwhile time.time() - t < {seconds}:\n"
        "    print('flood ' * 20)"
    )
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as cwd, running_kernel(cwd, kernel_name) as (_, kc):
        next_probe = time.monotonic() + 1

        def probe() -> None:
            nonlocal next_probe
            if time.monotonic() <= next_probe:
                return
            latencies.append(control_round_trip(kc, timeout=30))
            next_probe = time.monotonic() + 1

        execute_until_idle(kc, code, poll=probe, timeout=seconds + 120)
    return latencies


def bench_flood(args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    for role, name in (("sandbox", args.kernel), ("stock", args.reference)):
        lat = flood_latencies(name, args.flood_s)
        out[f"{role}_median_s"] = statistics.median(lat)
        out[f"{role}_max_s"] = max(lat)
        out[f"{role}_probes"] = len(lat)
    ratio = out["sandbox_median_s"] / out["stock_median_s"]
    print(
        f"flood: control round trip, median {out['sandbox_median_s'] * 1e3:.1f} ms "
        f"(stock {out['stock_median_s'] * 1e3:.1f} ms, ratio {ratio:.2f}), "
        f"max {out['sandbox_max_s']:.3f} s (stock {out['stock_max_s']:.3f} s), "
        f"target max < {FLOOD_TARGET_MAX_S} s: "
        f"{_verdict(out['sandbox_max_s'] < FLOOD_TARGET_MAX_S)}"
    )
    out["ratio_median"] = ratio
    return out


AUDIT_SCRIPT = """
import json, os, sys, time
if sys.argv[1] == "hooked":
    from sandbox_kernel.child import audit
    settings = {"preset": "standard", "rules": {}, "runtime_hooks": True}
    audit.install(settings, [].append, os.getcwd())
open("data.txt", "w").close()
best = float("inf")
for _ in range(5):
    start = time.perf_counter()
    for _ in range(3000):
        open("data.txt").close()
    best = min(best, time.perf_counter() - start)
print(json.dumps(best / 3000 * 1e6))
"""


def bench_audit(args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cwd:
        for mode in ("hooked", "bare"):
            proc = subprocess.run(
                [sys.executable, "-c", textwrap.dedent(AUDIT_SCRIPT), mode],
                cwd=cwd,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
                check=True,
            )
            out[f"{mode}_us"] = float(proc.stdout.strip().splitlines()[-1])
    out["ratio"] = out["hooked_us"] / out["bare_us"]
    print(
        f"audit: open() {out['hooked_us']:.1f} us under the hooks, {out['bare_us']:.1f} us "
        f"without (ratio {out['ratio']:.1f}), target < {AUDIT_TARGET_US:.0f} us: "
        f"{_verdict(out['hooked_us'] < AUDIT_TARGET_US)}"
    )
    return out


def bench_growth(args: argparse.Namespace) -> dict[str, float]:
    from bench.policy_bench import best_of, big_cell
    from sandbox_kernel.policy import PolicySettings

    settings = PolicySettings("standard")
    small = best_of(big_cell(2_000), settings, 3)
    large = best_of(big_cell(8_000), settings, 3)
    ratio = large / small
    print(
        f"growth: check_cell 2,000 lines {small * 1e3:.0f} ms, 8,000 lines {large * 1e3:.0f} ms, "
        f"ratio {ratio:.2f} (linear 4, quadratic 16), target < {GROWTH_TARGET:g}: "
        f"{_verdict(ratio < GROWTH_TARGET)}"
    )
    return {"small_s": small, "large_s": large, "ratio": ratio}


BENCHES = {"flood": bench_flood, "audit": bench_audit, "growth": bench_growth}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default=",".join(BENCHES), help="comma-separated: " + ", ".join(BENCHES)
    )
    parser.add_argument("--kernel", default="sandbox-python", help="kernelspec under test")
    parser.add_argument("--reference", default="python3", help="kernelspec to compare with")
    parser.add_argument(
        "--flood-s", type=float, default=15.0, help="how long the flood cell prints"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    results = {name: BENCHES[name](args) for name in args.only.split(",") if name}
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
