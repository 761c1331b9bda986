"""The pipeline for one cell: IPython's transformations, then every rule, then a Verdict.

The cell is checked as IPython will run it: ``TransformerManager.transform_cell`` turns
``!cmd``, ``%magic`` and ``%%magic`` into calls, and single-line cells go through the
same automagic rules as IPython's prefilter (``ls -la`` runs the ``%ls`` alias). Code
found inside code (cell-magic bodies, ``exec`` strings, ``{expr}`` fields of shell
commands) is checked in turn, to a bounded depth.
"""

from __future__ import annotations

import ast
import hashlib
import keyword
import logging
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from .analyzer import Analyzer
from .bypass import (
    bidi_controls,
    coding_cookie,
    lookalike_identifiers,
    may_need_token_transforms,
    transform_cost,
)
from .locate import Locator, Mapper, Position, char_col, split_lines
from .magics import LINE_MAGICS
from .names import BUILTIN_NAMES
from .settings import PolicySettings
from .verdict import Finding, Hit, Verdict

__all__ = ["MAX_NESTING", "CellChecker", "check_cell", "check_code"]

_log = logging.getLogger(__name__)

MAX_NESTING = 6
# Characters IPython may tokenize for one cell (see bypass.transform_cost): about a
# second of work on an ordinary machine. Real cells are far below it (a 100-line cell
# with 10 escapes costs 40,000); past it IPython itself would take seconds to minutes.
MAX_TRANSFORM_COST = 500_000

_PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, UnicodeError, OverflowError)


def check_cell(source: str, settings: PolicySettings) -> Verdict:
    """Check one notebook cell, as IPython will run it, against the policy ``settings``.

    Never raises for any input. A cell that is not valid Python, or that IPython
    cannot transform, is allowed with ``syntax_error`` set, so that the user sees
    Python's own error from the executor.
    """
    if not isinstance(source, str):
        source = str(source)
    try:
        hits = _Scanner().cell(source, 0, None)
    except Exception:
        # A checker that cannot finish must not let the cell through unchecked (fail
        # closed), nor take the kernel down.
        _log.exception("policy_check_failed cell_chars=%d", len(source))
        hits = [Hit("SKP122", 1, 1, "", "a cell the checker failed on")]
    if hits is None:
        return Verdict(findings=[], allowed=True, syntax_error=True)
    return Verdict.of(_findings(hits, settings))


class CellChecker:
    """``check_cell`` with the verdicts of recent cells remembered, by a digest of the source.

    A verdict depends only on the source and the settings, which are fixed for the
    checker's life, so a cell run again (the same cell re-run, a loop of cells in a
    test or grader) is not parsed and walked again. The key is a cryptographic
    digest, not ``hash()``: with a known hash seed, a harmless cell's verdict could
    otherwise be reused for a colliding one.
    """

    def __init__(self, settings: PolicySettings, size: int = 256) -> None:
        self.settings = settings
        self.size = size
        self._verdicts: OrderedDict[bytes, Verdict] = OrderedDict()

    def check(self, source: str) -> Verdict:
        if not isinstance(source, str):
            return check_cell(source, self.settings)
        key = hashlib.blake2b(source.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        verdict = self._verdicts.get(key)
        if verdict is not None:
            self._verdicts.move_to_end(key)
            return verdict
        verdict = check_cell(source, self.settings)
        self._verdicts[key] = verdict
        if len(self._verdicts) > self.size:
            self._verdicts.popitem(last=False)
        return verdict


def check_code(
    source: str | bytes | ast.AST, settings: PolicySettings, *, mode: str = "exec"
) -> Verdict:
    """Check plain Python (not an IPython cell): code compiled while a cell runs.

    The executor's audit hook calls this for ``compile``/``exec`` of code the static
    pass never saw (decoded payloads, files written then imported). ``source`` may be
    the text or an already-built AST.
    """
    hits: list[Hit] | None
    try:
        if isinstance(source, ast.AST):
            hits = _Scanner().tree(source, None)
        else:
            text = source if isinstance(source, str) else _decode_source(source)
            hits = _Scanner().python(text, 0, None, mode)
    except Exception:
        # fail closed, as check_cell does (an AST built by hand may be odd)
        hits = [Hit("SKP122", 1, 1, "", "code the checker failed on")]
    if hits is None:
        return Verdict(findings=[], allowed=True, syntax_error=True)
    return Verdict.of(_findings(hits, settings))


def _findings(hits: Iterable[Hit], settings: PolicySettings) -> list[Finding]:
    findings = []
    for hit in hits:
        action = settings.action(hit.rule_id)
        if action != "off":
            findings.append(Finding.from_hit(hit, action))
    return findings


def _decode_source(data: bytes) -> str:
    """Decode source bytes the way Python would, honouring a coding declaration."""
    import tokenize
    from io import BytesIO

    try:
        encoding, _ = tokenize.detect_encoding(BytesIO(data).readline)
        return data.decode(encoding, "replace")
    except (SyntaxError, LookupError, UnicodeError):
        return data.decode("utf-8", "replace")


def _parse(text: str, mode: str) -> ast.AST | None:
    try:
        with warnings.catch_warnings():
            # invalid escape sequences and the like: compile-time warnings are not ours
            warnings.simplefilter("ignore")
            return compile(  # type: ignore[no-any-return]
                text,
                "<cell>",
                mode,
                ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                dont_inherit=True,
            )
    except _PARSE_ERRORS:
        return None


def _transform(text: str) -> str | None:
    """``TransformerManager().transform_cell(text)``, skipping its token pass when no token
    transform can apply (it re-tokenizes the whole cell, which dominates the cost)."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the steps of TransformerManager.transform_cell, in its order
            manager: Any = TransformerManager()  # type: ignore[no-untyped-call]
            cell = text if text.endswith("\n") else text + "\n"
            lines: list[str] = cell.splitlines(keepends=True)
            for transform in manager.cleanup_transforms + manager.line_transforms:
                lines = transform(lines)
            if may_need_token_transforms("".join(lines)):
                lines = manager.do_token_transforms(lines)
            return "".join(lines)
    except Exception:
        return None


def _prefilter(transformed: str) -> list[str]:
    """What IPython runs for a one-line cell: its prefilter turns known magic names into
    magics when automagic is on (``ls -la``, ``pip install x``, ``time f()``).

    Returns the candidate sources: the line itself, the magic, or both when the line is
    valid Python and only the namespace at run time decides (``ls`` may be a variable).
    """
    lines = transformed.splitlines()
    if len(lines) != 1 or not lines[0].strip():
        return [transformed]
    from IPython.core.splitinput import split_user_input

    pre, esc, ifun, raw_rest = split_user_input(lines[0])
    rest = raw_rest.lstrip()
    if esc or not ifun or (rest and rest[0] in "=,"):
        return [transformed]
    head = ifun.split(".", 1)[0]
    if keyword.iskeyword(head) or head in BUILTIN_NAMES or ifun not in LINE_MAGICS:
        return [transformed]
    magic = f"{pre}get_ipython().run_line_magic({ifun!r}, {rest!r})\n"
    if _parse(transformed, "exec") is None:
        return [magic]
    return [transformed, magic]


def _toplevel_cell_magic(text: str, tree: ast.AST) -> ast.AST | None:
    """The call a %%magic cell became, when this cell is one."""
    first = next((line for line in split_lines(text) if line.strip()), "")
    if not first.lstrip().startswith("%%") or not isinstance(tree, ast.Module):
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return None
    call = tree.body[0].value
    if (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "run_cell_magic"
    ):
        return call
    return None


class _Scanner:
    """Runs the checks over a cell and over the code nested inside it."""

    # -- entry points ----------------------------------------------------------------

    def cell(self, text: str, depth: int, base: Mapper | None) -> list[Hit] | None:
        """Hits of an IPython cell, or None when it is not valid (nothing would run)."""
        if depth > MAX_NESTING:
            return [self._too_deep(base)]
        if transform_cost(text) > MAX_TRANSFORM_COST:
            pos = _outer(base, 1, 0)
            return [
                Hit(
                    "SKP122",
                    pos.line,
                    pos.col,
                    "",
                    f"a cell of {len(split_lines(text))} lines with many IPython escapes",
                )
            ]
        transformed = _transform(text)
        if transformed is None:
            return None
        hits: list[Hit] = []
        valid = False
        for source in _prefilter(transformed):
            tree = _parse(source, "exec")
            if tree is None:
                continue
            valid = True
            locator = Locator(text, source, base)
            magic_call = _toplevel_cell_magic(text, tree)
            hits += self._analyze(
                tree, source, locator, depth, cell_text=text, magic_call=magic_call
            )
            hits += self._lookalikes(source, locator)
        if not valid:
            return None
        hits += self._text_rules(text, base)
        return hits

    def python(self, text: str, depth: int, base: Mapper | None, mode: str) -> list[Hit] | None:
        """Hits of plain Python source (exec mode, or eval mode for an expression)."""
        if depth > MAX_NESTING:
            return [self._too_deep(base)]
        tree = _parse(text, mode)
        if tree is None:
            return None
        locator = Locator(text, text, base)
        hits = self._analyze(tree, text, locator, depth, cell_text=text, magic_call=None)
        hits += self._lookalikes(text, locator)
        hits += self._text_rules(text, base)
        return hits

    def tree(self, tree: ast.AST, base: Mapper | None) -> list[Hit]:
        """Hits of an AST built at run time (there is no source text to point at)."""
        try:
            source = ast.unparse(tree)
        except Exception:
            source = ""
        locator = Locator(source, source, base)
        return self._analyze(tree, source, locator, 0, cell_text=source, magic_call=None)

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _too_deep(base: Mapper | None) -> Hit:
        pos = _outer(base, 1, 0)
        return Hit("SKP308", pos.line, pos.col, "", f"code nested more than {MAX_NESTING} deep")

    def _analyze(
        self,
        tree: ast.AST,
        source: str,
        locator: Locator,
        depth: int,
        *,
        cell_text: str,
        magic_call: ast.AST | None,
    ) -> list[Hit]:
        lines = split_lines(source)
        cell_lines = split_lines(cell_text)

        def nested(text: str, kind: str, node: ast.AST, role: str, context: str) -> list[Hit]:
            line = getattr(node, "lineno", 1) or 1
            line_text = lines[line - 1] if 0 < line <= len(lines) else ""
            col = char_col(line_text, getattr(node, "col_offset", 0) or 0)
            o_line, o_col, _ = locator.local(line, col)
            child: Mapper
            if role == "body" and magic_call is not None:
                child = self._body_mapper(cell_lines, text, locator)
            elif role == "arg":
                child = self._arg_mapper(cell_lines, o_line, o_col, text, locator)
            else:

                def child(_line: int, _col: int) -> Position:
                    return locator.outer(o_line, o_col)

            if kind == "cell":
                inner = self.cell(text, depth + 1, child)
            else:
                inner = self.python(text, depth + 1, child, "eval" if kind == "eval" else "exec")
            return [
                Hit(h.rule_id, h.line, h.col, h.text, f"in {context}: {h.subject}")
                for h in inner or ()
            ]

        return Analyzer(tree, lines, locator, nested, toplevel_call=magic_call).run()

    @staticmethod
    def _body_mapper(cell_lines: list[str], body: str, locator: Locator) -> Mapper:
        """Line-accurate positions for the body of the cell's own %%magic."""
        first = next((i for i, line in enumerate(cell_lines) if line.strip()), 0)
        body_lines = split_lines(body)

        def mapper(line: int, col: int) -> Position:
            index = first + line  # 0-based index in the cell of body line `line`
            if index >= len(cell_lines):
                return locator.outer(len(cell_lines), 0)
            original = cell_lines[index]
            inner = body_lines[line - 1] if 0 < line <= len(body_lines) else ""
            shift = len(original) - len(inner) if inner and original.endswith(inner) else 0
            return locator.outer(index + 1, min(col + shift, len(original)))

        return mapper

    @staticmethod
    def _arg_mapper(
        cell_lines: list[str], o_line: int, o_col: int, text: str, locator: Locator
    ) -> Mapper:
        """Positions for Python inside a magic's line (%time stmt): find it on that line."""
        original = cell_lines[o_line - 1] if 0 < o_line <= len(cell_lines) else ""
        probe = text.strip()[:40]
        start = original.find(probe) if probe else -1

        def mapper(line: int, col: int) -> Position:
            if start >= 0 and line == 1:
                return locator.outer(o_line, start + col - (len(text) - len(text.lstrip())))
            return locator.outer(o_line, o_col)

        return mapper

    @staticmethod
    def _lookalikes(source: str, locator: Locator) -> list[Hit]:
        hits = []
        for line, col, spelling, normal, forbidden in lookalike_identifiers(source):
            pos = locator(line, col)
            rule = "SKP304" if forbidden else "SKP309"
            hits.append(
                Hit(
                    rule,
                    pos.line,
                    pos.col,
                    spelling,
                    f"the identifier {spelling!r}, which Python reads as {normal!r}",
                )
            )
        return hits

    @staticmethod
    def _text_rules(text: str, base: Mapper | None) -> list[Hit]:
        if text.isascii() and "coding" not in text:
            return []
        lines = split_lines(text)
        hits = []
        for line, col in bidi_controls(lines):
            pos = _outer(base, line, col)
            hits.append(
                Hit(
                    "SKP121",
                    pos.line,
                    pos.col,
                    lines[line - 1][col:],
                    "a Unicode bidirectional control character",
                )
            )
        cookie = coding_cookie(lines)
        if cookie is not None:
            line, col, name = cookie
            pos = _outer(base, line, col)
            hits.append(
                Hit(
                    "SKP120", pos.line, pos.col, lines[line - 1], f"the coding declaration {name!r}"
                )
            )
        return hits


def _outer(base: Mapper | None, line: int, col: int) -> Position:
    return base(line, col) if base is not None else Position(line, col + 1)
