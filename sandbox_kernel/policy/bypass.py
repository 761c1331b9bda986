"""Text-level bypass detection: look-alike identifiers, bidi controls, coding cookies,
IPython's {expr} expansions, and the cost budget for IPython's transformations.

These work on source text rather than on the AST, because the AST has already
undone the trick: Python NFKC-normalises identifiers while parsing, so "eval" spelled
in fullwidth letters arrives in the tree as ``eval``; only the text shows otherwise.
"""

from __future__ import annotations

import codecs
import io
import re
import tokenize
import unicodedata
from collections.abc import Iterator

from .names import BUILTIN_NAMES, FORBIDDEN_STRINGS

__all__ = [
    "BIDI_CONTROLS",
    "bidi_controls",
    "coding_cookie",
    "expansion_fields",
    "lookalike_identifiers",
    "may_need_token_transforms",
    "transform_cost",
]

# Unicode bidirectional formatting characters (Trojan Source, CVE-2021-42574).
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)

# PEP 263: a coding declaration on one of the first two lines.
_COOKIE = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
# Codecs that make a source file mean something other than what it shows.
_SUSPICIOUS_CODECS = frozenset(
    {
        "utf-7",
        "unicode-escape",
        "raw-unicode-escape",
        "punycode",
        "idna",
        "rot-13",
        "hex",
        "base64",
        "zlib",
        "bz2",
        "uu",
        "quopri",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
    }
)

# Identifiers whose look-alike spelling is worth a finding: forbidden names plus the
# builtins that reach everything else.
_LOOKALIKE_TARGETS = FORBIDDEN_STRINGS | {
    n for n in BUILTIN_NAMES if n in ("open", "breakpoint", "input", "type", "object", "print")
}

# Places where IPython's token transformers may rewrite a line: an escape as the first
# token of a line (EscapedCommand), '?' as its last (HelpEnd), '!' or '%name' right after
# an assignment, possibly across backslash continuations (SystemAssign, MagicAssign
# wants a NAME token after the '%', so "x=%.2g" in a string does not count). A superset:
# a match only means the real transformer has to run.
_ESCAPE_CANDIDATE = re.compile(
    r"^[ \t\f]*[!%?,;/]|\?[ \t\f]*$"
    r"|=[ \t\f]*(?:\\\n[ \t\f]*)*(?:!|%[ \t\f]*(?:\\\n[ \t\f]*)*[^\W\d])",
    re.MULTILINE,
)
# Line boundaries of str.splitlines (which IPython uses) other than "\n".
_OTHER_BREAKS = frozenset("\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def transform_cost(text: str) -> int:
    """About how many characters IPython's token transformers will tokenize.

    They re-tokenize the whole cell after each rewrite, so a cell with many escapes
    costs (escapes) x (length): quadratic in the worst case. A cell without escapes
    costs nothing here (the token pass is skipped).
    """
    # each pass also costs a fixed overhead, hence the floor on the length
    return len(_ESCAPE_CANDIDATE.findall(text)) * max(len(text), 1000)


def may_need_token_transforms(text: str) -> bool:
    """False only when none of IPython's token transformers can match ``text``."""
    if any(c in text for c in _OTHER_BREAKS):
        return True
    return _ESCAPE_CANDIDATE.search(text) is not None


def bidi_controls(lines: list[str]) -> Iterator[tuple[int, int]]:
    """(line 1-based, column 0-based) of the first bidi control on each line that has one."""
    for number, line in enumerate(lines, 1):
        if line.isascii():
            continue
        for col, char in enumerate(line):
            if char in BIDI_CONTROLS:
                yield number, col
                break


def coding_cookie(lines: list[str]) -> tuple[int, int, str] | None:
    """(line, column, codec) of a suspicious PEP 263 coding declaration, if there is one."""
    for number, line in enumerate(lines[:2], 1):
        match = _COOKIE.match(line)
        if match is None:
            if line.strip() and not line.lstrip().startswith("#"):
                return None  # a cookie only counts before the first statement
            continue
        name = match.group(1)
        try:
            canonical = codecs.lookup(name).name.replace("_", "-")
        except LookupError:
            return None  # Python refuses an unknown codec itself
        if canonical in _SUSPICIOUS_CODECS:
            return number, match.start(1), name
        return None
    return None


def lookalike_identifiers(source: str) -> Iterator[tuple[int, int, str, str, bool]]:
    """Identifiers that NFKC normalisation changes.

    Yields (line, column 0-based, spelling, normalised name, forbidden) where
    ``forbidden`` says the normalised name is one this policy cares about.
    """
    if source.isascii():
        return
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError, ValueError):
        return
    for tok in tokens:
        if tok.type != tokenize.NAME or tok.string.isascii():
            continue
        normal = unicodedata.normalize("NFKC", tok.string)
        if normal != tok.string:
            yield tok.start[0], tok.start[1], tok.string, normal, normal in _LOOKALIKE_TARGETS


def expansion_fields(text: str) -> list[str]:
    """The Python expressions IPython evaluates when it expands ``text``.

    ``!cmd`` and most line magics go through ``InteractiveShell.var_expand``, whose
    DollarFormatter evaluates every ``{expr}`` field and every ``$name.attr``.
    """
    if "{" not in text and "$" not in text:
        return []
    from IPython.utils.text import DollarFormatter

    fields: list[str] = []
    try:
        for _literal, field_name, spec, _conversion in DollarFormatter().parse(text):
            if not field_name:
                continue
            fields.append(f"{field_name}:{spec}" if spec else field_name)
            if len(fields) > 200:
                break
    except (ValueError, IndexError):
        return []  # IPython leaves a command it cannot format as it is
    return fields
