"""``python -m sandbox_kernel``: start the kernel, or ``install``/``uninstall`` its kernelspec."""

from __future__ import annotations

import os
import sys


def _only_help(argv: list[str]) -> bool:
    """Whether the command line asks for help or the version (as traitlets reads it)."""
    head = argv[: argv.index("--")] if "--" in argv else argv
    return any(a in {"-h", "--help", "--help-all", "--version", "-V"} for a in head)


def main() -> None:
    # Never import from the directory the kernel was started in (the notebook's
    # directory, writable by cells): kernel.json runs us with -I, and this
    # covers anyone who starts us without it.
    # Only the entry Python added for it goes: the directory may also be a real
    # entry of the path (a notebook opened in site-packages).
    implicit = not (sys.flags.isolated or sys.flags.safe_path)
    if implicit and sys.path and sys.path[0] == os.getcwd():
        del sys.path[0]
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    if len(sys.argv) > 1 and sys.argv[1] in {"install", "uninstall"}:
        from .install import main as install_main

        sys.exit(install_main(sys.argv[1:]))
    if _only_help(sys.argv[1:]):
        # Help and version start no kernel: no sandbox to prepare.
        from .app import main as app_main

        app_main()
        return
    # Start the first sandbox launcher now, so that its interpreter start-up
    # overlaps this process's imports (ipykernel, IPython, zmq) on another core.
    from .kernel.spawn import prelaunch

    prelaunch()
    from .app import main as app_main

    app_main()


if __name__ == "__main__":
    main()
