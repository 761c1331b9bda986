"""A newcomer's first minutes, run as README.md says: ``make tour``, then ``make lab``.

Both run against this test's own virtualenv (``VENV=sys.prefix``), with the tour's
directory, the Jupyter data directory (where the audit log goes) and the lab's
runtime state under the test's tmp dir, so nothing in the checkout or the user's
Jupyter directories changes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests.integration.test_browser import free_port, stop_server

ROOT = Path(__file__).resolve().parents[2]
LAB_START_TIMEOUT = 180.0
# pip's check of the installed packages, then JupyterLab's start


def make_command(target: str, tmp_path: Path, *extra: str) -> list[str]:
    make = shutil.which("make")
    if make is None:
        pytest.skip("needs GNU make")
    site_packages = sysconfig.get_paths()["purelib"]
    if not os.access(site_packages, os.W_OK):
        # As in CI's unprivileged run, where the environment is root's.
        pytest.skip(f"needs write access to {site_packages}: make {target} installs into it")
    return [
        make,
        "--no-print-directory",
        "-C",
        str(ROOT),
        target,
        f"VENV={sys.prefix}",
        f"TOUR_DIR={tmp_path / 'tour'}",
        *extra,
    ]


def private_jupyter_env(tmp_path: Path) -> dict[str, str]:
    """The user's Jupyter directories, under the test's tmp dir."""
    return {
        **os.environ,
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
    }


@pytest.mark.timeout(600)
def test_make_tour_prints_no_warnings(tmp_path: Path) -> None:
    env = private_jupyter_env(tmp_path)
    result = subprocess.run(
        make_command("tour", tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "The tour ran in the sandbox" in output
    assert "make lab" in output, "the tour says where to go next"
    # The tour refuses a class-hierarchy walk and crashes a cell on purpose: those are
    # the sandbox doing its job, not problems. (Its kernel's loopback traffic is
    # CurveZMQ-encrypted, so ipykernel has no plain-TCP warning to give either.)
    noisy = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
    assert noisy == [], output
    # ... and they are on record: the audit log has the refusal and the crash.
    audit = tmp_path / "jupyter-data" / "sandbox_kernel" / "audit.jsonl"
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert any(r.get("verdict") == "denied" and "SKP220" in r.get("rules", []) for r in records)
    assert any(
        r.get("kind") == "cell" and r["resources"].get("outcome") == "ExecutorDied" for r in records
    ), records


def api(url: str, token: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"{url}{path}",
        headers={"Authorization": f"token {token}"},
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def kernelspecs(url: str, token: str) -> dict[str, object]:
    data: dict[str, object] = api(url, token, "/api/kernelspecs")
    return data


@pytest.mark.timeout(600)
def test_make_lab_starts_jupyterlab_with_the_sandboxed_kernel(tmp_path: Path) -> None:
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.skip(f"needs jupyterlab in {sys.prefix} (pip install -e '.[browser]')")
    port, token = free_port(), secrets.token_hex(16)
    lab_args = (
        f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} "
        f"--ServerApp.port_retries=0 --IdentityProvider.token={token} "
        "--ServerApp.allow_root=True --LabApp.news_url=None "
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"
    )
    log_path = tmp_path / "make-lab.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            make_command("lab", tmp_path, f"LAB_ARGS={lab_args}"),
            env=private_jupyter_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    specs: dict[str, object] = {}
    try:
        deadline = time.monotonic() + LAB_START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                specs = kernelspecs(url, token)
                break
            time.sleep(0.5)
        log = log_path.read_text(errors="replace")
        assert specs, f"make lab did not serve {url} (exit {proc.poll()}):\n{log[-3000:]}"
        assert specs["default"] == "sandbox-python", specs
        listed = specs["kernelspecs"]
        assert isinstance(listed, dict)
        assert listed["sandbox-python"]["spec"]["display_name"] == "Python 3 (sandboxed)"
        # The workspace JupyterLab opens on holds the tour.
        assert (tmp_path / "tour" / "tour.ipynb").is_file()
        # A kernel starts and answers: sandbox-kernel, sandboxed (read through the
        # connection file the server wrote, as `jupyter console --existing` would).
        kernel = api(url, token, "/api/kernels", {"name": "sandbox-python"})
        connection = tmp_path / "jupyter-runtime" / f"kernel-{kernel['id']}.json"
        client = BlockingKernelClient(connection_file=str(connection))
        client.load_connection_file()
        client.start_channels()
        try:
            reply = client.kernel_info(reply=True, timeout=90)["content"]
        finally:
            client.stop_channels()
        assert reply["implementation"] == "sandbox-kernel", reply
        assert reply["sandbox"]["level"] in ("namespaces", "landlock"), reply
    finally:
        # make, then jupyter lab under it: the whole session, then anything it spawned.
        spawned = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        stop_server(proc)
        psutil.wait_procs(spawned, timeout=20)
