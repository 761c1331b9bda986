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
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
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
    # Rootless Podman, run by this unprivileged user (the image loaded into its store).
    podman_user: str = ""


# Found by these tests and not fixed: at the namespaces level inside a container whose
# root has no CAP_SYS_ADMIN, the kernel maps the container's uid 0 to itself (cells run
# as the container's root, without capabilities). A crashed cell is rolled back there
# since pid 1 checks snapshots through pidfds (the tour's segfault cell lost the
# earlier state before).
# Expected only once the suite ran in the container at that level: a container that
# did not start (Podman's exit status 125) is a plain failure, not this one.
NAMESPACES_IN_CONTAINER = (
    "namespaces in a container without CAP_SYS_ADMIN: cells keep the container's "
    "uid 0, without capabilities (tests/containers/README.md)"
)
# Exactly what fails there, and nothing else (a crash not rolled back, say, is not it).
NAMESPACES_IN_CONTAINER_FAILS = {
    f"tests/security/test_boundaries.py::test_executor_has_no_privileges[{kernel}]"
    for kernel in ("namespaces", "namespaces-warm")
}


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
    "podman-rootless": Config(
        ("--network", "none"),
        "namespaces",
        description="rootless podman run (Debian's podman 4.3, vfs) as the unprivileged "
        "user sandboxci",
        podman_user="sandboxci",
    ),
    "docker-limits": Config(
        ("--network", "none", "--pids-limit", "512", "--memory", "2g"),
        "landlock",
        limits=("memory 2048 MiB", "512 processes"),
        description="docker run --pids-limit 512 --memory 2g",
    ),
}


def _results_file() -> Path:
    return Path(os.environ.get("SANDBOX_CONTAINER_RESULTS", "/tmp/sandbox-container-results.json"))


def _record(name: str, entry: dict[str, object]) -> None:
    path = _results_file()
    results = json.loads(path.read_text()) if path.exists() else {}
    results[name] = entry
    path.write_text(json.dumps(results, indent=2))


def _podman_image(image: str, user: str, tmp_path: Path) -> str:
    """The image in ``user``'s rootless Podman store (loaded from Docker's if missing)."""
    if shutil.which("podman") is None:
        pytest.skip("needs podman (Debian's podman, uidmap)")
    try:
        pwd.getpwnam(user)
    except KeyError:
        pytest.skip(f"needs the unprivileged user {user} (.ci/run creates it)")
    local = f"localhost/{image}"
    if _as_user(user, ["podman", "image", "exists", local]).returncode != 0:
        archive = tmp_path / "image.tar"
        subprocess.run(["docker", "save", "-o", str(archive), image], check=True)
        archive.chmod(0o644)
        tmp_path.chmod(0o755)
        loaded = _as_user(user, ["podman", "load", "-i", str(archive)])
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        archive.unlink()
    return local


def _checkout_copy_for(user: str, tmp_path: Path) -> Path:
    """A copy of the checkout that ``user`` owns, for its rootless Podman to mount.

    The checkout itself may be out of that user's reach: a fresh clone under root's
    0700 home (make test on a fresh machine) made Podman fail with "statfs
    /root/sandbox-kernel: permission denied" before anything ran. Only a run after
    .ci/run's chmod of /root had reached it.
    """
    copy = tmp_path / "src"
    skip = shutil.ignore_patterns(".venv", ".git", "build", "__pycache__", "*_cache", "*.egg-info")
    shutil.copytree(REPO, copy, ignore=skip, symlinks=True)
    entry = pwd.getpwnam(user)
    for path in [copy, *copy.rglob("*")]:
        os.lchown(path, entry.pw_uid, entry.pw_gid)
    return copy


def _as_user(user: str, command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["su", user, "-c", "cd ~ && " + shlex.join(command)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_container_configuration(name: str, image: str) -> None:
    config = CONFIGS[name]
    # Reachable by a rootless runtime's user too (pytest's own tmp dirs are 0700).
    tmp_path = Path(tempfile.mkdtemp(prefix=f"sandbox-container-{name}-"))
    tmp_path.chmod(0o755)
    if config.podman_user and os.geteuid() != 0:
        pytest.skip("needs root to run rootless Podman as another user")
    runtime = ["docker"]
    src = REPO
    if config.podman_user:
        image = _podman_image(image, config.podman_user, tmp_path)
        runtime = ["podman"]
        src = _checkout_copy_for(config.podman_user, tmp_path)
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
        *runtime,
        "run",
        "--rm",
        *config.flags,
        "-v",
        # Writable: the boundary suite puts probes in the checkout (a workspace that
        # holds the kernel's code) and checks that cells cannot.
        f"{src}:/src",
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
        # With HOME=/ (a uid without passwd entry) IPython's path helpers in the test
        # process itself warn that / is not writable; pytest would make that an error.
        "-W",
        "ignore:IPython parent:UserWarning",
        *SUITES,
    ]
    start = time.monotonic()
    if config.podman_user:
        run = _as_user(config.podman_user, command)
    else:
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
    canary_after = canary.read_text()
    shutil.rmtree(tmp_path, ignore_errors=True)
    output = run.stdout[-6000:] + run.stderr[-2000:]
    assert reported is not None, f"no %sandbox report (exit status {run.returncode}):\n{output}"
    assert reported.group(1) == config.level
    assert canary_after == "original"
    if config.level == "namespaces":
        # Strict: a fix shows up as a failure that says so, and so does any other failure.
        assert run.returncode != 0, "passed: the known failure is fixed, update this test"
        failed = set(re.findall(r"^(?:FAILED|ERROR) (\S+)", run.stdout, re.M))
        assert failed == NAMESPACES_IN_CONTAINER_FAILS, output
        pytest.xfail(NAMESPACES_IN_CONTAINER)
    assert run.returncode == 0, output
