"""Positions: from the code the checker analysed back to the cell the user typed.

IPython's transformations keep most lines as they are, but rewrite escape lines
(``!ls`` becomes ``get_ipython().system('ls')``), join backslash-continued escapes,
strip prompts and common indentation, and fold a whole ``%%magic`` cell into one
line. A ``Locator`` lines the two texts up so findings point at what the user wrote.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Locator", "Mapper", "Position", "char_col", "split_lines"]

_NEWLINES = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in the cell; ``text`` is the cell's text there when the
    analysed code was rewritten at that point (else None: the analysed text is exact)."""

    line: int
    col: int
    text: str | None = None


# (line 1-based, column 0-based in characters) in analysed code -> position in the cell
Mapper = Callable[[int, int], Position]


def split_lines(text: str) -> list[str]:
    """Split like Python's tokenizer does (\\n, \\r\\n, \\r), not like str.splitlines."""
    return _NEWLINES.split(text)


def char_col(line: str, byte_col: int) -> int:
    """Convert an AST column (a UTF-8 byte offset) into a character offset in ``line``."""
    if byte_col <= 0:
        return 0
    if line.isascii():
        return min(byte_col, len(line))
    try:
        encoded = line.encode("utf-8", "surrogatepass")
    except UnicodeError:
        return min(byte_col, len(line))
    return len(encoded[:byte_col].decode("utf-8", "ignore"))


class Locator:
    """Maps positions in ``transformed`` to positions in ``original`` (plus offsets).

    ``first_line`` and ``base`` place ``original`` inside an enclosing cell: a body of
    a cell magic starts some lines down, for instance. ``base`` maps positions of
    ``original`` to the enclosing cell (identity for a top-level cell).
    """

    def __init__(self, original: str, transformed: str, base: Mapper | None = None) -> None:
        self.original = split_lines(original)
        self.transformed = split_lines(transformed)
        self.base = base
        self._rows = self._align()

    def _align(self) -> list[tuple[int, int | None]]:
        """For each transformed line: (original line index, column shift or None if rewritten)."""
        orig, trans = self.original, self.transformed
        rows: list[tuple[int, int | None]] = []
        o = 0
        # leading blank lines are dropped by IPython
        while o < len(orig) - 1 and not orig[o].strip() and len(orig) > len(trans):
            o += 1
        last = max(len(orig) - 1, 0)
        for t_line in trans:
            o = min(o, last)
            o_line = orig[o] if orig else ""
            if t_line == o_line:
                rows.append((o, 0))
                o += 1
            elif t_line and o_line.endswith(t_line):
                # prompts or indentation stripped in front
                rows.append((o, len(o_line) - len(t_line)))
                o += 1
            elif not t_line.strip() and not o_line.strip():
                rows.append((o, 0))
                o += 1
            else:
                rows.append((o, None))
                # a rewritten escape line may have swallowed backslash continuations
                while o < last and orig[o].rstrip().endswith("\\"):
                    o += 1
                o += 1
        return rows

    def local(self, line: int, col: int) -> tuple[int, int, bool]:
        """(line 1-based, column 0-based, rewritten) in ``original`` of a transformed position."""
        if not self._rows:
            return 1, 0, False
        index = min(max(line - 1, 0), len(self._rows) - 1)
        o, shift = self._rows[index]
        text = self.original[o] if o < len(self.original) else ""
        if shift is None:
            # rewritten: point at the start of what the user typed on that line
            return o + 1, len(text) - len(text.lstrip()), True
        return o + 1, min(col + shift, len(text)), False

    def __call__(self, line: int, col: int) -> Position:
        """Position in the cell of (line 1-based, col 0-based) in the transformed code."""
        o_line, o_col, rewritten = self.local(line, col)
        text = None
        if rewritten:
            original = self.original[o_line - 1] if o_line <= len(self.original) else ""
            text = original[o_col:]
        return self._outer(o_line, o_col, text)

    def outer(self, line: int, col: int) -> Position:
        """Position in the enclosing cell of (line 1-based, col 0-based) in ``original``."""
        return self._outer(line, col, None)

    def _outer(self, line: int, col: int, text: str | None) -> Position:
        if self.base is None:
            return Position(line, col + 1, text)
        outer = self.base(line, col)
        return Position(outer.line, outer.col, text if text is not None else outer.text)

    def line_text(self, line: int) -> str:
        """The original text of (transformed) line ``line``."""
        if not self._rows:
            return ""
        o, _ = self._rows[min(max(line - 1, 0), len(self._rows) - 1)]
        return self.original[o] if o < len(self.original) else ""
