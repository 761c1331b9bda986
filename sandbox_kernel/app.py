"""The kernel application: ipykernel's IPKernelApp minus whatever reads the cwd or runs code.

IPKernelApp brings the ZMQ sockets, heartbeat, control and IOPub threads and
the connection file handling. What it also brings, and we switch off: the
IPython profile (its ``ipython_kernel_config.py`` and startup files are Python
code in a directory the stock kernel writes to), the current directory on
``sys.path`` and output capture of this process. Configuration comes from
``sandbox_kernel_config.{py,json}`` in the Jupyter config path only.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Generator
from typing import Any

from ipykernel.kernelapp import IPKernelApp
from jupyter_core.paths import jupyter_config_dir, jupyter_config_path
from traitlets import CaselessStrEnum, Unicode, default
from traitlets.config import Application

from . import __version__
from .cli import command_line_help, version_line
from .config import PRESETS, Isolation, Limits, Output, Policy
from .kernel.handlers import SandboxKernel
from .lock import Attempt, Locks, load_locks, stricter

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
    ).tag(config=True)

    config_file_name = Unicode("sandbox_kernel_config")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Admin locks, and looser values that configuration from below tried to set.
        self.locks = Locks()
        self.lock_attempts: list[Attempt] = []

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

    def init_kernel(self) -> None:
        # Last word on configuration: everything from below (files, kernel.json
        # arguments, the command line) has been read; pin what the admin locked.
        self.lock_attempts += self.locks.apply(self.config)
        super().init_kernel()

    def init_connection_file(self) -> None:
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


def main(argv: list[str] | None = None) -> None:
    SandboxKernelApp.launch_instance(argv=argv)
