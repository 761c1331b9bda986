"""The documentation's install lines and example files work as written from a checkout."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "examples").glob("**/*.md"))]
DOCS += [ROOT / "examples" / "kubernetes" / "Dockerfile"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_install_line_assumes_an_index_has_sandbox_kernel(doc: Path) -> None:
    # "pip install sandbox-kernel", "pip install 'sandbox-kernel[hub]'": no index has it.
    from_index = re.compile(r"pip install[^\n#]*?(?<![/\w.-])['\"]?sandbox-kernel\b(?!/)")
    offending = [line for line in doc.read_text().splitlines() if from_index.search(line)]
    assert offending == []


def test_the_systemd_unit_is_valid(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("needs systemd-analyze (systemd)")
    unit = tmp_path / "jupyterhub.service"
    text = (ROOT / "examples" / "jupyterhub" / "jupyterhub.service").read_text()
    # The hub's virtualenv does not exist here; everything else is checked as written.
    unit.write_text(text.replace("/opt/jupyterhub/bin/jupyterhub", shutil.which("true") or ""))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "jupyterhub.service" not in result.stderr, result.stderr
