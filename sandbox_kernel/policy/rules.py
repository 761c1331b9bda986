"""The rule table: every policy rule, its stable id, its group and its action in each preset.

This is the single place where rules are declared. The static checker, the runtime
audit hooks, the configuration validator and the tests all iterate over ``RULES``.
Ids are stable and never reused: SKP1xx are text, magic and shell-escape rules,
SKP2xx are AST rules (dangerous modules and calls, dunder walking, dynamic code),
SKP3xx detect attempts to hide any of those from the checker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ACTIONS",
    "GROUPS",
    "PRESET_NAMES",
    "RULES",
    "Rule",
    "default_actions",
    "strongest",
]

# Ordered from strongest to weakest: "deny" refuses the cell (or raises at run time),
# "warn" lets it run and tells the user, "audit" only records it, "off" ignores it.
ACTIONS = ("deny", "warn", "audit", "off")
PRESET_NAMES = ("standard", "classroom", "permissive")


@dataclass(frozen=True)
class Rule:
    """One rule: what it catches, why it matters, and its action per preset."""

    id: str
    group: str
    title: str
    why: str
    standard: str
    classroom: str
    permissive: str

    def default(self, preset: str) -> str:
        """The rule's action under ``preset`` (one of ``PRESET_NAMES``)."""
        action: str = getattr(self, preset)
        return action


def strongest(actions: list[str]) -> str:
    """The strongest of several actions ("deny" beats "warn" beats "audit" beats "off")."""
    return min(actions, key=ACTIONS.index) if actions else "off"


# id, group, title, why, standard, classroom, permissive
#
# The standard preset denies what has no place in an ordinary data-science notebook
# (native code, walking into interpreter internals, hiding code from the checker) and
# lets through, with a record, what real notebooks do (!ls, %%bash, %run, subprocess
# with a warning): the OS sandbox confines those like any other code in the cell.
_TABLE: tuple[tuple[str, str, str, str, str, str, str], ...] = (
    # -- SKP1xx: text level, magics and shell escapes --------------------------------
    (
        "SKP101",
        "shell",
        "shell escape",
        "it runs a shell command ('!cmd', '!!cmd', %sx, %system); the command is not Python, "
        "so this policy cannot see what it does",
        "audit",
        "deny",
        "audit",
    ),
    (
        "SKP102",
        "shell",
        "script cell magic",
        "the cell body is run by another interpreter (bash, sh, perl, ruby, python ...) "
        "that this policy cannot inspect",
        "audit",
        "deny",
        "audit",
    ),
    (
        "SKP103",
        "shell",
        "shell alias",
        "it defines a magic that runs shell commands, which later cells can then call without '!'",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP104",
        "shell",
        "package installation",
        "it runs a package manager (pip, conda, mamba, uv) that downloads and installs code",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP110",
        "magics",
        "runs a file",
        "the file's code runs without being checked by this policy",
        "audit",
        "warn",
        "audit",
    ),
    (
        "SKP111",
        "magics",
        "loads an extension",
        "an IPython extension runs module code and can add magics this policy does not know",
        "audit",
        "warn",
        "audit",
    ),
    (
        "SKP112",
        "magics",
        "writes a file",
        "the magic writes a file that later cells can import or run",
        "audit",
        "audit",
        "audit",
    ),
    (
        "SKP113",
        "magics",
        "sets environment variables",
        "environment variables change how later programs and libraries behave "
        "(LD_PRELOAD, PATH, PYTHONPATH ...)",
        "audit",
        "warn",
        "audit",
    ),
    (
        "SKP114",
        "magics",
        "changes IPython's configuration",
        "%config changes the shell's own settings, and its value is evaluated as Python",
        "audit",
        "warn",
        "audit",
    ),
    (
        "SKP115",
        "magics",
        "JavaScript output",
        "JavaScript runs in the browser of whoever views the notebook, outside the sandbox",
        "audit",
        "warn",
        "audit",
    ),
    (
        "SKP116",
        "magics",
        "unknown magic",
        "the magic is not one of IPython's built-in magics (an alias or an extension's "
        "magic), so this policy cannot tell what it does",
        "audit",
        "warn",
        "audit",
    ),
    (
        "SKP120",
        "bypass",
        "unusual source encoding",
        "a coding declaration such as utf-7 or unicode_escape makes a file run differently "
        "from how it reads",
        "deny",
        "deny",
        "warn",
    ),
    (
        "SKP121",
        "bypass",
        "bidirectional text control",
        "Unicode direction overrides make code display differently from how it runs "
        "('Trojan Source', CVE-2021-42574)",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP122",
        "bypass",
        "cell could not be checked",
        "the checker could not finish on this cell (IPython's input transformations would "
        "take too long, or the checker failed); split or simplify the cell",
        "deny",
        "deny",
        "warn",
    ),
    # -- SKP2xx: AST level -------------------------------------------------------------
    (
        "SKP201",
        "modules",
        "native code",
        "ctypes and cffi call C functions directly, which bypasses every Python-level check",
        "deny",
        "deny",
        "audit",
    ),
    (
        "SKP202",
        "modules",
        "process creation",
        "it starts another program (subprocess, os.system, os.popen, os.exec*, os.spawn*, pty)",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP203",
        "modules",
        "process control",
        "fork and kill act on whole processes: forking the executor or signalling other processes",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP204",
        "modules",
        "network sockets",
        "raw sockets open network connections or listen for them",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP205",
        "modules",
        "signal handling",
        "changing signal handlers or masks can make the cell ignore interrupts and timeouts",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP206",
        "modules",
        "import machinery",
        "custom loaders, import hooks and runpy run module code this policy never sees",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP207",
        "internals",
        "interpreter introspection",
        "frames and the garbage collector's object graph reach objects the cell was not "
        "given, such as the executor's own state",
        "deny",
        "deny",
        "audit",
    ),
    (
        "SKP208",
        "internals",
        "tracing hooks",
        "a trace or profile function sees, and can change, every frame the interpreter runs",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP209",
        "internals",
        "audit hook tampering",
        "audit hooks enforce this policy while the cell runs; cells may not add hooks or "
        "raise audit events",
        "deny",
        "deny",
        "warn",
    ),
    (
        "SKP210",
        "internals",
        "import system surgery",
        "editing sys.modules or the import hooks changes what later imports return",
        "deny",
        "deny",
        "audit",
    ),
    (
        "SKP211",
        "internals",
        "builtins tampering",
        "changing builtins changes every piece of code in the executor, including its checks",
        "deny",
        "deny",
        "audit",
    ),
    (
        "SKP220",
        "dunder",
        "class hierarchy walking",
        "__subclasses__ lists every class derived from one (from object: every class "
        "loaded), which reaches dangerous classes without importing anything",
        "deny",
        "deny",
        "audit",
    ),
    (
        "SKP221",
        "dunder",
        "function and module internals",
        "__globals__, __builtins__, __code__, __closure__ and __self__ reach another "
        "function's namespace or the builtins",
        "deny",
        "deny",
        "audit",
    ),
    (
        "SKP222",
        "dunder",
        "frame walking",
        "frame and traceback attributes (f_globals, f_back, tb_frame, gi_frame ...) reach "
        "the executor's own stack",
        "deny",
        "deny",
        "audit",
    ),
    (
        "SKP223",
        "dunder",
        "loader internals",
        "__loader__ and __spec__ reach the import system's loaders",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP224",
        "dunder",
        "pickle protocol hooks",
        "__reduce__ and __reduce_ex__ hand out callables with their arguments, the raw "
        "material of code-running pickles",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP225",
        "dunder",
        "namespace surgery via __dict__",
        "editing a module's or class's __dict__ changes code that other cells and "
        "libraries rely on",
        "deny",
        "deny",
        "audit",
    ),
    (
        "SKP226",
        "dunder",
        "class hierarchy reading",
        "mro(), __mro__, __bases__ and __base__ only read a class's own ancestors (reading "
        "them is not an escape; __subclasses__ is), but they are the first step of the "
        "well-known class-walking escapes",
        "audit",
        "deny",
        "audit",
    ),
    (
        "SKP227",
        "dunder",
        "builtins by their internal name",
        "__builtins__ is an implementation detail (the builtins module in a notebook, a "
        "dict elsewhere); reading it is harmless, and escapes start from it",
        "audit",
        "deny",
        "audit",
    ),
    (
        "SKP230",
        "dynamic",
        "dynamic code",
        "exec, eval and compile of a computed string run code this policy could not check",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP231",
        "dynamic",
        "dynamic import",
        "__import__ or importlib.import_module with a computed name imports a module this "
        "policy could not check",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP232",
        "dynamic",
        "computed attribute name",
        "getattr, setattr, delattr and hasattr with a computed name reach attributes this "
        "policy could not check",
        "audit",
        "deny",
        "audit",
    ),
    (
        "SKP233",
        "dynamic",
        "code object construction",
        "building code or function objects (types.CodeType, types.FunctionType, "
        "marshal.loads) runs bytecode this policy could not check",
        "deny",
        "deny",
        "audit",
    ),
    (
        "SKP240",
        "files",
        "write outside the allowed directories",
        "cells may write only in the workspace, the temporary directories, the home "
        "directory and site-packages",
        "deny",
        "deny",
        "audit",
    ),
    # -- SKP3xx: bypass detection ------------------------------------------------------
    (
        "SKP301",
        "bypass",
        "obfuscated name",
        "a forbidden name assembled from pieces (concatenation, chr(), slicing, reversal, "
        "formatting) is a common way to hide it from checks",
        "deny",
        "deny",
        "warn",
    ),
    (
        "SKP302",
        "bypass",
        "encoded payload",
        "decoding data (base64, zlib, rot13, hex, marshal, pickle) and running the result "
        "hides code from this policy",
        "deny",
        "deny",
        "warn",
    ),
    (
        "SKP303",
        "bypass",
        "format-string attribute walking",
        "format fields such as '{0.__class__}' read attributes without attribute syntax",
        "deny",
        "deny",
        "warn",
    ),
    (
        "SKP304",
        "bypass",
        "look-alike identifier",
        "Python normalises identifiers with NFKC, so look-alike characters (such as "
        "fullwidth letters) spell a forbidden name",
        "deny",
        "deny",
        "warn",
    ),
    (
        "SKP305",
        "bypass",
        "alias of a dangerous callable",
        "binding a dangerous function to another name hides later calls from review",
        "warn",
        "deny",
        "audit",
    ),
    (
        "SKP306",
        "bypass",
        "computed name on a sensitive object",
        "a computed attribute, module, key or magic name on os, sys, builtins or the IPython "
        "shell hides what is called",
        "deny",
        "deny",
        "warn",
    ),
    (
        "SKP307",
        "bypass",
        "IPython input pipeline tampering",
        "input transformers, AST transformers, autocall and code wrappers change a cell "
        "after this policy has checked it",
        "deny",
        "deny",
        "warn",
    ),
    (
        "SKP308",
        "bypass",
        "nesting too deep to check",
        "code nested deeper than this policy follows (exec inside exec, magic inside magic) "
        "could not be checked",
        "deny",
        "deny",
        "warn",
    ),
    (
        "SKP309",
        "bypass",
        "compatibility characters in an identifier",
        "the identifier contains characters that Python normalises to different ones, so "
        "it is not the name it appears to be",
        "audit",
        "warn",
        "audit",
    ),
    (
        "SKP310",
        "bypass",
        "unpickling a dangerous global",
        "the pickle refers to a callable such as os.system that runs when it is loaded",
        "deny",
        "deny",
        "warn",
    ),
)


def _build() -> Mapping[str, Rule]:
    rules: dict[str, Rule] = {}
    for rule_id, group, title, why, standard, classroom, permissive in _TABLE:
        if rule_id in rules:
            raise ValueError(f"duplicate rule id {rule_id}")
        for action in (standard, classroom, permissive):
            if action not in ACTIONS:
                raise ValueError(f"{rule_id}: unknown action {action!r}")
        rules[rule_id] = Rule(rule_id, group, title, why, standard, classroom, permissive)
    return MappingProxyType(rules)


RULES: Mapping[str, Rule] = _build()

GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        group: tuple(r.id for r in RULES.values() if r.group == group)
        for group in dict.fromkeys(r.group for r in RULES.values())
    }
)


def default_actions(preset: str) -> dict[str, str]:
    """The action of every rule under ``preset``, before any override."""
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown policy preset {preset!r}; use one of {', '.join(PRESET_NAMES)}")
    return {rule.id: rule.default(preset) for rule in RULES.values()}
