#!/usr/bin/env bash
# The README's test command on a fresh machine: `make test`, as root, in a new
# container built from the base image (build_base.sh), from a fresh clone of this
# checkout's HEAD, where nothing was left behind by earlier runs (no .venv, no
# sandboxci user, no chmod'ed /root, no dockerd, nothing in /tmp).
#
# The container stands in for one of these machines: root with every capability
# the host has, unconfined (seccomp, AppArmor, /proc unmasked), its cgroups
# writable (what --privileged gives; --privileged itself fails here, as it asks
# for CAP_SYS_RESOURCE, which these machines' own bounding set lacks), the host's network (pip reaches the package index with the
# host's CA bundle and pip configuration mounted in), the checkout under root's
# 0700 home, so the interpreter of the README's .venv lives there too (the case
# that broke the simulated pods, issue 16). The image adds what .ci/run installs
# before `make test` for the browser tests: Debian's chromium, and npm.
#
# Too long for .ci/run (about 45 minutes on 2 free cores). Usage:
#
#   tests/containers/run_make_test_in_container.sh [--new | --update] [--unprivileged] [PYTEST_ARGS...]
#
# The container (named $FRESH_CONTAINER, default sandbox-kernel-fresh) is kept
# between calls, so the suite can be run in pieces, one directory per call, as
# `make test` would run them one after the other on the same machine:
#
#   tests/containers/run_make_test_in_container.sh --new tests/unit
#   tests/containers/run_make_test_in_container.sh tests/security
#   tests/containers/run_make_test_in_container.sh --unprivileged -m 'not browser' tests/security
#
# --new removes the container first (and so everything the earlier pieces left,
# its Docker daemon's storage included); --update moves the kept container's clone
# to this checkout's HEAD, to rerun a piece after a fix. Without pytest arguments the whole suite
# runs, as `make test` does. --unprivileged runs CI's second part instead
# (.ci/unprivileged, the same script .ci/run uses): the kernel suites as the user
# sandboxci, after `make install-test` as root.
#
# As .ci/run prepares a machine before `make test`, the container has Docker
# (Debian's docker.io: dockerd --iptables=false --bridge=none, its storage on a
# volume of its own, as overlayfs cannot hold overlay2's layers), rootless Podman
# (podman, uidmap), mmdebstrap, and the user sandboxci; so tests/containers runs
# there too, building its base image with mmdebstrap from Debian's packages.
#
# After each piece the table of pieces run in this container so far is printed
# (outcome counts from pytest's summary line), from $FRESH_RESULTS (default
# /tmp/sandbox-kernel-fresh-results.txt; --new empties it).
#
# /tmp: these machines keep it on ext4, which takes the id-mapped mounts a root
# kernel's namespaces level needs for its notebook directory; the container's own
# overlay root filesystem refuses them. So /tmp (where pytest's workspaces are) is
# a tmpfs, which takes them, by default. FRESH_TMP=overlay leaves /tmp on the
# overlay: there a root kernel falls back to the landlock level, says why, and the
# tests that need the namespaces level there skip, naming id-mapped mounts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
name=${FRESH_CONTAINER:-sandbox-kernel-fresh}
results=${FRESH_RESULTS:-/tmp/sandbox-kernel-fresh-results.txt}
if [ "${1:-}" = "--new" ]; then
    shift
    docker rm -f -v "$name" >/dev/null 2>&1 || true
    : > "$results"
fi
update=0
if [ "${1:-}" = "--update" ]; then
    shift
    update=1
fi
unprivileged=0
if [ "${1:-}" = "--unprivileged" ]; then
    shift
    unprivileged=1
fi

# Capabilities missing from this process's bounding set (CAP_SYS_RESOURCE on these
# machines): the container cannot be given them.
capsh_missing() {
    local bnd names=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID
        SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK
        IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT
        SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL
        SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
        CHECKPOINT_RESTORE)
    bnd=$((16#$(awk '/^CapBnd/ {print $2}' /proc/self/status)))
    for i in "${!names[@]}"; do
        if (( (bnd >> i & 1) == 0 )); then echo "${names[$i]}"; fi
    done
}

base=$("$here/build_base.sh")
# What .ci/run installs with apt before `make test` (chromium and npm for the
# browser tests; jq for the audit-log queries; curl for the network allow-list
# tests; docker.io, podman, uidmap and mmdebstrap for the real containers),
# and git for the fresh clone, on top of the base image. The image is tagged with a
# hash of these steps and the base image's build, and kept.
install='export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium npm jq curl git \
    docker.io podman uidmap mmdebstrap >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/*'
tag=$( (cat "$here/build_base.sh"; echo "$install") | sha256sum | cut -c1-12)
image="sandbox-kernel-fresh:$tag"
if ! docker image inspect "$image" >/dev/null 2>&1; then
    builder="sandbox-kernel-fresh-build-$$"
    docker run --name "$builder" --network host "$base" bash -euc "$install" >&2
    docker commit --change 'CMD ["/bin/bash"]' "$builder" "$image" >/dev/null
    docker rm "$builder" >/dev/null
fi

if ! docker container inspect "$name" >/dev/null 2>&1; then
    mounts=()
    # The host's CA bundle, pip configuration and local package directories, read-only.
    for path in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf /etc/xdg/pip \
        "${PIP_CONFIG_FILE:-}" /opt/wheels /opt/pypi /opt/pypi-more; do
        if [ -n "$path" ] && [ -e "$path" ]; then mounts+=(-v "$path:$path:ro"); fi
    done
    envs=()
    for var in $(env | grep -o '^PIP_[A-Z_]*' || true) SSL_CERT_FILE REQUESTS_CA_BUNDLE \
        NODE_EXTRA_CA_CERTS; do
        if [ -n "${!var:-}" ]; then envs+=(-e "$var=${!var}"); fi
    done
    if [ "${FRESH_TMP:-tmpfs}" = tmpfs ]; then mounts+=(--tmpfs /tmp:rw,exec,mode=1777); fi
    caps=(--cap-add ALL)
    for cap in $(capsh_missing); do caps+=(--cap-drop "$cap"); done
    docker run -d --name "$name" "${caps[@]}" --security-opt seccomp=unconfined \
        --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
        --network host --hostname fresh --mount type=volume,dst=/var/lib/docker \
        "${mounts[@]}" "${envs[@]}" "$image" sleep infinity >/dev/null
    # Docker mounts the container's cgroups read-only unless --privileged.
    docker exec "$name" sh -c 'for d in /sys/fs/cgroup/*/ /sys/fs/cgroup; do
        mount -o remount,bind,rw "$d" 2>/dev/null || true; done'
    # A fresh clone of HEAD (committed work only), under root's 0700 home.
    git -C "$src" bundle create - HEAD 2>/dev/null | docker exec -i "$name" sh -c 'cat > /root/checkout.bundle'
    docker exec "$name" bash -euc '
        git clone --quiet /root/checkout.bundle /root/sandbox-kernel
        rm /root/checkout.bundle
        chmod 0700 /root
        stat -c "%A %n" /root
        # As .ci/run does before `make test`.
        useradd --create-home --shell /bin/bash sandboxci
    '
fi
if [ "$update" = 1 ]; then
    # The clone moves to this checkout's HEAD (committed work only), to rerun a
    # piece after a fix without starting over; what earlier pieces left stays.
    git -C "$src" bundle create - HEAD 2>/dev/null | docker exec -i "$name" sh -c 'cat > /root/checkout.bundle'
    docker exec "$name" bash -euc 'cd /root/sandbox-kernel
        git fetch --quiet /root/checkout.bundle HEAD && git reset --quiet --hard FETCH_HEAD
        rm /root/checkout.bundle'
fi
# The container's Docker daemon, started as .ci/run starts it (again if it stopped).
docker exec "$name" bash -c 'docker info >/dev/null 2>&1 && exit 0
    setsid nohup dockerd --iptables=false --bridge=none >/var/log/dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done
    tail -20 /var/log/dockerd.log; echo "dockerd did not start"'

docker exec "$name" bash -c 'echo "fresh: $(git -C /root/sandbox-kernel log -1 --format="%h %s" | cut -c1-100)"'
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
if [ "$unprivileged" = 1 ]; then
    label="sandboxci: $*"
    args=$(printf '%q ' "$@")
    docker exec -e "PYTEST_ARGS=$args" "$name" bash -c 'cd /root/sandbox-kernel &&
        make install-test >/dev/null && eval ".ci/unprivileged $PYTEST_ARGS"' 2>&1 \
        | tee "$log" || status=$?
else
    label="root: ${*:-make test}"
    args=$(printf '%q ' -p no:cacheprovider "$@")
    docker exec -e "PYTEST_ARGS=$args" "$name" bash -c \
        'cd /root/sandbox-kernel && make test PYTEST_ARGS="$PYTEST_ARGS"' 2>&1 \
        | tee "$log" || status=$?
fi
# pytest's last line, e.g. "==== 3 failed, 270 passed in 812.31s (0:13:32) ====" (without the =s under -q).
summary=$(grep -E '^(=+ )?[0-9]+ [a-z]+.* in [0-9.]+s' "$log" | tail -1 | sed -E 's/^=+ //; s/ =+$//')
printf '%s\t%s\t%s\n' "$label" "${summary:-no pytest summary (exit $status)}" \
    "$(date -u +%H:%M)" >> "$results"
echo
echo "Pieces run in $name so far ($results):"
column -t -s $'\t' "$results" 2>/dev/null || cat "$results"
exit "$status"
