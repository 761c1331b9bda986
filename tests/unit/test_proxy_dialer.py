"""The way to the proxy at the landlock level: the supervisor's dialer and the shim inside.

The shim runs in fresh interpreters here, as in the sandbox: PYTHONPATH names its
directory and the environment names the dialer's descriptor.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_kernel.launcher import dialer

SITE = Path(dialer.__file__).parents[1] / "child" / "sandbox_site"


class EchoServer:
    """A unix stream server standing in for the proxy: answers each line with 'proxy:' + line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(16)
        self.accepted = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            for line in f:
                f.write(b"proxy:" + line)
                f.flush()


@pytest.fixture
def served() -> Iterator[tuple[EchoServer, socket.socket]]:
    directory = tempfile.mkdtemp()
    server = EchoServer(os.path.join(directory, "proxy.sock"))
    sup, cells = dialer.pair()
    dialer.start_dialer(sup, server.path)
    yield server, cells
    cells.close()
    server.sock.close()


def test_each_request_brings_a_connection_to_the_proxy(
    served: tuple[EchoServer, socket.socket],
) -> None:
    server, cells = served
    for n in range(3):
        cells.send(b"c")
        message, fds, _, _ = socket.recv_fds(cells, 16, 2)
        assert message == b"y"
        assert len(fds) == 1
        with socket.socket(fileno=fds[0]) as conn:
            conn.sendall(b"hello %d\n" % n)
            assert conn.recv(100) == b"proxy:hello %d\n" % n
    assert server.accepted == 3


def test_descriptors_sent_to_the_dialer_are_not_taken(
    served: tuple[EchoServer, socket.socket],
) -> None:
    """A cell passing descriptors along gets its answer; the supervisor never holds them."""
    _, cells = served
    r, w = os.pipe()
    socket.send_fds(cells, [b"c"], [r])
    os.close(r)
    message, fds, _, _ = socket.recv_fds(cells, 16, 2)
    assert message == b"y"
    assert len(fds) == 1
    os.close(fds[0])
    # The only reader of the pipe was the copy in flight, discarded unread: EPIPE.
    with pytest.raises(BrokenPipeError):
        os.write(w, b"x")
    os.close(w)


def test_an_unreachable_proxy_is_answered_with_the_reason() -> None:
    sup, cells = dialer.pair()
    dialer.start_dialer(sup, "/nonexistent/proxy.sock")
    cells.send(b"c")
    message, fds, _, _ = socket.recv_fds(cells, 256, 2)
    assert fds == []
    assert message.startswith(b"n")
    assert b"No such file" in message
    cells.close()


def _python(code: str, cells: socket.socket | None, **env_extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = str(SITE)
    pass_fds: tuple[int, ...] = ()
    if cells is not None:
        os.set_inheritable(cells.fileno(), True)
        env[dialer.FD_ENV] = str(cells.fileno())
        pass_fds = (cells.fileno(),)
    env[dialer.ADDRESS_ENV] = "127.0.0.1:3128"
    env.update(env_extra)
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        pass_fds=pass_fds,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


TALK = (
    "import socket\n"
    "s = {make}\n"
    "s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
    "s.sendall(b'hi\\n'); print(s.recv(100).decode().strip(), s.family.name)\n"
)


def test_python_clients_reach_the_proxy_address_over_the_dialer(
    served: tuple[EchoServer, socket.socket],
) -> None:
    server, cells = served
    out = _python(
        TALK.format(make="socket.create_connection(('127.0.0.1', 3128), timeout=5)")
        + TALK.format(make="socket.create_connection(('localhost', 3128))")
        + "import urllib3.util.connection as c\n"
        + TALK.format(make="c.create_connection(('127.0.0.1', 3128), 5, None, [])")
        + "import pip._vendor.urllib3.util.connection as p\n"
        + TALK.format(make="p.create_connection(('127.0.0.1', 3128))")
        + "print(socket.has_ipv6)\n",
        cells,
    )
    assert out.splitlines() == ["proxy:hi AF_UNIX"] * 4 + ["False"]
    assert server.accepted == 4


def test_other_addresses_are_not_carried(served: tuple[EchoServer, socket.socket]) -> None:
    """Only the proxy address: anything else is an ordinary connection (refused here)."""
    server, cells = served
    out = _python(
        "import socket\n"
        "for addr in [('127.0.0.1', 1), ('127.0.0.2', 3128)]:\n"
        "    try:\n"
        "        socket.create_connection(addr, timeout=2)\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n",
        cells,
    )
    assert out.split() == ["ConnectionRefusedError"] * 2
    assert server.accepted == 0


def test_subprocesses_keep_the_dialer(served: tuple[EchoServer, socket.socket]) -> None:
    """subprocess and ptyprocess close inherited descriptors; the shim keeps the dialer's."""
    server, cells = served
    child = TALK.format(make="socket.create_connection(('127.0.0.1', 3128))")
    out = _python(
        "import subprocess, sys\n"
        f"subprocess.run([sys.executable, '-c', {child!r}])\n"
        "import ptyprocess\n"
        f"p = ptyprocess.PtyProcess.spawn([sys.executable, '-c', {child!r}])\n"
        # A pty gives what is there: read to the end, not one chunk.
        "out = b''\n"
        "try:\n"
        "    while True:\n"
        "        out += p.read(100)\n"
        "except EOFError:\n"
        "    pass\n"
        "print(out.decode().strip()); p.wait()\n",
        cells,
    )
    assert out.splitlines() == ["proxy:hi AF_UNIX"] * 2
    assert server.accepted == 2


def test_without_a_dialer_nothing_changes() -> None:
    out = _python(
        "import socket, subprocess\n"
        "print(socket.create_connection.__module__, socket.has_ipv6 == socket.has_ipv6)\n",
        None,
    )
    assert out.split() == ["socket", "True"]


def test_a_shadowed_sitecustomize_still_runs(
    served: tuple[EchoServer, socket.socket], tmp_path: Path
) -> None:
    (tmp_path / "sitecustomize.py").write_text("import builtins; builtins.SITE_RAN = True\n")
    _, cells = served
    out = _python(
        "import builtins, socket; print(builtins.SITE_RAN, socket.create_connection.__module__)",
        cells,
        PYTHONPATH=f"{SITE}{os.pathsep}{tmp_path}",
    )
    assert out.split() == ["True", "sitecustomize"]


def test_why_af_unix_stays_refused_landlock_does_not_govern_socket_files(tmp_path: Path) -> None:
    """The measurement behind the design (SECURITY.md, "landlock level").

    A process under the launcher's kind of Landlock ruleset, with no rule at all for
    a directory, cannot list it but still connects to a socket file in it: Landlock up
    to ABI 7 has no right for connect(2) on pathname unix sockets (its ABI 6 scope
    covers abstract ones). So seccomp must keep refusing AF_UNIX sockets. If this fails,
    the running kernel governs them now, and the design can be revisited.
    """
    from sandbox_kernel.isolation import landlock, privs

    abi = landlock.abi_version()
    if abi < 1:
        pytest.skip("needs Landlock in the running kernel")
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(hidden / "host.sock"))
    server.listen(1)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        result = b"?"
        try:
            privs.set_no_new_privs()  # as the launcher does: unprivileged Landlock needs it
            landlock.restrict(landlock.LandlockRules(read_paths=["/usr", "/proc"]))
            try:
                os.listdir(hidden)
                listed = b"L"
            except PermissionError:
                listed = b"-"
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(hidden / "host.sock"))
                    result = listed + b"C"
                except OSError:
                    result = listed + b"-"
        finally:
            os.write(w, result)
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    outcome = os.read(r, 8)
    os.close(r)
    server.close()
    assert outcome[:1] == b"-", "control: Landlock did not restrict the directory at all"
    assert outcome == b"-C", outcome


def test_the_launcher_the_shim_and_the_executor_agree_on_the_names() -> None:
    """Three places name the variables (the shim and the executor import nothing of the
    launcher's side): a rename in one would silently turn the landlock path off."""
    import importlib.util
    import inspect

    from sandbox_kernel.child import packages

    spec = importlib.util.spec_from_file_location("shim_names", SITE / "sitecustomize.py")
    assert spec is not None
    assert spec.loader is not None
    shim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shim)
    assert (shim.FD_ENV, shim.ADDRESS_ENV) == (dialer.FD_ENV, dialer.ADDRESS_ENV)
    assert f'"{dialer.FD_ENV}"' in inspect.getsource(packages.install_proxy_shim)


def test_asyncio_connections_to_the_proxy_address_are_carried(
    served: tuple[EchoServer, socket.socket],
) -> None:
    server, cells = served
    out = _python(
        "import asyncio\n"
        "async def main():\n"
        "    r, w = await asyncio.open_connection('127.0.0.1', 3128)\n"
        "    w.write(b'hi\\n'); await w.drain()\n"
        "    print((await r.readline()).decode().strip())\n"
        "    w.close()\n"
        "asyncio.run(main())\n",
        cells,
    )
    assert out.split() == ["proxy:hi"]
    assert server.accepted == 1


def test_clients_meet_the_real_proxy_through_the_dialer(tmp_path: Path) -> None:
    """urllib, requests, httpx (sync and async) with HTTPS_PROXY set, as in a cell: each
    gets the proxy's refusal for a host not on the list, so each reached the proxy."""
    from sandbox_kernel.network.hosts import AllowList
    from sandbox_kernel.network.proxy import EgressProxy

    pytest.importorskip("requests")
    pytest.importorskip("httpx")
    records: list[dict[str, object]] = []
    proxy = EgressProxy(AllowList(["pypi"]), audit=records.append)
    path = str(tmp_path / "proxy.sock")
    proxy.start_in_thread(path)
    sup, cells = dialer.pair()
    dialer.start_dialer(sup, path)
    url = "https://example.com/"
    code = (
        "import asyncio, urllib.request, requests, httpx\n"
        "def show(name, fn):\n"
        "    try:\n"
        "        fn()\n"
        "        print(name, 'REACHED')\n"
        "    except Exception as exc:\n"
        "        print(name, 'refused' if 'not allowed in this sandbox' in repr(exc)\n"
        "              or '403' in repr(exc) else repr(exc))\n"
        f"show('urllib', lambda: urllib.request.urlopen({url!r}, timeout=20))\n"
        f"show('requests', lambda: requests.get({url!r}, timeout=20))\n"
        f"show('httpx', lambda: httpx.get({url!r}, timeout=20))\n"
        "async def get():\n"
        "    async with httpx.AsyncClient(timeout=20) as client:\n"
        f"        await client.get({url!r})\n"
        "show('httpx-async', lambda: asyncio.run(get()))\n"
    )
    proxy_url = "http://127.0.0.1:3128"
    try:
        out = _python(code, cells, HTTPS_PROXY=proxy_url, https_proxy=proxy_url)
    finally:
        cells.close()
        proxy.stop()
    assert out.splitlines() == [
        "urllib refused",
        "requests refused",
        "httpx refused",
        "httpx-async refused",
    ], out
    refused = [r for r in records if r["host"] == "example.com"]
    assert len(refused) == 4, records


def test_a_closed_dialer_does_not_break_subprocesses(
    served: tuple[EchoServer, socket.socket],
) -> None:
    """A cell that closes the dialer's descriptor (or reuses its number for a file) can
    still start programs; the file does not leak to them."""
    _, cells = served
    fd = cells.fileno()
    out = _python(
        "import os, subprocess, sys\n"
        f"os.close({fd})\n"
        "print(subprocess.run([sys.executable, '-c', 'print(1)'], capture_output=True,"
        " text=True).stdout.strip())\n"
        "f = open(os.devnull)\n"
        f"os.dup2(f.fileno(), {fd})  # a file under the dialer's number, inheritable\n"
        f'code = \'import os\\ntry:\\n    os.fstat({fd}); print("leaked")\\n'
        'except OSError:\\n    print("closed")\'\n'
        "print(subprocess.run([sys.executable, '-c', code], capture_output=True,"
        " text=True).stdout.strip())\n",
        cells,
    )
    assert out.split() == ["1", "closed"]
