"""The result of checking a cell (Verdict, Finding) and how it is shown to the user.

Findings are returned, never raised (as RestrictedPython's CompileResult): the kernel
decides what to do with a verdict, and renders a denial with ``Verdict.as_error``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .alternatives import alternative
from .rules import RULES

__all__ = ["ENAME", "Finding", "Hit", "Verdict", "allow_hint", "describe"]

ENAME = "SandboxPolicyError"
MAX_TEXT = 80
CONFIG_FILE = "sandbox_kernel_config.py"


@dataclass(frozen=True)
class Hit:
    """A rule match, before the settings give it an action (internal to the policy)."""

    rule_id: str
    line: int
    col: int
    text: str
    subject: str


def allow_hint(rule_id: str, action: str) -> str:
    """How an administrator relaxes ``rule_id`` from ``action``, as one sentence."""
    weaker = {"deny": "warn", "warn": "audit"}.get(action, "off")
    verb = "allow this" if action == "deny" else "silence this"
    return (
        f"An administrator can {verb} with c.Policy.rules = {{'{rule_id}': '{weaker}'}} "
        f"in {CONFIG_FILE}"
    )


def describe(rule_id: str, subject: str) -> str:
    """The message of a finding: what was found, the rule's title, and why it matters."""
    rule = RULES[rule_id]
    return f"{subject} ({rule.title}): {rule.why}"


def _clip(text: str) -> str:
    text = text.replace("\t", " ").rstrip()
    # Control and format characters (NUL, bidi overrides) would garble the terminal.
    text = "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


@dataclass(frozen=True)
class Finding:
    """One rule that matched, with its effective action.

    ``line`` and ``col`` are 1-based and count characters (not bytes) in the cell as
    the user typed it. ``text`` is the offending snippet, truncated.
    """

    rule_id: str
    action: str
    line: int
    col: int
    text: str
    message: str
    hint: str
    # The allowed way to do the same, for the student ("" when there is none).
    instead: str = ""

    @classmethod
    def from_hit(cls, hit: Hit, action: str) -> Finding:
        return cls(
            rule_id=hit.rule_id,
            action=action,
            line=hit.line,
            col=hit.col,
            text=_clip(hit.text),
            message=describe(hit.rule_id, hit.subject),
            hint=allow_hint(hit.rule_id, action),
            instead=alternative(hit.rule_id, hit.subject),
        )

    def render(self) -> list[str]:
        """The finding as display lines: location and message, the snippet, what to
        write instead (when something is allowed), the administrator's hint."""
        lines = [f"Line {self.line}, column {self.col}: [{self.rule_id}] {self.message}"]
        if self.text.strip():
            lines.append(f"    {self.text}")
            lines.append("    ^")
        if self.instead:
            lines.append(f"    Instead: {self.instead}.")
        lines.append(f"    {self.hint}")
        return lines


@dataclass
class Verdict:
    """What the policy decided about one cell.

    ``allowed`` is False when any finding's action is "deny". A cell that is not valid
    Python (or that IPython cannot transform) is allowed with ``syntax_error`` set and
    no findings: the executor then shows Python's own error, and nothing runs.
    """

    findings: list[Finding] = field(default_factory=list)
    allowed: bool = True
    syntax_error: bool = False

    @classmethod
    def of(cls, findings: Iterable[Finding], *, syntax_error: bool = False) -> Verdict:
        ordered = sorted(findings, key=lambda f: (f.line, f.col, f.rule_id))
        allowed = not any(f.action == "deny" for f in ordered)
        return cls(findings=ordered, allowed=allowed, syntax_error=syntax_error)

    @property
    def rule_ids(self) -> list[str]:
        """The distinct rule ids of all findings, in order of first appearance."""
        return list(dict.fromkeys(f.rule_id for f in self.findings))

    def with_action(self, action: str) -> list[Finding]:
        return [f for f in self.findings if f.action == action]

    def as_error(self) -> tuple[str, str, list[str]]:
        """(ename, evalue, traceback lines) for a Jupyter error reply and error message."""
        denied = self.with_action("deny")
        ids = ", ".join(dict.fromkeys(f.rule_id for f in denied))
        count = f"{len(denied)} finding" + ("" if len(denied) == 1 else "s")
        evalue = f"this cell was not run: the sandbox policy denied it ({count}: {ids})"
        traceback = [f"{ENAME}: the sandbox policy refused to run this cell.", ""]
        for finding in denied:
            traceback.extend(finding.render())
            traceback.append("")
        traceback.append("Nothing in this cell was run; the kernel's state is unchanged.")
        return ENAME, evalue, traceback

    def as_warning(self) -> str | None:
        """Text for the cell's stderr when findings have the "warn" action, else None."""
        warned = self.with_action("warn")
        if not warned:
            return None
        lines = ["SandboxPolicyWarning: this cell uses features the sandbox policy flags:"]
        for finding in warned:
            lines.extend(finding.render())
        return "\n".join(lines) + "\n"
