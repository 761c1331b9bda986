"""What each process of an idle kernel's tree holds (issue 14, memory).

Starts one kernel of each kind in turn (sandbox first), waits ``--idle`` seconds, and
prints per process of the tree ``/proc/PID/smaps_rollup``: Pss (split into anonymous
and file pages), Private_Dirty, Private_Clean and Rss, by depth (sandbox: d0 trusted
kernel, d1 launcher, d2 the sandbox's pid 1, d3 executor, d4 the rollback snapshot once
a cell ran). With ``--pages`` (root: it reads /proc/PID/pagemap and /proc/kpagecount) it
also attributes the sandbox tree page by page: what only one process maps, and how much
the tree's PSS would fall without a process (or two): the pages only they map go, and
the pages they share are then split among fewer processes.

```sh
.venv/bin/python bench/memory_tree.py --pages
.venv/bin/python bench/memory_tree.py --cell 'import numpy' --kernels sandbox-python
```
Run it with nothing else starting kernels: PSS splits pages shared with every other
process of the machine that maps the same files.
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import time

import psutil
from jupyter_client.manager import KernelManager

PAGE = 4096
MIB = 1 << 20
FIELDS = ("Pss", "Pss_Anon", "Pss_File", "Private_Dirty", "Private_Clean", "Rss")


def rollup(pid: int) -> dict[str, int]:
    """smaps_rollup's kB fields, in bytes."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                out[parts[0][:-1]] = int(parts[1]) * 1024
    return out


def tree(root: psutil.Process) -> list[tuple[int, psutil.Process]]:
    out = []
    todo = [(0, root)]
    while todo:
        depth, proc = todo.pop(0)
        out.append((depth, proc))
        todo.extend((depth + 1, child) for child in proc.children())
    return out


def present_pages(pid: int) -> set[int]:
    """Page frame numbers of every present page of pid."""
    pfns: set[int] = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in maps:
            fields = line.split()
            if fields[-1] == "[vsyscall]":
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            pagemap.seek(start // PAGE * 8)
            for (entry,) in struct.iter_unpack("<Q", pagemap.read((end - start) // PAGE * 8)):
                pfn = entry & ((1 << 55) - 1)
                if entry >> 63 and pfn:
                    pfns.add(pfn)
    return pfns


def attribute(procs: list[tuple[int, psutil.Process]]) -> None:
    maps = {f"d{depth}": present_pages(proc.pid) for depth, proc in procs}
    holders: dict[int, list[str]] = {}
    for name, pfns in maps.items():
        for pfn in pfns:
            holders.setdefault(pfn, []).append(name)
    counts: dict[int, int] = {}
    with open("/proc/kpagecount", "rb") as f:
        for pfn in holders:
            f.seek(pfn * 8)
            counts[pfn] = struct.unpack("<Q", f.read(8))[0]

    def tree_pss(gone: set[str]) -> float:
        total = 0.0
        for pfn, names in holders.items():
            left = sum(1 for n in names if n not in gone)
            if left:
                total += left / max(counts[pfn] - (len(names) - left), left)
        return total * PAGE / MIB

    everyone = tree_pss(set())
    print(f"  page by page: tree PSS {everyone:.1f} MiB")
    for name in maps:
        alone = sum(1 for names in holders.values() if names == [name]) * PAGE / MIB
        print(f"    {name}: {alone:.1f} MiB mapped by no other process of the tree")
    names = list(maps)
    for gone in [{n} for n in names[1:]] + [set(names[1:3])]:
        saved = everyone - tree_pss(gone)
        print(f"    without {'+'.join(sorted(gone))}: the tree's PSS falls by {saved:.1f} MiB")


def measure(name: str, idle: float, cell: str | None, pages: bool) -> None:
    km = KernelManager(kernel_name=name)
    km.start_kernel(cwd=tempfile.mkdtemp(prefix="memory-tree-"))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        if cell:
            kc.execute_interactive(cell, timeout=120)
        time.sleep(idle)
        assert km.provisioner is not None
        root = psutil.Process(km.provisioner.pid)  # type: ignore[attr-defined]
        procs = tree(root)
        print(f"== {name}" + (f", after {cell!r}" if cell else ", idle"))
        print("  d      pid" + "".join(f"{f:>14}" for f in FIELDS) + "  (MiB)")
        totals = dict.fromkeys(FIELDS, 0)
        for depth, proc in procs:
            values = rollup(proc.pid)
            for f in FIELDS:
                totals[f] += values.get(f, 0)
            print(
                f"  d{depth} {proc.pid:>8}"
                + "".join(f"{values.get(f, 0) / MIB:>14.1f}" for f in FIELDS)
            )
        print("  total     " + "".join(f"{totals[f] / MIB:>14.1f}" for f in FIELDS))
        if pages and len(procs) > 1:
            attribute(procs)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", default="sandbox-python,python3")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds after start-up")
    parser.add_argument("--cell", help="run this cell first (e.g. an import)")
    parser.add_argument("--pages", action="store_true", help="page-level attribution (root)")
    args = parser.parse_args()
    for name in args.kernels.split(","):
        measure(name, args.idle, args.cell, args.pages)


if __name__ == "__main__":
    main()
