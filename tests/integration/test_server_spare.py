"""JupyterLab's server (jupyter_server's AsyncKernelManager) restarts a kernel from its spare.

The suite runs without spares (tests/conftest.py); here a real ``jupyter lab`` gets
one, and a kernel it started is restarted through the REST API, as JupyterLab's
"Restart kernel" does. The page's websocket reconnects to the same kernel id; the
cell after the restart runs in the spare, with nothing of the kernel before it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.integration.test_browser import LabServer, install_kernelspec, start_lab
from tests.integration.test_browser_sanitize import api_request


async def _run_cell(server: LabServer, kernel_id: str, code: str) -> str:
    """Run ``code`` over the kernel's websocket, as the page does; its stdout."""
    from tornado.websocket import websocket_connect

    url = server.url.replace("http", "ws", 1)
    ws = await websocket_connect(f"{url}/api/kernels/{kernel_id}/channels?token={server.token}")
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": "execute_request",
        "username": "test",
        "session": uuid.uuid4().hex,
        "version": "5.3",
        "date": "",
    }
    request = {
        "header": header,
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False},
        "channel": "shell",
        "buffers": [],
    }
    await ws.write_message(json.dumps(request))
    out = []
    try:
        while True:
            raw = await asyncio.wait_for(ws.read_message(), 60)
            assert raw is not None, "the websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            if msg["msg_type"] == "error":
                out.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        ws.close()


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
        first = asyncio.run(_run_cell(server, kernel["id"], "kept = 41\nprint('set')"))
        assert first.strip() == "set", first
        _spare_of(server)
        api_request(server, "POST", f"/api/kernels/{kernel['id']}/restart")
        assert "started from a pre-warmed spare" in server.log_tail(200)
        after = asyncio.run(_run_cell(server, kernel["id"], "print('kept' in globals())"))
        assert after.strip() == "False", after
        report = asyncio.run(_run_cell(server, kernel["id"], "%sandbox"))
        assert "Started from a pre-warmed spare" in report, report
