"""The egress proxy, driven over its unix socket the way a hostile cell would.

Upstream servers are loopback listeners of the test; the proxy is told (by its
resolver and address check) that one of them, at 127.0.0.2, is "public", and
every test checks from the listeners' side what reached a server.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_kernel.network.hosts import AllowList
from sandbox_kernel.network.proxy import (
    EgressProxy,
    client_hello_server_name,
    is_forbidden_address,
)

PUBLIC = "127.0.0.2"  # stands in for a public address in these tests


class Listener:
    """A host TCP server that records every byte it receives and answers a fixed reply."""

    def __init__(self, address: str, reply: bytes = b"") -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.received = bytearray()
        self.connections = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    while True:
                        data = conn.recv(65536)
                        if not data:
                            break
                        self.received += data
                        if self.reply and b"\r\n\r\n" in self.received:
                            conn.sendall(self.reply)
                            break

    def close(self) -> None:
        self.sock.close()


class ProxyUnderTest:
    def __init__(self, tmp: Path, allowed: list[str], **kwargs: Any) -> None:
        self.records: list[dict[str, Any]] = []
        names = {"allowed.test": [PUBLIC], "also.allowed.test": [PUBLIC]}
        names.update(kwargs.pop("names", {}))

        async def resolve(host: str, port: int) -> list[str]:
            if host not in names:
                raise OSError("no such name")
            return names[host]

        def check(address: str) -> str | None:
            return None if address == PUBLIC else is_forbidden_address(address)

        self.proxy = EgressProxy(
            AllowList(allowed, pip_hosts=[]),
            audit=self.records.append,
            resolver=resolve,
            address_check=check,
            **kwargs,
        )
        self.path = str(tmp / "proxy.sock")
        self.proxy.start_in_thread(self.path)

    def exchange(self, data: bytes, *, wait_close: bool = True) -> bytes:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(self.path)
            sock.sendall(data)
            out = bytearray()
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    out += chunk
                    if not wait_close and b"\r\n\r\n" in out:
                        break
        return bytes(out)

    def wait_records(self, n: int) -> list[dict[str, Any]]:
        for _ in range(200):
            if len(self.records) >= n:
                break
            threading.Event().wait(0.01)
        return self.records


@pytest.fixture
def upstream() -> Iterator[Listener]:
    server = Listener(PUBLIC, reply=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    yield server
    server.close()


@pytest.fixture
def loopback() -> Iterator[Listener]:
    server = Listener("127.0.0.1")
    yield server
    server.close()


def make(tmp_path: Path, allowed: list[str], **kwargs: Any) -> Iterator[ProxyUnderTest]:
    proxy = ProxyUnderTest(tmp_path, allowed, **kwargs)
    yield proxy
    proxy.proxy.stop()


def test_connect_to_an_allowed_host_tunnels(tmp_path: Path, upstream: Listener) -> None:
    for p in make(tmp_path, [f"allowed.test:{upstream.port}"]):
        target = f"allowed.test:{upstream.port}".encode()
        reply = p.exchange(
            b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n"
            b"GET /secret?token=abc HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert reply.startswith(b"HTTP/1.1 200")
        assert reply.endswith(b"ok")
        assert b"GET /secret?token=abc" in upstream.received
        (record,) = p.wait_records(1)
        assert record["verdict"] == "allowed"
        assert record["host"] == "allowed.test"
        assert record["port"] == upstream.port
        assert record["bytes_up"] > 0
        assert record["bytes_down"] > 0
        assert "secret" not in str(record)
        assert "token" not in str(record)


def test_host_not_on_the_list_is_refused_with_the_setting_named(
    tmp_path: Path, upstream: Listener
) -> None:
    for p in make(tmp_path, ["allowed.test"], names={"example.com": [PUBLIC]}):
        reply = p.exchange(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        assert reply.startswith(
            b"HTTP/1.1 403 network access to example.com is not allowed in this sandbox "
            b"(allowed: allowed.test); an administrator can add it to Isolation.allowed_hosts"
        )
        assert upstream.connections == 0
        (record,) = p.wait_records(1)
        assert record["verdict"] == "refused"
        assert record["host"] == "example.com"


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.5", "169.254.169.254"])
def test_allowed_name_resolving_to_a_private_address_is_refused(
    tmp_path: Path, loopback: Listener, address: str
) -> None:
    names = {"rebind.test": [address]}
    for p in make(tmp_path, [f"rebind.test:{loopback.port}"], names=names):
        reply = p.exchange(
            f"CONNECT rebind.test:{loopback.port} HTTP/1.1\r\nHost: rebind.test:{loopback.port}\r\n\r\n".encode()
        )
        assert reply.startswith(b"HTTP/1.1 403 network access to rebind.test is refused")
        assert address.encode() in reply
    assert loopback.connections == 0
    assert not loopback.received


def test_name_with_one_private_address_among_public_ones_is_refused(
    tmp_path: Path, upstream: Listener
) -> None:
    for p in make(
        tmp_path, [f"mixed.test:{upstream.port}"], names={"mixed.test": [PUBLIC, "127.0.0.1"]}
    ):
        reply = p.exchange(
            f"CONNECT mixed.test:{upstream.port} HTTP/1.1\r\nHost: mixed.test:{upstream.port}\r\n\r\n".encode()
        )
        assert reply.startswith(b"HTTP/1.1 403")
    assert upstream.connections == 0


@pytest.mark.parametrize("target", [b"127.0.0.1", b"[::1]", b"2130706433", b"0x7f.1"])
def test_connect_to_an_ip_literal_is_refused(
    tmp_path: Path, loopback: Listener, target: bytes
) -> None:
    for p in make(tmp_path, ["allowed.test", "*.allowed.test"]):
        port = str(loopback.port).encode()
        authority = target + b":" + port
        reply = p.exchange(
            b"CONNECT " + authority + b" HTTP/1.1\r\nHost: " + authority + b"\r\n\r\n"
        )
        assert reply.startswith((b"HTTP/1.1 403", b"HTTP/1.1 400"))
    assert loopback.connections == 0


def test_allowed_ip_literal_that_is_private_is_still_refused(
    tmp_path: Path, loopback: Listener
) -> None:
    for p in make(tmp_path, [f"127.0.0.1:{loopback.port}"]):
        reply = p.exchange(
            f"CONNECT 127.0.0.1:{loopback.port} HTTP/1.1\r\nHost: 127.0.0.1:{loopback.port}\r\n\r\n".encode()
        )
        assert reply.startswith(b"HTTP/1.1 403")
        assert b"loopback" in reply
    assert loopback.connections == 0


def test_absolute_uri_get_to_a_disallowed_host_is_refused(
    tmp_path: Path, upstream: Listener
) -> None:
    names = {"evil.test": [PUBLIC]}
    for p in make(tmp_path, [f"allowed.test:{upstream.port}"], names=names):
        reply = p.exchange(
            f"GET http://evil.test:{upstream.port}/x HTTP/1.1\r\n"
            f"Host: allowed.test:{upstream.port}\r\n\r\n".encode()
        )
        assert reply.startswith(b"HTTP/1.1 4")
        reply = p.exchange(
            f"GET http://evil.test:{upstream.port}/x HTTP/1.1\r\n"
            f"Host: evil.test:{upstream.port}\r\n\r\n".encode()
        )
        assert reply.startswith(b"HTTP/1.1 403 network access to evil.test")
    assert upstream.connections == 0


def test_absolute_uri_get_to_an_allowed_host_is_forwarded_in_origin_form(
    tmp_path: Path, upstream: Listener
) -> None:
    for p in make(tmp_path, [f"allowed.test:{upstream.port}"]):
        reply = p.exchange(
            f"GET http://allowed.test:{upstream.port}/simple/x/?q=1 HTTP/1.1\r\n"
            f"Host: allowed.test:{upstream.port}\r\nProxy-Authorization: Basic Zm9v\r\n"
            "Connection: keep-alive\r\n\r\n".encode()
        )
        assert reply.endswith(b"ok")
        head = bytes(upstream.received)
        assert head.startswith(b"GET /simple/x/?q=1 HTTP/1.1\r\n")
        assert b"proxy-authorization" not in head.lower()
        assert b"connection: close" in head.lower()
        (record,) = p.wait_records(1)
        assert record["verdict"] == "allowed"
        assert "simple" not in str(record)


def test_host_header_that_differs_from_the_connect_target_is_refused(
    tmp_path: Path, upstream: Listener
) -> None:
    for p in make(
        tmp_path, [f"allowed.test:{upstream.port}", f"also.allowed.test:{upstream.port}"]
    ):
        reply = p.exchange(
            f"CONNECT allowed.test:{upstream.port} HTTP/1.1\r\n"
            f"Host: also.allowed.test:{upstream.port}\r\n\r\n".encode()
        )
        assert reply.startswith(b"HTTP/1.1 400")
        assert b"Host header" in reply
    assert upstream.connections == 0


def test_request_smuggled_after_an_allowed_one_never_leaves(
    tmp_path: Path, upstream: Listener, loopback: Listener
) -> None:
    names = {"evil.test": [PUBLIC]}
    for p in make(tmp_path, [f"allowed.test:{upstream.port}"], names=names):
        smuggled = (
            f"GET http://evil.test:{upstream.port}/steal HTTP/1.1\r\n"
            f"Host: evil.test:{upstream.port}\r\n\r\n"
        )
        # Pipelined after a complete request, and hidden in a body whose framing is
        # ambiguous (Content-Length against chunked).
        reply = p.exchange(
            f"POST http://allowed.test:{upstream.port}/a HTTP/1.1\r\n"
            f"Host: allowed.test:{upstream.port}\r\nContent-Length: 3\r\n\r\nabc{smuggled}".encode()
        )
        assert reply.endswith(b"ok")
        assert b"/steal" not in upstream.received
        upstream.received.clear()
        reply = p.exchange(
            f"POST http://allowed.test:{upstream.port}/a HTTP/1.1\r\n"
            f"Host: allowed.test:{upstream.port}\r\nContent-Length: 4\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}".encode()
        )
        assert b"/steal" not in upstream.received
        records = p.wait_records(2)
        assert all(r["host"] == "allowed.test" for r in records)


def test_not_a_proxy_request_is_refused(tmp_path: Path, upstream: Listener) -> None:
    for p in make(tmp_path, [f"allowed.test:{upstream.port}"]):
        assert p.exchange(b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n").startswith(
            b"HTTP/1.1 400"
        )
        assert p.exchange(
            b"GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
        ).startswith(b"HTTP/1.1 400")
        assert p.exchange(b"\x16\x03\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert upstream.connections == 0


def test_bytes_per_cell_are_capped(tmp_path: Path) -> None:
    big = Listener(PUBLIC, reply=b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 300_000)
    try:
        for p in make(tmp_path, [f"allowed.test:{big.port}"], max_bytes_per_cell=100_000):
            request = f"CONNECT allowed.test:{big.port} HTTP/1.1\r\nHost: allowed.test:{big.port}\r\n\r\nGET / HTTP/1.1\r\n\r\n"
            reply = p.exchange(request.encode())
            assert len(reply) < 200_000
            reply = p.exchange(request.encode())
            assert reply.startswith(b"HTTP/1.1 403")
            assert b"network_max_mb_per_cell" in reply
            p.proxy.begin_cell()
            assert p.exchange(request.encode()).startswith(b"HTTP/1.1 200")
    finally:
        big.close()


def test_connections_at_once_are_capped(tmp_path: Path, upstream: Listener) -> None:
    for p in make(tmp_path, [f"allowed.test:{upstream.port}"], max_connections=2):
        held = []
        for _ in range(2):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(p.path)
            sock.sendall(
                f"CONNECT allowed.test:{upstream.port} HTTP/1.1\r\nHost: allowed.test:{upstream.port}\r\n\r\n".encode()
            )
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
            held.append(sock)
        reply = p.exchange(
            f"CONNECT allowed.test:{upstream.port} HTTP/1.1\r\nHost: allowed.test:{upstream.port}\r\n\r\n".encode()
        )
        assert reply.startswith(b"HTTP/1.1 503")
        assert b"network_max_connections" in reply
        for sock in held:
            sock.close()


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("8.8.8.8", False),
        ("2606:4700::1111", False),
        ("127.0.0.1", True),
        ("::1", True),
        ("10.0.0.1", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("fd00:ec2::254", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("100.64.0.1", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("::ffff:127.0.0.1", True),
        ("64:ff9b::a00:1", True),
        ("2002:7f00:1::", True),
        ("::127.0.0.1", True),
        ("100.100.100.200", True),
        ("255.255.255.255", True),
        # Documentation ranges are not private networks; some sites route them.
        ("203.0.113.80", False),
        ("192.0.2.7", False),
    ],
)
def test_forbidden_addresses(address: str, forbidden: bool) -> None:
    assert (is_forbidden_address(address) is not None) is forbidden


def test_stop_ends_open_tunnels(tmp_path: Path, upstream: Listener) -> None:
    p = ProxyUnderTest(tmp_path, [f"allowed.test:{upstream.port}"])
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(p.path)
    sock.sendall(
        f"CONNECT allowed.test:{upstream.port} HTTP/1.1\r\nHost: allowed.test:{upstream.port}\r\n\r\n".encode()
    )
    assert sock.recv(100).startswith(b"HTTP/1.1 200")
    p.proxy.stop()
    sock.settimeout(5)
    with sock:
        assert sock.recv(100) == b""


def _client_hello(server_name: str) -> bytes:
    import ssl

    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_client_hello_server_name_is_read() -> None:
    assert client_hello_server_name(_client_hello("PyPI.org")) == "pypi.org"
    with pytest.raises(ValueError, match="ClientHello"):
        client_hello_server_name(_client_hello("pypi.org")[:40])


def test_tls_for_another_server_through_an_allowed_tunnel_is_refused(
    tmp_path: Path, upstream: Listener
) -> None:
    """A shared front end routes TLS by its server name: it must be the CONNECT host."""
    for p in make(tmp_path, [f"allowed.test:{upstream.port}"]):
        target = f"allowed.test:{upstream.port}".encode()
        head = b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n"
        p.exchange(head + _client_hello("evil.example"))
        (record,) = p.wait_records(1)
        assert record["verdict"] == "refused"
        assert "evil.example" in record["reason"]
        assert upstream.received == b""
        p.exchange(head + _client_hello("allowed.test"))
        records = p.wait_records(2)
        assert records[1]["verdict"] == "allowed"
        assert upstream.received.startswith(b"\x16\x03")


def test_a_client_that_waits_before_its_client_hello_is_still_checked(
    tmp_path: Path, upstream: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staying quiet after CONNECT must not skip the server-name check: the first bytes
    the client sends, however late, are what is checked."""
    from sandbox_kernel.network import proxy as proxy_module

    # Short, so that waiting past it takes no time here (it is 15 s by default).
    monkeypatch.setattr(proxy_module, "CONNECT_TIMEOUT_S", 0.2)
    for p in make(tmp_path, [f"allowed.test:{upstream.port}"]):
        target = f"allowed.test:{upstream.port}".encode()
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(p.path)
            sock.sendall(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            threading.Event().wait(0.6)  # past the timeout above
            sock.sendall(_client_hello("evil.example"))
            with contextlib.suppress(OSError):
                while sock.recv(65536):
                    pass
        (record,) = p.wait_records(1)
        assert record["verdict"] == "refused", record
        assert "evil.example" in record["reason"]
        assert upstream.received == b""


def test_a_server_that_speaks_first_is_heard_before_the_client_sends(tmp_path: Path) -> None:
    """Protocols where the server greets first (SSH, SMTP) are not held back by the
    client-side check; the client's own first bytes are still checked when they come."""
    banner = b"SSH-2.0-stand-in\r\n"
    server = socket.socket()
    server.bind((PUBLIC, 0))
    server.listen(1)
    port = server.getsockname()[1]
    received = bytearray()

    def greet() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(banner)
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                received.extend(conn.recv(100))

    threading.Thread(target=greet, daemon=True).start()
    try:
        for p in make(tmp_path, [f"allowed.test:{port}"]):
            target = f"allowed.test:{port}".encode()
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(5)  # well below the proxy's 15 s first-record wait
                sock.connect(p.path)
                sock.sendall(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")
                data = b""
                while banner not in data:
                    chunk = sock.recv(4096)
                    assert chunk, data
                    data += chunk
                sock.sendall(b"SSH-2.0-client\r\n")
                for _ in range(200):
                    if received:
                        break
                    threading.Event().wait(0.01)
            assert bytes(received) == b"SSH-2.0-client\r\n"
    finally:
        server.close()
