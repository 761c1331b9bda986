"""The kernel application: ipykernel's IPKernelApp minus whatever reads the cwd or runs code.

IPKernelApp brings the ZMQ sockets, heartbeat, control and IOPub threads and
the connection file handling. What it also brings, and we switch off: the
IPython profile (its ``ipython_kernel_config.py`` and startup files are Python
code in a directory the stock kernel writes to), the current directory on
``sys.path`` and output capture of this process. Configuration comes from
``sandbox_kernel_config.{py,json}`` in the Jupyter config path only.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Generator
from typing import Any

from ipykernel.kernelapp import IPKernelApp
from jupyter_core.paths import jupyter_config_dir, jupyter_config_path
from traitlets import CaselessStrEnum, Unicode, default
from traitlets.config import Application

from . import __version__
from .cli import command_line_help, version_line
from .config import PRESET_ORDER, PRESETS, Isolation, Limits, Output, Policy
from .kernel.handlers import SandboxKernel
from .kernel.sandbox import Sandbox
from .lock import Attempt, Locks, collect_orders, load_locks, lock_files, stricter

__all__ = ["SandboxKernelApp", "main"]


class SandboxKernelApp(IPKernelApp):
    """Start a sandbox-kernel (``python -I -m sandbox_kernel -f CONNECTION_FILE``)."""

    name = "sandbox-kernel"
    # --version prints this, not IPython's version.
    version = __version__
    description = "A Jupyter kernel for Python that runs every cell in a sandbox."
    classes = [*IPKernelApp.classes, SandboxKernel, Isolation, Limits, Output, Policy]

    preset = CaselessStrEnum(
        list(PRESETS),
        default_value="standard",
        help="""Defaults for a kind of deployment, limits, outputs and policy together:
        'standard' (secure defaults for a data scientist), 'classroom' (time, memory and
        process limits, sanitized outputs and the classroom policy for students),
        'permissive' (the permissive policy, and running without a sandbox allowed when
        the host offers none). Explicit settings win; admin locks win over both.""",
    ).tag(config=True, lock=PRESET_ORDER)

    config_file_name = Unicode("sandbox_kernel_config")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Admin locks, and looser values that configuration from below tried to set.
        self.locks = Locks()
        self.lock_attempts: list[Attempt] = []
        self._locks_applied = False
        # A spare (kernel/warm.py): the pipe on which it says its sandbox is built,
        # and that sandbox once it is assigned; None for a kernel started directly.
        self.spare_ready_fd: int | None = None
        self.spare = False
        self.warm_sandbox: Sandbox | None = None

    @default("kernel_class")
    def _kernel_class_default(self) -> type:
        return SandboxKernel

    @default("ignore_cwd")
    def _ignore_cwd_default(self) -> bool:
        return True

    @default("outstream_class")
    def _outstream_default(self) -> None:
        # This process prints nothing a user should see; its stdout/stderr are
        # the kernel log, and capturing fd 1/2 into IOPub would mix them in.
        return None

    @default("capture_fd_output")
    def _capture_default(self) -> bool:
        return False

    def print_version(self) -> None:
        print(version_line())

    def emit_help(self, classes: bool = False) -> Generator[str, None, None]:
        """``--help``: this project's commands, presets and main settings; ``--help-all``: all."""
        if classes:
            yield from super().emit_help(classes=True)
            return
        sections = {
            "SandboxKernelApp": SandboxKernelApp,
            "Isolation": Isolation,
            "Limits": Limits,
            "Output": Output,
            "Policy": Policy,
        }
        yield command_line_help(sections)

    def init_crash_handler(self) -> None:
        # IPython's crash handler writes reports into the profile directory.
        sys.excepthook = sys.__excepthook__

    def init_profile_dir(self) -> None:
        # No IPython profile: its config and startup files are code we would run.
        self.profile_dir = None

    def init_config_files(self) -> None:
        paths = [p for p in jupyter_config_path() if os.path.isabs(p)]
        if os.environ.get("JUPYTERHUB_DISABLE_USER_CONFIG", "").lower() in {"1", "true", "yes"}:
            # The hub disabled the single-user server's user configuration; the
            # kernel it starts follows suit, so ~/.jupyter changes nothing here either.
            user_dir = os.path.realpath(jupyter_config_dir())
            paths = [p for p in paths if os.path.realpath(p) != user_dir]
        self.config_file_paths = paths

    def load_config_file(self, suppress_errors: Any = None) -> None:  # type: ignore[override]
        base = self.config_file_name
        # traitlets gives the first directory of the path the highest priority.
        Application.load_config_file(self, base, path=self.config_file_paths)
        self.locks = load_locks()
        self.locks.expand()
        self._apply_preset()

    def _apply_preset(self) -> None:
        """Layer the preset's values under anything configured explicitly."""
        configured = self.config.get("SandboxKernelApp", {}).get("preset")
        preset = str(configured if configured is not None else self.preset).lower()
        locked = self.locks.values.get("SandboxKernelApp.preset")
        if locked is not None and not stricter("SandboxKernelApp.preset", preset, locked):
            if configured is not None:
                # Only an explicit choice is an attempt; the default just gives way.
                self.lock_attempts.append(Attempt("SandboxKernelApp.preset", preset, locked))
            preset = locked
            self.config.SandboxKernelApp.preset = locked
        for section, values in PRESETS.get(preset, {}).items():
            for key, value in values.items():
                # A locked setting gets the lock's value (or a stricter one set
                # explicitly): the preset's default neither overrides the admin's
                # value nor counts as a refused loosening attempt.
                if key not in self.config[section] and f"{section}.{key}" not in self.locks.values:
                    self.config[section][key] = value

    def _apply_locks(self) -> None:
        # Last word on configuration: everything from below (files, kernel.json
        # arguments, the command line) has been read; pin what the admin locked.
        if not self._locks_applied:
            self.lock_attempts += self.locks.apply(self.config)
            self._locks_applied = True

    def init_kernel(self) -> None:
        self._apply_locks()
        super().init_kernel()

    def init_connection_file(self) -> None:
        if self.spare:
            self._wait_for_assignment()
        super().init_connection_file()
        if not self.session.key:
            # Unsigned messages: any local user who finds the ports (loopback TCP is
            # open to every user of the machine) could run cells as this user.
            self.log.critical(
                "sandbox-kernel refuses to start: the connection file %s has an empty HMAC "
                "key, so messages would not be signed and any local user who reaches the "
                "kernel's sockets could run code with this user's files. To fix: let the "
                "kernel manager write the connection file (jupyter_client puts a random "
                "'key' in it), do not set Session.key to '', and prefer "
                "--KernelManager.transport=ipc on shared machines",
                self.connection_file,
            )
            self.exit(1)

    def _wait_for_assignment(self) -> None:
        """A spare: build the sandbox now, then wait for a connection file (warm.py).

        Nothing here has a key or a socket yet; the configuration is the one the
        kernel will run with (locks applied), read once, as a kernel started now.
        """
        from .kernel.warm import build_warm_sandbox, wait_for_assignment

        self._apply_locks()
        read_from = self._config_files_state()
        loop = asyncio.get_event_loop_policy().get_event_loop()
        sandbox = build_warm_sandbox(self)
        path = loop.run_until_complete(wait_for_assignment(sandbox, self.spare_ready_fd))
        if path is None:
            self.log.info("spare_retired: no kernel was assigned to it")
            sandbox.discard_warm()
            self.exit(0)
            return
        self.log.info("spare_assigned connection_file=%s", path)
        if self._config_files_state() != read_from:
            # The configuration or an admin lock changed while the spare waited: this
            # process read the old one. Start afresh, as the kernel just asked for.
            self.log.info("spare_configuration_changed: starting as a fresh kernel")
            sandbox.discard_warm()
            argv = [path if a == self.connection_file else a for a in sys.orig_argv]
            argv = [a for a in argv if not a.startswith("--sandbox-spare=")]
            os.execv(sys.executable, argv)
        self.warm_sandbox = sandbox
        self.connection_file = str(path)

    def _config_files_state(self) -> list[tuple[str, tuple[int, ...] | None]]:
        """Every file the configuration and the admin locks are read from, as it is now."""
        names = [
            os.path.join(directory, f"{self.config_file_name}{ext}")
            for directory in self.config_file_paths
            for ext in (".py", ".json")
        ]
        state: list[tuple[str, tuple[int, ...] | None]] = []
        for name in [*names, *lock_files()]:
            try:
                st = os.stat(name)
            except OSError:
                state.append((name, None))
                continue
            state.append((name, (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)))
        return state

    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)
        if self.transport == "ipc":
            self._restrict_ipc_sockets()

    def _restrict_ipc_sockets(self) -> None:
        """Unix sockets the kernel binds are its user's alone (0600), whatever the umask.

        The heartbeat binds in its own thread, so its socket may appear a moment later.
        """
        ports = [self.shell_port, self.iopub_port, self.stdin_port, self.control_port]
        paths = [f"{self.ip}-{port}" for port in ports if port]
        hb = f"{self.ip}-{self.hb_port}"
        deadline = time.monotonic() + 5
        while not os.path.exists(hb) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not os.path.isabs(self.ip):
            self.log.warning(
                "the kernel's ipc sockets are in its working directory, the notebook "
                "directory (%s-N): cells cannot reach them, but to keep them in the runtime "
                "directory give the kernel manager a connection_file",
                self.ip,
            )
        for path in [*paths, hb]:
            try:
                os.chmod(path, 0o600)
            except OSError as exc:
                self.log.critical("cannot make the ipc socket %s private: %s", path, exc)
                self.exit(1)

    def init_pdb(self) -> None:
        # The stock kernel swaps in IPython's debugger here; we run no code to debug.
        pass

    def init_gui_pylab(self) -> None:
        pass

    def init_extensions(self) -> None:
        pass

    def init_code(self) -> None:
        pass


# Every setting of ours says how an admin lock orders it (its ``lock`` tag, lock.py):
# one without is refused here, when the kernel is imported, not found missing later.
LOCK_ORDERS = collect_orders([*SandboxKernelApp.classes, SandboxKernelApp])


def main(argv: list[str] | None = None, *, spare_ready_fd: int | None = None) -> None:
    """Start the kernel; ``spare_ready_fd`` given: as a spare (kernel/warm.py)."""
    app = SandboxKernelApp.instance()
    if spare_ready_fd is not None:
        app.spare = True
        app.spare_ready_fd = spare_ready_fd if spare_ready_fd >= 0 else None
    app.initialize(argv)
    app.start()
    # Shut down: the sandbox is down and the replies are sent. Python's own teardown
    # (module finalisation) took 60-90 ms of every shutdown and restart, and
    # jupyter_client polls for the exit every 100 ms: leave without it, once what the
    # interpreter's exit does first is done. The control thread, which handled the
    # shutdown_request, ends its loop by itself after publishing its last status; then
    # the threads that are not daemons are waited for, and the exit handlers close
    # the sockets with their linger, so the last messages go out. (Closing them while
    # the control thread still published left kernels hanging.) Any doubt: the
    # ordinary exit.
    finish_threads = getattr(threading, "_shutdown", None)
    control = getattr(app, "control_thread", None)
    if control is not None:
        control.join(timeout=2.0)
    if finish_threads is None or (control is not None and control.is_alive()):
        return
    finish_threads()
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)
