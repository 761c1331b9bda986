"""The kernel's own channel on a shared machine (issue 16).

Unsigned messages let any local user who finds the kernel's loopback ports drive
it, and with it this user's workspace: the kernel refuses an empty HMAC key. The
``ipc`` transport puts the sockets in the runtime directory as the user's own
unix sockets (0600), out of other users' reach: tested through jupyter_client and
nbclient.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.connect import write_connection_file
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from traitlets.config import Config

from tests.utils import KERNEL_NAME, TIMEOUT, execute

pytestmark = pytest.mark.timeout(180)


def test_an_empty_hmac_key_is_refused(tmp_path: Path) -> None:
    connection, _ = write_connection_file(str(tmp_path / "kernel.json"), key=b"")
    kernel = subprocess.Popen(
        [sys.executable, "-I", "-m", "sandbox_kernel", "-f", connection],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = kernel.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        kernel.kill()
        kernel.communicate()
        pytest.fail("the kernel kept running with unsigned messages")
    assert kernel.returncode != 0
    assert "empty HMAC key" in stderr
    assert "To fix" in stderr


def test_a_key_is_still_required_when_the_manager_writes_none(tmp_path: Path) -> None:
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.session.key = b""
    km.start_kernel(cwd=str(tmp_path))
    try:
        km.provisioner.process.wait(timeout=TIMEOUT)  # type: ignore[union-attr]
        assert not km.is_alive()
    finally:
        km.shutdown_kernel(now=True)


def _socket_paths(km: KernelManager) -> list[Path]:
    info = km.get_connection_info()
    ports = [info[name] for name in ("shell_port", "iopub_port", "stdin_port", "control_port")]
    return [Path(f"{info['ip']}-{port}") for port in [*ports, info["hb_port"]]]


def test_ipc_transport_through_jupyter_client(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    km = KernelManager(
        kernel_name=KERNEL_NAME,
        transport="ipc",
        connection_file=str(runtime / "kernel-ipc-test.json"),
    )
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        result = execute(kc, "print(6 * 7)")
        assert result.stdout == "42\n"
        paths = _socket_paths(km)
        assert len(paths) == 5
        for path in paths:
            # The kernel's own unix sockets, in the runtime dir, for this user only.
            assert path.parent == runtime
            mode = path.stat().st_mode
            assert stat.S_ISSOCK(mode)
            assert stat.S_IMODE(mode) == 0o600, oct(mode)
            assert path.stat().st_uid == os.getuid()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


# From inside, a cell tries every unix socket in its workspace (the kernel's own,
# when jupyter_client put them there).
CONNECT_ALL = """
import os, socket
for name in sorted(os.listdir('.')):
    if '-ipc-' in name:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(name)
            print('CONNECTED', name)
        except OSError as exc:
            print('refused', name, exc.errno)
"""


def test_ipc_transport_through_nbclient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As nbconvert or papermill run in the notebook's directory with only
    # --KernelManager.transport=ipc: jupyter_client's default socket name is relative
    # ("kernel-ipc-N"), so the kernel's sockets land in the notebook directory.
    monkeypatch.chdir(tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 20"),
        nbformat.v4.new_code_cell("print(x + 22)"),
        nbformat.v4.new_code_cell(CONNECT_ALL),
    ]
    # As papermill or a grader configures it: the transport through the config, the
    # kernel manager nbclient's own (it closes its sockets when the run ends).
    config = Config({"KernelManager": {"transport": "ipc"}})
    client = NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        config=config,
        timeout=TIMEOUT,
        resources={"metadata": {"path": tmp_path}},
    )
    client.execute()
    assert nb.cells[1].outputs[0]["text"] == "42\n"
    tried = "".join(out.get("text", "") for out in nb.cells[2].outputs)
    # The sockets were there, and no cell reached one.
    assert tried.count("refused") == 5, tried
    assert "CONNECTED" not in tried
