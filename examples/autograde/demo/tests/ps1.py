"""Hidden tests for problem set 1, run by grade.py in the grader process.

This file never goes into a workspace: keep it in course/tests/ (a hidden path), as
the demo course does (examples/autograde/demo/tests/ps1.py). Each ``test_*`` function
gets ``probe``; ``probe("expr")`` is the value of ``expr`` in the student's kernel as
plain JSON data, ``probe.error("expr")`` the name of the exception it raised. Compare
here, never in the probe: ``probe("square(3) == 9")`` would let the student's code
decide the outcome. Inputs drawn at random in this process cannot be
hard-coded in a submission.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

POINTS = {"test_square": 2, "test_mean": 2, "test_mean_empty": 1, "test_total": 1}
# The grader's own copy of the data the students get (grade.py --data course/data/ps1).
DATA = Path(__file__).resolve().parent.parent / "data" / "ps1" / "numbers.txt"
_rng = random.SystemRandom()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_square(probe: Any) -> None:
    for x in [3, -4, 0, _rng.randint(1000, 10**6)]:
        got = probe(f"square({x})")
        assert _number(got), f"square({x}) returned {got!r}"
        assert got == x * x, f"square({x}) returned {got!r}"


def test_mean(probe: Any) -> None:
    assert probe("mean([1, 2, 3, 4])") == 2.5
    xs = [round(_rng.uniform(-100, 100), 3) for _ in range(_rng.randint(3, 9))]
    got = probe(f"mean({xs!r})")
    assert _number(got), f"mean({xs}) returned {got!r}"
    assert math.isclose(got, sum(xs) / len(xs)), f"mean({xs}) returned {got!r}"


def test_mean_empty(probe: Any) -> None:
    assert probe.error("mean([])") == "ValueError", "mean([]) must raise ValueError"


def test_total(probe: Any) -> None:
    expected = sum(int(line) for line in DATA.read_text().split())
    assert probe("total") == expected
