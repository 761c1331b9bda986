"""Where the host gives no cgroup cpu controller, the kernel says the CPU share is not enforced.

The simulated Docker host (tests/security/restricted_host.py) mounts the cgroup
filesystem read-only, as Docker does: the kernel cannot make a cgroup, and
``%sandbox`` must say that ``Limits.cpu_share`` does not hold, and why.
"""

from __future__ import annotations

from pathlib import Path

from tests.security.conftest import OS_LAYER_ONLY, Host, start_sandbox


def test_an_unenforced_cpu_share_is_reported(tmp_path: Path, host: Host) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    workspace.chmod(0o777)
    box = start_sandbox("landlock", workspace, host, extra=[*OS_LAYER_ONLY, "--Limits.cpu_share=1"])
    try:
        report = box.run("%sandbox").stdout
    finally:
        box.kc.stop_channels()
        box.km.shutdown_kernel(now=True)
    line = next((x for x in report.splitlines() if "cpu_share" in x and "[" in x), "")
    if "[on ]" in line:
        # This host lets the kernel make a cgroup even here: then the share holds.
        assert "1 core(s)" in line, report
    else:
        assert "[off]" in line, report
        assert "NOT enforced" in line, report
        assert "Limits.cpu_share = 1" in line, report
