"""The AST pass over one piece of Python: resolve names, fold constants, match the rules.

It is flow-insensitive on purpose (a name bound anywhere in the cell to ``os.system``
may be that function everywhere), iterative (no recursion on the tree, so a deeply
nested cell cannot exhaust the stack) and linear in the size of the tree: every
resolution and folding result is memoised per node.
"""

from __future__ import annotations

import ast
import pickletools
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from . import magics
from .bypass import expansion_fields
from .folding import UNKNOWN, Folder, binop
from .locate import Mapper, char_col
from .names import (
    ATTRIBUTE_RULES,
    BUILTIN_NAMES,
    DECODER_METHODS,
    DECODERS,
    DUNDER_GETATTRS,
    EXEC_LIKE,
    FORBIDDEN_STRINGS,
    GETATTR_LIKE,
    IMPORT_LIKE,
    IPYTHON_PIPELINE_ATTRS,
    MODULE_RULES,
    PAYLOAD_SINKS,
    PICKLE_LOADERS,
    SENSITIVE,
    SHELL_METHODS,
    SYS_IMPORT_STATE,
    dangerous_global,
    rule_for_module,
    rule_for_name,
    rule_for_qualname,
)
from .verdict import Hit

__all__ = ["Analyzer", "Nested"]

SHELL = "get_ipython()"
_EMPTY: frozenset[str] = frozenset()
_MAX_QUALNAMES = 16
_MAX_SNIPPET = 120
_MAX_BINDINGS = 32

# Module names a cell usually imported in an earlier cell: an unbound `os` is the module.
_CONVENTIONAL_MODULES = frozenset(
    {
        "os",
        "sys",
        "subprocess",
        "ctypes",
        "socket",
        "signal",
        "gc",
        "inspect",
        "importlib",
        "marshal",
        "pickle",
        "builtins",
        "types",
        "base64",
        "zlib",
        "codecs",
        "binascii",
        "pty",
        "threading",
        "operator",
        "asyncio",
        "IPython",
        "posix",
        "traceback",
        "timeit",
        "cProfile",
        "pdb",
        "code",
        "codeop",
        "runpy",
        "cffi",
        "bz2",
        "lzma",
        "gzip",
        "string",
        "io",
        "shutil",
    }
)
_SHELL_GETTERS = frozenset(
    {"IPython.get_ipython", "IPython.core.getipython.get_ipython", "get_ipython"}
)
_MUTATORS = frozenset(
    {
        "pop",
        "popitem",
        "update",
        "clear",
        "setdefault",
        "__setitem__",
        "__delitem__",
        "append",
        "insert",
        "extend",
        "remove",
    }
)
_NO_VAR_EXPAND = frozenset({"time", "timeit", "prun", "debug"})
_SPLIT_FIELD = re.compile(r"\.|\[")
_NAME_DUNDERS = frozenset({"__name__", "__qualname__", "__module__", "__doc__"})
# Name-mangled internals of the site objects (license, credits, help).
_SITE_INTERNALS = ("_Printer__", "_Helper__")
# Methods and constructors through which a debugger takes commands (pdb, bdb, cmd).
_DEBUGGER_COMMANDS = frozenset({"onecmd"})
# Modules whose dangerous members stay dangerous when reached through another module.
_HOPPED_MODULES = frozenset(
    {"os", "posix", "sys", "subprocess", "ctypes", "socket", "pty", "gc", "signal", "marshal"}
)
_DEBUGGERS = frozenset({"pdb.Pdb", "cmd.Cmd", "IPython.core.debugger.Pdb", "ipdb.Pdb"})


class Nested(Protocol):
    """Checks code found inside code (an exec string, a magic's body) and returns its hits,
    already positioned in the cell. ``kind`` is "python", "eval" or "cell"; ``role`` says
    how to place the hits: "anchor" (all at ``node``), "body" (line by line, for the
    body of the cell's own %%magic) or "arg" (within the magic's line)."""

    def __call__(
        self, text: str, kind: str, node: ast.AST, role: str, context: str
    ) -> list[Hit]: ...


@dataclass(frozen=True)
class _Binding:
    kind: str  # "qual" (a qualified name), "expr", "aug", "local"
    qual: str = ""
    node: ast.AST | None = None
    top: int = -1
    straight: bool = False


def _short(qualname: str) -> str:
    return qualname.removeprefix("builtins.")


def _call_shown(what: str, name: str) -> Callable[[str], str]:
    """How a finding shows ``what(base, name)`` (setattr, delattr ...) for a given base."""
    return lambda base: f"{what}({base}, {name!r})"


class Analyzer:
    """Runs every AST rule over ``tree``; ``run()`` returns the hits."""

    def __init__(
        self,
        tree: ast.AST,
        lines: list[str],
        mapper: Mapper,
        nested: Nested,
        *,
        toplevel_call: ast.AST | None = None,
    ) -> None:
        self.tree = tree
        self.lines = lines
        self.mapper = mapper
        self.nested = nested
        self.toplevel_call = toplevel_call
        self.hits: list[Hit] = []
        self._seen: set[tuple[str, int, int]] = set()
        self.nodes: list[ast.AST] = []
        self.parent: dict[int, ast.AST] = {}
        self.where: dict[int, tuple[int, bool]] = {}
        self.bindings: dict[str, list[_Binding]] = {}
        self.stars: list[str] = []
        self._qual_memo: dict[int, frozenset[str]] = {}
        self._resolving: set[int] = set()
        self._decoder_memo: dict[int, bool] = {}
        self._name_memo: dict[str, frozenset[str]] = {}
        self._names_resolving: set[str] = set()
        self._name_decodes: dict[str, bool] = {}
        self.folder = Folder(self._resolve_name, self.qualnames)

    # -- driver ------------------------------------------------------------------------

    def run(self) -> list[Hit]:
        self._index()
        handlers: dict[type, Callable[[ast.AST], None]] = {
            ast.Import: self._import,  # type: ignore[dict-item]
            ast.ImportFrom: self._import_from,  # type: ignore[dict-item]
            ast.Name: self._name,  # type: ignore[dict-item]
            ast.Attribute: self._attribute,  # type: ignore[dict-item]
            ast.Call: self._call,  # type: ignore[dict-item]
            ast.Subscript: self._subscript,  # type: ignore[dict-item]
            ast.Assign: self._assign,  # type: ignore[dict-item]
            ast.AnnAssign: self._assign,  # type: ignore[dict-item]
            ast.NamedExpr: self._assign,  # type: ignore[dict-item]
            ast.BinOp: self._candidate,
            ast.JoinedStr: self._candidate,
        }
        for node in self.nodes:
            handler = handlers.get(type(node))
            if handler is not None:
                handler(node)
            if isinstance(node, (ast.Call, ast.Subscript)):
                self._candidate(node)
        return self.hits

    # -- pass 1: parents, positions in the statement order, bindings --------------------

    def _index(self) -> None:
        tree = self.tree
        body = tree.body if isinstance(tree, (ast.Module, ast.Interactive)) else []
        top_of = {id(stmt): i for i, stmt in enumerate(body)}
        # (node, top-level statement index, inside a function, enclosing statement, straight)
        stack: list[tuple[ast.AST, int, bool, ast.AST | None, bool]] = [
            (tree, -1, False, None, False)
        ]
        nodes = self.nodes
        parent = self.parent
        where = self.where
        binds = _BINDERS
        functions = _FUNCTIONS
        stmt_types = _STMT_TYPES
        while stack:
            node, top, deferred, stmt, straight = stack.pop()
            nodes.append(node)
            kind = type(node)
            key = id(node)
            if key in top_of:
                top, stmt, straight = top_of[key], node, True
            elif kind in stmt_types:
                stmt, straight = node, False
            if kind is ast.Name:
                where[key] = (top, deferred)
            if kind in binds:
                self._bind(node, top, straight)
            inner = deferred or kind in functions
            children = _children(node)
            for child in reversed(children):
                parent[id(child)] = node
                stack.append((child, top, inner, stmt, straight))

    def _add(self, name: str, binding: _Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)

    def _bind(self, node: ast.AST, top: int, straight: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    self._add(alias.asname, _Binding("qual", alias.name, top=top))
                else:
                    first = alias.name.split(".")[0]
                    self._add(first, _Binding("qual", first, top=top))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if node.level or not node.module:
                    self._add(alias.asname or alias.name, _Binding("local", top=top))
                elif alias.name == "*":
                    self.stars.append(node.module)
                else:
                    qual = f"{node.module}.{alias.name}"
                    self._add(alias.asname or alias.name, _Binding("qual", qual, top=top))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                self._bind_target(target, node.value, top, straight)
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)):
            if node.value is not None:
                self._bind_target(node.target, node.value, top, straight)
            elif isinstance(node.target, ast.Name):
                self._add(node.target.id, _Binding("local", top=top))
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                self._add(node.target.id, _Binding("aug", node=node, top=top, straight=straight))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self._add(node.name, _Binding("local", top=top))
        elif isinstance(node, ast.arg):
            self._add(node.arg, _Binding("local", top=top))
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            self._bind_locals(node.target, top)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            self._bind_locals(node.optional_vars, top)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            self._add(node.name, _Binding("local", top=top))
        elif isinstance(node, ast.MatchMapping) and node.rest:
            self._add(node.rest, _Binding("local", top=top))

    def _bind_target(self, target: ast.AST, value: ast.AST, top: int, straight: bool) -> None:
        if isinstance(target, ast.Name):
            self._add(target.id, _Binding("expr", node=value, top=top, straight=straight))
        elif (
            isinstance(target, (ast.Tuple, ast.List))
            and isinstance(value, (ast.Tuple, ast.List))
            and len(target.elts) == len(value.elts)
            and not any(isinstance(e, ast.Starred) for e in (*target.elts, *value.elts))
        ):
            for t, v in zip(target.elts, value.elts, strict=True):
                self._bind_target(t, v, top, straight)
        else:
            self._bind_locals(target, top)

    def _bind_locals(self, target: ast.AST, top: int) -> None:
        """Names a target binds (x, (a, *b)); not those it reads (obj.attr, d[key])."""
        pending = [target]
        while pending:
            node = pending.pop()
            if isinstance(node, ast.Name):
                self._add(node.id, _Binding("local", top=top))
            elif isinstance(node, (ast.Tuple, ast.List)):
                pending.extend(node.elts)
            elif isinstance(node, ast.Starred):
                pending.append(node.value)

    # -- name resolution ---------------------------------------------------------------

    def qualnames(self, node: ast.AST) -> frozenset[str]:
        """What ``node`` may refer to, as qualified names (``os.system``, ``builtins.eval``)."""
        key = id(node)
        memo = self._qual_memo.get(key)
        if memo is not None:
            return memo
        if key in self._resolving or len(self._resolving) > 60:
            return _EMPTY
        self._resolving.add(key)
        try:
            result = frozenset(list(self._qualnames(node))[:_MAX_QUALNAMES])
        except RecursionError:
            result = _EMPTY
        finally:
            self._resolving.discard(key)
        self._qual_memo[key] = result
        return result

    def _qualnames(self, node: ast.AST) -> set[str] | frozenset[str]:
        if isinstance(node, ast.Name):
            return self._name_qualnames(node.id)
        if isinstance(node, ast.Attribute):
            return {f"{q}.{node.attr}" for q in self.qualnames(node.value)}
        if isinstance(node, ast.NamedExpr):
            return self.qualnames(node.value)
        if isinstance(node, ast.Call):
            return self._call_qualnames(node)
        if isinstance(node, ast.Subscript):
            key = self.folder.fold_str(node.slice)
            if key is None:
                return set()
            out: set[str] = set()
            for base in self.qualnames(node.value):
                if base == "sys.modules":
                    out.add(key)
                elif base == "<globals>":
                    out |= self._name_qualnames(key)
                elif base.endswith(".__dict__"):
                    out.add(f"{base[: -len('.__dict__')]}.{key}")
                elif base == "builtins":
                    # __builtins__ is the builtins module in a notebook, a dict elsewhere
                    out.add(f"builtins.{key}")
            return out
        return set()

    def _name_qualnames(self, name: str) -> frozenset[str]:
        memo = self._name_memo.get(name)
        if memo is not None:
            return memo
        if name in self._names_resolving:
            return _EMPTY
        self._names_resolving.add(name)
        try:
            result = frozenset(list(self._name_qualnames_uncached(name))[:_MAX_QUALNAMES])
        finally:
            self._names_resolving.discard(name)
        self._name_memo[name] = result
        return result

    def _name_qualnames_uncached(self, name: str) -> set[str]:
        bindings = self.bindings.get(name)
        if bindings:
            out: set[str] = set()
            for b in bindings:
                if b.kind == "qual":
                    out.add(b.qual)
                elif b.kind == "expr" and b.node is not None:
                    out |= self.qualnames(b.node)
                if len(out) >= _MAX_QUALNAMES:
                    break
            return out
        if name == "__builtins__":
            return {"builtins"}
        if name in BUILTIN_NAMES:
            return {f"builtins.{name}"}
        if name == "get_ipython":
            return {"IPython.get_ipython"}
        if name in _CONVENTIONAL_MODULES:
            return {name}
        return {f"{module}.{name}" for module in self.stars}

    def _call_qualnames(self, node: ast.Call) -> set[str]:
        out: set[str] = set()
        for q in self.qualnames(node.func):
            if q in _SHELL_GETTERS:
                out.add(SHELL)
            elif q in IMPORT_LIKE:
                name = self.folder.fold_str(self._arg(node, 0, "name"))
                if name:
                    fromlist = self._arg(node, 3, "fromlist")
                    if q == "builtins.__import__" and fromlist is None:
                        name = name.split(".")[0]
                    out.add(name)
            elif q == "builtins.getattr" and len(node.args) >= 2:
                attr = self.folder.fold_str(node.args[1])
                if attr:
                    out |= {f"{b}.{attr}" for b in self.qualnames(node.args[0])}
            elif q == "builtins.vars" and node.args:
                out |= {f"{b}.__dict__" for b in self.qualnames(node.args[0])}
            elif q in ("builtins.globals", "builtins.locals", "builtins.vars"):
                out.add("<globals>")
            elif q == "sys.modules.get" and node.args:
                name = self.folder.fold_str(node.args[0])
                if name:
                    out.add(name)
            elif q == "importlib.reload" and node.args:
                out |= self.qualnames(node.args[0])
            elif q.endswith(".__getattribute__") and node.args:
                attr_node, base_q = self._dunder_getattr_target(node, q)
                attr = self.folder.fold_str(attr_node)
                if attr:
                    out |= {f"{b}.{attr}" for b in base_q}
        return out

    def _dunder_getattr_target(
        self, node: ast.Call, q: str
    ) -> tuple[ast.AST | None, frozenset[str]]:
        """(name argument, qualnames of the object) of x.__getattribute__(name) or
        object.__getattribute__(x, name)."""
        owner = q.rsplit(".", 1)[0]
        if owner in ("builtins.object", "builtins.type", "builtins.super"):
            base_node = node.args[0] if node.args else None
            name_node = node.args[1] if len(node.args) >= 2 else None
        else:
            func = node.func
            base_node = func.value if isinstance(func, ast.Attribute) else None
            name_node = node.args[0] if node.args else None
        return name_node, (self.qualnames(base_node) if base_node is not None else _EMPTY)

    @staticmethod
    def _arg(node: ast.Call, index: int, keyword: str) -> ast.expr | None:
        if len(node.args) > index and not any(
            isinstance(a, ast.Starred) for a in node.args[: index + 1]
        ):
            return node.args[index]
        for kw in node.keywords:
            if kw.arg == keyword:
                return kw.value
        return None

    # -- constant folding of names -----------------------------------------------------------

    def _resolve_name(self, node: ast.Name, depth: int) -> object:
        bindings = self.bindings.get(node.id)
        # Long histories (a counter updated on every line) are not worth following, and
        # following them at every use would be quadratic.
        if not bindings or len(bindings) > _MAX_BINDINGS:
            return UNKNOWN
        if any(b.kind in ("local", "qual") for b in bindings):
            return UNKNOWN
        use_top, deferred = self.where.get(id(node), (-1, True))
        if len(bindings) == 1 and bindings[0].kind == "expr":
            only = bindings[0]
            if only.straight and not deferred and 0 <= use_top < only.top:
                return UNKNOWN  # used before it is set: the value is from an earlier cell
            return self.folder.fold(only.node, depth)
        if not all(b.straight for b in bindings):
            return UNKNOWN
        prior = bindings if deferred or use_top < 0 else [b for b in bindings if b.top < use_top]
        value: object = UNKNOWN
        for b in prior:
            if b.kind == "expr":
                value = self.folder.fold(b.node, depth)
            elif b.kind == "aug" and isinstance(b.node, ast.AugAssign):
                value = binop(b.node.op, value, self.folder.fold(b.node.value, depth))
        return value

    # -- hits ----------------------------------------------------------------------------

    def _hit(self, rule: str | None, node: ast.AST, subject: str) -> None:
        if rule is None:
            return
        line = getattr(node, "lineno", 1) or 1
        text_line = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        col = char_col(text_line, getattr(node, "col_offset", 0) or 0)
        pos = self.mapper(line, col)
        key = (rule, pos.line, pos.col)
        if key in self._seen:
            return
        self._seen.add(key)
        text = pos.text if pos.text is not None else self._snippet(node, text_line, col)
        self.hits.append(Hit(rule, pos.line, pos.col, text, subject))

    def _extend(self, hits: list[Hit]) -> None:
        for hit in hits:
            key = (hit.rule_id, hit.line, hit.col)
            if key not in self._seen:
                self._seen.add(key)
                self.hits.append(hit)

    @staticmethod
    def _snippet(node: ast.AST, text_line: str, col: int) -> str:
        end = None
        if getattr(node, "end_lineno", None) == getattr(node, "lineno", None):
            end_col = getattr(node, "end_col_offset", None)
            if end_col is not None:
                end = char_col(text_line, end_col)
        return text_line[col:end][:_MAX_SNIPPET]

    def _parent(self, node: ast.AST) -> ast.AST | None:
        return self.parent.get(id(node))

    # -- imports -------------------------------------------------------------------------

    def _import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._hit(rule_for_module(alias.name), alias, f"import {alias.name}")

    def _import_from(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            return
        module = node.module
        self._hit(rule_for_module(module), node, f"from {module} import ...")
        for alias in node.names:
            if alias.name == "*":
                continue
            qual = f"{module}.{alias.name}"
            rule = rule_for_qualname(qual)
            self._hit(rule, alias, f"from {module} import {alias.name}")
            if alias.asname and alias.asname != alias.name and self._aliasable(qual):
                self._hit("SKP305", alias, f"{alias.name} imported as {alias.asname}")

    # -- names and attributes -----------------------------------------------------------

    def _name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            return
        if node.id.startswith("__"):
            self._hit(rule_for_name(node.id), node, f"the name {node.id}")
        self._reference(node)

    def _attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        parent = self._parent(node)
        rule = ATTRIBUTE_RULES.get(attr)
        if rule is not None:
            self._hit(rule, node, f"the attribute .{attr}")
        elif attr == "__dict__":
            self._dict_access(node)
        elif attr == "mro" and isinstance(parent, ast.Call) and parent.func is node:
            self._hit("SKP226", node, "the method .mro()")
        elif attr.startswith(_SITE_INTERNALS):
            # license._Printer__filenames, help's pydoc: the site objects' internals
            self._hit("SKP221", node, f"the site object internals .{attr}")
        elif attr in ("format", "format_map") and not (
            isinstance(parent, ast.Call) and parent.func is node
        ):
            self._format_method(node)
        elif attr in ("rcLines", "cmdqueue"):
            self._hit("SKP230", node, f"debugger commands queued in .{attr}")
        if attr in IPYTHON_PIPELINE_ATTRS:
            self._hit("SKP307", node, f"the IPython attribute .{attr}")
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._store_attribute(node)
        else:
            self._reference(node)

    def _reference(self, node: ast.expr) -> None:
        """Any use of a dangerous module, function or attribute, called or not."""
        parent = self._parent(node)
        in_call = isinstance(parent, ast.Call) and parent.func is node
        for q in self.qualnames(node):
            rule = rule_for_qualname(q) or _through_a_module(q)
            if rule is not None:
                self._hit(rule, node, f"{q}()" if in_call else q)
            elif in_call:
                continue
            elif q in EXEC_LIKE and not EXEC_LIKE[q][2]:
                self._hit("SKP230", node, f"{_short(q)} used as a value")
            elif q in IMPORT_LIKE:
                self._hit("SKP231", node, f"{_short(q)} used as a value")
            elif q in GETATTR_LIKE and q != "builtins.hasattr":
                self._hit("SKP232", node, f"{_short(q)} used as a value")
            elif q.startswith(f"{SHELL}.") and q[len(SHELL) + 1 :] in SHELL_METHODS:
                self._hit("SKP101", node, f"{q} used as a value")

    def _dict_access(self, node: ast.Attribute) -> None:
        """__dict__ of a module (or of type/object): namespace surgery. An object the
        analyzer cannot resolve is taken for an instance, whose own namespace is fine."""
        quals = self.qualnames(node.value)
        if not quals:
            return
        parent = self._parent(node)
        writes = (
            isinstance(node.ctx, (ast.Store, ast.Del))
            or (
                isinstance(parent, ast.Subscript)
                and parent.value is node
                and isinstance(parent.ctx, (ast.Store, ast.Del))
            )
            or (isinstance(parent, ast.Attribute) and parent.attr in _MUTATORS)
        )
        if "builtins" in quals and writes:
            self._hit("SKP211", node, "a write through builtins.__dict__")
        elif quals & (SENSITIVE | set(MODULE_RULES)) or any(
            q in ("builtins.type", "builtins.object") for q in quals
        ):
            self._hit("SKP225", node, f"{next(iter(quals))}.__dict__")
        elif writes:
            self._hit("SKP225", node, f"a write through {next(iter(quals))}.__dict__")

    def _store_attribute(self, node: ast.Attribute) -> None:
        quals = self.qualnames(node.value)
        attr = node.attr
        if attr in ("__bases__", "__base__", "__mro__"):
            # reading them is introspection (SKP226); replacing them rewires a class
            self._hit("SKP220", node, f"assignment to .{attr}")
        self._sensitive_write(node, quals, attr, lambda base: f"assignment to {base}.{attr}")

    def _sensitive_write(
        self, node: ast.AST, quals: frozenset[str], attr: str, shown: Callable[[str], str]
    ) -> None:
        """SKP211, SKP210, SKP307: ``attr`` written on builtins, on sys's import state, or
        on the shell's input pipeline, as an assignment or through setattr()."""
        if "builtins" in quals:
            self._hit("SKP211", node, shown("builtins"))
        if "sys" in quals and attr in SYS_IMPORT_STATE:
            self._hit("SKP210", node, shown("sys"))
        if SHELL in quals and (attr in IPYTHON_PIPELINE_ATTRS or attr == "autocall"):
            self._hit("SKP307", node, shown("get_ipython()"))

    def _subscript(self, node: ast.Subscript) -> None:
        quals = self.qualnames(node.value)
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            if "sys.modules" in quals:
                self._hit("SKP210", node, "a write to sys.modules")
            if quals & {"builtins", "builtins.__dict__"}:
                self._hit("SKP211", node, "a write to the builtins namespace")
            elif any(q.endswith(".__dict__") for q in quals):
                self._hit("SKP225", node, "a write to a module's namespace")
            return
        namespaces = {
            q
            for q in quals
            if q in ("sys.modules", "<globals>", "builtins") or q.endswith(".__dict__")
        }
        value = node.value
        if (isinstance(value, ast.Attribute) and value.attr == "__dict__") or (
            isinstance(value, ast.Call)
            and self.qualnames(value.func)
            & {"builtins.vars", "builtins.globals", "builtins.locals"}
        ):
            namespaces.add("<namespace>")
        if namespaces:
            key = self.folder.fold_str(node.slice)
            if key is None:
                sensitive = any(
                    q in SENSITIVE or q.removesuffix(".__dict__") in SENSITIVE for q in namespaces
                )
                self._hit(
                    "SKP306" if sensitive else "SKP232",
                    node,
                    "a namespace lookup with a computed key",
                )
            elif key in ATTRIBUTE_RULES and key.startswith("__"):
                self._hit(rule_for_name(key), node, f"the namespace entry {key!r}")
        self._reference(node)

    def _assign(self, node: ast.Assign | ast.AnnAssign | ast.NamedExpr) -> None:
        """SKP305: binding a dangerous callable to another name."""
        value = node.value
        if value is None:
            return
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t for t in targets if isinstance(t, ast.Name)]
        if not names:
            return
        for q in self.qualnames(value):
            if self._aliasable(q):
                for target in names:
                    self._hit("SKP305", target, f"{target.id} = {q}")
                return

    @staticmethod
    def _aliasable(q: str) -> bool:
        if q in MODULE_RULES or "." not in q:
            return False
        if q.startswith(f"{SHELL}."):
            method = q[len(SHELL) + 1 :]
            return method in SHELL_METHODS or method in ("run_line_magic", "run_cell_magic")
        return (
            rule_for_qualname(q) is not None
            or (q in EXEC_LIKE and not EXEC_LIKE[q][2])
            or q in IMPORT_LIKE
            or (q in GETATTR_LIKE and q != "builtins.hasattr")
        )

    # -- calls -----------------------------------------------------------------------------

    def _call(self, node: ast.Call) -> None:
        quals = self.qualnames(node.func)
        for q in quals:
            if q in EXEC_LIKE:
                self._exec_like(node, q)
            elif q in IMPORT_LIKE:
                self._import_like(node, q)
            elif q in GETATTR_LIKE:
                base = node.args[0] if node.args and q != "operator.attrgetter" else None
                self._getattr_like(node, q, GETATTR_LIKE[q], base)
            elif ".alias_manager." in q and q.endswith((".define_alias", ".soft_define_alias")):
                self._hit("SKP103", node, "a shell alias definition")
            elif q.startswith(f"{SHELL}."):
                self._shell_call(node, q[len(SHELL) + 1 :])
            elif q in PICKLE_LOADERS:
                self._pickle(node)
            elif q in _DEBUGGERS:
                self._debugger_commands(node, q)
        if quals & PAYLOAD_SINKS and any(self._decodes(a) for a in self._all_args(node)):
            self._hit(
                "SKP302", node, f"{_short(sorted(quals & PAYLOAD_SINKS)[0])}() of decoded data"
            )
        func = node.func
        if isinstance(func, ast.Attribute):
            attr = func.attr
            if attr in DUNDER_GETATTRS:
                self._dunder_getattr(node, attr)
            if attr in ("format", "format_map", "vformat", "get_field"):
                self._format_walk(node)
            if attr in _DEBUGGER_COMMANDS:
                self._debugger_commands(node, attr)
            if attr == "replace" and any(
                kw.arg and kw.arg.startswith("co_") for kw in node.keywords
            ):
                self._hit("SKP233", node, "code.replace()")
            if attr in _MUTATORS:
                owner = self.qualnames(func.value)
                if owner & {"sys.modules"}:
                    self._hit("SKP210", node, f"sys.modules.{attr}()")
                if owner & {"builtins", "builtins.__dict__"}:
                    self._hit("SKP211", node, f"builtins.__dict__.{attr}()")
        self._reference(node)

    @staticmethod
    def _all_args(node: ast.Call) -> Iterator[ast.expr]:
        yield from node.args
        for kw in node.keywords:
            yield kw.value

    def _exec_like(self, node: ast.Call, q: str) -> None:
        index, keywords, callable_ok = EXEC_LIKE[q]
        sources: list[ast.expr] = []
        if len(node.args) > index:
            sources.append(node.args[index])
        if q.startswith("timeit.") and len(node.args) > 1:
            sources.append(node.args[1])
        sources += [kw.value for kw in node.keywords if kw.arg in keywords]
        for arg in sources:
            src = arg.value if isinstance(arg, ast.Starred) else arg
            value = self.folder.fold(src)
            if isinstance(value, (str, bytes)):
                self._extend(self._nested_source(node, q, src, value))
            elif callable_ok and not isinstance(src, (ast.JoinedStr, ast.BinOp)):
                continue  # timeit and friends also take a callable
            elif self._is_checked_compile(src) or self._decodes(src):
                continue  # compile() of a literal is checked there; payloads are SKP302
            else:
                self._hit("SKP230", node, f"{_short(q)}() of a computed value")

    def _nested_source(
        self, node: ast.Call, q: str, src: ast.expr, value: str | bytes
    ) -> list[Hit]:
        text = _source_text(value)
        context = f"code passed to {_short(q)}()"
        if text is None:
            return []
        if q == f"{SHELL}.var_expand":
            return self._expansions(text, src, context)
        kind = "python"
        if q in ("builtins.eval", f"{SHELL}.ev", "pdb.runeval"):
            kind = "eval"
        elif q in (f"{SHELL}.run_cell", f"{SHELL}.run_cell_async"):
            kind = "cell"
        elif q == "builtins.compile":
            mode = self.folder.fold(self._arg(node, 2, "mode"))
            kind = "eval" if mode == "eval" else "python"
        return self.nested(text, kind, src, "anchor", context)

    def _is_checked_compile(self, src: ast.expr) -> bool:
        if not isinstance(src, ast.Call):
            return False
        if "builtins.compile" not in self.qualnames(src.func) or not src.args:
            return False
        return isinstance(self.folder.fold(src.args[0]), (str, bytes))

    def _decodes(self, node: ast.AST, depth: int = 0) -> bool:
        """Whether ``node`` computes its value by decoding data (a payload's first half)."""
        key = id(node)
        memo = self._decoder_memo.get(key)
        if memo is not None:
            return memo
        if depth > 4:
            return False
        self._decoder_memo[key] = False  # cycle guard
        found = False
        budget = 400
        for sub in ast.walk(node):
            budget -= 1
            if budget < 0:
                break
            if isinstance(sub, ast.Call):
                func = sub.func
                found = (isinstance(func, ast.Attribute) and func.attr in DECODER_METHODS) or bool(
                    self.qualnames(func) & DECODERS
                )
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                found = self._name_decoded(sub.id, depth)
            if found:
                break
        self._decoder_memo[key] = found
        return found

    def _name_decoded(self, name: str, depth: int) -> bool:
        memo = self._name_decodes.get(name)
        if memo is not None:
            return memo
        self._name_decodes[name] = False  # cycle guard
        found = False
        for b in self.bindings.get(name, ())[:_MAX_BINDINGS]:
            if b.kind == "expr" and b.node is not None and self._decodes(b.node, depth + 1):
                found = True
                break
        self._name_decodes[name] = found
        return found

    def _import_like(self, node: ast.Call, q: str) -> None:
        arg = self._arg(node, 0, "name")
        if arg is None:
            return
        name = self.folder.fold_str(arg)
        if name is None:
            if not self._decodes(arg):
                self._hit("SKP231", node, f"{_short(q)}() of a computed name")
            return
        self._assembled(arg, name)
        self._hit(rule_for_module(name), node, f"{_short(q)}({name!r})")

    def _getattr_like(self, node: ast.Call, q: str, index: int, base: ast.expr | None) -> None:
        if index < 0:
            names = list(node.args)
        else:
            arg = self._arg(node, index, "name")
            names = [arg] if arg is not None else []
        base_quals = self.qualnames(base) if base is not None else _EMPTY
        self._attribute_names(
            node,
            _short(q),
            names,
            base_quals,
            reads=q != "builtins.hasattr",
            writes=q in ("builtins.setattr", "builtins.delattr"),
        )

    def _dunder_getattr(self, node: ast.Call, attr: str) -> None:
        q = next(iter(self.qualnames(node.func)), f"?.{attr}")
        name_node, base_quals = self._dunder_getattr_target(node, f"{q.rsplit('.', 1)[0]}.{attr}")
        names = [name_node] if isinstance(name_node, ast.expr) else []
        self._attribute_names(
            node, attr, names, base_quals, reads=True, writes=attr in ("__setattr__", "__delattr__")
        )

    def _attribute_names(
        self,
        node: ast.Call,
        what: str,
        names: list[ast.expr],
        base_quals: frozenset[str],
        *,
        reads: bool,
        writes: bool,
    ) -> None:
        for arg in names:
            name = self.folder.fold_str(arg)
            if name is None:
                if base_quals & SENSITIVE:
                    self._hit(
                        "SKP306",
                        node,
                        f"{what}() of a computed name on {sorted(base_quals & SENSITIVE)[0]}",
                    )
                else:
                    self._hit("SKP232", node, f"{what}() of a computed name")
                continue
            self._assembled(arg, name)
            if reads:
                for part in name.split("."):
                    self._hit(ATTRIBUTE_RULES.get(part), node, f"{what}(..., {name!r})")
            if writes:
                self._sensitive_write(node, base_quals, name, _call_shown(what, name))

    def _format_walk(self, node: ast.Call) -> None:
        """SKP303: '{0.__class__}'.format(x) reads attributes through a format field."""
        func = node.func
        assert isinstance(func, ast.Attribute)
        if func.attr == "get_field":
            # Formatter().get_field('0.__globals__', args, kwargs): a bare field name
            field = self.folder.fold_str(node.args[0]) if node.args else None
            if field is not None:
                self._walking_fields(node, [field])
            return
        fmt = self.folder.fold_str(func.value)
        if fmt is None and node.args:
            fmt = self.folder.fold_str(node.args[0])  # str.format(fmt, ...), Formatter().format
        if fmt is not None:
            self._walking_fields(node, _format_fields(fmt))

    def _format_method(self, node: ast.Attribute) -> None:
        """SKP303 for a template's bound format method taken as a value (f = t.format)."""
        fmt = self.folder.fold_str(node.value)
        if fmt is not None:
            self._walking_fields(node, _format_fields(fmt))

    def _walking_fields(self, node: ast.AST, fields: list[str]) -> None:
        for field_name in fields:
            parts = [p.rstrip("]") for p in _SPLIT_FIELD.split(field_name)[1:]]
            if any(p in ATTRIBUTE_RULES or p.startswith(_SITE_INTERNALS) for p in parts) or (
                any(_is_dunder(p) for p in parts)
                # '{0.__class__.__name__}' only ever yields a name: harmless
                and not (
                    parts[-1] in _NAME_DUNDERS
                    and all(p in _NAME_DUNDERS or p == "__class__" for p in parts)
                )
            ):
                self._hit("SKP303", node, f"the format field {{{field_name}}}")
                return

    def _debugger_commands(self, node: ast.Call, attr: str) -> None:
        """A debugger (pdb, cmd.Cmd) fed its commands by the cell: '!cmd' lines and
        unknown commands run as Python, which this policy must check like exec()."""
        if attr == "onecmd":
            command = self.folder.fold_str(self._arg(node, 0, "line"))
            if command is None:
                self._hit("SKP230", node, f".{attr}() of a computed debugger command")
            elif command.strip():
                code = command.strip().removeprefix("!")
                context = f"the debugger command passed to .{attr}()"
                self._extend(self.nested(code, "python", node, "anchor", context))
            return
        # pdb.Pdb(stdin=...) / cmd.Cmd(stdin=...): commands from a stream the cell made
        if any(kw.arg == "stdin" for kw in node.keywords) or len(node.args) >= 2:
            self._hit("SKP230", node, "a debugger that reads its commands from the cell")

    def _pickle(self, node: ast.Call) -> None:
        data = self.folder.fold(self._arg(node, 0, "data"))
        if not isinstance(data, bytes):
            return
        for module, name in _pickle_globals(data):
            if dangerous_global(module, name):
                self._hit("SKP310", node, f"a pickle that loads {module}.{name}")
                return

    # -- the IPython shell: shell escapes and magics -----------------------------------------

    def _shell_call(self, node: ast.Call, method: str) -> None:
        if method in SHELL_METHODS:
            command = self.folder.fold_str(self._arg(node, 0, "cmd"))
            subject = (
                f"the shell command {command!r}"
                if command is not None
                else (f"get_ipython().{method}() of a computed command")
            )
            self._hit("SKP101", node, subject)
            if command:
                self._extend(
                    self._expansions(command, node, "a shell command's {...} field", role="arg")
                )
        elif method in ("run_line_magic", "run_cell_magic", "magic"):
            name = self.folder.fold_str(self._arg(node, 0, "magic_name"))
            if name is None:
                self._hit("SKP306", node, f"get_ipython().{method}() of a computed magic name")
                return
            line = self.folder.fold_str(self._arg(node, 1, "line")) or ""
            if method == "magic":
                name, _, line = name.partition(" ")
            kind = "cell" if method == "run_cell_magic" else "line"
            body = self.folder.fold_str(self._arg(node, 2, "cell")) if kind == "cell" else None
            self._magic(node, kind, name, line, body)
        elif method in ("find_line_magic", "find_cell_magic", "find_magic"):
            name = self.folder.fold_str(self._arg(node, 0, "magic_name"))
            if name is None:
                self._hit("SKP306", node, f"get_ipython().{method}() of a computed magic name")
            else:
                kind = "cell" if method == "find_cell_magic" else "line"
                self._hit(magics.classify(name, kind).rule, node, f"the magic %{name}")
        elif method in ("safe_execfile", "safe_execfile_ipy", "safe_run_module"):
            self._hit("SKP110", node, f"get_ipython().{method}()")

    def _magic(self, node: ast.Call, kind: str, name: str, line: str, body: str | None) -> None:
        info = magics.classify(name, kind)
        bare = name.lstrip("%")
        label = f"%%{bare}" if kind == "cell" else f"%{bare}"
        if kind == "line" and bare in magics.SHELL_ALIASES:
            label += " (a shell alias)"
        self._hit(info.rule, node, f"the magic {label}")
        if line and bare not in _NO_VAR_EXPAND:
            self._extend(self._expansions(line, node, f"{label}'s {{...}} field", role="arg"))
        py = info.python
        if py == "body":
            role = "body" if node is self.toplevel_call else "anchor"
            if body:
                self._extend(self.nested(body, "cell", node, role, f"the body of {label}"))
            if bare == "timeit" and line.strip():
                code = magics.python_argument("timeit", line)
                self._extend(self.nested(code, "cell", node, "arg", f"{label}'s setup"))
        elif py == "arg":
            code = magics.python_argument(bare, line)
            if code.strip():
                self._extend(self.nested(code, "cell", node, "arg", f"the statement of {label}"))
        if bare == "timeit":
            for setup in magics.timeit_setups(line):
                self._extend(self.nested(setup, "cell", node, "arg", f"{label}'s -s setup"))
        elif py == "file":
            if body and magics.python_file_target(line):
                role = "body" if node is self.toplevel_call else "anchor"
                self._extend(self.nested(body, "python", node, role, f"the file {label} writes"))
        elif py == "config":
            target, sep, value = line.partition("=")
            if sep:
                self._hit("SKP114", node, f"the magic {label}")
                if any(a in target for a in (*IPYTHON_PIPELINE_ATTRS, "autocall")):
                    self._hit("SKP307", node, f"%config {target.strip()}")
                self._extend(
                    self.nested(value.strip(), "eval", node, "arg", f"the value of {label}")
                )
        elif py == "name":
            for part in re.split(r"[.\[\]()]", line.strip().rstrip("?")):
                self._hit(ATTRIBUTE_RULES.get(part), node, f"{label} {line.strip()}")
        elif py == "module":
            module = line.split(maxsplit=1)[0] if line.split() else ""
            self._hit(rule_for_module(module), node, f"{label} {module}")
        elif py == "env":
            if "=" in line or len(line.split()) > 1:
                self._hit("SKP113", node, f"the magic {label}")
        elif py == "autocall":
            if line.strip() != "0":
                self._hit("SKP307", node, f"the magic %autocall {line.strip()}".rstrip())
        elif py == "alias":
            tokens = line.split()
            target = tokens[-1].lstrip("%") if tokens else ""
            if magics.classify(target, "cell").rule in ("SKP101", "SKP102") or (
                magics.classify(target, "line").rule == "SKP101"
            ):
                self._hit("SKP103", node, f"%alias_magic to %{target}")

    def _expansions(
        self, text: str, node: ast.AST, context: str, role: str = "anchor"
    ) -> list[Hit]:
        """IPython evaluates {expr} and $name in shell commands and magic lines."""
        hits: list[Hit] = []
        for expr in expansion_fields(text):
            hits += self.nested(expr, "eval", node, role, context)
        return hits

    # -- SKP301: names assembled from pieces ----------------------------------------------

    def _assembled(self, arg: ast.expr, name: str) -> None:
        """A computed (not literal) attribute or module name that spells a forbidden one."""
        if isinstance(arg, ast.Constant):
            return
        if name in FORBIDDEN_STRINGS or any(p in FORBIDDEN_STRINGS for p in name.split(".")):
            self._hit("SKP301", arg, f"{name!r} built from pieces")

    def _candidate(self, node: ast.AST) -> None:
        if isinstance(node, ast.JoinedStr) and not any(
            isinstance(v, ast.FormattedValue) for v in node.values
        ):
            return
        if isinstance(node, ast.Call):
            func = node.func
            if not isinstance(func, (ast.Attribute, ast.Name)):
                return
        value = self.folder.fold_str(node)
        if value is None or not value or len(value) > 200:
            return
        name = value.strip()
        if name in FORBIDDEN_STRINGS or (
            "." in name
            and all(p.isidentifier() for p in name.split("."))
            and any(p in FORBIDDEN_STRINGS for p in name.split("."))
            and not name.startswith(".")
        ):
            self._hit("SKP301", node, f"{name!r} built from pieces")


_BINDERS = frozenset(
    {
        ast.Import,
        ast.ImportFrom,
        ast.Assign,
        ast.AnnAssign,
        ast.NamedExpr,
        ast.AugAssign,
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.ClassDef,
        ast.arg,
        ast.For,
        ast.AsyncFor,
        ast.comprehension,
        ast.withitem,
        ast.ExceptHandler,
        ast.MatchAs,
        ast.MatchStar,
        ast.MatchMapping,
    }
)
_FUNCTIONS = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda})
_STMT_TYPES = frozenset(
    t for t in vars(ast).values() if isinstance(t, type) and issubclass(t, ast.stmt)
)
# Fields that never hold nodes worth visiting: expression contexts and operators are
# shared singletons.
_SKIP_FIELDS = frozenset({"ctx", "op", "ops", "type_ignores", "type_comment"})
_FIELDS: dict[type, tuple[str, ...]] = {}


def _children(node: ast.AST) -> list[ast.AST]:
    kind = type(node)
    fields = _FIELDS.get(kind)
    if fields is None:
        fields = tuple(f for f in kind._fields if f not in _SKIP_FIELDS)
        _FIELDS[kind] = fields
    out: list[ast.AST] = []
    for name in fields:
        value = getattr(node, name, None)
        if isinstance(value, list):
            out.extend(v for v in value if isinstance(v, ast.AST))
        elif isinstance(value, ast.AST):
            out.append(value)
    return out


def _through_a_module(qualname: str) -> str | None:
    """The rule of a dangerous module reached as another module's attribute: pydoc.os.system,
    site.sys._getframe, _sitebuiltins.sys.modules ... (modules import each other, and each
    import is an attribute of the importing module)."""
    parts = qualname.split(".")
    for i in range(1, len(parts) - 1):
        if parts[i] in _HOPPED_MODULES:
            rule = rule_for_qualname(".".join(parts[i:]))
            if rule is not None:
                return rule
    return None


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _source_text(value: str | bytes) -> str | None:
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _format_fields(fmt: str) -> list[str]:
    """Field names of a str.format template, including fields nested in format specs."""
    fields: list[str] = []
    pending = [fmt]
    for _ in range(4):
        nested: list[str] = []
        for template in pending:
            try:
                for _literal, field_name, spec, _conv in string.Formatter().parse(template):
                    if field_name:
                        fields.append(field_name)
                    if spec and "{" in spec:
                        nested.append(spec)
            except ValueError:
                continue
        if not nested:
            break
        pending = nested
    return fields


def _pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """The (module, name) pairs a pickle refers to, read without unpickling it."""
    found: list[tuple[str, str]] = []
    strings: list[str] = []
    try:
        for opcode, arg, _pos in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                module, _, name = arg.partition(" ")
                found.append((module, name))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append((strings[-2], strings[-1]))
            elif isinstance(arg, str):
                strings.append(arg)
            if len(found) > 1000:
                break
    except Exception:  # a malformed pickle: what was read so far still counts
        pass
    return found
