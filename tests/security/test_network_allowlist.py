"""Network by allow-list, through a real kernel at each level, checked from outside.

The package index of this machine's pip (pypi.org) is reachable from here; the
package installed is one the test environment does not have.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from sandbox_kernel.network.hosts import AllowList
from sandbox_kernel.network.proxy import EgressProxy
from tests.security.conftest import LEVEL_KERNELS, OS_LAYER_ONLY, Host, Sandbox, start_sandbox
from tests.security.test_boundaries import test_no_network as _no_network_cell
from tests.utils import kernel_pid

# Small, pure Python, not a dependency of anything in the test environment.
PACKAGE = "termcolor"


def _audit_records(path: Path, kind: str = "network") -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("kind") == kind]


class SilentListener:
    """A host TCP listener on loopback that records whether anything ever reached it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.contacts = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.contacts += 1
            with conn:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    self.received += conn.recv(65536)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[SilentListener]:
    server = SilentListener()
    # Positive control: the listener does record a contact from the host.
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"control")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not server.received:
        time.sleep(0.05)
    assert server.received == b"control", "the listener records nothing: the check is vacuous"
    server.contacts, server.received = 0, b""
    yield server
    server.close()


def _start(
    level: str,
    tmp_path_factory: pytest.TempPathFactory,
    host: Host,
    allowed: list[str],
    extra: list[str] = (),  # type: ignore[assignment]
) -> tuple[Sandbox, Path]:
    workspace = tmp_path_factory.mktemp(f"net-{level}")
    workspace.chmod(0o777)
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    args = [
        *OS_LAYER_ONLY,
        f"--Isolation.allowed_hosts={json.dumps(allowed)}",
        f"--Policy.audit_log={audit}",
        *extra,
    ]
    # As for a user who activated the README's .venv: `!pip` is that environment's pip
    # (without it, on a fresh machine with Debian's python3, there is no pip on PATH).
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return start_sandbox(level, workspace, host, extra=args, env={"PATH": path}), audit


@pytest.fixture(scope="module", params=sorted(LEVEL_KERNELS))
def allowed_box(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    host: Host,
    listener: SilentListener,
) -> Iterator[tuple[Sandbox, Path]]:
    box, audit = _start(
        request.param, tmp_path_factory, host, ["pypi", f"localhost:{listener.port}"]
    )
    try:
        yield box, audit
    finally:
        box.close()


def _needs_namespaces(box: Sandbox) -> None:
    if box.level != "namespaces":
        pytest.skip(
            "needs the namespaces level: at the landlock level only Python's clients reach "
            "the proxy (test_curl_at_the_landlock_level_is_refused_and_says_why)"
        )


def test_pip_install_from_the_allowed_index_imports_at_once(
    allowed_box: tuple[Sandbox, Path],
) -> None:
    box, audit = allowed_box
    result = box.run(f"%pip install --no-cache-dir {PACKAGE}", timeout=180)
    assert "Successfully installed" in result.text(), result.text()
    result = box.run(f"import {PACKAGE}; print({PACKAGE}.__file__)")
    assert result.status == "ok", result.text()
    location = result.stdout.strip()
    # In the sandbox's package directory, never in the kernel's environment.
    assert "/packages/" in location, location
    assert not Path(location).is_relative_to(Path(__import__("sys").prefix))
    report = box.run("%sandbox").stdout
    assert f"installed with %pip: {PACKAGE} " in report, report
    assert "files.pythonhosted.org, localhost:" in report, report
    assert "(through the kernel's egress proxy" in report, report
    records = _audit_records(audit)
    assert any(r["host"] == "pypi.org" and r["verdict"] == "allowed" for r in records)
    assert all("/simple" not in json.dumps(r) and PACKAGE not in json.dumps(r) for r in records)


def test_bang_pip_install_goes_to_the_package_dir(allowed_box: tuple[Sandbox, Path]) -> None:
    box, _ = allowed_box
    result = box.run("!pip install --no-cache-dir tabulate", timeout=180)
    assert "Successfully installed tabulate" in result.text(), result.text()
    result = box.run("import tabulate; print(tabulate.__file__)")
    assert "/packages/" in result.stdout, result.text()


def test_curl_and_git_use_the_proxy(allowed_box: tuple[Sandbox, Path]) -> None:
    """Programs other than Python's honour the proxy variables too."""
    import shutil

    box, _ = allowed_box
    _needs_namespaces(box)
    if not shutil.which("curl") or not shutil.which("git"):
        pytest.skip("needs curl and git on the host")
    result = box.run(
        "!curl -sS -o /dev/null -w 'code=%{http_code}\\n' https://pypi.org/simple/ 2>&1\n"
        "!curl -sS -o /dev/null https://example.com/ 2>&1\n"
        "!git ls-remote https://example.com/repo.git 2>&1 | head -3",
        timeout=120,
    )
    text = result.text()
    assert "code=200" in text, text
    assert text.count("403") >= 2, text  # curl and git both report the proxy's refusal


def _needs_landlock(box: Sandbox) -> None:
    if box.level == "namespaces":
        pytest.skip(
            "landlock only: tests the supervisor's dialer, which the namespaces level does "
            "not use (its way to the proxy is the loopback forwarder, tested above)"
        )


def test_curl_at_the_landlock_level_is_refused_and_says_why(
    allowed_box: tuple[Sandbox, Path],
) -> None:
    """Without a network namespace only Python's clients reach the proxy: curl opens a TCP
    socket to the proxy address, which seccomp refuses, and the report says so."""
    import shutil

    box, audit = allowed_box
    _needs_landlock(box)
    if not shutil.which("curl"):
        pytest.skip("needs curl on the host")
    before = len(_audit_records(audit))
    result = box.run("!curl -sS -o /dev/null -w 'code=%{http_code}\\n' https://pypi.org/simple/")
    text = result.text()
    assert "code=200" not in text, text
    assert "blocked socket(AF_INET" in text, text
    assert "reached only by Python's HTTP clients" in text, text
    assert "not by curl, git or other programs" in text, text
    assert len(_audit_records(audit)) == before  # the proxy saw nothing


def test_a_cell_that_bypasses_the_shim_gets_only_its_own_proxy(
    allowed_box: tuple[Sandbox, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The shim is convenience: undone, the cell still has no socket of its own, and the
    dialer's descriptor, used by hand, leads to this kernel's proxy and nowhere else."""
    box, audit = allowed_box
    _needs_landlock(box)
    other_dir = tmp_path_factory.mktemp("other-kernel-proxy")
    other_dir.chmod(0o711)
    other_path = str(other_dir / "proxy.sock")
    contacts: list[dict[str, Any]] = []
    # Another kernel's proxy that would let example.com through.
    other = EgressProxy(AllowList(["example.com"]), audit=contacts.append)
    other.start_in_thread(other_path)
    try:
        code = (
            "import os, socket\n"
            "for family in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):\n"
            "    try:\n"
            "        socket.socket(family, socket.SOCK_STREAM).close()\n"
            "        print('opened', family.name)\n"
            "    except OSError as exc:\n"
            "        print('refused', family.name, exc.errno)\n"
            "fd = int(os.environ['SANDBOX_PROXY_FD'])\n"
            "dialer = socket.socket(fileno=os.dup(fd))\n"
            "dialer.settimeout(30)\n"
            # A request carrying a path to another socket: the dialer reads none of it.
            f"dialer.send({other_path.encode()!r})\n"
            "msg, fds, _, _ = socket.recv_fds(dialer, 256, 4)\n"
            "print('answer', msg[:1], len(fds))\n"
            "s = socket.socket(fileno=fds[0])\n"
            "s.settimeout(30)\n"
            "s.sendall(b'CONNECT example.com:443 HTTP/1.1\\r\\nHost: example.com:443\\r\\n\\r\\n')\n"
            "print(s.recv(65536).split(b'\\r\\n')[0].decode())\n"
        )
        lines = box.run(code).stdout.strip().splitlines()
        assert lines[:3] == [
            "refused AF_INET 1",
            "refused AF_INET6 1",
            "refused AF_UNIX 1",
        ], lines
        assert lines[3] == "answer b'y' 1", lines
        assert lines[4].startswith("HTTP/1.1 403 network access to example.com"), lines
        time.sleep(0.5)
        assert not contacts, contacts  # the other kernel's proxy never saw a connection
        assert [r for r in _audit_records(audit) if r["host"] == "example.com"]
    finally:
        other.stop()


def test_subprocesses_reach_the_proxy_and_isolated_pythons_reach_nothing(
    allowed_box: tuple[Sandbox, Path],
) -> None:
    """A cell's own subprocess inherits the way to the proxy; ``python -I`` (no shim) is
    refused its socket outright, which shows the shim is not what holds the line."""
    box, _ = allowed_box
    _needs_landlock(box)
    probe = (
        "import urllib.request\n"
        "try:\n"
        "    urllib.request.urlopen('https://example.com/', timeout=30)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = box.run(
        "import subprocess, sys\n"
        f"subprocess.run([sys.executable, '-c', {probe!r}])\n"
        f"subprocess.run([sys.executable, '-I', '-c', {probe!r}])\n"
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.text()
    assert "network access to example.com is not allowed in this sandbox" in lines[0], lines
    assert "not allowed" not in lines[1], lines
    assert "Operation not permitted" in lines[1] or "PermissionError" in lines[1], lines


def test_package_survives_a_rollback(allowed_box: tuple[Sandbox, Path]) -> None:
    box, _ = allowed_box
    crash = box.run("import os; os.abort()")
    assert crash.status == "error"
    result = box.run(f"import {PACKAGE}; print('ok')")
    assert result.stdout.strip() == "ok", result.text()


def test_network_boundary_still_holds_with_hosts_allowed(
    allowed_box: tuple[Sandbox, Path], host: Host
) -> None:
    """The red-team network cell (host TCP/UDP/unix listeners, the kernel's ZMQ port, the
    internet) with allowed_hosts set: only the proxy is new, nothing else opens."""
    box, _ = allowed_box
    _no_network_cell(box, host)


def test_host_not_on_the_list_is_refused_at_once(allowed_box: tuple[Sandbox, Path]) -> None:
    box, audit = allowed_box
    result = box.run(
        "import urllib.request, time\n"
        "t = time.monotonic()\n"
        "try:\n"
        "    urllib.request.urlopen('https://example.com/secret?token=abc', timeout=30)\n"
        "except OSError as exc:\n"
        "    print(exc)\n"
        "print(round(time.monotonic() - t, 3))"
    )
    text = result.stdout
    assert (
        "network access to example.com is not allowed in this sandbox (allowed: pypi.org, "
        "files.pythonhosted.org, localhost:"
    ) in text, text
    assert "an administrator can add it to Isolation.allowed_hosts" in text
    records = _audit_records(audit)
    refused = [r for r in records if r["host"] == "example.com"]
    assert refused
    assert refused[-1]["verdict"] == "refused"
    assert "secret" not in json.dumps(records)
    assert "token=abc" not in json.dumps(records)


def test_allowed_name_resolving_to_loopback_never_reaches_the_host(
    allowed_box: tuple[Sandbox, Path], listener: SilentListener
) -> None:
    box, _ = allowed_box
    result = box.run(
        "import os, urllib.request\n"
        "# Through the proxy, not straight to the sandbox's own loopback.\n"
        "os.environ.pop('NO_PROXY'); os.environ.pop('no_proxy')\n"
        "for url in ['http://localhost:{p}/x', 'https://localhost:{p}/x']:\n"
        "    try:\n"
        "        urllib.request.urlopen(url.format(p={port}), timeout=10)\n"
        "    except OSError as exc:\n"
        "        print(exc)\n".replace("{port}", str(listener.port))
    )
    assert result.stdout.count("loopback address") == 2, result.text()
    time.sleep(0.5)
    assert listener.contacts == 0
    assert listener.received == b""


def test_cell_reaches_no_other_socket_than_the_proxy(
    allowed_box: tuple[Sandbox, Path],
    listener: SilentListener,
    host: Host,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The host's loopback and unix sockets, the outside, another kernel's proxy: unreachable."""
    box, _ = allowed_box
    # Another kernel's proxy, as a kernel runs it: a world-traversable directory.
    other_dir = tmp_path_factory.mktemp("other-kernel-proxy")
    other_dir.chmod(0o711)
    other_path = str(other_dir / "proxy.sock")
    contacts: list[dict[str, Any]] = []
    other = EgressProxy(AllowList(["pypi"]), audit=contacts.append)
    other.start_in_thread(other_path)
    try:
        code = (
            "import socket\n"
            f"targets = [('127.0.0.1', {host.tcp_port}), ('127.0.0.1', {listener.port}), ('93.184.215.14', 443),\n"
            f"           ('1.1.1.1', 53), {other_path!r}, {host.unix_path!r}, '\\0' + {host.abstract_name!r}]\n"
            "for addr in targets:\n"
            "    family = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET\n"
            "    try:\n"
            "        with socket.socket(family) as s:\n"
            "            s.settimeout(3); s.connect(addr); s.sendall(b'x')\n"
            "        print('reached', addr)\n"
            "    except OSError as exc:\n"
            "        print('no', addr)\n"
        )
        result = box.run(code)
        assert result.stdout.count("no ") == 7, result.text()
        time.sleep(0.5)
        assert not contacts
        assert listener.contacts == 0
        for name in ("tcp", "unix", "abstract"):
            assert not host.listeners[name].hits, name
    finally:
        other.stop()


def test_proxy_tricks_from_inside_are_refused(
    allowed_box: tuple[Sandbox, Path], listener: SilentListener
) -> None:
    box, _ = allowed_box
    code = (
        "import socket\n"
        "def ask(data):\n"
        "    s = socket.create_connection(('127.0.0.1', 3128), timeout=10)\n"
        "    s.sendall(data)\n"
        "    out = b''\n"
        "    while True:\n"
        "        chunk = s.recv(65536)\n"
        "        if not chunk: break\n"
        "        out += chunk\n"
        "    return out.split(b'\\r\\n')[0].decode()\n"
        "P = {port}\n"
        "print(ask(b'CONNECT 127.0.0.1:%d HTTP/1.1\\r\\nHost: 127.0.0.1:%d\\r\\n\\r\\n' % (P, P)))\n"
        "print(ask(b'GET http://example.com/ HTTP/1.1\\r\\nHost: example.com\\r\\n\\r\\n'))\n"
        "print(ask(b'CONNECT pypi.org:443 HTTP/1.1\\r\\nHost: example.com:443\\r\\n\\r\\n'))\n"
        "print(ask(b'GET /admin HTTP/1.1\\r\\nHost: 127.0.0.1:3128\\r\\n\\r\\n'))\n"
        "print(ask(b'GET http://localhost:%d/a HTTP/1.1\\r\\nHost: localhost:%d\\r\\n\\r\\n'"
        " % (P, P)))\n"
    ).replace("{port}", str(listener.port))
    lines = box.run(code).stdout.strip().splitlines()
    assert len(lines) == 5, lines
    assert lines[0].startswith("HTTP/1.1 403"), lines[0]  # an IP literal
    assert lines[1].startswith("HTTP/1.1 403 network access to example.com"), lines[1]
    assert lines[2].startswith("HTTP/1.1 400"), lines[2]
    assert "Host header" in lines[2], lines[2]
    assert lines[3].startswith("HTTP/1.1 400"), lines[3]  # no admin side, no origin requests
    assert lines[4].startswith("HTTP/1.1 403"), lines[4]
    assert "loopback" in lines[4], lines[4]
    time.sleep(0.5)
    assert listener.contacts == 0


@pytest.fixture(scope="module", params=sorted(LEVEL_KERNELS))
def offline_box(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, host: Host
) -> Iterator[tuple[Sandbox, Path]]:
    box, audit = _start(request.param, tmp_path_factory, host, [])
    try:
        yield box, audit
    finally:
        box.close()


def test_pip_install_with_nothing_allowed_says_the_network_is_off(
    offline_box: tuple[Sandbox, Path],
) -> None:
    box, _ = offline_box
    result = box.run(f"%pip install {PACKAGE}")
    assert result.status == "error"
    error = result.error
    assert error is not None
    message = f"{error['ename']}: {error['evalue']}"
    assert "the network is off in this sandbox (Isolation.allowed_hosts is empty)" in message
    assert "\n" not in error["evalue"]
    assert box.run(f"import {PACKAGE}").status == "error"
    assert "Network:" in box.run("%sandbox").stdout


def test_bang_pip_with_nothing_allowed_does_not_retry(offline_box: tuple[Sandbox, Path]) -> None:
    box, _ = offline_box
    result = box.run(f"!pip install {PACKAGE}", timeout=60)
    assert "Retrying" not in result.text(), result.text()


def _tiny_wheel(directory: Path, name: str = "sandboxtinypkg") -> Path:
    """A one-module wheel, so that this test needs no network at all."""
    import base64
    import hashlib
    import zipfile

    files = {
        f"{name}.py": b"VALUE = 42\n",
        f"{name}-1.0.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode()
        ),
        f"{name}-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    record += f"{name}-1.0.dist-info/RECORD,,\n"
    files[f"{name}-1.0.dist-info/RECORD"] = record.encode()
    wheel = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    wheel.chmod(0o644)
    return wheel


@pytest.mark.parametrize("level", sorted(LEVEL_KERNELS))
def test_package_dir_survives_a_restart_and_stays_off_the_kernels_path(
    level: str, tmp_path_factory: pytest.TempPathFactory, host: Host
) -> None:
    packages = tmp_path_factory.mktemp("packages")
    packages.chmod(0o777)
    box, _ = _start(
        level,
        tmp_path_factory,
        host,
        [],
        extra=[f"--Isolation.package_dir={packages}"],
    )
    try:
        wheel = _tiny_wheel(box.workspace)
        result = box.run(f"%pip install --no-index ./{wheel.name}", timeout=120)
        assert "Successfully installed sandboxtinypkg-1.0" in result.text(), result.text()
        assert box.run("import sandboxtinypkg; print(sandboxtinypkg.VALUE)").stdout == "42\n"
        assert any(packages.rglob("sandboxtinypkg.py")), "not in Isolation.package_dir"
        box.km.restart_kernel(now=False)
        box.kc.wait_for_ready(timeout=60)
        result = box.run("import sandboxtinypkg; print(sandboxtinypkg.__file__)")
        assert result.stdout.startswith(str(packages)), result.text()
        assert "installed with %pip: sandboxtinypkg 1.0" in box.run("%sandbox").stdout
        # The trusted kernel has nothing from there open or mapped, and it is not on its
        # path (it runs python -I; PYTHONPATH is set for cells only).
        kernel = psutil.Process(kernel_pid(box.km))
        assert "-I" in kernel.cmdline()
        try:
            mapped = [m.path for m in kernel.memory_maps(grouped=True)]
            opened = [f.path for f in kernel.open_files()]
            environ = kernel.environ()
        except psutil.AccessDenied:
            # An unprivileged kernel is not dumpable: its maps, files and environment
            # are closed even to its own uid. CI's root run checks them.
            return
        assert not [p for p in mapped + opened if p.startswith(str(packages))]
        assert "PYTHONPATH" not in environ
    finally:
        box.close()
