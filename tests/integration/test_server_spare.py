"""JupyterLab's server (jupyter_server's AsyncKernelManager) restarts a kernel from its spare.

The suite runs without spares (tests/conftest.py); here a real ``jupyter lab`` gets
one, and a kernel it started is restarted through the REST API, as JupyterLab's
"Restart kernel" does. The page's websocket reconnects to the same kernel id; the
cell after the restart runs in the spare, with nothing of the kernel before it.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from tests.integration.test_browser import LabServer, install_kernelspec, start_lab
from tests.integration.test_browser_sanitize import api_request
from tests.kernel_socket import KernelSocket


def _run_cell(server: LabServer, kernel_id: str, code: str) -> str:
    """Run ``code`` over the kernel's websocket, as the page does; its outputs as text."""
    url = server.url.replace("http", "ws", 1)
    kernel = KernelSocket(f"{url}/api/kernels/{kernel_id}/channels", server.token)
    try:
        return kernel.execute(code, timeout=60).text
    finally:
        kernel.close()


def _spare_of(server: LabServer, timeout: float = 60) -> int:
    """The pid of the server's spare kernel, once it has been started (a second after
    the kernel: SandboxProvisioner.spare_delay_s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(server.proc.pid).children(recursive=True):
            try:
                if any(a.startswith("--sandbox-spare=") for a in child.cmdline()):
                    return child.pid
            except psutil.Error:
                continue
        time.sleep(0.1)
    pytest.fail(f"the server started no spare kernel:\n{server.log_tail()}")


def test_jupyter_server_restarts_a_kernel_from_its_spare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox_kernel.install import provisioner_registered

    if not provisioner_registered():
        pytest.skip("the spare provisioner's entry point is not registered here")
    monkeypatch.setenv("SANDBOX_KERNEL_SPARES", "1")
    # --spares: since d4f5764 a --prefix install names no provisioner by default (a
    # Jupyter in another environment could not load it), and the server would start no spare.
    specs = install_kernelspec(tmp_path / "prefix", "--spares")
    with start_lab(tmp_path, [str(specs)]) as server:
        kernel = api_request(server, "POST", "/api/kernels", {"name": "sandbox-python"})
        first = _run_cell(server, kernel["id"], "kept = 41\nprint('set')")
        assert first.strip() == "set", first
        _spare_of(server)
        api_request(server, "POST", f"/api/kernels/{kernel['id']}/restart")
        assert "started from a pre-warmed spare" in server.log_tail(200)
        after = _run_cell(server, kernel["id"], "print('kept' in globals())")
        assert after.strip() == "False", after
        report = _run_cell(server, kernel["id"], "%sandbox")
        assert "Started from a pre-warmed spare" in report, report
