"""A spare kernel: its sandbox built ahead of need, then assigned a connection file.

The provisioner (``sandbox_kernel/provisioner.py``, in the Jupyter server's process)
starts a spare with the same command, environment and working directory as the
kernel it has just started; at the next start or restart with exactly those, it
hands the spare over instead of starting a process. Until then the spare:

- has read its configuration and built its sandbox (launcher, namespaces,
  confinement, the executor's IPython shell), for its own workspace only;
- has no connection file, no HMAC key and no socket: nobody can connect to it,
  and it holds nothing a kernel started now with that command would not hold;
- waits on its stdin, a pipe only the provisioner holds, for one line
  ``{"connection_file": PATH}``; end of file (the provisioner retired it, or the
  server is gone) makes it take its sandbox down and exit.

Once assigned it is an ordinary kernel: it reads the connection file, binds the
sockets and keeps the executor only if a fresh start would build the very same
sandbox (``Sandbox._adopt``); any doubt and it starts a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import TYPE_CHECKING, Any

from ..config import Isolation, Limits, Output, Policy
from ..policy import PolicySettings
from .sandbox import Sandbox

if TYPE_CHECKING:
    from traitlets.config import Configurable

__all__ = ["build_warm_sandbox", "wait_for_assignment", "warm_settings_match"]

# The assignment line is small; anything longer is not the provisioner's.
MAX_ASSIGNMENT_BYTES = 64 * 1024


def build_warm_sandbox(app: Configurable) -> Sandbox:
    """The sandbox a kernel of this configuration would start, started now."""
    isolation = Isolation(parent=app)
    limits = Limits(parent=app)
    sandbox = Sandbox(
        isolation=isolation,
        limits=limits,
        output=Output(parent=app),
        policy=PolicySettings.from_configurable(Policy(parent=app)),
        workspace=os.path.realpath(isolation.workspace or os.getcwd()),
        log=app.log,  # type: ignore[attr-defined]
    )
    sandbox.start_warm()
    return sandbox


def _traits(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.trait_names(config=True)}


def warm_settings_match(sandbox: Sandbox, kernel: Any) -> bool:
    """Whether the kernel's own settings are the ones the warm sandbox was built with."""
    return (
        _traits(sandbox.isolation) == _traits(kernel.isolation)
        and _traits(sandbox.limits) == _traits(kernel.limits)
        and _traits(sandbox.output) == _traits(kernel.output)
        and sandbox.policy == kernel.policy_settings
        and sandbox.workspace == kernel.workspace
    )


async def wait_for_assignment(sandbox: Sandbox, ready_fd: int | None) -> str | None:
    """Say when the sandbox is built, then wait for the connection file's path.

    None when the provisioner retires the spare (end of file) or sends anything
    but one line naming an absolute path.
    """
    # A failed start is reported by the kernel's own start (Sandbox._adopt).
    with contextlib.suppress(Exception):
        await asyncio.shield(sandbox.warm_future())
    if ready_fd is not None:
        with contextlib.suppress(OSError):
            os.write(ready_fd, b"w")
        os.close(ready_fd)
    line = await _read_line(0)
    if line is None:
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return None
    path = message.get("connection_file") if isinstance(message, dict) else None
    if not isinstance(path, str) or not os.path.isabs(path):
        return None
    return path


async def _read_line(fd: int) -> bytes | None:
    """One line from ``fd`` (a pipe), read without blocking the loop; None at EOF first."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    data = bytearray()
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    try:
        while b"\n" not in data and len(data) <= MAX_ASSIGNMENT_BYTES:
            await readable.wait()
            readable.clear()
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                return None
            data += chunk
    finally:
        loop.remove_reader(fd)
        os.set_blocking(fd, True)
    if b"\n" not in data:
        return None
    return bytes(data.split(b"\n", 1)[0])
