"""The egress proxy: the one way from a sandbox to the network, owned by the trusted kernel.

Why a small asyncio proxy of our own, with h11 for the HTTP parsing: the proxy
must decide per request on the allow-list, resolve names itself and connect to
the address it checked (so a name that resolves to 127.0.0.1 or changes between
check and use gets nowhere), cap bytes per cell, and audit without paths. The
well-kept Python proxies (proxy.py, mitmproxy) are frameworks with plugins,
TLS interception and their own listeners and admin sides; none takes the
"connect to this checked address" hook without patching, and each would be more
code to trust than this. h11 (the parser of httpx and uvicorn) does the
hostile-input part: request heads and bodies from the cell are parsed by it and
re-framed by it towards the server, so no framing trick of the cell's
(Content-Length against chunked, pipelined requests) reaches a server.

What it serves, on one unix socket that only its sandbox can reach:

* ``CONNECT host:port``: a tunnel (HTTPS, and what clients tunnel through it);
* ``GET http://host/...`` and the other methods with an absolute ``http`` URI: one
  request per connection, forwarded with ``Connection: close``; anything the
  client sends after that request is never read.

There is no admin side: the kernel calls its methods (``begin_cell``, ``stop``)
in its own process. It runs on an event loop in a thread of the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import h11

from .hosts import AllowList, canonical_host, is_ip_literal

__all__ = ["EgressProxy", "is_forbidden_address", "refusal_message"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
Audit = Callable[[dict[str, Any]], None]

CHUNK = 65536
HEAD_LIMIT = 16 * 1024
CONNECT_TIMEOUT_S = 15.0
# Hop-by-hop headers (RFC 9110 7.6.1) and the proxy's own: never passed on.
HOP_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"upgrade",
    }
)
# What the proxy never connects to, by name. An explicit list rather than "not
# ipaddress.is_global": that also refuses the documentation and benchmarking ranges,
# which some sites (these test machines among them) route as their real egress.
_REFUSED_V4 = [
    ("0.0.0.0/8", "not a host address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol address"),
    ("192.168.0.0/16", "a private address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
]
_REFUSED_V6 = [
    ("::/127", "not a host address"),  # :: and ::1
    ("fc00::/7", "a unique-local address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
]
REFUSED_NETWORKS = [(ipaddress.ip_network(n), why) for n, why in _REFUSED_V4 + _REFUSED_V6]
# AWS/GCP/Azure metadata (IPv4, in the link-local range anyway), AWS's IPv6 one
# (unique-local anyway) and Alibaba's (shared range anyway): named for the message.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_forbidden_address(address: str) -> str | None:
    """Why the proxy must not connect to ``address``, or None if it may."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address wrapped in IPv6 is judged as the IPv4 address.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is None and int(ip) >> 32 == 0 and int(ip) > 1:
            embedded = ipaddress.IPv4Address(int(ip))  # IPv4-compatible (deprecated) form
        if embedded is not None:
            return is_forbidden_address(str(embedded))
    if ip in METADATA_ADDRESSES:
        return "the cloud metadata address"
    for network, why in REFUSED_NETWORKS:
        if ip.version == network.version and ip in network:
            return why
    if ip == ipaddress.ip_address("255.255.255.255"):
        return "the broadcast address"
    return None


def refusal_message(host: str, allow: AllowList) -> str:
    return (
        f"network access to {host} is not allowed in this sandbox "
        f"(allowed: {allow.describe()}); an administrator can add it to Isolation.allowed_hosts"
    )


class Refused(Exception):
    """A request the proxy does not serve; ``status`` and the reason go back to the client."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def _system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass
class _Connection:
    method: str = ""
    host: str = ""
    port: int = 0
    address: str = ""
    verdict: str = "refused"
    reason: str = ""
    bytes_up: int = 0
    bytes_down: int = 0
    started: float = field(default_factory=time.monotonic)


class EgressProxy:
    """Serves one sandbox; every decision is written to ``audit``."""

    def __init__(
        self,
        allow: AllowList,
        *,
        audit: Audit,
        max_connections: int = 16,
        max_bytes_per_cell: int = 2 * 1024**3,
        resolver: Resolver | None = None,
        address_check: Callable[[str], str | None] = is_forbidden_address,
    ) -> None:
        self.allow = allow
        self.audit = audit
        self.max_connections = max_connections
        self.max_bytes_per_cell = max_bytes_per_cell
        self.resolver = resolver or _system_resolver
        # Tests swap this to reach a stand-in server on loopback; nothing else does.
        self.address_check = address_check
        self.active = 0
        self.cell_bytes = 0
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the kernel's side ---------------------------------------------------------------

    def begin_cell(self) -> None:
        """A new cell starts: its byte budget starts afresh."""
        self.cell_bytes = 0

    async def start_unix(self, path: str) -> None:
        """Listen on ``path`` (mode 0666 in a directory only the sandbox is given)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._server = await asyncio.start_unix_server(self._serve, path=path, limit=HEAD_LIMIT)
        # The sandbox may run as another uid (a root kernel maps cells to an unused
        # range); the directory around the socket is what keeps others out.
        os.chmod(path, 0o666)

    def start_in_thread(self, path: str) -> None:
        """Run on an event loop of its own in a daemon thread; return once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start_unix(path))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="sandbox-egress-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        """End the listener and every open connection (kernel shutdown)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    # -- one client connection -------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn = _Connection()
        try:
            if self.active >= self.max_connections:
                raise Refused(
                    503,
                    f"the sandbox may have {self.max_connections} network connections at once "
                    "(Isolation.network_max_connections)",
                )
            self.active += 1
            try:
                await self._handle(reader, writer, conn)
            finally:
                self.active -= 1
        except Refused as exc:
            conn.verdict, conn.reason = "refused", exc.reason
            await self._refuse(writer, exc)
        except (OSError, asyncio.IncompleteReadError, h11.RemoteProtocolError) as exc:
            if conn.verdict != "allowed":
                conn.reason = conn.reason or f"bad request: {type(exc).__name__}"
        except asyncio.CancelledError:
            conn.reason = conn.reason or "the kernel shut down"
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._record(conn)
            if task is not None:
                self._tasks.discard(task)

    async def _refuse(self, writer: asyncio.StreamWriter, exc: Refused) -> None:
        # The reason phrase carries the message: it is what pip, urllib and requests
        # show for a refused tunnel ("Tunnel connection failed: 403 network access ...").
        reason = exc.reason.replace("\r", " ").replace("\n", " ").encode("ascii", "replace")
        body = exc.reason.encode() + b"\n"
        server = h11.Connection(h11.SERVER)
        with contextlib.suppress(Exception):
            # h11 needs a request before it may answer; the answer is all we send.
            server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            server.next_event()
            data = server.send(
                h11.Response(
                    status_code=exc.status,
                    reason=reason,
                    headers=[
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("Content-Length", str(len(body))),
                        ("Connection", "close"),
                    ],
                )
            )
            data = (data or b"") + (server.send(h11.Data(data=body)) or b"")
            writer.write(data)
            await writer.drain()

    def _record(self, conn: _Connection) -> None:
        # Host, port, bytes, verdict: never a path or a query (they can hold tokens).
        record: dict[str, Any] = {
            "event": "network",
            "method": conn.method,
            "host": conn.host,
            "port": conn.port,
            "address": conn.address,
            "verdict": conn.verdict,
            "bytes_up": conn.bytes_up,
            "bytes_down": conn.bytes_down,
            "seconds": round(time.monotonic() - conn.started, 3),
        }
        if conn.reason:
            record["reason"] = conn.reason
        with contextlib.suppress(Exception):
            self.audit(record)

    async def _read_request(
        self, reader: asyncio.StreamReader, server: h11.Connection
    ) -> h11.Request:
        while True:
            event = server.next_event()
            if isinstance(event, h11.Request):
                return event
            if event is h11.NEED_DATA:
                data = await reader.read(CHUNK)
                if not data:
                    raise asyncio.IncompleteReadError(b"", None)
                server.receive_data(data)
                continue
            raise Refused(400, "bad request")

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Connection
    ) -> None:
        server = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)
        try:
            request = await self._read_request(reader, server)
        except h11.RemoteProtocolError as exc:
            raise Refused(400, f"bad request: {exc}") from None
        conn.method = request.method.decode("ascii", "replace")[:16]
        headers = [(k.lower(), v) for k, v in request.headers]
        host_headers = [v for k, v in headers if k == b"host"]
        if request.method == b"CONNECT":
            host, port = _authority(request.target, default_port=None)
        else:
            host, port = _absolute_http_uri(request.target)
        conn.host, conn.port = host, port
        for value in host_headers:
            try:
                h_host, h_port = _authority(value, default_port=port)
            except Refused:
                h_host, h_port = "", 0
            if (h_host, h_port) != (host, port):
                raise Refused(
                    400,
                    f"the Host header ({value.decode('ascii', 'replace')[:100]}) differs from "
                    f"the request's target ({host}:{port}); refused",
                )
        await self._check_allowed(conn)
        upstream_r, upstream_w = await self._open_upstream(conn)
        try:
            if request.method == b"CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                trailing, _ = server.trailing_data
                # The server's side flows at once (protocols where it greets first);
                # the client's first bytes wait for the check, however late they come.
                down = asyncio.ensure_future(self._copy(upstream_r, writer, conn, up=False))
                try:
                    first = await self._check_tls_name(reader, bytes(trailing), conn)
                    conn.verdict = "allowed"
                    if first:
                        await self._send(upstream_w, first, conn, up=True)
                except BaseException:
                    down.cancel()
                    await asyncio.gather(down, return_exceptions=True)
                    raise
                await self._pipe(reader, writer, upstream_r, upstream_w, conn, down=down)
            else:
                conn.verdict = "allowed"
                await self._forward_one(request, headers, server, reader, upstream_w, conn)
                await self._copy(upstream_r, writer, conn, up=False)
        finally:
            upstream_w.close()
            with contextlib.suppress(Exception):
                await upstream_w.wait_closed()

    async def _check_tls_name(
        self, reader: asyncio.StreamReader, data: bytes, conn: _Connection
    ) -> bytes:
        """Read the tunnel's first TLS record; its server name must be the CONNECT host.

        Shared front ends (CDNs) route a TLS connection by the name in its ClientHello,
        so an allowed host on a shared address would otherwise lead to every other site
        there. A tunnel that does not start with TLS goes on unchecked (it reaches the
        checked address, and plain HTTP through it carries no name the front end trusts
        more than the Host header). Returns the bytes read, to be sent on.

        No time limit: a client that stays quiet and then sends its ClientHello is
        checked all the same (a timeout that let the tunnel go on unchecked was a way
        around the check); the server's side is not held back meanwhile.
        """
        while len(data) < 5 or (data[0] == 0x16 and len(data) < 5 + _record_length(data)):
            more = await reader.read(CHUNK)
            if not more:
                break
            data += more
            if len(data) > 5 + 16384 + CHUNK:
                break
        if not data or data[0] != 0x16:
            return data
        try:
            name = client_hello_server_name(data)
        except ValueError as exc:
            conn.reason = f"unreadable TLS ClientHello in the tunnel to {conn.host}: {exc}"
            raise Refused(400, conn.reason) from None
        if name is not None and name != conn.host:
            conn.reason = (
                f"the tunnel to {conn.host} asked TLS for another server ({name[:100]}); refused"
            )
            raise ConnectionAbortedError(conn.reason)
        return data

    async def _check_allowed(self, conn: _Connection) -> None:
        if not self.allow.allows(conn.host, conn.port):
            where = conn.host if conn.port in (80, 443) else f"{conn.host}:{conn.port}"
            raise Refused(403, refusal_message(where, self.allow))
        if self.cell_bytes >= self.max_bytes_per_cell:
            raise Refused(403, self._budget_message())

    def _budget_message(self) -> str:
        return (
            f"this cell has used its network budget of {self.max_bytes_per_cell // 2**20} MiB "
            "(Isolation.network_max_mb_per_cell)"
        )

    async def _open_upstream(
        self, conn: _Connection
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if is_ip_literal(conn.host):
            addresses = [conn.host]
        else:
            try:
                addresses = await asyncio.wait_for(
                    self.resolver(conn.host, conn.port), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError) as exc:
                raise Refused(502, f"cannot resolve {conn.host}: {exc}") from None
        if not addresses:
            raise Refused(502, f"cannot resolve {conn.host}")
        # Every address the name has is checked, not only the one used: a name with a
        # public and a private address is refused as a whole.
        for address in addresses:
            why = self.address_check(address)
            if why:
                conn.address = address
                raise Refused(
                    403,
                    f"network access to {conn.host} is refused: it resolves to {address}, "
                    f"{why}, which the sandbox never reaches",
                )
        last: Exception | None = None
        for address in addresses:
            try:
                conn.address = address
                return await asyncio.wait_for(
                    asyncio.open_connection(address, conn.port, limit=CHUNK), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError) as exc:
                last = exc
        raise Refused(502, f"cannot connect to {conn.host}:{conn.port}: {last}")

    async def _forward_one(
        self,
        request: h11.Request,
        headers: list[tuple[bytes, bytes]],
        server: h11.Connection,
        reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
        conn: _Connection,
    ) -> None:
        """Re-frame one request towards the server; what follows it is never read."""
        path = _origin_form(request.target)
        out = [(k, v) for k, v in headers if k not in HOP_HEADERS]
        connection_named = {
            t.strip().lower()
            for k, v in headers
            if k == b"connection"
            for t in v.split(b",")
            if t.strip()
        }
        out = [(k, v) for k, v in out if k not in connection_named]
        out.append((b"connection", b"close"))
        client = h11.Connection(h11.CLIENT)
        data = client.send(h11.Request(method=request.method, target=path, headers=out))
        await self._send(upstream, data or b"", conn, up=True)
        while True:
            event = server.next_event()
            if event is h11.NEED_DATA:
                chunk = await reader.read(CHUNK)
                if not chunk:
                    raise asyncio.IncompleteReadError(b"", None)
                server.receive_data(chunk)
                continue
            if isinstance(event, h11.Data):
                await self._send(upstream, client.send(event) or b"", conn, up=True)
            elif isinstance(event, h11.EndOfMessage):
                await self._send(upstream, client.send(event) or b"", conn, up=True)
                return
            else:
                raise Refused(400, "bad request body")

    async def _send(
        self, writer: asyncio.StreamWriter, data: bytes, conn: _Connection, *, up: bool
    ) -> None:
        self._count(len(data), conn, up=up)
        writer.write(data)
        await writer.drain()

    def _count(self, size: int, conn: _Connection, *, up: bool) -> None:
        if up:
            conn.bytes_up += size
        else:
            conn.bytes_down += size
        self.cell_bytes += size
        if self.cell_bytes > self.max_bytes_per_cell:
            conn.reason = self._budget_message()
            raise ConnectionAbortedError(conn.reason)

    async def _copy(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        conn: _Connection,
        *,
        up: bool,
    ) -> None:
        while True:
            data = await src.read(CHUNK)
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    if dst.can_write_eof():
                        dst.write_eof()
                return
            await self._send(dst, data, conn, up=up)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream_r: asyncio.StreamReader,
        upstream_w: asyncio.StreamWriter,
        conn: _Connection,
        *,
        down: asyncio.Future[None] | None = None,
    ) -> None:
        up = asyncio.ensure_future(self._copy(reader, upstream_w, conn, up=True))
        if down is None:
            down = asyncio.ensure_future(self._copy(upstream_r, writer, conn, up=False))
        try:
            done, pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_EXCEPTION)
            if len(done) < 2 and not any(t.exception() for t in done):
                # One side finished cleanly: let the other drain.
                done2, pending = await asyncio.wait(pending)
                done |= done2
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)


def _record_length(data: bytes) -> int:
    return int.from_bytes(data[3:5], "big")


def client_hello_server_name(data: bytes) -> str | None:
    """The server name (SNI) in the TLS ClientHello that ``data`` starts with, canonical.

    None when the hello names none; ValueError when it is not a complete ClientHello in
    its first record (clients send it in one).
    """
    if len(data) < 5 or data[0] != 0x16:
        raise ValueError("not a TLS handshake record")
    record = data[5 : 5 + _record_length(data)]
    if len(record) < _record_length(data) or len(record) < 4 or record[0] != 0x01:
        raise ValueError("not a complete ClientHello")
    body = record[4 : 4 + int.from_bytes(record[1:4], "big")]
    if len(body) < int.from_bytes(record[1:4], "big"):
        raise ValueError("the ClientHello spans records")
    pos = 2 + 32  # version, random
    pos += 1 + body[pos]  # session id
    pos += 2 + int.from_bytes(body[pos : pos + 2], "big")  # cipher suites
    pos += 1 + body[pos]  # compression methods
    if pos >= len(body):
        return None  # no extensions
    end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
    pos += 2
    if end > len(body):
        raise ValueError("truncated extensions")
    while pos + 4 <= end:
        kind = int.from_bytes(body[pos : pos + 2], "big")
        size = int.from_bytes(body[pos + 2 : pos + 4], "big")
        ext = body[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if kind != 0:
            continue
        # server_name_list: a list length, then (type 0 = host_name, length, name)
        if len(ext) < 5 or ext[2] != 0:
            raise ValueError("malformed server_name")
        name = ext[5 : 5 + int.from_bytes(ext[3:5], "big")]
        try:
            return canonical_host(name.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise ValueError("malformed server name") from None
    return None


def _authority(value: bytes, *, default_port: int | None) -> tuple[str, int]:
    """``host:port`` (CONNECT's target, or a Host header) as a canonical host and a port."""
    text = value.decode("ascii", "replace").strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else "x")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, ""
    if not port_text:
        if default_port is None:
            raise Refused(400, f"CONNECT needs host:port, not {text[:100]!r}")
        port = default_port
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise Refused(400, f"bad port in {text[:100]!r}")
    try:
        return canonical_host(host), port
    except ValueError:
        raise Refused(400, f"bad host {host[:100]!r}") from None


def _absolute_http_uri(target: bytes) -> tuple[str, int]:
    lowered = target[:8].lower()
    if lowered.startswith(b"https://"):
        raise Refused(400, "an https:// URL goes through CONNECT, not a plain request")
    if not lowered.startswith(b"http://"):
        raise Refused(
            400, "this is a proxy: the request must name an absolute http:// URL or be CONNECT"
        )
    rest = target[7:]
    end = min(
        (i for i in (rest.find(b"/"), rest.find(b"?"), rest.find(b"#")) if i >= 0), default=-1
    )
    authority = rest if end < 0 else rest[:end]
    if b"@" in authority:
        raise Refused(400, "credentials in the URL's authority are not passed on")
    return _authority(authority, default_port=80)


def _origin_form(target: bytes) -> bytes:
    rest = target[7:]
    cut = [i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0]
    if not cut:
        return b"/"
    path = rest[min(cut) :].split(b"#", 1)[0]
    return path if path.startswith(b"/") else b"/" + path
