"""Run INSIDE a container by tests/containers/test_containers.py (not collected on the host).

The level in force is the one the container configuration must give
(``SANDBOX_TEST_HOST_LEVEL``); the kernel must report exactly it, in kernel_info and
in ``%sandbox``; the limits the container sets (``SANDBOX_TEST_EXPECT_LIMITS``, text
``%sandbox`` must show) must be found; and the tour must run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.utils import execute, kernel_info, running_kernel

LEVEL = os.environ["SANDBOX_TEST_HOST_LEVEL"]
REPO = Path(__file__).resolve().parent.parent.parent


def test_the_level_in_force_is_reported(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    with running_kernel(tmp_path) as (_, kc):
        reply = kernel_info(kc)
        sandbox = reply["content"]["sandbox"]
        assert sandbox["level"] == LEVEL, sandbox
        report = execute(kc, "%sandbox").stdout
        print(report)
        assert f"Sandbox level: {LEVEL}" in report
        for phrase in filter(None, os.environ.get("SANDBOX_TEST_EXPECT_LIMITS", "").split(";")):
            assert phrase in report, report
        out = os.environ.get("SANDBOX_TEST_REPORT")
        if out:
            Path(out).write_text(report)


def test_the_tour_runs(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    tour = tmp_path / "tour.ipynb"
    shutil.copy(REPO / "notebooks" / "tour.ipynb", tour)
    nb = nbformat.read(tour, as_version=4)
    NotebookClient(
        nb,
        kernel_name="sandbox-python",
        timeout=180,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    assert any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")
