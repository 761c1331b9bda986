"""What each IPython magic does, as far as the policy is concerned.

IPython turns ``%name``, ``%%name``, ``!cmd`` and automagic lines into calls such as
``get_ipython().run_line_magic('name', 'args')``; the analyzer looks the name up here
to know which rule applies and whether an argument or body is Python to check too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CELL_PYTHON",
    "LINE_MAGICS",
    "LINE_PYTHON",
    "SHELL_ALIASES",
    "Magic",
    "classify",
    "python_argument",
    "python_file_target",
]


@dataclass(frozen=True)
class Magic:
    """How the policy treats one magic: the rule it triggers, if any, and its arguments."""

    rule: str | None
    # "body": the cell body is Python that IPython runs (%%time, %%capture ...)
    # "arg": the line argument is Python (%time stmt, %timeit stmt)
    # "file": the body is written to a file (%%writefile)
    # "config": the value after '=' is evaluated (%config)
    # "name": the argument is a dotted name that IPython resolves (%pinfo x.y)
    # "module": the argument names a module to import (%load_ext)
    python: str = ""


_SCRIPT_MAGICS = frozenset(
    {"bash", "sh", "zsh", "script", "perl", "ruby", "python", "python2", "python3", "pypy"}
)
_SHELL_MAGICS = frozenset({"!", "sx", "system", "sc"})

# Aliases IPython defines on POSIX; they are line magics that run shell commands.
SHELL_ALIASES = frozenset(
    {"cat", "cp", "ldir", "lf", "lk", "ll", "ls", "lx", "mkdir", "mv", "rm", "rmdir"}
)

# Magics with nothing to check: display, history, namespace, directory and help magics.
_HARMLESS = frozenset(
    {
        "automagic",
        "bookmark",
        "cd",
        "colors",
        "dhist",
        "dirs",
        "doctest_mode",
        "gui",
        "hist",
        "history",
        "killbgscripts",
        "load",
        "loadpy",
        "logoff",
        "logon",
        "logstate",
        "logstop",
        "lsmagic",
        "macro",
        "magic",
        "matplotlib",
        "page",
        "pdb",
        "popd",
        "pprint",
        "precision",
        "pushd",
        "pwd",
        "pycat",
        "pylab",
        "quickref",
        "recall",
        "rep",
        "rerun",
        "reset",
        "reset_selective",
        "store",
        "tb",
        "unalias",
        "unload_ext",
        "who",
        "who_ls",
        "whos",
        "xdel",
        "xmode",
        "psearch",
        "html",
        "HTML",
        "svg",
        "SVG",
        "latex",
        "markdown",
        "autoreload",
        "aimport",
        "sandbox",
    }
)

_LINE: dict[str, Magic] = {
    **{name: Magic("SKP101") for name in _SHELL_MAGICS},
    **{name: Magic("SKP101") for name in SHELL_ALIASES},
    "alias": Magic("SKP103"),
    "rehashx": Magic("SKP103"),
    "alias_magic": Magic(None, "alias"),
    **{name: Magic("SKP104") for name in ("pip", "conda", "mamba", "micromamba", "uv")},
    "run": Magic("SKP110"),
    "edit": Magic("SKP110"),
    "ed": Magic("SKP110"),
    "load_ext": Magic("SKP111", "module"),
    "reload_ext": Magic("SKP111", "module"),
    "save": Magic("SKP112"),
    "logstart": Magic("SKP112"),
    "notebook": Magic("SKP112"),
    "env": Magic(None, "env"),
    "set_env": Magic("SKP113"),
    "config": Magic(None, "config"),
    "autocall": Magic(None, "autocall"),
    "code_wrap": Magic("SKP307"),
    "pastebin": Magic("SKP204"),
    "time": Magic(None, "arg"),
    "timeit": Magic(None, "arg"),
    "prun": Magic(None, "arg"),
    "debug": Magic(None, "arg"),
    **{
        name: Magic(None, "name")
        for name in ("pinfo", "pinfo2", "pdef", "pdoc", "psource", "pfile")
    },
    **{name: Magic(None) for name in _HARMLESS},
}

_CELL: dict[str, Magic] = {
    **{name: Magic("SKP101") for name in _SHELL_MAGICS},
    **{name: Magic("SKP102") for name in _SCRIPT_MAGICS},
    "time": Magic(None, "body"),
    "timeit": Magic(None, "body"),
    "capture": Magic(None, "body"),
    "prun": Magic(None, "body"),
    "debug": Magic(None, "body"),
    "writefile": Magic("SKP112", "file"),
    "file": Magic("SKP112", "file"),
    "javascript": Magic("SKP115"),
    "js": Magic("SKP115"),
    "code_wrap": Magic("SKP307"),
    **{name: Magic(None) for name in _HARMLESS},
}

LINE_MAGICS = frozenset(_LINE)
CELL_PYTHON = frozenset(name for name, m in _CELL.items() if m.python == "body")
LINE_PYTHON = frozenset(name for name, m in _LINE.items() if m.python == "arg")

# Options that take a value, per magic (IPython's parse_options specs), so that the
# Python statement after them can be found: "%timeit -n 10 -r 3 f(x)".
_VALUED_OPTIONS = {
    "timeit": frozenset("nrp"),
    "prun": frozenset("DlsT"),
    "debug": frozenset("b"),
    "capture": frozenset(),
    "time": frozenset(),
}
_UNKNOWN = Magic("SKP116")


def classify(name: str, kind: str) -> Magic:
    """How to treat magic ``name`` of ``kind`` ("line" or "cell")."""
    # "%%bash" on a later line becomes run_line_magic('%bash', ''): it fails at run time,
    # but treat it as what it names rather than guess.
    name = name.lstrip("%") or "!"
    table = _CELL if kind == "cell" else _LINE
    return table.get(name, _UNKNOWN)


def python_argument(name: str, line: str) -> str:
    """The Python statement in a line magic's argument, after its options."""
    valued = _VALUED_OPTIONS.get(name, frozenset())
    tokens = line.split(" ")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "":
            i += 1
            continue
        if token.startswith("--") and name == "debug" and token == "--breakpoint":
            i += 2
            continue
        if not token.startswith("-") or len(token) < 2 or not token[1].isalpha():
            break
        letter = token[1]
        i += 1
        if letter in valued and len(token) == 2:
            i += 1  # "-n 10": the value is the next token
    return " ".join(tokens[i:])


_TARGET = re.compile(r"(?:^|\s)([^\s-][^\s]*)\s*$")


def python_file_target(line: str) -> bool:
    """Whether %%writefile's target (its last argument) is a Python source file."""
    match = _TARGET.search(line.strip().strip("'\""))
    target = match.group(1).strip("'\"") if match else ""
    return target.endswith((".py", ".pyw", ".ipy", ".pth"))


def timeit_setups(line: str) -> list[str]:
    """The setup statements of %timeit/%%timeit (``-s 'import x'``): code that runs too."""
    import shlex

    try:
        tokens = shlex.split(line)
    except ValueError:
        tokens = line.split()
    setups: list[str] = []
    for i, token in enumerate(tokens):
        if token == "-s" and i + 1 < len(tokens):
            setups.append(tokens[i + 1])
        elif token.startswith("-s") and len(token) > 2:
            setups.append(token[2:])
    return setups
