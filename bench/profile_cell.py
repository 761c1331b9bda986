"""Where the milliseconds of a trivial cell go: a timeline across client, kernel and executor.

Starts the sandbox kernel and stock ipykernel with timing hooks (``profile_hooks.py``:
wrappers around the methods on a cell's path, one clock for every process), runs
``1+1`` (or ``--cell``) back to back in chunks of 10, alternating the two kernels, and
prints the median of each step from the client's ``execute_request`` to the client
seeing ``status: idle``, for both kernels where they share the step.

```sh
.venv/bin/python bench/profile_cell.py --cells 400
.venv/bin/python bench/profile_cell.py --cells 200 --sandbox-arg=--Limits.rollback=False
.venv/bin/python bench/profile_cell.py --setup 'import numpy as np; big = np.ones(2**27)'
```

The hooks cost a few microseconds per wrapped call (about 20 per cell); the
client-side round trip is printed next to the same run without hooks
(``bench/run.py``) in bench/README.md, so that their weight is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Kernel, bench_session, result_paths

HOOKS = Path(__file__).resolve().parent / "profile_hooks.py"


class HookedKernel(Kernel):
    """A kernel whose argv runs through profile_hooks.py."""

    def __init__(self, *args: Any, stock: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stock = stock

    def start(self) -> float:
        from jupyter_client.manager import KernelManager

        self.km = KernelManager(kernel_name=self.name)
        spec = self.km.kernel_spec
        assert spec is not None
        argv = [sys.executable, "-I", str(HOOKS)]
        if self.stock:
            argv.append("--stock")
        spec.argv = [*argv, "-f", "{connection_file}"]
        t0 = time.perf_counter()
        self.km.start_kernel(
            cwd=str(self.cwd),
            stdout=self.log,
            stderr=self.log,
            extra_arguments=list(self.extra_args),
        )
        self.kc = self.km.client()
        self.kc.start_channels()
        elapsed = self._first_kernel_info(t0)
        self.kc.wait_for_ready(timeout=60)
        return elapsed


def load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def span(record: dict[str, Any], name: str, first: bool = False) -> tuple[int, int] | None:
    """The last span of that name in the cell (the first, with ``first``)."""
    found = [s for s in record["spans"] if s[0] == name]
    if not found:
        return None
    chosen = found[0] if first else found[-1]
    return (chosen[1], chosen[2])


def point(record: dict[str, Any], name: str) -> int | None:
    found = [p[1] for p in record["points"] if p[0] == name]
    return found[-1] if found else None


def parse_executor(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in (text or "").split(";"):
        if "=" in item:
            key, _, value = item.partition("=")
            out[key] = int(value)
    return out


def timeline(
    cells: list[dict[str, Any]], records: list[dict[str, Any]], stock: bool
) -> dict[str, list[float]]:
    """Per step, the list of durations (ms) over the cells."""
    by_start = sorted(records, key=lambda r: r["t0"])
    steps: dict[str, list[float]] = {}

    def add(name: str, a: int | None, b: int | None) -> None:
        if a is not None and b is not None:
            steps.setdefault(name, []).append((b - a) / 1e6)

    for cell in cells:
        # The record whose dispatch started after the client sent and ended before idle.
        matching = [r for r in by_start if cell["sent"] <= r["t0"] <= cell["idle"]]
        if not matching:
            continue
        r = matching[0]
        add("total (client: request -> idle seen)", cell["sent"], cell["idle"])
        add("client send -> kernel dispatch_shell", cell["sent"], r["t0"])
        ex = span(r, "execute_request")
        busy = span(r, "send:status:busy")
        idle = span(r, "send:status:idle")
        reply = span(r, "send:execute_reply")
        add("dispatch -> execute_request (deserialize, busy)", r["t0"], ex and ex[0])
        if busy:
            add("  of which: publish busy", busy[0], busy[1])
        if stock:
            run = span(r, "ipython.run_cell")
            add("execute_request -> run_cell start (execute_input)", ex and ex[0], run and run[0])
            add("IPython run_cell_async", run and run[0], run and run[1])
            add("run_cell end -> reply sent", run and run[1], reply and reply[1])
        else:
            do = span(r, "do_execute")
            add("execute_request -> do_execute (execute_input)", ex and ex[0], do and do[0])
            check = span(r, "policy.check_cell")
            add("  policy.check_cell", check and check[0], check and check[1])
            begin = span(r, "guard.begin_cell (thread)")
            add("  guard.begin_cell (in its thread)", begin and begin[0], begin and begin[1])
            # The cell's command; with Limits.kill_cell_processes a reap command follows.
            send = span(r, "relay.send", first=True)
            add("do_execute start -> command sent on relay", do and do[0], send and send[1])
            e = parse_executor(r.get("executor"))
            e0 = r.get("executor_t0")
            if e0 and e:
                add("relay -> executor has the command", send and send[1], e0)
                add("executor: snapshot check + _Usage (clear_refs)", e0, e0 + e["run0"] * 1000)
                add(
                    "  of which: _Usage()",
                    e0 + e["usage0"] * 1000,
                    e0 + e["usage1"] * 1000,
                )
                add(
                    "executor: IPython run_cell (audit hooks, CoW)",
                    e0 + e["run0"] * 1000,
                    e0 + e["run1"] * 1000,
                )
                if "result_send" in e:
                    add(
                        "  of which: run0 -> execute_result frame sent",
                        e0 + e["run0"] * 1000,
                        e0 + e["result_send"] * 1000,
                    )
                # The reply's stats are written just before it is sent ("finish").
                add(
                    "executor: run_cell end -> reply built",
                    e0 + e["run1"] * 1000,
                    e0 + e["finish"] * 1000,
                )
                reply_frame = point(r, "frame:execute_reply")
                add(
                    "reply built -> kernel has the reply frame",
                    e0 + e["finish"] * 1000,
                    reply_frame,
                )
                steps.setdefault("executor minor faults in run_cell", []).append(
                    e["flt_run1"] - e["flt_run0"]
                )
                steps.setdefault("executor minor faults, command to reply", []).append(
                    e.get("flt_run1", 0)
                )
                for key in (
                    "prev_r_drop_us",
                    "prev_r_fork_us",
                    "prev_r_refresh_us",
                    "prev_r_refresh_flt",
                ):
                    if key in e:
                        steps.setdefault(f"after reply: {key[7:]}", []).append(
                            e[key] / 1000 if key.endswith("_us") else e[key]
                        )
            reply_frame = point(r, "frame:execute_reply")
            ee = span(r, "executor.execute")
            add("reply frame -> executor.execute returns", reply_frame, ee and ee[1])
            hyg = span(r, "_workspace_hygiene")
            add("  _workspace_hygiene (to_thread scan)", hyg and hyg[0], hyg and hyg[1])
            scan = span(r, "guard.scan (thread)")
            add("    guard.scan (in its thread)", scan and scan[0], scan and scan[1])
            add("executor.execute -> do_execute returns", ee and ee[1], do and do[1])
            reap = span(r, "reap_cell_processes")
            if reap:
                add("  reap_cell_processes (sweep + reap command)", reap[0], reap[1])
            rec = span(r, "_record_cell")
            add("  _record_cell (audit log write)", rec and rec[0], rec and rec[1])
            endc = span(r, "publisher.end_cell")
            add("  publisher.end_cell", endc and endc[0], endc and endc[1])
            pub = [s for s in r["spans"] if s[0] == "publisher.publish"]
            if pub:
                steps.setdefault("  publisher.publish (all, sum)", []).append(
                    sum(s[2] - s[1] for s in pub) / 1e6
                )
            add("do_execute end -> reply sent", do and do[1], reply and reply[1])
        add("reply sent -> idle sent", reply and reply[1], idle and idle[1])
        add("idle sent -> client sees idle", idle and idle[1], cell["idle"])
        add("dispatch_shell (whole)", r["t0"], r["t1"])
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=200, help="cells per kernel")
    parser.add_argument("--cell", default="1+1")
    parser.add_argument("--setup", default="", help="an untimed cell run first in both kernels")
    parser.add_argument("--sandbox-arg", action="append", default=[])
    parser.add_argument("--no-stock", action="store_true")
    parser.add_argument(
        "--ab-kernel",
        action="store_true",
        help="also a sandbox kernel with the kernel side as before issue 14's changes",
    )
    args = parser.parse_args(argv)

    _stamp, json_path, log_path = result_paths(None, "profile")
    roles = ["sandbox", *(["sandbox-before"] if args.ab_kernel else [])]
    roles += [] if args.no_stock else ["stock"]
    traces = {role: json_path.with_suffix(f".{role}.trace") for role in roles}
    cells: dict[str, list[dict[str, Any]]] = {role: [] for role in roles}
    kernels: dict[str, HookedKernel] = {}
    with bench_session("profile", log_path) as (workdir, log):
        try:
            for role in roles:
                os.environ["SANDBOX_PROFILE_TRACE"] = str(traces[role])
                os.environ["SANDBOX_PROFILE_BEFORE"] = "1" if role == "sandbox-before" else "0"
                name = "python3" if role == "stock" else "sandbox-python"
                extra = tuple(args.sandbox_arg) if role != "stock" else ()
                kernel = HookedKernel(role, name, workdir, log, extra, stock=role == "stock")
                kernel.start()
                kernels[role] = kernel
                for code in ["pass", "1+1", args.setup or "pass", args.cell, args.cell]:
                    reply = kernel.execute(code).reply
                    if reply["status"] != "ok":
                        raise RuntimeError(f"{role}: {code!r} failed: {reply}")
            for chunk in range(0, args.cells, 10):
                order = list(kernels.values())
                turn = (chunk // 10) % len(order)
                order = order[turn:] + order[:turn]
                if (chunk // 10 // len(order)) % 2:
                    order.reverse()
                for kernel in order:
                    for _ in range(10):
                        sent = time.monotonic_ns()
                        cell = kernel.execute(args.cell)
                        cells[kernel.role].append(
                            {"sent": sent, "idle": sent + int(cell.elapsed_s * 1e9)}
                        )
        finally:
            for kernel in kernels.values():
                kernel.shutdown()
    report: dict[str, Any] = {"args": vars(args), "steps": {}, "cells": cells}
    report["traces"] = {role: load(path) for role, path in traces.items()}
    json_path.write_text(json.dumps(report))
    for role, kernel_cells in cells.items():
        if not kernel_cells:
            continue
        steps = timeline(kernel_cells, load(traces[role]), stock=role == "stock")
        report["steps"][role] = steps
        print(f"\n== {role}: {len(kernel_cells)} cells of {args.cell!r} (median, p90)")
        for name, raw in steps.items():
            values = sorted(raw)
            p90 = values[int(0.9 * (len(values) - 1))]
            unit = "" if "faults" in name or name.endswith("flt") else " ms"
            print(f"  {name:<52} {statistics.median(values):9.3f}{unit}  {p90:9.3f}")
    json_path.write_text(json.dumps(report))
    print(f"\nraw: {json_path}; kernel log: {log_path}; load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
