"""``python -m sandbox_kernel``: start the kernel, or ``install``/``uninstall`` its kernelspec."""

from __future__ import annotations

import os
import sys


def main() -> None:
    # Never import from the directory the kernel was started in (the notebook's
    # directory, writable by cells): kernel.json runs us with -I, and this
    # covers anyone who starts us without it.
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", ".", cwd)]
    if len(sys.argv) > 1 and sys.argv[1] in {"install", "uninstall"}:
        from .install import main as install_main

        sys.exit(install_main(sys.argv[1:]))
    # Start the first sandbox launcher now, so that its interpreter start-up
    # overlaps this process's imports (ipykernel, IPython, zmq) on another core.
    from .executor.spawn import prelaunch

    prelaunch()
    from .app import main as app_main

    app_main()


if __name__ == "__main__":
    main()
