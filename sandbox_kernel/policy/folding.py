"""A small constant folder over the AST: what string (or number) an expression must evaluate to.

It follows the tricks used to hide names from a checker: concatenation, repetition,
``%`` and ``.format`` and f-strings, ``chr()``/``ord()``, ``bytes``/``str`` round trips,
joins, slicing and reversal, string methods, and decoding (base64, hex, rot13, zlib ...).
Anything it cannot evaluate exactly is ``UNKNOWN``. It never runs user code and every
operation is bounded (length, integer size, recursion depth), so a hostile cell cannot
make it allocate or loop without limit.
"""

from __future__ import annotations

import ast
import base64
import binascii
import bz2
import codecs
import lzma
import re
import string
import zlib
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any, Final

__all__ = ["MAX_LEN", "UNKNOWN", "Folder", "binop"]


class _Unknown:
    """The value of an expression the folder cannot evaluate."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()

MAX_LEN = 100_000  # longest str/bytes/list the folder builds
MAX_DEPTH = 80  # deepest expression it follows (also through names)
INT_BITS = 4096
MAX_WIDTH = 1000  # largest width/precision accepted in a format spec

# Codecs whose output is never much longer than their input (no decompression bombs).
_SAFE_CODECS = frozenset(
    {
        "utf-8",
        "ascii",
        "latin-1",
        "iso8859-1",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
        "utf-7",
        "cp1252",
        "unicode-escape",
        "raw-unicode-escape",
        "rot-13",
        "hex",
        "base64",
        "quopri",
        "uu",
        "punycode",
        "idna",
    }
)
_BOUNDED_DECOMPRESS = frozenset({"zlib", "bz2"})

_STR_METHODS_NOARG = frozenset(
    {"upper", "lower", "swapcase", "title", "capitalize", "casefold", "strip", "lstrip", "rstrip"}
)
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
_DIGITS = re.compile(r"\d+")

Resolver = Callable[[ast.Name, int], object]
Qualnames = Callable[[ast.expr], AbstractSet[str]]


def _codec(name: object) -> str | None:
    if not isinstance(name, str):
        return None
    try:
        canonical = codecs.lookup(name).name
    except (LookupError, TypeError, ValueError):
        return None
    canonical = canonical.replace("_", "-")
    if canonical in ("zlib", "bz2"):
        return canonical
    return canonical if canonical in _SAFE_CODECS else None


def _sized(value: object) -> object:
    if isinstance(value, (str, bytes, list, tuple)) and len(value) > MAX_LEN:
        return UNKNOWN
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > INT_BITS:
        return UNKNOWN
    return value


def _decompress(kind: str, data: bytes) -> object:
    try:
        if kind == "zlib":
            out = zlib.decompressobj(wbits=47).decompress(data, MAX_LEN + 1)
        elif kind == "gzip":
            out = zlib.decompressobj(wbits=31).decompress(data, MAX_LEN + 1)
        elif kind == "bz2":
            out = bz2.BZ2Decompressor().decompress(data, MAX_LEN + 1)
        else:
            out = lzma.LZMADecompressor().decompress(data, MAX_LEN + 1)
    except (zlib.error, OSError, EOFError, ValueError, lzma.LZMAError):
        return UNKNOWN
    return _sized(out)


def _decode(data: object, codec: object) -> object:
    """codecs.decode(data, codec) for bounded codecs only."""
    name = _codec(codec if codec is not None else "utf-8")
    if name is None:
        return UNKNOWN
    if name in _BOUNDED_DECOMPRESS:
        return _decompress(name, data) if isinstance(data, bytes) else UNKNOWN
    if not isinstance(data, (str, bytes)):
        return UNKNOWN
    if isinstance(data, str) and name not in ("rot-13", "hex", "base64"):
        return UNKNOWN
    try:
        decoded: object = codecs.decode(data, name)  # type: ignore[arg-type]
    except (ValueError, TypeError, LookupError, binascii.Error, UnicodeError):
        return UNKNOWN
    return _sized(decoded)


def _encode(data: object, codec: object) -> object:
    name = _codec(codec if codec is not None else "utf-8")
    if name is None or name in _BOUNDED_DECOMPRESS or not isinstance(data, (str, bytes)):
        return UNKNOWN
    try:
        encoded: object = codecs.encode(data, name)  # type: ignore[arg-type]
    except (ValueError, TypeError, LookupError, binascii.Error, UnicodeError):
        return UNKNOWN
    return _sized(encoded)


def _format_spec_ok(spec: str) -> bool:
    return len(spec) <= 20 and all(int(d) <= MAX_WIDTH for d in _DIGITS.findall(spec))


def _percent(fmt: object, args: object) -> object:
    if not isinstance(fmt, (str, bytes)):
        return UNKNOWN
    text = fmt if isinstance(fmt, str) else fmt.decode("latin-1")
    for match in _PERCENT_SPEC.finditer(text):
        for part in match.group(1, 2):
            if part == "*" or (part is not None and int(part) > MAX_WIDTH):
                return UNKNOWN
    if isinstance(args, list):
        args = tuple(args)
    if not _primitive(args):
        return UNKNOWN
    try:
        return _sized(fmt % args)
    except (TypeError, ValueError, KeyError, OverflowError):
        return UNKNOWN


def _primitive(value: object) -> bool:
    if isinstance(value, (str, bytes, int, float)) or value is None:
        return True
    if isinstance(value, tuple):
        return all(_primitive(v) for v in value)
    return False


def _str_format(fmt: object, args: list[object], kwargs: dict[str, object]) -> object:
    """fmt.format(*args, **kwargs) when the fields are plain (no attribute or index walks)."""
    if not isinstance(fmt, str) or not all(_primitive(a) for a in [*args, *kwargs.values()]):
        return UNKNOWN
    try:
        for _, field_name, spec, _ in string.Formatter().parse(fmt):
            if field_name is None:
                continue
            if "." in field_name or "[" in field_name or "{" in (spec or ""):
                return UNKNOWN
            if spec and not _format_spec_ok(spec):
                return UNKNOWN
        return _sized(fmt.format(*args, **kwargs))
    except (ValueError, IndexError, KeyError, TypeError, OverflowError):
        return UNKNOWN


def binop(op: ast.operator, left: object, right: object) -> object:
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    try:
        if isinstance(op, ast.Add):
            if isinstance(left, (str, bytes, list, tuple)) and type(left) is type(right):
                if len(left) + len(right) > MAX_LEN:
                    return UNKNOWN
                return left + right  # type: ignore[operator]
            if _ints(left, right):
                return _sized(left + right)  # type: ignore[operator]
            return UNKNOWN
        if isinstance(op, ast.Mult):
            seq, count = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(count, int):
                if count > 0 and len(seq) * count > MAX_LEN:
                    return UNKNOWN
                return seq * count
            if _ints(left, right):
                return _sized(left * right)  # type: ignore[operator]
            return UNKNOWN
        if isinstance(op, ast.Mod):
            if isinstance(left, (str, bytes)):
                return _percent(left, right)
            return left % right if _ints(left, right) and right else UNKNOWN  # type: ignore[operator]
        if not _ints(left, right):
            return UNKNOWN
        a, b = int(left), int(right)  # type: ignore[call-overload]
        if isinstance(op, ast.Sub):
            return _sized(a - b)
        if isinstance(op, ast.FloorDiv):
            return a // b if b else UNKNOWN
        if isinstance(op, ast.BitXor):
            return a ^ b
        if isinstance(op, ast.BitOr):
            return a | b
        if isinstance(op, ast.BitAnd):
            return a & b
        if isinstance(op, ast.RShift):
            return a >> b if b >= 0 else UNKNOWN
        if isinstance(op, ast.LShift):
            return _sized(a << b) if 0 <= b <= INT_BITS else UNKNOWN
        if isinstance(op, ast.Pow):
            if b >= 0 and a.bit_length() * b <= INT_BITS:
                return a**b
            return UNKNOWN
    except (TypeError, ValueError, OverflowError, ZeroDivisionError, MemoryError):
        return UNKNOWN
    return UNKNOWN


def _same_type_method(
    base: object, name: str, args: list[object], arity: tuple[int, ...] = (1,)
) -> object:
    """base.name(*args) for str/bytes methods whose arguments have the base's own type."""
    if not isinstance(base, (str, bytes)) or len(args) not in arity:
        return UNKNOWN
    if not all(type(a) is type(base) for a in args):
        return UNKNOWN
    result: object = getattr(base, name)(*args)
    return result


def _maketrans(args: list[object]) -> object:
    texts = [a for a in args if isinstance(a, str)]
    if len(texts) != len(args) or len(texts) not in (2, 3) or len(texts[0]) != len(texts[1]):
        return UNKNOWN
    return str.maketrans(*texts)


def _ints(*values: object) -> bool:
    return all(isinstance(v, int) for v in values)


def _index(value: object, key: object) -> object:
    if not isinstance(value, (str, bytes, list, tuple)):
        return UNKNOWN
    if isinstance(key, (slice, int)):
        try:
            return value[key]
        except (IndexError, ValueError, TypeError):
            return UNKNOWN
    return UNKNOWN


def _join(sep: object, items: object) -> object:
    if isinstance(items, (str, bytes)):
        items = [items[i : i + 1] for i in range(len(items))]
    if not isinstance(sep, (str, bytes)) or not isinstance(items, (list, tuple)):
        return UNKNOWN
    if not all(type(i) is type(sep) for i in items):
        return UNKNOWN
    if sum(len(i) for i in items) + len(sep) * len(items) > MAX_LEN:
        return UNKNOWN
    return sep.join(items)


def _as_list(value: object) -> list[object] | None:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return list(value)
    if isinstance(value, bytes):
        return list(value)
    return None


class Folder:
    """Folds expressions of one tree; results are memoised per node.

    ``resolve_name(node, depth)`` gives the value of a name at that use (or UNKNOWN);
    ``qualnames(expr)`` gives what a function expression refers to (``base64.b64decode``).
    """

    def __init__(self, resolve_name: Resolver, qualnames: Qualnames) -> None:
        self._resolve_name = resolve_name
        self._qualnames = qualnames
        self._memo: dict[int, object] = {}
        self._methods: dict[str, Callable[[object, list[object], dict[str, object]], object]] = {
            "join": lambda base, a, k: _join(base, a[0]) if len(a) == 1 else UNKNOWN,
            "format": _str_format,
            "format_map": lambda base, a, k: (
                _str_format(base, [], a[0]) if len(a) == 1 and isinstance(a[0], dict) else UNKNOWN
            ),
            "decode": lambda base, a, k: (
                _decode(base, a[0] if a else k.get("encoding", "utf-8"))
                if isinstance(base, bytes)
                else UNKNOWN
            ),
            "encode": lambda base, a, k: (
                _encode(base, a[0] if a else k.get("encoding", "utf-8"))
                if isinstance(base, str)
                else UNKNOWN
            ),
            "replace": self._replace,
            "removeprefix": lambda base, a, k: _same_type_method(base, "removeprefix", a),
            "removesuffix": lambda base, a, k: _same_type_method(base, "removesuffix", a),
            "split": lambda base, a, k: _same_type_method(base, "split", a, arity=(0, 1)),
            "translate": self._translate,
            "maketrans": lambda base, a, k: _maketrans(a),
            "hex": lambda base, a, k: (
                _sized(base.hex()) if isinstance(base, bytes) and not a else UNKNOWN
            ),
            "fromhex": lambda base, a, k: self._fromhex(a[0]) if len(a) == 1 else UNKNOWN,
        }

    # -- entry point ---------------------------------------------------------------

    def fold(self, node: ast.AST | None, depth: int = 0) -> object:
        """The value of ``node``, or ``UNKNOWN``."""
        if node is None:
            return UNKNOWN
        key = id(node)
        memo = self._memo.get(key, self)
        if memo is not self:
            return memo
        if depth > MAX_DEPTH:
            return UNKNOWN
        try:
            value = self._fold(node, depth + 1)
        except (RecursionError, MemoryError):
            value = UNKNOWN
        value = _sized(value)
        self._memo[key] = value
        return value

    def fold_str(self, node: ast.AST | None, depth: int = 0) -> str | None:
        """The value of ``node`` as text (bytes decoded as latin-1), or None."""
        value = self.fold(node, depth)
        if isinstance(value, str):
            return value
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("latin-1")
        return None

    # -- node kinds ----------------------------------------------------------------

    def _fold(self, node: ast.AST, depth: int) -> object:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, (str, bytes, int, float)) or value is None:
                return value
            return UNKNOWN
        if isinstance(node, ast.Name):
            return self._resolve_name(node, depth)
        if isinstance(node, ast.BinOp):
            return binop(node.op, self.fold(node.left, depth), self.fold(node.right, depth))
        if isinstance(node, ast.UnaryOp):
            operand = self.fold(node.operand, depth)
            if isinstance(operand, int):
                if isinstance(node.op, ast.USub):
                    return -operand
                if isinstance(node.op, ast.UAdd):
                    return operand
                if isinstance(node.op, ast.Invert):
                    return ~operand
            return UNKNOWN
        if isinstance(node, (ast.Tuple, ast.List)):
            if len(node.elts) > MAX_LEN:
                return UNKNOWN
            items: list[object] = []
            for elt in node.elts:
                if isinstance(elt, ast.Starred):
                    return UNKNOWN
                item = self.fold(elt, depth)
                if item is UNKNOWN:
                    return UNKNOWN
                items.append(item)
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.JoinedStr):
            return self._joined(node, depth)
        if isinstance(node, ast.Subscript):
            return _index(self.fold(node.value, depth), self._slice(node.slice, depth))
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        if isinstance(node, ast.ListComp):
            return self._listcomp(node, depth)
        if isinstance(node, ast.GeneratorExp):
            return self._listcomp(node, depth)
        return UNKNOWN

    def _slice(self, node: ast.AST, depth: int) -> object:
        if isinstance(node, ast.Slice):
            parts = []
            for part in (node.lower, node.upper, node.step):
                value = None if part is None else self.fold(part, depth)
                if value is not None and not isinstance(value, int):
                    return UNKNOWN
                parts.append(value)
            if parts[2] == 0:
                return UNKNOWN
            return slice(*parts)
        return self.fold(node, depth)

    def _joined(self, node: ast.JoinedStr, depth: int) -> object:
        out: list[str] = []
        total = 0
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                text = part.value
            elif isinstance(part, ast.FormattedValue):
                value = self.fold(part.value, depth)
                if not _primitive(value):
                    return UNKNOWN
                if part.conversion == 115:
                    value = str(value)
                elif part.conversion == 114:
                    value = repr(value)
                elif part.conversion == 97:
                    value = ascii(value)
                spec = "" if part.format_spec is None else self.fold(part.format_spec, depth)
                if not isinstance(spec, str) or not _format_spec_ok(spec):
                    return UNKNOWN
                try:
                    text = format(value, spec)
                except (ValueError, TypeError, OverflowError):
                    return UNKNOWN
            else:
                return UNKNOWN
            total += len(text)
            if total > MAX_LEN:
                return UNKNOWN
            out.append(text)
        return "".join(out)

    def _listcomp(self, node: ast.ListComp | ast.GeneratorExp, depth: int) -> object:
        """[chr(c) for c in (115, 121, 115)] and the like: one generator, no conditions."""
        if len(node.generators) != 1:
            return UNKNOWN
        gen = node.generators[0]
        if gen.ifs or gen.is_async or not isinstance(gen.target, ast.Name):
            return UNKNOWN
        items = _as_list(self.fold(gen.iter, depth))
        if items is None or len(items) > 10_000:
            return UNKNOWN
        name = gen.target.id
        out = []
        for item in items:
            value = _Substitute(name, item).fold(self, node.elt, depth)
            if value is UNKNOWN:
                return UNKNOWN
            out.append(value)
        return out

    def _call(self, node: ast.Call, depth: int) -> object:
        if any(isinstance(a, ast.Starred) for a in node.args):
            return UNKNOWN
        func = node.func
        if isinstance(func, ast.Attribute):
            method = self._methods.get(func.attr)
            if method is None and func.attr in _STR_METHODS_NOARG:
                method = self._noarg_method
            if method is not None:
                base = self.fold(func.value, depth)
                if base is not UNKNOWN or func.attr in ("fromhex", "maketrans"):
                    args, kwargs = self._args(node, depth)
                    if args is None or kwargs is None:
                        return UNKNOWN
                    if method is self._noarg_method:
                        return self._noarg_method(base, args, kwargs, func.attr)
                    return method(base, args, kwargs)
        for qualname in self._qualnames(func):
            value = self._builtin_call(qualname, node, depth)
            if value is not UNKNOWN:
                return value
        return UNKNOWN

    def _args(
        self, node: ast.Call, depth: int
    ) -> tuple[list[object] | None, dict[str, object] | None]:
        args = [self.fold(a, depth) for a in node.args]
        if any(a is UNKNOWN for a in args):
            return None, None
        kwargs: dict[str, object] = {}
        for kw in node.keywords:
            if kw.arg is None:
                return None, None
            value = self.fold(kw.value, depth)
            if value is UNKNOWN:
                return None, None
            kwargs[kw.arg] = value
        return args, kwargs

    def _builtin_call(self, qualname: str, node: ast.Call, depth: int) -> object:
        if qualname == "builtins.map":
            # map(chr, [...]): the function is a name to look up, not a value to fold
            if len(node.args) != 2 or node.keywords:
                return UNKNOWN
            return self._map(node.args[0], self.fold(node.args[1], depth))
        args, kwargs = self._args(node, depth)
        if args is None or kwargs is None:
            return UNKNOWN
        first = args[0] if args else None
        n = len(args)
        if qualname == "builtins.chr" and n == 1 and isinstance(first, int):
            return chr(first) if 0 <= first <= 0x10FFFF else UNKNOWN
        if qualname == "builtins.ord" and n == 1 and isinstance(first, (str, bytes)):
            return ord(first) if len(first) == 1 else UNKNOWN
        if qualname == "builtins.str":
            if n == 1 and isinstance(first, (str, int)):
                return str(first)
            if n >= 2 and isinstance(first, bytes):
                return _decode(first, args[1])
            return UNKNOWN
        if qualname in ("builtins.bytes", "builtins.bytearray"):
            if n == 1 and isinstance(first, (list, tuple)):
                octets = [b for b in first if isinstance(b, int) and 0 <= b < 256]
                if len(octets) == len(first):
                    return bytes(octets)
                return UNKNOWN
            if n >= 2 and isinstance(first, str):
                return _encode(first, args[1])
            if n == 1 and isinstance(first, bytes):
                return first
            return UNKNOWN
        if qualname == "builtins.int" and n in (1, 2) and isinstance(first, (str, int)):
            try:
                value = int(first, args[1]) if n == 2 else int(first)  # type: ignore[call-overload]
            except (ValueError, TypeError):
                return UNKNOWN
            return _sized(value)
        if qualname in ("builtins.list", "builtins.tuple") and n == 1:
            items = _as_list(first)
            if items is None:
                return UNKNOWN
            return items if qualname == "builtins.list" else tuple(items)
        if qualname == "builtins.reversed" and n == 1:
            items = _as_list(first)
            if items is None:
                return UNKNOWN
            if isinstance(first, str):
                return list(reversed(first))
            return list(reversed(items))
        if qualname == "builtins.format" and n in (1, 2):
            spec = args[1] if n == 2 else ""
            if _primitive(first) and isinstance(spec, str) and _format_spec_ok(spec):
                try:
                    return format(first, spec)
                except (ValueError, TypeError):
                    return UNKNOWN
            return UNKNOWN
        if qualname in ("builtins.bytes.fromhex", "builtins.bytearray.fromhex") and n == 1:
            return self._fromhex(first)
        if qualname == "builtins.str.join" and n == 2:
            return _join(first, args[1])
        if qualname == "builtins.str.format" and n >= 1:
            return _str_format(first, args[1:], kwargs)
        if qualname == "codecs.decode" and n >= 1:
            return _decode(first, args[1] if n > 1 else kwargs.get("encoding", "utf-8"))
        if qualname == "codecs.encode" and n >= 1:
            return _encode(first, args[1] if n > 1 else kwargs.get("encoding", "utf-8"))
        return self._decoder(qualname, first, n)

    def _decoder(self, qualname: str, data: object, n: int) -> object:
        if n < 1:
            return UNKNOWN
        if isinstance(data, str):
            try:
                data = data.encode("ascii")
            except UnicodeEncodeError:
                return UNKNOWN
        if not isinstance(data, bytes):
            return UNKNOWN
        decoders: dict[str, Callable[[bytes], bytes]] = {
            "base64.b64decode": base64.b64decode,
            "base64.standard_b64decode": base64.standard_b64decode,
            "base64.urlsafe_b64decode": base64.urlsafe_b64decode,
            "base64.decodebytes": base64.decodebytes,
            "base64.b32decode": base64.b32decode,
            "base64.b16decode": base64.b16decode,
            "base64.b85decode": base64.b85decode,
            "base64.a85decode": base64.a85decode,
            "binascii.a2b_base64": binascii.a2b_base64,
            "binascii.a2b_hex": binascii.a2b_hex,
            "binascii.unhexlify": binascii.unhexlify,
        }
        decoder = decoders.get(qualname)
        if decoder is not None:
            try:
                return _sized(decoder(data))
            except (ValueError, binascii.Error, TypeError):
                return UNKNOWN
        compressed = {
            "zlib.decompress": "zlib",
            "gzip.decompress": "gzip",
            "bz2.decompress": "bz2",
            "lzma.decompress": "lzma",
        }.get(qualname)
        if compressed is not None:
            return _decompress(compressed, data)
        return UNKNOWN

    def _map(self, func: ast.expr, items: object) -> object:
        values = _as_list(items)
        if values is None or len(values) > MAX_LEN:
            return UNKNOWN
        names = self._qualnames(func)
        out: list[object] = []
        for value in values:
            if "builtins.chr" in names and isinstance(value, int) and 0 <= value <= 0x10FFFF:
                out.append(chr(value))
            elif "builtins.str" in names and isinstance(value, (str, int)):
                out.append(str(value))
            elif "builtins.ord" in names and isinstance(value, str) and len(value) == 1:
                out.append(ord(value))
            elif "builtins.int" in names and isinstance(value, (str, int)):
                try:
                    out.append(int(value))
                except ValueError:
                    return UNKNOWN
            else:
                return UNKNOWN
        return out

    # -- methods ---------------------------------------------------------------------

    @staticmethod
    def _noarg_method(
        base: object, args: list[object], kwargs: dict[str, object], name: str = ""
    ) -> object:
        if not isinstance(base, (str, bytes)) or kwargs or len(args) > 1:
            return UNKNOWN
        if args and (name not in ("strip", "lstrip", "rstrip") or type(args[0]) is not type(base)):
            return UNKNOWN
        result: Any = getattr(base, name)(*args)
        return result

    @staticmethod
    def _replace(base: object, args: list[object], kwargs: dict[str, object]) -> object:
        if not isinstance(base, (str, bytes)) or len(args) not in (2, 3) or kwargs:
            return UNKNOWN
        old, new = args[0], args[1]
        if type(old) is not type(base) or type(new) is not type(base):
            return UNKNOWN
        if len(new) > len(old) and (base.count(old) + 1) * len(new) + len(base) > MAX_LEN:  # type: ignore[arg-type]
            return UNKNOWN
        count = args[2] if len(args) == 3 else -1
        if not isinstance(count, int):
            return UNKNOWN
        return base.replace(old, new, count)  # type: ignore[arg-type]

    @staticmethod
    def _translate(base: object, args: list[object], kwargs: dict[str, object]) -> object:
        if not isinstance(base, str) or len(args) != 1 or not isinstance(args[0], dict):
            return UNKNOWN
        table = args[0]
        if not all(isinstance(v, (str, int)) or v is None for v in table.values()):
            return UNKNOWN
        if any(isinstance(v, str) and len(v) > 4 for v in table.values()):
            return UNKNOWN
        return base.translate(table)

    @staticmethod
    def _fromhex(value: object) -> object:
        if not isinstance(value, str):
            return UNKNOWN
        try:
            return _sized(bytes.fromhex(value))
        except ValueError:
            return UNKNOWN


class _Substitute:
    """Folds a comprehension element with its loop variable bound to one value."""

    def __init__(self, name: str, value: object) -> None:
        self.name = name
        self.value = value

    def fold(self, folder: Folder, node: ast.expr, depth: int) -> object:
        inner = Folder(self._resolve(folder), folder._qualnames)
        return inner.fold(node, depth)

    def _resolve(self, folder: Folder) -> Resolver:
        def resolve(node: ast.Name, depth: int) -> object:
            if node.id == self.name:
                return self.value
            return folder._resolve_name(node, depth)

        return resolve
