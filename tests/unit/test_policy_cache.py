"""CellChecker: the kernel's remembered verdicts are exactly check_cell's, per source."""

from __future__ import annotations

from sandbox_kernel.policy import PolicySettings, check_cell
from sandbox_kernel.policy.check import CellChecker

CELLS = [
    "1+1",
    "import ctypes",
    "import os\nos.system('ls')",
    "!ls",
    "x = (",  # a syntax error: allowed, the executor shows Python's error
    "exec('1')",
]


def test_remembered_verdicts_equal_a_fresh_check_for_every_preset() -> None:
    for preset in ("standard", "classroom", "permissive"):
        settings = PolicySettings(preset)
        checker = CellChecker(settings)
        for _ in range(2):  # the second round is answered from memory
            for cell in CELLS:
                assert checker.check(cell) == check_cell(cell, settings), (preset, cell)


def test_a_denied_cell_stays_denied_and_sources_differing_by_one_character_are_apart() -> None:
    checker = CellChecker(PolicySettings("classroom"))
    assert checker.check("import os") == check_cell("import os", checker.settings)
    assert not checker.check("import ctypes").allowed
    assert not checker.check("import ctypes").allowed
    assert checker.check("import ctypes ").allowed is False
    assert checker.check("import ctype").allowed


def test_memory_is_bounded() -> None:
    checker = CellChecker(PolicySettings(), size=4)
    for i in range(20):
        checker.check(f"x = {i}")
    assert len(checker._verdicts) == 4
    assert checker.check("x = 0") == check_cell("x = 0", PolicySettings())
