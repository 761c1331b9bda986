"""Where the real-notebook corpus comes out differently from stock ipykernel, and why.

The corpus (``../shared/corpus``, 29 public notebooks nobody here wrote) is run by its
own harness, which compares every cell's outputs with stock ipykernel's. A few cells
differ on purpose: the output gate (issue 9) must not let active content run in the
Jupyter server's origin, so a cell whose output carries a script is shown in an
isolated frame instead. Those differences, and only those, are listed here, each with
its reason. The harness is shared and has no list of its own, so check its JSON report
against this one::

    python ../shared/corpus/compat.py --kernel sandbox-python --reference python3 -j 2 \\
        --json out.json
    python -m tests.conformance.corpus_differences out.json

The check fails on a difference that is not listed (a regression, or a list to
update honestly) and names listed ones that no longer differ (the list must shrink
with them). ``tests/unit/test_corpus_differences.py`` reproduces each listed
content and shows the gate still changes it for the reason given.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EXPECTED", "Expected", "check_report"]


@dataclass(frozen=True)
class Expected:
    """One cell that differs from stock on purpose."""

    labels: frozenset[str]  # what the harness says differs (its diff labels)
    kind: str  # "security": the gate's boundary (issue 9); "truthful": the kernel says what it is
    why: str


_ACTIVE = (
    "its output carries JavaScript (active content): under stock it runs in the Jupyter "
    "server's origin with the user's authority (it could start an unsandboxed kernel "
    "through the server's API); under every preset it may not, so the standard preset "
    "relays it as text/html holding an iframe with sandbox='allow-scripts' "
    "(Output.active_content='isolate'), where it runs with an opaque origin"
)
_NBAGG = (
    "%matplotlib notebook (nbagg): the figure is application/javascript (mpl.js) that "
    "talks back to the kernel over a comm it opens from the page; " + _ACTIVE + ". In the "
    "frame it has no comm to the kernel, so the figure is not interactive (JupyterLab 4 "
    "does not run nbagg either: 'IPython is not defined'; %matplotlib inline or ipympl "
    "work)"
)
_MATHML = (
    "Gaussian._repr_mimebundle_ offers application/mathml+xml beside LaTeX and PNG. No "
    "Jupyter frontend renders that type itself; one an extension adds would put the "
    "markup in the page, and <math> is where HTML parsers' namespace confusion (mutation "
    "XSS) lives, which relay/html.py does not prove passive. Like every type outside "
    "Output.renderer_mime_types it is dropped with a notice on stderr; the page shows "
    "the LaTeX exactly as under stock"
)

# (notebook file, cell index in the notebook as the harness counts it) -> why.
EXPECTED: dict[tuple[str, int], Expected] = {
    ("handsonml3__tools_matplotlib.ipynb", 104): Expected(
        frozenset({"text/html"}),
        "security",
        "HTML(line_ani.to_jshtml()): matplotlib's animation player, <script> and "
        "buttons; " + _ACTIVE,
    ),
    ("handsonml3__tools_matplotlib.ipynb", 108): Expected(
        frozenset({"text/html"}),
        "security",
        "a FuncAnimation shown with rc animation.html='jshtml' (the same player as cell "
        "104); " + _ACTIVE,
    ),
    ("ipython__Custom_Display_Logic.ipynb", 47): Expected(
        frozenset(
            {
                "shape",
                "output-count(1->2)",
                "kind(display_data->stream)",
                "image/png",
                "text/latex",
                "text/plain",
            }
        ),
        "security",
        _MATHML + " (random data: the harness compares this cell's shape only)",
    ),
    ("ipython__Custom_Display_Logic.ipynb", 50): Expected(
        frozenset({"output-count(1->2)", "kind(display_data->stream)", "text/latex", "text/plain"}),
        "security",
        _MATHML,
    ),
    ("ipython__Custom_Display_Logic.ipynb", 55): Expected(
        frozenset({"text/html", "application/javascript"}),
        "security",
        "FlotPlot: display_javascript() of code that loads flot with require.js and "
        "draws into the <div> of the output before it (the frame holds a copy of that "
        "<div>); " + _ACTIVE,
    ),
    ("ipython__Plotting_in_the_Notebook.ipynb", 17): Expected(
        frozenset({"text/html", "application/javascript"}), "security", _NBAGG
    ),
    ("wwtp__15-Preview-of-Data-Science-Tools.ipynb", 34): Expected(
        frozenset({"text/html", "application/javascript"}), "security", _NBAGG
    ),
    ("wwtp__15-Preview-of-Data-Science-Tools.ipynb", 37): Expected(
        frozenset({"text/html", "application/javascript"}), "security", _NBAGG
    ),
    ("nbclient__Other_Comms.ipynb", 1): Expected(
        frozenset({"output-count(0->1)", "stderr"}),
        "security",
        "create_comm() to a frontend target nobody handles: under stock the frontend "
        "ignores it silently; the gate refuses every comm_open to a target outside "
        "Output.comm_targets (the frontend code behind a target would act on what the "
        "cell sends, in the notebook page) and says so in one stderr line, so that a "
        "refusal is never silent (issue 9); it is also audited and counted",
    ),
    ("ipython__Cell_Magics.ipynb", 2): Expected(
        frozenset({"text/plain"}),
        "truthful",
        "%lsmagic lists the kernel's own line magic %sandbox (what the sandbox is doing "
        "and which settings apply); stock has no such magic. Hiding it from %lsmagic "
        "would make the listing untrue.",
    ),
}


def check_report(report: dict[str, Any]) -> list[str]:
    """Problems in a compat.py JSON report measured against EXPECTED (empty: all as expected)."""
    problems: list[str] = []
    seen: set[tuple[str, int]] = set()
    for notebook in report.get("notebooks", []):
        name = str(notebook.get("notebook", ""))
        status = notebook.get("status")
        if status == "ERROR":
            problems.append(f"{name}: ERROR (no error is expected): {notebook.get('failure')}")
        for diff in notebook.get("diffs", []):
            key = (name, int(diff["cell"]))
            labels = frozenset(diff.get("labels", []))
            expected = EXPECTED.get(key)
            if expected is None:
                problems.append(f"{name} cell {key[1]}: unexpected difference in {sorted(labels)}")
            elif not labels <= expected.labels:
                problems.append(
                    f"{name} cell {key[1]}: differs in {sorted(labels)}, "
                    f"expected only {sorted(expected.labels)}"
                )
            seen.add(key)
    ran = {str(n.get("notebook", "")) for n in report.get("notebooks", [])}
    for key in sorted(set(EXPECTED) - seen):
        if key[0] in ran:
            problems.append(
                f"{key[0]} cell {key[1]}: listed as an expected difference but came out "
                "identical: remove it from EXPECTED"
            )
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.conformance.corpus_differences REPORT.json", file=sys.stderr)
        return 2
    report = json.loads(Path(argv[0]).read_text())
    problems = check_report(report)
    total = report.get("total", 0)
    identical = report.get("summary", {}).get("PASS", 0)
    expected = {name for name, _ in EXPECTED}
    print(
        f"{identical}/{total} notebooks identical; the other {total - identical} differ "
        f"only where listed ({len(EXPECTED)} cells in {len(expected)} notebooks)"
        if not problems
        else "\n".join(problems)
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
