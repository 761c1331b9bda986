"""examples/autograde/demo graded end to end, the way its README says, in one command.

The kernelspec is installed as the README installs it (``--name sandbox-grader
--preset classroom``, here under a private prefix), the demo course is copied to the
test's tmp dir, and ``grade.py --course DIR`` grades the honest and the hostile
submission. Checked from outside: the grades, the progress lines, every event's
detail, and that the hidden tests never reached the hostile submission's outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "autograde"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    base = tmp_path_factory.mktemp("demo")
    base.chmod(0o755)
    course = base / "demo"
    shutil.copytree(EXAMPLE / "demo", course)
    for generated in ("work", "results", "feedback", "audit"):
        assert not (course / generated).exists(), f"the checkout's demo holds {generated}/"
    prefix = base / "prefix"
    install = ["install", "--prefix", str(prefix), "--name", "sandbox-grader"]
    subprocess.run(
        [sys.executable, "-m", "sandbox_kernel", *install, "--preset", "classroom"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    env = {
        **os.environ,
        "JUPYTER_PATH": os.pathsep.join(
            [str(prefix / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")]
        ),
    }
    tests_before = hashlib.sha256((course / "tests" / "ps1.py").read_bytes()).hexdigest()
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "grade.py"), "--course", str(course)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tests_after = hashlib.sha256((course / "tests" / "ps1.py").read_bytes()).hexdigest()
    assert tests_after == tests_before
    results = json.loads((course / "results" / "ps1.json").read_text())
    return course, result.stdout, results


def test_one_command_grades_both_submissions_with_progress(
    demo_run: tuple[Path, str, dict],
) -> None:
    _, stdout, results = demo_run
    lines = stdout.splitlines()
    assert lines[0] == "[1/2] honest: running ps1.ipynb ...", stdout
    assert lines[1].startswith("[1/2] honest "), stdout
    assert lines[2] == "[2/2] hostile: running ps1.ipynb ...", stdout
    assert lines[3].startswith("[2/2] hostile "), stdout
    graded = results["submissions"]
    assert graded["honest"]["score"] == graded["honest"]["max_score"] == 6
    assert graded["honest"]["status"] == "graded"
    assert graded["hostile"]["score"] == 0, graded["hostile"]["tests"]
    assert graded["hostile"]["sandbox_level"] in ("namespaces", "landlock")


def test_every_event_says_what_happened_and_where(demo_run: tuple[Path, str, dict]) -> None:
    _, _, results = demo_run
    events = results["submissions"]["hostile"]["events"]
    assert events, "the hostile submission's refusals are in its events"
    for event in events:
        assert event["detail"], event
        assert event["cell"].startswith("cell ") or event["cell"] == "a probe", event
    refused = {rule for e in events if e["verdict"] == "denied" for rule in e["rules"]}
    assert {"SKP101", "SKP220"} <= refused, events
    shell = [e for e in events if e["kind"] == "cell" and "SKP101" in e["rules"]]
    assert shell[0]["cell"] == "cell 3", shell
    assert shell[0]["outcome"] == "refused"
    assert "refused by the policy" in shell[0]["detail"]
    assert results["submissions"]["honest"]["events"] == []


def test_hidden_tests_stayed_hidden(demo_run: tuple[Path, str, dict]) -> None:
    course, _, _ = demo_run
    feedback = (course / "feedback" / "ps1" / "hostile" / "ps1.ipynb").read_text()
    assert "def test_square" not in feedback
    assert "POINTS" not in feedback
    # The workspaces are gone; only results, feedback and the audit log were written.
    assert list((course / "work").iterdir()) == []
