#!/usr/bin/env bash
# Build the containers' base image from Debian's packages, without a registry:
# mmdebstrap makes a minimal bookworm root filesystem, `docker import` turns it
# into an image. The tarball is cached (it takes minutes to build), the image is
# re-imported from it when the Docker daemon does not have it.
#
# Usage: tests/containers/build_base.sh [IMAGE]     (default sandbox-kernel-base:bookworm)
# Cache: $SANDBOX_CONTAINER_CACHE (default ~/.cache/sandbox-kernel/containers)
set -euo pipefail
image=${1:-sandbox-kernel-base:bookworm}
cache=${SANDBOX_CONTAINER_CACHE:-$HOME/.cache/sandbox-kernel/containers}
tarball="$cache/bookworm-minbase.tar"
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
    # python3-venv for the README's `make install`; make for the README's commands;
    # passwd for useradd in images built on top.
    mmdebstrap --quiet --variant=minbase --format=tar \
        --include=python3,python3-venv,python3-dev,ca-certificates,make,passwd,gcc,libc6-dev \
        bookworm "$tarball.part"
    mv "$tarball.part" "$tarball"
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
    docker import --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
fi
echo "$image"
