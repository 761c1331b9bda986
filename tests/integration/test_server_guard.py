"""The server guard (sandbox_kernel/server_guard.py): no unsandboxed kernel, no terminal.

Defence in depth offered to admins, checked against a real Jupyter server through its
REST API with the user's own token: what an output would try if it could act as the
user. The positive control is the same server without the guard.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest

from tests.integration.test_browser import install_kernelspec, start_lab
from tests.integration.test_browser_sanitize import api_request

GUARD = "from sandbox_kernel.server_guard import configure\nconfigure(c)\n"


def try_request(server, method: str, path: str, body: object = None) -> int:  # type: ignore[no-untyped-def]
    try:
        api_request(server, method, path, body)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


@pytest.mark.parametrize("guarded", [False, True])
def test_server_guard_refuses_unsandboxed_kernels_and_terminals(
    tmp_path: Path, guarded: bool
) -> None:
    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir()
    if guarded:
        (config_dir / "jupyter_server_config.py").write_text(GUARD)
    with start_lab(tmp_path, [str(install_kernelspec(tmp_path / "prefix"))]) as server:
        specs = server.api("/api/kernelspecs")["kernelspecs"]
        kernel = try_request(server, "POST", "/api/kernels", {"name": "python3"})
        session = try_request(
            server,
            "POST",
            "/api/sessions",
            {"path": "x.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
        )
        terminal = try_request(server, "POST", "/api/terminals", {})
        kernels = server.api("/api/kernels")
        if not guarded:  # the positive control: the same requests work without the guard
            assert "python3" in specs
            assert kernel == 200
            assert session == 200
            assert terminal == 200
            assert kernels
            return
        assert set(specs) == {"sandbox-python"}
        assert kernel >= 400
        assert session >= 400
        assert terminal == 404
        assert kernels == []
