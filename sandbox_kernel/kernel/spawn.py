"""Start the launcher process: a fresh interpreter, a scrubbed environment, three descriptors.

Kept free of heavy imports on purpose: ``python -m sandbox_kernel`` starts the
first launcher before it imports ipykernel, so the launcher's interpreter
start-up and imports (~200 ms) overlap the kernel's own (~400 ms) on another
core. The launcher then waits for its spec, which the kernel sends once its
configuration is loaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["Launcher", "prelaunch", "spawn", "take_prelaunched"]


# Set from the spec by the launcher before any cell runs, so the exec'd environment
# never needs them; they are left out of it because /proc/self/environ shows a
# process its environment as exec'd, and the executor is forked from the launcher:
# the host's PATH, user name and home would stay readable there.
SPEC_ONLY_NAMES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL"})


@dataclass
class Launcher:
    proc: subprocess.Popen[bytes]
    relay: socket.socket
    supervisor: socket.socket
    spec_fd: int  # write end of the pipe the spec goes through, once
    relay_child_fd: int
    supervisor_child_fd: int


def spawn(env: dict[str, str], cwd: str) -> Launcher:
    """Exec the launcher (never fork this process: it holds the HMAC key and ZMQ sockets)."""
    relay_parent, relay_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sup_parent, sup_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    spec_read, spec_write = os.pipe()
    os.set_inheritable(spec_write, False)
    # -Xfrozen_modules=off as ipykernel's kernelspec: tracebacks through os, io or
    # codecs show the standard library's source instead of "<frozen os>".
    argv = [
        sys.executable,
        "-P",
        "-s",
        "-Xfrozen_modules=off",
        "-m",
        "sandbox_kernel.launcher.launch",
        str(spec_read),
    ]
    try:
        proc = subprocess.Popen(
            argv,
            pass_fds=(relay_child.fileno(), sup_child.fileno(), spec_read),
            close_fds=True,
            env={k: v for k, v in env.items() if k not in SPEC_ONLY_NAMES},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        child_fds = (relay_child.fileno(), sup_child.fileno())
    finally:
        relay_child.close()
        sup_child.close()
        os.close(spec_read)
    return Launcher(proc, relay_parent, sup_parent, spec_write, *child_fds)


_prelaunched: Launcher | None = None


def prelaunch() -> None:
    """Start the first launcher now, with the built-in environment allow-list.

    The configured environment (pass-through variables, thread counts, HOME)
    travels in the spec and replaces this one before the executor starts.
    """
    global _prelaunched
    from .env import scrubbed_environment

    try:
        _prelaunched = spawn(scrubbed_environment(os.environ), os.getcwd())
    except OSError:
        _prelaunched = None


def take_prelaunched() -> Launcher | None:
    """The launcher started at start-up, once; None afterwards."""
    global _prelaunched
    launcher, _prelaunched = _prelaunched, None
    if launcher is not None and launcher.proc.poll() is not None:
        return None
    return launcher
