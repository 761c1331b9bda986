"""Network namespace: the cell sees only a loopback interface of its own."""

from __future__ import annotations

import fcntl
import socket
import struct
from typing import TYPE_CHECKING, NamedTuple

from ..errors import SetupError

if TYPE_CHECKING:
    from .report import Report
    from .spec import SandboxSpec

__all__ = ["Plan", "apply", "bring_up_loopback", "prepare"]

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


# -- the mechanism: prepare (launcher), apply (pid 1) --------------------------------------


class Plan(NamedTuple):
    own: bool  # a network namespace of our own (unshared with the others, userns.py)
    proxy_allowed: str | None  # what the egress proxy lets through, if there is one
    proxy_port: int


def prepare(spec: SandboxSpec) -> Plan:
    network = spec.network
    allowed = network.allowed if network is not None and network.proxy_socket else None
    port = network.proxy_port if network is not None else 0
    return Plan(not spec.isolation.allow_network, allowed, port)


def apply(plan: Plan, report: Report) -> None:
    if not plan.own:
        report.layer("netns", False, "allow_network is set: the host's network is shared")
        return
    bring_up_loopback()
    detail = "own network namespace with only loopback"
    if plan.proxy_allowed is not None:
        detail += (
            f"; 127.0.0.1:{plan.proxy_port} leads to the kernel's egress proxy "
            f"(allowed: {plan.proxy_allowed})"
        )
    report.layer("netns", True, detail)
