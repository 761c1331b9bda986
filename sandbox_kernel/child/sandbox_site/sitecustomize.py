"""Inside the sandbox (``landlock`` and ``none`` levels): Python's HTTP clients reach the proxy.

Cells create no socket at these levels (seccomp refuses every family). The
sandbox holds instead one end of the supervisor's dialer (``launcher/dialer.py``),
inherited by its processes under the descriptor number in ``SANDBOX_PROXY_FD``:
each request there brings back one connected stream to this kernel's egress
proxy. This module makes Python's clients use it. It is convenience, not the
boundary: a cell that ignores or undoes it still has no socket but that dialer,
and the proxy still decides every request.

What it changes, in every Python process of the sandbox (this directory is on
``PYTHONPATH``; the executor calls ``install()`` itself):

* a connection to the proxy address (``SANDBOX_PROXY_ADDRESS``, the one in
  ``HTTP_PROXY``/``HTTPS_PROXY``) made by ``socket.create_connection`` (urllib,
  http.client, httpx), urllib3's (requests, pip's vendored copy) or asyncio's
  ``create_connection`` (``asyncio.open_connection``, httpx's async client) is a
  stream from the dialer; TCP-level socket options on it are ignored;
* subprocesses keep the dialer's descriptor: ``subprocess.Popen`` and
  ``ptyprocess`` (IPython's ``!cmd``) close inherited descriptors by default.

Programs other than Python (curl, git, wget) cannot use it: they would open
a TCP socket to the proxy address, which seccomp refuses.

Standard library only, and no import of ``sandbox_kernel``: any interpreter in
the sandbox may load it.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.abc
import importlib.machinery
import importlib.util
import os
import socket
import stat
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

FD_ENV = "SANDBOX_PROXY_FD"
ADDRESS_ENV = "SANDBOX_PROXY_ADDRESS"
# The dialer answers at once unless the proxy's listener is saturated.
DIAL_TIMEOUT_S = 30.0
# Modules whose create_connection is replaced when (and if) they are imported.
URLLIB3_CONNECTION = ("urllib3.util.connection", "pip._vendor.urllib3.util.connection")
PTYPROCESS = "ptyprocess.ptyprocess"
ASYNCIO = "asyncio.base_events"

_state: dict[str, Any] = {}


class ProxySocket(socket.socket):
    """A stream to the proxy (AF_UNIX underneath) that takes TCP options without complaint.

    http.client and urllib3 set TCP_NODELAY on the sockets they connect; a unix
    socket answers EOPNOTSUPP, which they do not expect.
    """

    def setsockopt(self, level: int, optname: int, *args: Any) -> None:
        if level != socket.SOL_SOCKET:
            return
        super().setsockopt(level, optname, *args)


class _Dialer:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self.lock = threading.Lock()

    def _socket(self) -> socket.socket:
        if self.sock is None:
            # Never closed: the descriptor is shared by every process of the sandbox.
            self.sock = socket.socket(fileno=self.fd)
            # Every user of the shared descriptor waits with a timeout (poll), so
            # O_NONBLOCK, which travels with it, is what all of them expect.
            self.sock.settimeout(DIAL_TIMEOUT_S)
        return self.sock

    def connect(self) -> ProxySocket:
        with self.lock:
            try:
                sock = self._socket()
                sock.send(b"c")
                message, fds, _, _ = socket.recv_fds(sock, 256, 2)
            except TimeoutError:
                raise TimeoutError(
                    errno.ETIMEDOUT, "the sandbox's egress proxy did not answer"
                ) from None
            except OSError as exc:
                raise ConnectionRefusedError(
                    errno.ECONNREFUSED, f"the sandbox's egress proxy cannot be reached: {exc}"
                ) from None
        for extra in fds[1:]:
            os.close(extra)
        if message[:1] != b"y" or not fds:
            for fd in fds[:1]:
                os.close(fd)
            reason = message[1:].decode("utf-8", "replace") or "no answer"
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"the sandbox's egress proxy cannot be reached: {reason}"
            )
        return ProxySocket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fileno=fds[0])


def is_proxy_address(address: Any) -> bool:
    """Whether ``address`` (host, port) is the proxy address the sandbox advertises."""
    target = _state.get("address")
    if target is None or not isinstance(address, tuple) or len(address) < 2:
        return False
    host, port = address[0], address[1]
    if not isinstance(host, str):
        return False
    hosts = {target[0], "localhost"} if target[0] == "127.0.0.1" else {target[0]}
    return host.strip("[]").lower() in hosts and str(port) == str(target[1])


def connect_to_proxy(timeout: Any = None) -> ProxySocket:
    """A new connection to the proxy, with ``timeout`` if it is one socket.settimeout takes.

    Callers' "default" sentinels (socket's, urllib3's) leave the global default.
    """
    sock: ProxySocket = _state["dialer"].connect()
    if timeout is None or isinstance(timeout, (int, float)):
        sock.settimeout(timeout)
    return sock


def _stdlib_create_connection(original: Callable[..., Any]) -> Callable[..., Any]:
    default = socket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]

    def create_connection(address: Any, timeout: Any = default, *args: Any, **kwargs: Any) -> Any:
        if is_proxy_address(address):
            return connect_to_proxy(timeout)
        return original(address, timeout, *args, **kwargs)

    create_connection._sandbox_proxy = True  # type: ignore[attr-defined]
    create_connection.__wrapped__ = original  # type: ignore[attr-defined]
    create_connection.__doc__ = original.__doc__
    return create_connection


def _patch_urllib3(module: ModuleType) -> None:
    original = getattr(module, "create_connection", None)
    if original is None or getattr(original, "_sandbox_proxy", False):
        return

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        if is_proxy_address(address):
            return connect_to_proxy(args[0] if args else kwargs.get("timeout", ...))
        return original(address, *args, **kwargs)

    create_connection._sandbox_proxy = True  # type: ignore[attr-defined]
    create_connection.__wrapped__ = original  # type: ignore[attr-defined]
    module.create_connection = create_connection  # type: ignore[attr-defined]


def _patch_asyncio(module: ModuleType) -> None:
    """asyncio's create_connection(host, port) to the proxy address: over the dialer too.

    What asyncio.open_connection and anyio (httpx's async client) use. Clients that
    make their own socket first (aiohttp's happy eyeballs) are not carried.
    """
    cls = getattr(module, "BaseEventLoop", None)
    original = getattr(cls, "create_connection", None)
    if cls is None or original is None or getattr(original, "_sandbox_proxy", False):
        return

    async def create_connection(
        self: Any, protocol_factory: Any, host: Any = None, port: Any = None, **kwargs: Any
    ) -> Any:
        if kwargs.get("sock") is not None or not is_proxy_address((host, port)):
            return await original(self, protocol_factory, host, port, **kwargs)
        sock = await self.run_in_executor(None, _state["dialer"].connect)
        sock.setblocking(False)
        ssl = kwargs.get("ssl")
        keep = ("ssl", "ssl_handshake_timeout", "ssl_shutdown_timeout", "server_hostname")
        given = {k: v for k, v in kwargs.items() if k in keep and v is not None}
        if ssl and "server_hostname" not in given:
            given["server_hostname"] = host
        return await original(self, protocol_factory, sock=sock, **given)

    create_connection._sandbox_proxy = True  # type: ignore[attr-defined]
    create_connection.__wrapped__ = original  # type: ignore[attr-defined]
    cls.create_connection = create_connection


def _keep_dialer(pass_fds: Any) -> tuple[int, ...]:
    """``pass_fds`` with the dialer's descriptor, if it is still the dialer's.

    A cell may have closed it (a closed descriptor in pass_fds makes every spawn fail
    with EBADF) or reused its number for a file (which must not leak to the child).
    """
    fds = tuple(pass_fds or ())
    try:
        if stat.S_ISSOCK(os.fstat(_state["fd"]).st_mode):
            return (*fds, _state["fd"])
    except OSError:
        pass
    return fds


def _patch_ptyprocess(module: ModuleType) -> None:
    cls = getattr(module, "PtyProcess", None)
    spawn = getattr(cls, "spawn", None)
    if cls is None or spawn is None or getattr(spawn, "_sandbox_proxy", False):
        return
    original = spawn.__func__

    def spawn_keeping_dialer(klass: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["pass_fds"] = _keep_dialer(kwargs.get("pass_fds"))
        return original(klass, *args, **kwargs)

    spawn_keeping_dialer._sandbox_proxy = True  # type: ignore[attr-defined]
    cls.spawn = classmethod(spawn_keeping_dialer)


def _patch_subprocess() -> None:
    import subprocess

    init = subprocess.Popen.__init__
    if getattr(init, "_sandbox_proxy", False):
        return

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        # pass_fds given positionally (the 17th argument) is left alone.
        if len(args) < 17 and kwargs.get("close_fds", True):
            kwargs["pass_fds"] = _keep_dialer(kwargs.get("pass_fds"))
        init(self, *args, **kwargs)

    __init__._sandbox_proxy = True  # type: ignore[attr-defined]
    subprocess.Popen.__init__ = __init__  # type: ignore[method-assign]


_PATCHES: dict[str, Callable[[ModuleType], None]] = {
    **dict.fromkeys(URLLIB3_CONNECTION, _patch_urllib3),
    PTYPROCESS: _patch_ptyprocess,
    ASYNCIO: _patch_asyncio,
}


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, inner: Any, patch: Callable[[ModuleType], None]) -> None:
        self.inner = inner
        self.patch = patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        with contextlib.suppress(Exception):
            self.patch(module)

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename ...: what tracebacks and inspect ask the loader.
        return getattr(self.inner, name)


class _PatchingFinder(importlib.abc.MetaPathFinder):
    """Patches the modules in _PATCHES right after they are executed, whenever that is."""

    def find_spec(
        self, fullname: str, path: Any, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = _PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


def install() -> bool:
    """Route Python's connections to the proxy address over the dialer; False if none here."""
    if _state:
        return True
    fd_text, address = os.environ.get(FD_ENV, ""), os.environ.get(ADDRESS_ENV, "")
    host, _, port = address.rpartition(":")
    if not fd_text.isdigit() or not host or not port.isdigit():
        return False
    fd = int(fd_text)
    try:
        os.fstat(fd)
    except OSError:
        return False  # a process started without it (close_fds by a program we did not patch)
    _state.update(fd=fd, address=(host.strip("[]"), int(port)), dialer=_Dialer(fd))
    # urllib3 probes for IPv6 at import by creating a socket, which seccomp refuses
    # and reports; no socket can be made here, and the proxy resolves names itself.
    socket.has_ipv6 = False
    socket.create_connection = _stdlib_create_connection(socket.create_connection)
    _patch_subprocess()
    for name, patch in _PATCHES.items():
        if name in sys.modules:
            with contextlib.suppress(Exception):
                patch(sys.modules[name])
    sys.meta_path.insert(0, _PatchingFinder())
    return True


def _chain_next_sitecustomize() -> None:
    """Run the sitecustomize this one shadows (a distribution's, a site's), if any."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None or spec.origin == __file__:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


if __name__ == "sitecustomize":
    with contextlib.suppress(Exception):
        install()
    _chain_next_sitecustomize()
