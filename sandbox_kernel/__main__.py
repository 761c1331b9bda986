"""``python -m sandbox_kernel``: start the kernel, or ``install``/``uninstall`` its kernelspec."""

from __future__ import annotations

import os
import sys


def _only_help(argv: list[str]) -> bool:
    """Whether the command line asks for help or the version (as traitlets reads it)."""
    head = argv[: argv.index("--")] if "--" in argv else argv
    return any(a in {"-h", "--help", "--help-all", "--version", "-V"} for a in head)


# The provisioner's mark of a spare (kernel/warm.py): "--sandbox-spare=FD".
SPARE_FLAG = "--sandbox-spare="


def _take_spare_flag(argv: list[str]) -> int | None:
    """Remove the spare mark from ``argv``; the descriptor it names (-1: none), or None."""
    for i, arg in enumerate(argv):
        if arg.startswith(SPARE_FLAG):
            del argv[i]
            value = arg[len(SPARE_FLAG) :]
            return int(value) if value.isdigit() else -1
    return None


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
    spare = _take_spare_flag(sys.argv)
    # Not dumpable from the start: a spare waits long before it is assigned, and no
    # process of the same user (a cell at the landlock level) may read its memory.
    from .isolation.privs import set_not_dumpable

    set_not_dumpable()
    from .kernel.spawn import prelaunch

    prelaunch()
    from .app import main as app_main

    app_main(spare_ready_fd=spare)


if __name__ == "__main__":
    main()
