"""``execfile`` and ``runfile``: the builtins a stock ipykernel has (debugpy's pydevconsole
adds them when ipykernel imports it), for notebooks written against it.

They run a file's code in the caller's place: the runtime policy treats this module
as transparent for compilation (``audit._TRANSPARENT["compile"]``), so the file is
checked as the cell's own code, and the static policy treats calls to them like
``%run`` (SKP110).
"""

from __future__ import annotations

import builtins
import os
import sys
from typing import Any

__all__ = ["execfile", "install", "runfile"]


def _read(filename: str) -> bytes:
    with open(filename, "rb") as f:
        return f.read()


def execfile(
    file: str, glob: dict[str, Any] | None = None, loc: dict[str, Any] | None = None
) -> None:
    """Run the Python file ``file`` in ``glob`` (the notebook's namespace by default)."""
    if glob is None:
        glob = _user_namespace()
    if loc is None:
        loc = glob
    filename = os.fsdecode(file)
    glob.setdefault("__builtins__", builtins)
    code = compile(_read(filename), filename, "exec")
    exec(code, glob, loc)


def runfile(
    filename: str,
    args: str | None = None,
    wdir: str | None = None,
    namespace: dict[str, Any] | None = None,
) -> None:
    """Run ``filename`` with ``sys.argv`` set from ``args`` (a string), in ``wdir`` if
    given, in ``namespace`` (the notebook's by default), as pydevd's runfile does."""
    if isinstance(filename, bytes):
        filename = filename.decode("utf-8")
    if args is not None and not isinstance(args, (bytes, str)):
        raise TypeError("expected a character buffer object")
    if namespace is None:
        namespace = _user_namespace()
    old_file = namespace.get("__file__")
    namespace["__file__"] = filename
    sys.argv = [filename, *(args.split() if isinstance(args, str) else [])]
    if wdir is not None:
        os.chdir(os.fsdecode(wdir))
    try:
        execfile(filename, namespace)
    finally:
        if old_file is None:
            namespace.pop("__file__", None)
        else:
            namespace["__file__"] = old_file


def _user_namespace() -> dict[str, Any]:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        namespace: dict[str, Any] = shell.user_ns
        return namespace
    import __main__

    main: dict[str, Any] = __main__.__dict__
    return main


def install() -> None:
    """Add both to the builtins, as the stock kernel has them."""
    builtins.execfile = execfile  # type: ignore[attr-defined]
    builtins.runfile = runfile  # type: ignore[attr-defined]
