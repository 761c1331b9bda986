"""The container tests' image: built once per session, or the reason there is none."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "needs the docker client (Debian's docker.io)"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        first = (probe.stderr.strip().splitlines() or ["no answer"])[0]
        return "needs a running Docker daemon (dockerd --iptables=false --bridge=none): " + first
    return None


@pytest.fixture(scope="session")
def image() -> str:
    reason = _docker_unavailable()
    if reason:
        pytest.skip(reason)
    built = subprocess.run(
        [str(HERE / "build_test_image.sh")], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr[-4000:]
    return built.stdout.strip().splitlines()[-1]
