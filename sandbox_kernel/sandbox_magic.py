"""``%sandbox``: its help text, its subcommands, and the rule listing it shows.

The trusted kernel answers ``%sandbox`` when it is alone in a cell (a cell
cannot make the executor misreport its sandbox); the executor registers a
magic of the same name so that ``%sandbox?`` and inspection show this help.
"""

from __future__ import annotations

from collections.abc import Mapping

from .policy.rules import RULES

__all__ = ["SANDBOX_MAGIC_DOC", "SUBCOMMANDS", "rules_table"]

SUBCOMMANDS = ("rules", "help")

SANDBOX_MAGIC_DOC = """Show the sandbox this kernel runs its cells in.

Usage, alone in a cell:

  %sandbox          the isolation level and each layer (on or off, and why),
                    the limits, the policy, who locked what, and the last cell
  %sandbox rules    every policy rule: its id, group, action here, and what it catches
  %sandbox help     this text (also: %sandbox?)

The sandbox-kernel answers %sandbox itself, from its own record of what the
sandbox's launcher set up: code in a cell cannot change what it reports.
Actions: deny refuses the cell, warn runs it with a warning, audit only
records it in the audit log, off ignores it. An administrator changes them
with c.Policy.rules = {"SKP101": "deny", "shell": "audit"} (by rule id or
group) or c.Policy.preset; an admin lock may pin them.
"""


def rules_table(actions: Mapping[str, str], preset: str, locked: Mapping[str, str]) -> str:
    """One line per rule: id, group, the action in force (``locked`` marks pinned ones)."""
    lines = [
        f"Policy rules (preset {preset}; change with c.Policy.rules = {{'SKP101': 'deny'}}):",
        f"  {'rule':<7} {'group':<10} {'action':<14} catches",
    ]
    for rid, rule in RULES.items():
        action = actions.get(rid, rule.default(preset))
        if rid in locked:
            action += " (locked)"
        lines.append(f"  {rid:<7} {rule.group:<10} {action:<14} {rule.title}")
    lines.append(
        "deny: the cell is refused; warn: it runs with a warning; audit: recorded in the "
        "audit log only; off: ignored."
    )
    return "\n".join(lines)
