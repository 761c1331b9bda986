#!/usr/bin/env bash
# The image the container tests run in: the base image (build_base.sh) with the
# project's dependencies and the tour's libraries in /opt/venv. The project itself
# is not copied: the tests mount the checkout read-only at /src, and a .pth file in
# the venv puts /src on sys.path (also under `python -I`, which the kernelspec uses).
#
# No registry: pip reaches the package index with --network host, the host's CA
# bundle and pip configuration mounted in. The image is tagged with a hash of
# pyproject.toml and of this script, and rebuilt only when they change.
#
# Usage: tests/containers/build_test_image.sh       prints the image name
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
base=$("$here/build_base.sh")
tag=$(cat "$src/pyproject.toml" "$here/build_test_image.sh" | sha256sum | cut -c1-12)
image="sandbox-kernel-test:$tag"
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image"
    exit 0
fi
mounts=(-v "$src:/src:ro")
# The host's CA bundle and pip configuration, wherever pip finds them here.
for path in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf /etc/xdg/pip "${PIP_CONFIG_FILE:-}"; do
    if [ -n "$path" ] && [ -e "$path" ]; then mounts+=(-v "$path:$path:ro"); fi
done
envs=()
for name in $(env | grep -o '^PIP_[A-Z_]*' || true) SSL_CERT_FILE REQUESTS_CA_BUNDLE; do
    if [ -n "${!name:-}" ]; then envs+=(-e "$name=${!name}"); fi
done
container="sandbox-kernel-build-$$"
docker run --name "$container" --network host "${mounts[@]}" "${envs[@]}" "$base" bash -euc '
    python3 -m venv /opt/venv
    /opt/venv/bin/pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
    /opt/venv/bin/pip install --quiet "/src[test]" numpy pandas matplotlib nbconvert hatchling \
        editables 2>&1 | grep -v "^WARNING: Location" || true
    /opt/venv/bin/python -c "import sandbox_kernel, pytest, numpy"
    # The code comes from the checkout mounted at /src: an editable install of it
    # (hatchling, editables) keeps the entry points of the project registered (jupyter_client
    # finds the spare provisioner, sandbox-kernel-provisioner, through one).
    /opt/venv/bin/pip uninstall --quiet --yes sandbox-kernel
    /opt/venv/bin/pip install --quiet --no-deps --no-build-isolation -e /src 2>&1 \
        | grep -v "^WARNING: Location" || true
    /opt/venv/bin/python -c "
from jupyter_client.provisioning import KernelProvisionerFactory as factory
assert \"sandbox-kernel-provisioner\" in factory.instance().provisioners
"
    site=$(/opt/venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()[\"purelib\"])")
    # /src itself on sys.path too (also under python -I): the tests package.
    echo /src > "$site/sandbox_kernel_checkout.pth"
    /opt/venv/bin/python -m sandbox_kernel install --sys-prefix >/dev/null
    /opt/venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
    # A user for the unprivileged runs (the chart uid, 1000, is a plain --user).
    useradd --uid 1001 --create-home --shell /bin/bash sandboxci
    mkdir -p /opt/venv/etc/jupyter
' >&2
# PIP_NO_BUILD_ISOLATION=0 (pip reads it as "no build isolation"): images built on this
# one (examples/kubernetes/Dockerfile) install the project offline, with hatchling here.
docker commit --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_NO_BUILD_ISOLATION=0' \
    --change 'WORKDIR /src' "$container" "$image" >/dev/null
docker rm "$container" >/dev/null
echo "$image"
