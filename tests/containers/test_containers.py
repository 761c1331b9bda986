"""Every isolation level on real containers, not only simulated hosts (issue 16).

The image comes from Debian's packages without a registry (build_base.sh: mmdebstrap
then ``docker import``; build_test_image.sh: the dependencies, pip through the
host's network, CA bundle and pip configuration). The checkout is mounted read-only at
/src. In each configuration, tests/containers/in_container.py checks the level the
kernel reports and runs the tour, and the boundary suite (tests/security/
test_boundaries.py) runs on the plain kernel, which must reach exactly the expected
level (a lower one fails, it is never skipped).

Needs a running Docker daemon (``dockerd --iptables=false --bridge=none``; .ci/run
starts one); skipped, with the reason, where there is none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(1800)]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SITE = "/opt/venv/lib/python3.11/site-packages"
CANARY = f"{SITE}/zz_sandbox_canary_container.txt"
SUITES = ["tests/containers/in_container.py", "tests/security/test_boundaries.py"]


@dataclass(frozen=True)
class Config:
    flags: tuple[str, ...]
    level: str
    limits: tuple[str, ...] = ()
    description: str = ""


CONFIGS = {
    "docker-default": Config(
        ("--network", "none"),
        "landlock",
        description="docker run (default seccomp profile and capabilities), as root",
    ),
    "docker-userns": Config(
        ("--network", "none", "--security-opt", "seccomp=unconfined"),
        "namespaces",
        description="docker run --security-opt seccomp=unconfined (user namespaces allowed)",
    ),
    "pod-restricted": Config(
        (
            "--network",
            "none",
            "--user",
            "1000:1000",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--read-only",
            "--tmpfs",
            "/tmp:rw,exec,mode=1777,size=512m",
        ),
        "landlock",
        description="--user 1000:1000 (no passwd entry) --cap-drop ALL "
        "--security-opt no-new-privileges --read-only, tmpfs /tmp",
    ),
    "docker-limits": Config(
        ("--network", "none", "--pids-limit", "512", "--memory", "2g"),
        "landlock",
        limits=("memory 2048 MiB", "512 processes"),
        description="docker run --pids-limit 512 --memory 2g",
    ),
}


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


def _results_file() -> Path:
    return Path(os.environ.get("SANDBOX_CONTAINER_RESULTS", "/tmp/sandbox-container-results.json"))


def _record(name: str, entry: dict[str, object]) -> None:
    path = _results_file()
    results = json.loads(path.read_text()) if path.exists() else {}
    results[name] = entry
    path.write_text(json.dumps(results, indent=2))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_container_configuration(name: str, image: str, tmp_path: Path) -> None:
    config = CONFIGS[name]
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    # World-writable on purpose, inside site-packages: only the sandbox may stop a
    # cell's write (the pod's root filesystem is read-only, this one file is not).
    canary = tmp_path / "canary.txt"
    canary.write_text("original")
    canary.chmod(0o666)
    env = {
        "SANDBOX_TEST_HOST_LEVEL": config.level,
        "SANDBOX_TEST_REPORT": "/out/sandbox.txt",
        "SANDBOX_TEST_EXPECT_LIMITS": ";".join(config.limits),
        "SANDBOX_TEST_VENV_CANARY": CANARY,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [
        "docker",
        "run",
        "--rm",
        *config.flags,
        "-v",
        # Writable: the boundary suite puts probes in the checkout (a workspace that
        # holds the kernel's code) and checks that cells cannot.
        f"{REPO}:/src",
        "-v",
        f"{out}:/out",
        "-v",
        f"{canary}:{CANARY}",
        *(arg for key, value in env.items() for arg in ("-e", f"{key}={value}")),
        image,
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        *SUITES,
    ]
    start = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    summary = (re.findall(r"^=*\s*(\d+ (?:passed|failed).*?)\s*=*$", run.stdout, re.M) or [""])[-1]
    report = (out / "sandbox.txt").read_text() if (out / "sandbox.txt").exists() else ""
    reported = re.search(r"Sandbox level: (\S+)", report)
    _record(
        name,
        {
            "configuration": config.description,
            "expected_level": config.level,
            "reported_level": reported.group(1) if reported else None,
            "suite": summary,
            "returncode": run.returncode,
            "seconds": round(seconds),
            "sandbox": report,
        },
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert reported is not None
    assert reported.group(1) == config.level
    assert canary.read_text() == "original"
