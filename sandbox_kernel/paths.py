"""Paths more than one zone names, each with one owner here (no dependencies).

The launcher (what the sandbox shows), Landlock (what a cell may open) and the
executor's audit hooks (what a cell's write may touch) must agree on them: a device
bound but not granted, or a prefix protected by the mounts but not by the hooks,
would be a gap that no single module shows.
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "DEVICES",
    "PACKAGE_DIR",
    "SANDBOX_SITE",
    "SINK_DEVICES",
    "TERMINAL_DEVICES",
    "device_paths",
    "interpreter_prefixes",
]

# This package: code the kernel runs (never writable from a cell, not even in an
# editable install inside a notebook directory) and the executor's own frames.
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# The shim that carries Python's connections to the proxy over the dialer (landlock, none).
SANDBOX_SITE = os.path.join(PACKAGE_DIR, "child", "sandbox_site")

# The host's character devices the sandbox shows (bound into its own /dev at the
# namespaces level, granted by Landlock at the landlock level): all harmless.
DEVICES = ("null", "zero", "full", "random", "urandom")
# Of those, the ones a write goes nowhere to: cells may open them for writing.
SINK_DEVICES = ("null", "zero", "full")
# The sandbox's own devpts instance and its ptmx (namespaces level): ``!cmd``'s pty.
TERMINAL_DEVICES = ("/dev/ptmx", "/dev/pts")


def device_paths(names: tuple[str, ...]) -> list[str]:
    return [f"/dev/{name}" for name in names]


def interpreter_prefixes() -> list[str]:
    """The interpreter's prefixes: the standard library and site-packages live below them."""
    return [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
