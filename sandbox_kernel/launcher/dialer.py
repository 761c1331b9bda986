"""The way to the egress proxy where the sandbox shares the host's network (landlock, none).

There is no network namespace of its own at these levels, so a listener inside
(the ``namespaces`` level's forwarder) would be a listener on the host's
loopback, and opening sockets cannot be allowed at all: seccomp cannot read a
``connect`` address, Landlock's TCP rules name ports of any host, and Landlock
(ABI 7 and older) does not govern ``connect`` on pathname unix sockets, so an
AF_UNIX socket reaches every socket file the uid may write (a Docker daemon's
``/run/docker.sock``, an ssh-agent, other kernels' proxies, whose paths
``/proc/net/unix`` lists). Cells therefore create no socket of any family.

Instead the executor holds one end of a SOCK_SEQPACKET socketpair made before
it was confined; the supervisor (outside the sandbox's confinement) holds the
other. Each message the sandbox sends there asks for one connection: the
supervisor connects a unix socket to this kernel's proxy and hands the
connected descriptor back (SCM_RIGHTS). That descriptor is all a cell can get:
a stream to its own proxy, which checks every request. The shim inside
(``child/sandbox_site/sitecustomize.py``) makes Python's HTTP clients ask for one
when they connect to the proxy address in ``HTTP(S)_PROXY``.
"""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["ADDRESS_ENV", "FD_ENV", "pair", "start_dialer"]

# What the shim reads: the descriptor number of the sandbox's end, and the proxy
# address (as in HTTP_PROXY) whose connections it carries over the dialer.
FD_ENV = "SANDBOX_PROXY_FD"
ADDRESS_ENV = "SANDBOX_PROXY_ADDRESS"
CONNECT_TIMEOUT_S = 10.0


def pair() -> tuple[socket.socket, socket.socket]:
    """(supervisor's end, sandbox's end). SEQPACKET: one request, one answer, never merged."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def _answer(sock: socket.socket, proxy_socket: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.settimeout(CONNECT_TIMEOUT_S)
        upstream.connect(proxy_socket)
    except OSError as exc:
        upstream.close()
        sock.send(b"n" + (exc.strerror or type(exc).__name__).encode()[:200])
        return
    try:
        # Blocking for the handed-over descriptor: the timeout was for connect only,
        # and O_NONBLOCK would travel with it.
        upstream.setblocking(True)
        socket.send_fds(sock, [b"y"], [upstream.fileno()])
    finally:
        upstream.close()


def start_dialer(sock: socket.socket, proxy_socket: str) -> threading.Thread:
    """Answer the sandbox's requests on ``sock`` in a thread, until every sandbox end is closed."""

    def serve() -> None:
        while True:
            try:
                # recv, not recvmsg: descriptors a cell sends along are closed by the
                # kernel, never received here.
                request = sock.recv(16)
            except InterruptedError:
                continue
            except OSError:
                return
            if not request:
                return  # no process of the sandbox holds its end any more
            try:
                _answer(sock, proxy_socket)
            except OSError:
                return

    def run() -> None:
        try:
            serve()
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    thread = threading.Thread(target=run, name="proxy-dialer", daemon=True)
    thread.start()
    return thread
