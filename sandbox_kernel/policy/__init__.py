"""Static policy for notebook cells: one entry point, ``check_cell(source, settings)``.

The trusted kernel calls ``check_cell`` before a cell is sent to the executor; a
``Verdict`` that is not ``allowed`` is rendered with ``Verdict.as_error()`` and the
cell does not run. The same rule ids are enforced at run time by the executor's audit
hooks (``sandbox_kernel.child.audit``).
"""

from __future__ import annotations

from .check import check_cell
from .rules import ACTIONS, GROUPS, PRESET_NAMES, RULES, Rule
from .settings import PolicySettings
from .verdict import Finding, Verdict

__all__ = [
    "ACTIONS",
    "GROUPS",
    "PRESET_NAMES",
    "RULES",
    "Finding",
    "PolicySettings",
    "Rule",
    "Verdict",
    "check_cell",
]
