"""The long fuzz of the trusted side of the relay (tests/relay_fuzz.py): 100,000 frames or more.

    python bench/fuzz_relay.py [--frames 100000] [--seed 1]

Hostile frame streams (valid, boundary and adversarial frames, random cuts, half
frames, impossible lengths) go through the kernel's own frame reader, dispatch
and publisher with a recording session, and the invariants are checked after
every stream: nothing crashes, the output budgets hold, the relay keeps serving.
It prints what it fed and the process's memory, which must not grow with the
number of frames (the CI slice is in tests/unit/test_relay_protocol.py). Memory
figures are only comparable between runs holding the heavy lock.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, seed, settings

from tests import relay_fuzz


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    harness = relay_fuzz.Harness()
    stats = relay_fuzz.Stats()
    started = time.monotonic()
    samples: list[tuple[int, float]] = []
    batch = 0
    while stats.frames < args.frames:
        batch += 1

        @seed(args.seed * 1_000_003 + batch)
        @settings(
            max_examples=500,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(stream=relay_fuzz.frame_streams())
        def check(stream: tuple[bytes, list[int], int]) -> None:
            relay_fuzz.run_stream(harness, stream, stats)

        check()
        samples.append((stats.frames, rss_mib()))
        print(
            f"  {stats.frames:>9,} frames, {stats.streams:,} streams, RSS {samples[-1][1]:.0f} MiB",
            flush=True,
        )
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    first_half = [rss for frames, rss in samples if frames <= stats.frames / 2]
    print(
        f"fuzzed {stats.frames:,} frames in {stats.streams:,} streams "
        f"({stats.bytes_in / 2**20:.0f} MiB in, {stats.fatal:,} fatal framing errors), "
        f"{stats.sent_messages:,} messages out ({stats.sent_bytes / 2**20:.1f} MiB) "
        f"in {elapsed:.0f} s; invariants held for every stream"
    )
    print(
        f"memory: RSS {samples[0][1]:.0f} MiB after the first batch, "
        f"{max(first_half or [0]):.0f} MiB max in the first half, "
        f"{samples[-1][1]:.0f} MiB at the end; peak {peak:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
