"""The magics of a kernel with a remote frontend, as the executor provides them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from IPython.core import page
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magics.code import CodeMagics, MacroToEdit
from IPython.display import Javascript, display
from IPython.utils import openpy

from ..sandbox_magic import SANDBOX_MAGIC_DOC

__all__ = ["FrontendMagics"]


@magics_class
class FrontendMagics(Magics):
    """The magics a kernel with a remote frontend has (ipykernel's set), sandbox-aware.

    Terminal pagers and editors cannot work through a frontend, so these use
    payloads and the pager instead; ``%connect_info`` and ``%qtconsole`` would
    need the connection file, which the sandbox never holds.
    """

    # Always set once registered; IPython types it as optional.
    shell: Any

    @line_magic
    def edit(self, parameter_s: str = "", last_call: Any = None) -> None:
        """Open a file, function or history range in the frontend's editor."""
        opts, args = self.parse_options(parameter_s, "prn:")
        try:
            filename, lineno, _ = CodeMagics._find_edit_target(
                self.shell, args, opts, last_call or ["", ""]
            )
        except MacroToEdit:
            print("Macro editing is not available through a notebook frontend.")
            return
        self.shell.payloads.append(
            {
                "source": "edit_magic",
                "filename": str(Path(filename).resolve()),
                "line_number": lineno or 0,
            }
        )

    @line_magic
    def clear(self, arg_s: str) -> None:
        """Clear the terminal."""
        self.shell.system("clear")

    @line_magic
    def less(self, arg_s: str) -> None:
        """Show a file through the pager; .py files are syntax-highlighted."""
        if not arg_s:
            raise UsageError("Missing filename.")
        if arg_s.endswith(".py"):
            text = self.shell.pycolorize(openpy.read_py_file(arg_s, skip_encoding_cookie=False))
        else:
            with open(arg_s) as f:
                text = f.read()
        page.page(text)

    @line_magic
    def more(self, arg_s: str) -> None:
        """Show a file through the pager (same as %less)."""
        self.less(arg_s)  # type: ignore[misc,call-arg]

    @line_magic
    def man(self, arg_s: str) -> None:
        """Show a man page in the pager."""
        page.page(self.shell.getoutput(f"man {arg_s} | col -b", split=False))

    @line_magic
    def connect_info(self, arg_s: str) -> None:
        """Connection details are not available: the sandbox holds no connection file."""
        print(
            "This kernel runs its cells in a sandbox, which holds no connection file and "
            "no key; connect other clients from outside it (jupyter <app> --existing)."
        )

    @line_magic
    def qtconsole(self, arg_s: str) -> None:
        """A Qt console cannot be started from inside the sandbox."""
        raise UsageError(
            "%qtconsole is not available: the sandbox has no display and no connection file."
        )

    @line_magic
    def autosave(self, arg_s: str) -> None:
        """Set the notebook's autosave interval in seconds (0 disables it)."""
        try:
            interval = int(arg_s)
        except ValueError:
            raise UsageError(f"%autosave requires an integer, got {arg_s!r}") from None
        display(
            Javascript(f"IPython.notebook.set_autosave_interval({1000 * interval})"),
            include=["application/javascript"],
        )
        print(f"Autosaving every {interval} seconds" if interval else "Autosave disabled")

    @line_magic
    def subshell(self, arg_s: str) -> None:
        """Subshells are not supported: the sandbox runs one cell at a time."""
        print("Kernel does not support subshells")
        print(f"thread id: {threading.current_thread().ident}")

    @line_magic
    def sandbox(self, arg_s: str) -> None:
        # The kernel answers %sandbox alone in a cell; it reaches the executor only
        # from inside other code (x = %sandbox, a loop), where the kernel cannot.
        print("%sandbox is answered by the kernel: run it alone in a cell (%sandbox? for help).")

    sandbox.__doc__ = SANDBOX_MAGIC_DOC
