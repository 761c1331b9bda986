"""Start and restart through a pre-warmed spare kernel: a jupyter_client kernel provisioner.

It runs in the process that manages kernels (the Jupyter server, nbclient), never in a
kernel. After each start it starts one *spare* with exactly the same command (but for
the connection file), environment, working directory and launch arguments; the next
start or restart asking for exactly those gets the spare instead of a new process.
The spare (``kernel/warm.py``) has built its sandbox and waits, without a key or a
socket, for the path of the connection file; the ports and key stay the manager's, so
clients connected before a restart keep working. Anything else (another directory,
another environment, a spare that died or cannot be told) starts a kernel as
jupyter_client's ``LocalProvisioner`` does.

Spares are per process, at most ``SandboxProvisioner.spares`` of them, each retired
after ``spare_idle_s`` unused, and when this process exits (their stdin closes).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import json
import os
import select
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.launcher import launch_kernel
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from traitlets import Float, Int, default

__all__ = ["SandboxProvisioner", "spares_ready"]

# Added to a spare's command (read and removed by ``sandbox_kernel/__main__.py``).
SPARE_FLAG = "--sandbox-spare="
# The environment variable that sets the default of SandboxProvisioner.spares
# (the test suite sets 0: each test starts kernels in a directory of its own).
SPARES_ENV = "SANDBOX_KERNEL_SPARES"
# How long a retired spare gets to take its sandbox down before it is killed.
RETIRE_GRACE_S = 10.0
# After a shutdown_request, how long poll() waits for the kernel to exit before it says
# it is alive: less than the 100 ms jupyter_client sleeps between two polls.
EXIT_WAIT_S = 0.09

SpareKey = tuple[Any, ...]


class SandboxProvisioner(LocalProvisioner):
    """LocalProvisioner that keeps a pre-warmed spare kernel for the next start or restart."""

    spares = Int(
        help="""How many pre-warmed spare kernels this process keeps (0: none). A spare is
        a whole sandboxed kernel (about 60-70 MiB PSS) started with the same command,
        environment and directory as the last kernel started, so that a restart of that
        kernel, or another start in the same directory with the same environment, takes
        it instead of starting a process. Default: $SANDBOX_KERNEL_SPARES if set; else 1
        where kernels are managed by a long-lived server (a MultiKernelManager, as in
        JupyterLab, Notebook, JupyterHub), and 0 for a kernel manager of its own
        (nbclient, nbconvert, papermill, a grader), which runs a notebook once and
        would only pay for a spare it never uses.""",
    ).tag(config=True)

    spare_idle_s = Float(
        900.0,
        help="""Seconds an unused spare is kept before it is retired (its sandbox taken
        down). A spare that waited longer than this would mostly cost memory.""",
    ).tag(config=True)

    spare_delay_s = Float(
        1.0,
        help="""Seconds after a kernel's start before its spare is started, so that the
        spare's set-up does not compete with the kernel's own start for the CPU. A start
        or restart within that time starts a kernel the ordinary way.""",
    ).tag(config=True)

    @default("spares")
    def _spares_default(self) -> int:
        value = os.environ.get(SPARES_ENV, "")
        if value.isdigit():
            return int(value)
        # A one-shot run (nbclient and what is built on it) starts a kernel, runs the
        # notebook and shuts it down: a spare would be built after every run and never
        # used (measured: one per nbclient run of a 4 s notebook). A server restarts.
        return 1 if _managed_by_a_server(self.parent) else 0

    # Set when this kernel came from a spare (tests, logs).
    from_spare = False
    # Set by shutdown_requested(): the kernel is expected to exit now.
    _exit_expected = False

    async def shutdown_requested(self, restart: bool = False) -> None:
        await super().shutdown_requested(restart=restart)
        self._exit_expected = True

    async def poll(self) -> int | None:
        """As LocalProvisioner's; after a shutdown_request, wait briefly for the exit.

        jupyter_client sends shutdown_request, then polls every 100 ms until the
        process is gone: the kernel exits in 20-45 ms, yet a shutdown and every
        restart took at least 100 ms. Waiting here (on a pidfd, at most EXIT_WAIT_S)
        lets its first look see the exit.
        """
        ret = await super().poll()
        process = self.process
        if ret is None and self._exit_expected and process is not None:
            await _wait_exit(process.pid, EXIT_WAIT_S)
            ret = await super().poll()
        return ret

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        km = self.parent
        connection_file = os.path.realpath(km.connection_file) if km is not None else None
        key = spare_key(cmd, kwargs, connection_file) if connection_file else None
        spare = POOL.take(key) if key is not None and self.spares > 0 else None
        self.from_spare = False
        self._exit_expected = False
        if spare is not None and connection_file is not None and spare.assign(connection_file):
            self.process = spare.proc
            self.pid = spare.proc.pid
            with contextlib.suppress(OSError):
                self.pgid = os.getpgid(spare.proc.pid)
            self.cwd = kwargs.get("cwd")
            self.from_spare = True
            self.log.info("kernel %s started from a pre-warmed spare", self.kernel_id)
            info = self.connection_info
        else:
            if spare is not None:
                spare.retire()
            info = await super().launch_kernel(cmd, **kwargs)
        if key is not None and connection_file is not None and self.spares > 0:
            launch, args = list(cmd), dict(kwargs)
            POOL.schedule(
                lambda: start_spare(launch, args, key, connection_file),
                delay_s=self.spare_delay_s,
                limit=self.spares,
                idle_s=self.spare_idle_s,
            )
        return info


async def _wait_exit(pid: int, timeout: float) -> None:
    """Return when process ``pid`` has exited (it stays a zombie for poll()) or at timeout."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # gone already, or no pidfd here: poll() says which
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(exited, timeout)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def _managed_by_a_server(kernel_manager: Any) -> bool:
    """Whether this kernel's manager belongs to a MultiKernelManager (jupyter_server's
    MappingKernelManager is one): the long-lived process where kernels are restarted."""
    from jupyter_client.multikernelmanager import MultiKernelManager

    return isinstance(getattr(kernel_manager, "parent", None), MultiKernelManager)


def spare_key(cmd: list[str], kwargs: dict[str, Any], connection_file: str) -> SpareKey:
    """What a kernel is started with, but for its connection file: a spare matches exactly.

    Launch arguments that are objects (stdout, stderr files) match only the same
    object; the spare holds a reference to them, so the identity stays unique.
    """
    argv = tuple("{connection_file}" if a == connection_file else a for a in cmd)
    env = tuple(sorted((kwargs.get("env") or {}).items()))
    rest: list[tuple[str, Any]] = []
    for name, value in sorted(kwargs.items()):
        if name == "env":
            continue
        if isinstance(value, (str, int, float, bool, type(None))):
            rest.append((name, value))
        else:
            rest.append((name, ("object", id(value))))
    return (argv, env, tuple(rest))


@dataclass
class Spare:
    """A spare kernel: its process, the pipe it says it is ready on, its stdin."""

    proc: subprocess.Popen[bytes]
    key: SpareKey
    ready_fd: int
    assign_fd: int  # write end of the spare's stdin
    launch_kwargs: dict[str, Any]  # kept: identities in the key stay unique
    created: float = field(default_factory=time.monotonic)
    timer: threading.Timer | None = None
    _ready: bool = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready(self) -> bool:
        """Whether it said its sandbox is built (or gave up trying: end of file)."""
        if not self._ready and self.ready_fd >= 0:
            readable, _, _ = select.select([self.ready_fd], [], [], 0)
            self._ready = bool(readable)
        return self._ready

    def assign(self, connection_file: str) -> bool:
        """Give it the connection file; False if it cannot be told (then it is retired)."""
        self._close_ready()
        if self.timer is not None:
            self.timer.cancel()
        if self.assign_fd < 0 or not self.alive():
            self.retire()
            return False
        line = json.dumps({"connection_file": connection_file}).encode() + b"\n"
        try:
            written = os.write(self.assign_fd, line)  # a few hundred bytes: one write
        except OSError:
            written = 0
        if written != len(line):
            self.retire()
            return False
        self._close_assign()
        return True

    def _close_assign(self) -> None:
        if self.assign_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.assign_fd)
            self.assign_fd = -1

    def retire(self) -> None:
        """End of file on its stdin: it takes its sandbox down and exits; killed if not."""
        self._close_ready()
        if self.timer is not None:
            self.timer.cancel()
        self._close_assign()
        threading.Thread(target=self._reap, name="sandbox-spare-reaper", daemon=True).start()

    def _reap(self) -> None:
        try:
            self.proc.wait(RETIRE_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                self.proc.wait(5)

    def _close_ready(self) -> None:
        if self.ready_fd >= 0:
            self.ready()
            with contextlib.suppress(OSError):
                os.close(self.ready_fd)
            self.ready_fd = -1


def start_spare(
    cmd: list[str], kwargs: dict[str, Any], key: SpareKey, connection_file: str
) -> Spare:
    """Start a spare: the kernel's command with a connection file it never reads, marked."""
    placeholder = os.path.join(
        os.path.dirname(connection_file), f"kernel-spare-{uuid.uuid4()}.json"
    )
    ready_r, ready_w = os.pipe()
    assign_r, assign_w = os.pipe()
    argv = [placeholder if a == connection_file else a for a in cmd]
    argv.append(f"{SPARE_FLAG}{ready_w}")
    launch = LocalProvisioner._scrub_kwargs(kwargs)
    launch["stdin"] = assign_r  # the spare is assigned (or retired) on its stdin
    try:
        proc = launch_kernel(argv, pass_fds=(ready_w,), **launch)
    except Exception:
        os.close(ready_r)
        os.close(assign_w)
        raise
    finally:
        os.close(ready_w)
        os.close(assign_r)
    return Spare(proc, key, ready_r, assign_w, dict(kwargs))


class SparePool:
    """This process's spares, oldest first; at most the configured number."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spares: collections.OrderedDict[int, Spare] = collections.OrderedDict()
        # Spares to start after a delay; a newer one replaces an older one not started yet.
        self._pending: threading.Timer | None = None

    def take(self, key: SpareKey) -> Spare | None:
        """The newest live spare for exactly ``key``, out of the pool; None if there is none."""
        with self._lock:
            for ident, spare in reversed(self._spares.items()):
                if spare.key == key:
                    del self._spares[ident]
                    if spare.alive():
                        return spare
                    spare.retire()
                    return None
        return None

    def add(self, spare: Spare, limit: int, idle_s: float) -> None:
        with self._lock:
            self._spares[id(spare)] = spare
            while len(self._spares) > limit:
                _, old = self._spares.popitem(last=False)
                old.retire()
        spare.timer = threading.Timer(idle_s, self.expire, (spare,))
        spare.timer.daemon = True
        spare.timer.start()

    def schedule(
        self, start: Callable[[], Spare], *, delay_s: float, limit: int, idle_s: float
    ) -> None:
        """Start a spare ``delay_s`` from now (in a thread: starting it blocks on nothing
        but fork and exec), unless another start replaces this request first."""

        def fire() -> None:
            with self._lock:
                if self._pending is not timer:
                    return
            try:
                self.add(start(), limit, idle_s)
            except Exception:  # no spare: the next start is an ordinary one
                pass
            finally:
                # Only now: until the spare is in the pool, it is still pending.
                with self._lock:
                    if self._pending is timer:
                        self._pending = None

        timer = threading.Timer(max(0.0, delay_s), fire)
        timer.daemon = True
        with self._lock:
            if self._pending is not None:
                self._pending.cancel()
            self._pending = timer
        timer.start()

    def pending(self) -> bool:
        with self._lock:
            return self._pending is not None

    def expire(self, spare: Spare) -> None:
        with self._lock:
            if self._spares.pop(id(spare), None) is None:
                return
        spare.retire()

    def retire_all(self) -> None:
        with self._lock:
            if self._pending is not None:
                self._pending.cancel()
                self._pending = None
            spares = list(self._spares.values())
            self._spares.clear()
        for spare in spares:
            spare.retire()

    def snapshot(self) -> list[Spare]:
        with self._lock:
            return list(self._spares.values())


POOL = SparePool()
atexit.register(POOL.retire_all)


def spares_ready(timeout: float = 0.0) -> bool:
    """Whether every spare of this process has built its sandbox (waits up to ``timeout``).

    For benchmarks that time a start on a machine the spare's set-up no longer loads.
    """
    deadline = time.monotonic() + timeout
    while True:
        spares = POOL.snapshot()
        if not POOL.pending() and all(s.ready() or not s.alive() for s in spares):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
