#!/usr/bin/env bash
# Start-up time inside a default `docker run` (the landlock level), side by side with
# stock ipykernel in the same container: bench/run.py --only startup, run in the
# test image of tests/containers/ (built from Debian's packages, no registry).
#
# Usage: bench/container_startup.sh [REPS]     results in bench/results/container-startup-*.json
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
image=$("$repo/tests/containers/build_test_image.sh")
out="$repo/bench/results"
mkdir -p "$out"
chmod 0777 "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
docker run --rm --network none -v "$repo:/src" -v "$out:/out" "$image" \
    python bench/run.py --only startup --reps "${1:-10}" --json "/out/container-startup-$stamp.json"
