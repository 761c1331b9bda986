"""The sandbox's end of the way to the egress proxy (``namespaces`` level).

The sandbox's network namespace has only loopback. pid 1 (the supervisor, which
runs no cell code) listens on ``127.0.0.1:<proxy_port>`` inside that namespace (the
port is the kernel's, network/kernel_side.py, told in the spec) and
joins each connection to the proxy's unix socket, which the kernel bind-mounts
into the sandbox read-only. HTTP clients (pip, requests, urllib, curl, git)
only take a TCP proxy URL, hence the forwarder; the proxy decides everything.

The listener is bound before the executor exists, so no cell can take the port.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

__all__ = ["listen", "start_forwarder"]

# The proxy caps connections itself; this only bounds the threads pid 1 spends.
MAX_PAIRS = 64


def listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


def _pump(client: socket.socket, upstream: socket.socket) -> None:
    ends = {client: upstream, upstream: client}
    open_reads = {client, upstream}
    try:
        while open_reads:
            readable, _, _ = select.select(list(open_reads), [], [], 300)
            if not readable:
                return  # idle for five minutes
            for src in readable:
                data = src.recv(65536)
                if data:
                    ends[src].sendall(data)
                else:
                    open_reads.discard(src)
                    with contextlib.suppress(OSError):
                        ends[src].shutdown(socket.SHUT_WR)
    except OSError:
        return
    finally:
        client.close()
        upstream.close()


def start_forwarder(listener: socket.socket, proxy_socket: str) -> threading.Thread:
    """Accept on ``listener`` in a thread; each connection goes to ``proxy_socket``."""
    slots = threading.BoundedSemaphore(MAX_PAIRS)

    def pair(client: socket.socket) -> None:
        try:
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(proxy_socket)
            except OSError:
                upstream.close()
                client.close()
                return
            _pump(client, upstream)
        finally:
            slots.release()

    def accept_loop() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if not slots.acquire(blocking=False):
                client.close()
                continue
            threading.Thread(target=pair, args=(client,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, name="proxy-forwarder", daemon=True)
    thread.start()
    return thread
