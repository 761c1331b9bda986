"""The corpus's listed differences from stock (tests/conformance/corpus_differences.py):
the check of a compat report, and each security difference reproduced against the gate."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox_kernel.relay.gate import GateSettings, OutputGate
from sandbox_kernel.relay.html import is_passive_html
from tests.conformance.corpus_differences import EXPECTED, check_report

JSHTML = ("handsonml3__tools_matplotlib.ipynb", 104)
FLOT = ("ipython__Custom_Display_Logic.ipynb", 55)


def report(*diffs: tuple[str, int, list[str]], status: str = "DIFF") -> dict[str, Any]:
    notebooks: dict[str, dict[str, Any]] = {
        name: {"notebook": name, "status": "PASS", "diffs": []} for name, _ in EXPECTED
    }
    for name, cell, labels in diffs:
        entry = notebooks.setdefault(name, {"notebook": name, "status": status, "diffs": []})
        entry["status"] = status
        entry["diffs"].append({"cell": cell, "labels": labels})
    return {"notebooks": list(notebooks.values()), "total": len(notebooks)}


def listed() -> list[tuple[str, int, list[str]]]:
    return [(name, cell, sorted(e.labels)) for (name, cell), e in EXPECTED.items()]


def test_a_report_with_exactly_the_listed_differences_passes() -> None:
    assert check_report(report(*listed())) == []


def test_an_unlisted_difference_fails() -> None:
    problems = check_report(
        report(*listed(), ("wwtp__05-Built-in-Scalar-Types.ipynb", 3, ["stdout"]))
    )
    assert problems == [
        "wwtp__05-Built-in-Scalar-Types.ipynb cell 3: unexpected difference in ['stdout']"
    ]


def test_a_listed_cell_differing_in_more_than_listed_fails() -> None:
    name, cell = JSHTML
    others = [d for d in listed() if (d[0], d[1]) != JSHTML]
    problems = check_report(report(*others, (name, cell, ["text/html", "stderr"])))
    assert len(problems) == 1
    assert "expected only" in problems[0]


def test_a_listed_difference_that_vanished_must_leave_the_list() -> None:
    others = [d for d in listed() if (d[0], d[1]) != FLOT]
    [problem] = check_report(report(*others))
    assert "remove it from EXPECTED" in problem


def test_an_error_is_never_expected() -> None:
    problems = check_report(
        report(*listed(), ("nbclient__UnicodePy3.ipynb", 0, []), status="ERROR")
    )
    assert any("ERROR" in p for p in problems)


def test_every_listed_difference_says_why() -> None:
    for entry in EXPECTED.values():
        assert entry.kind in {"security", "truthful"}
        assert len(entry.why) > 40
        assert entry.labels


# -- the security differences, reproduced ------------------------------------------------


def standard_gate() -> OutputGate:
    return OutputGate(GateSettings(active_content="isolate"))


def test_matplotlibs_jshtml_animation_is_active_and_isolated() -> None:
    """JSHTML: FuncAnimation.to_jshtml() is a player made of <script> and buttons."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib import animation
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots()
    (line,) = ax.plot([0, 1], [0, 1])
    player = animation.FuncAnimation(fig, lambda i: (line,), frames=2).to_jshtml()
    plt.close(fig)
    assert "<script" in player
    assert not is_passive_html(player)
    out, _ = standard_gate().bundle({"text/html": player, "text/plain": "<HTML>"})
    assert out["text/html"] != player
    assert 'sandbox="allow-scripts"' in out["text/html"]
    assert out["text/plain"] == "<HTML>"


def test_flots_javascript_is_isolated_with_its_target_div() -> None:
    """FLOT: the script runs in a frame that also holds the <div> it draws into."""
    gate = standard_gate()
    div = '<div id="7f2c1e40-plot" style="height: 300px; width:80%;"></div>'
    script = 'require(["flot"], function() { $.plot("#7f2c1e40-plot", [[1, 2]]); });'
    gate.begin_cell()
    assert gate.bundle({"text/html": div, "text/plain": "<HTML>"})[0]["text/html"] == div
    out, _ = gate.bundle({"application/javascript": script, "text/plain": "<Javascript>"})
    assert "application/javascript" not in out
    assert 'sandbox="allow-scripts"' in out["text/html"]
    assert "7f2c1e40-plot" in out["text/html"]


def test_mathml_is_a_type_the_gate_does_not_relay() -> None:
    """Custom_Display_Logic 47 and 50: MathML beside LaTeX; the LaTeX is what shows."""
    mathml = '<math xmlns="http://www.w3.org/1998/Math/MathML"><mi>N</mi></math>'
    bundle = {"application/mathml+xml": mathml, "text/latex": "$N$", "text/plain": "<G>"}
    out, notes = standard_gate().bundle(bundle)
    assert out == {"text/latex": "$N$", "text/plain": "<G>"}
    assert len(notes) == 1
    assert "Output.renderer_mime_types" in notes[0]
    assert not is_passive_html(mathml)
