"""The hard requirement of the standard preset: no cell of the shared corpus of real
notebooks is refused (shell escapes, %%bash, %%script, %%writefile, %run, %load_ext ...
are recorded, not denied)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_kernel.policy import PolicySettings, check_cell

CORPUS = Path(__file__).parents[2] / ".." / "shared" / "corpus"
NOTEBOOKS = CORPUS / "notebooks"


def code_cells() -> Iterator[tuple[str, int, str]]:
    """(notebook name, cell index, source) of every code cell in the corpus."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for index, cell in enumerate(notebook.get("cells", [])):
            if cell.get("cell_type") != "code":
                continue
            source = cell.get("source", "")
            yield path.name, index, "".join(source) if isinstance(source, list) else source


@pytest.fixture(scope="module")
def cells() -> list[tuple[str, int, str]]:
    if not NOTEBOOKS.is_dir():
        pytest.skip(f"the shared notebook corpus is missing: {NOTEBOOKS.resolve()} not found")
    found = list(code_cells())
    if not found:
        pytest.skip(f"no notebooks in {NOTEBOOKS.resolve()}")
    return found


def test_corpus_is_complete(cells: list[tuple[str, int, str]]) -> None:
    assert len({name for name, _, _ in cells}) == 29
    assert len(cells) > 500


def test_no_corpus_cell_is_refused_under_standard(cells: list[tuple[str, int, str]]) -> None:
    settings = PolicySettings("standard")
    refused = []
    for name, index, source in cells:
        verdict = check_cell(source, settings)
        if not verdict.allowed:
            refused.append(f"{name} cell {index}: {verdict.rule_ids}")
    assert refused == []


def test_corpus_shell_escapes_are_seen_and_recorded(cells: list[tuple[str, int, str]]) -> None:
    settings = PolicySettings("standard")
    rules: set[str] = set()
    for _, _, source in cells:
        rules.update(f.rule_id for f in check_cell(source, settings).findings)
    # !ls and !python (SKP101), %%bash and %%script (SKP102), %%writefile (SKP112), %run
    assert {"SKP101", "SKP102", "SKP112", "SKP110"} <= rules
    # and nothing the standard preset would show the user as a warning
    for _, _, source in cells:
        assert check_cell(source, settings).as_warning() is None


def test_classroom_refuses_only_shell_escapes(cells: list[tuple[str, int, str]]) -> None:
    settings = PolicySettings("classroom")
    denied: set[str] = set()
    for _, _, source in cells:
        verdict = check_cell(source, settings)
        denied.update(f.rule_id for f in verdict.findings if f.action == "deny")
    assert denied <= {"SKP101", "SKP102"}
