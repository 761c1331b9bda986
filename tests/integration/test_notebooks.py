"""Whole notebooks through the tools that run untrusted ones: nbclient, nbconvert, papermill."""

from __future__ import annotations

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
    NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=120, resources={"metadata": {"path": str(notebook.parent)}}).execute()
    assert nb.cells[1].outputs[0]["text"] == "hellohello\n"
    assert "text/html" in nb.cells[2].outputs[0]["data"]
    assert "image/png" in nb.cells[3].outputs[0]["data"]
    assert nb.cells[4].outputs[0]["ename"] == "ValueError"
    assert (notebook.parent / "made-by-notebook.txt").read_text() == "hello"


def test_nbclient_stops_on_an_untagged_error(workspace: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1/0"), nbformat.v4.new_code_cell("print('never')")])
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=60, resources={"metadata": {"path": str(workspace)}}).execute()
    assert nb.cells[1].outputs == []


def test_nbconvert_cli(notebook: Path) -> None:
    out = notebook.parent / "executed.ipynb"
    subprocess.run(
        [
            sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
            f"--ExecutePreprocessor.kernel_name={KERNEL_NAME}", "--output", out.name, str(notebook),
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
        str(notebook), str(out), parameters={"greeting": "bye", "repeat": 3}, kernel_name=KERNEL_NAME, cwd=str(notebook.parent)
    )
    nb = nbformat.read(out, as_version=4)
    printed = [o["text"] for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout"]
    assert "byebyebye\n" in printed
