"""Whole notebooks through the tools that run untrusted ones: nbclient, nbconvert, papermill."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.utils import KERNEL_NAME

NOTEBOOK = Path(__file__).parent / "notebooks" / "params.ipynb"


@pytest.fixture
def notebook(workspace: Path) -> Path:
    target = workspace / "params.ipynb"
    shutil.copy(NOTEBOOK, target)
    return target


def _outputs(nb: nbformat.NotebookNode) -> list[list[str]]:
    return [[o["output_type"] for o in c.get("outputs", [])] for c in nb.cells]


def test_nbclient(notebook: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=120,
        resources={"metadata": {"path": str(notebook.parent)}},
    ).execute()
    assert nb.cells[1].outputs[0]["text"] == "hellohello\n"
    assert "text/html" in nb.cells[2].outputs[0]["data"]
    assert "image/png" in nb.cells[3].outputs[0]["data"]
    assert nb.cells[4].outputs[0]["ename"] == "ValueError"
    assert (notebook.parent / "made-by-notebook.txt").read_text() == "hello"


def test_nbclient_stops_on_an_untagged_error(workspace: Path) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("1/0"), nbformat.v4.new_code_cell("print('never')")]
    )
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        NotebookClient(
            nb,
            kernel_name=KERNEL_NAME,
            timeout=60,
            resources={"metadata": {"path": str(workspace)}},
        ).execute()
    assert nb.cells[1].outputs == []


def test_nbconvert_cli(notebook: Path) -> None:
    out = notebook.parent / "executed.ipynb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            f"--ExecutePreprocessor.kernel_name={KERNEL_NAME}",
            "--output",
            out.name,
            str(notebook),
        ],
        check=True,
        cwd=notebook.parent,
        capture_output=True,
        timeout=300,
    )
    nb = nbformat.read(out, as_version=4)
    assert nb.cells[1].outputs[0]["text"] == "hellohello\n"
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME


def test_papermill_injects_parameters(notebook: Path) -> None:
    papermill = pytest.importorskip("papermill")
    # papermill stops at any error, tagged or not: run the notebook without its failing cell.
    nb = nbformat.read(notebook, as_version=4)
    nb.cells = [c for c in nb.cells if "raises-exception" not in c.metadata.get("tags", [])]
    nbformat.write(nb, notebook)
    out = notebook.parent / "papermill-out.ipynb"
    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters={"greeting": "bye", "repeat": 3},
        kernel_name=KERNEL_NAME,
        cwd=str(notebook.parent),
    )
    nb = nbformat.read(out, as_version=4)
    printed = [
        o["text"] for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout"
    ]
    assert "byebyebye\n" in printed


TOUR = Path(__file__).parents[2] / "notebooks" / "tour.ipynb"


def test_the_tour_runs_and_shows_what_it_claims(workspace: Path) -> None:
    """The README's first command runs this notebook; every claim it makes must hold."""
    target = workspace / "tour.ipynb"
    shutil.copy(TOUR, target)
    nb = nbformat.read(target, as_version=4)
    NotebookClient(
        nb, kernel_name=KERNEL_NAME, timeout=180, resources={"metadata": {"path": str(workspace)}}
    ).execute()

    def text_of(cell: nbformat.NotebookNode) -> str:
        parts = []
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
            parts.append(" ".join(out.get("traceback", [])))
        return "\n".join(parts)

    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    errors = {
        c.source.splitlines()[0]: o["ename"]
        for c in code_cells
        for o in c.outputs
        if o["output_type"] == "error"
    }
    assert errors == {
        "# Walking the class hierarchy to reach os.system without importing it:": "SandboxPolicyError",
        "important = 'half-finished work of the crashing cell'": "ExecutorDied",
    }
    by_start = {c.source.splitlines()[0]: text_of(c) for c in code_cells}
    assert (
        "SKP220"
        in by_start["# Walking the class hierarchy to reach os.system without importing it:"]
    )
    assert by_start["print(important)"].splitlines()[:2] == ["computed before the crash", "(8, 2)"]
    assert (workspace / "tour-output.txt").read_text() == "written from the sandbox\n"
    secrets = by_start["import os"]
    assert "read " not in secrets
    assert secrets.count(": ") == 3
    assert "cannot plant evil.pth" in by_start["import sysconfig"]
    assert "network:" in by_start["import socket"]
    assert not any(
        name.startswith(("JPY", "JUPYTERHUB"))
        for name in ast.literal_eval(by_start["sorted(os.environ)"].strip())
    )
