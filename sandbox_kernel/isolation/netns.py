"""Network namespace: the cell sees only a loopback interface of its own."""

from __future__ import annotations

import fcntl
import socket
import struct

from ..errors import SetupError

__all__ = ["bring_up_loopback"]

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def bring_up_loopback() -> None:
    """Set ``lo`` up, so servers a cell starts for itself on 127.0.0.1 work.

    This loopback belongs to the sandbox's namespace: nothing listening on the
    host's 127.0.0.1 (the Jupyter server, the kernel's ZMQ ports) is reachable.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            request = struct.pack("16sH14s", b"lo", 0, b"")
            flags = struct.unpack("16sH14s", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))
    except OSError as exc:
        raise SetupError("netns", "cannot bring up the loopback interface", exc.errno) from None
