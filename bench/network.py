"""Network by allow-list: what the egress proxy costs.

Two measurements (see bench/README.md, "Egress proxy"):

1. ``%pip install`` of a ~10 MB wheel (babel, pure Python, one file) through the
   proxy in a sandbox with ``Isolation.allowed_hosts = ["pypi"]``, side by side with
   the same ``pip install`` on the host, interleaved, each with ``--no-deps
   --ignore-installed --no-cache-dir`` into a fresh prefix so every run downloads.
2. The proxy's CPU time per MB: an ``EgressProxy`` in this process tunnels a
   stream from a loopback server to a client over its unix socket (CONNECT), and
   the proxy thread's own CPU time (from /proc, per thread) is divided by the bytes.

Usage::

    .venv/bin/python bench/network.py            # 3 rounds of each, 256 MiB tunnelled
    .venv/bin/python bench/network.py --rounds 1 --mib 64
    # the landlock level (the supervisor's dialer instead of the forwarder)
    .venv/bin/python bench/network.py --kernel sandbox-python-docker
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox_kernel.network.hosts import AllowList
from sandbox_kernel.network.proxy import EgressProxy, is_forbidden_address

PACKAGE = "babel"
MIB = 1024 * 1024


def host_install(prefix: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--ignore-installed",
            "--no-cache-dir",
            "--index-url=https://pypi.org/simple",
            "--prefix",
            prefix,
            PACKAGE,
        ],
        check=True,
        env={**os.environ, "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": ""},
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


KERNEL = "sandbox-python"


def sandbox_installs(rounds: int, workspace: str) -> tuple[list[float], list[float], int]:
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=KERNEL)
    km.start_kernel(cwd=workspace, extra_arguments=['--Isolation.allowed_hosts=["pypi"]'])
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    sandbox_times: list[float] = []
    host_times: list[float] = []
    kernel = psutil.Process(km.provisioner.process.pid)  # type: ignore[union-attr]
    cpu_before = sum(kernel.cpu_times()[:2])
    try:
        for i in range(rounds):
            # Interleaved, the order alternating, so drift in the network hits both.
            order = ["sandbox", "host"] if i % 2 == 0 else ["host", "sandbox"]
            for which in order:
                if which == "host":
                    with tempfile.TemporaryDirectory() as prefix:
                        host_times.append(host_install(prefix))
                    continue
                code = (
                    "import time, tempfile; t0 = time.perf_counter()\n"
                    "d = tempfile.mkdtemp()\n"
                    f"%pip install --quiet --no-deps --ignore-installed --no-cache-dir "
                    f"--index-url=https://pypi.org/simple --prefix $d {PACKAGE}\n"
                    "print('T', time.perf_counter() - t0)"
                )
                out: list[str] = []

                def hook(msg: dict, out: list[str] = out) -> None:  # type: ignore[type-arg]
                    if msg["msg_type"] == "stream":
                        out.append(msg["content"]["text"])

                kc.execute_interactive(code, output_hook=hook, timeout=300)
                line = [x for x in "".join(out).splitlines() if x.startswith("T ")]
                if not line:
                    raise RuntimeError("".join(out))
                sandbox_times.append(float(line[-1].split()[1]))
        cpu_ms = int((sum(kernel.cpu_times()[:2]) - cpu_before) * 1000)
        t0 = time.perf_counter()
        kc.execute_interactive(
            "import urllib.request\n"
            "try:\n    urllib.request.urlopen('https://example.com/', timeout=30)\n"
            "except OSError as exc:\n    print(exc)",
            timeout=60,
        )
        REFUSALS["refused host (urlopen example.com), s"] = round(time.perf_counter() - t0, 3)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return sandbox_times, host_times, cpu_ms


REFUSALS: dict[str, float] = {}


def offline_pip_error(workspace: str) -> None:
    """How long ``%pip install`` takes to say the network is off (nothing allowed)."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=KERNEL)
    km.start_kernel(cwd=workspace)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        kc.execute_interactive("1", timeout=60)
        for code, label in (
            ("%pip install termcolor", "%pip install, nothing allowed, s"),
            ("!pip install termcolor", "!pip install, nothing allowed, s"),
        ):
            t0 = time.perf_counter()
            kc.execute_interactive(code, timeout=120, output_hook=lambda msg: None)
            REFUSALS[label] = round(time.perf_counter() - t0, 3)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _thread_cpu(native_id: int) -> float:
    with open(f"/proc/self/task/{native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proxy_cpu_per_mib(mib: int) -> tuple[float, float]:
    """(CPU ms per MiB in the proxy thread, MiB/s) for a tunnel of ``mib`` MiB."""
    payload = b"x" * MIB
    server = socket.socket()
    server.bind(("127.0.0.2", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            for _ in range(mib):
                conn.sendall(payload)

    threading.Thread(target=serve, daemon=True).start()

    async def resolve(host: str, p: int) -> list[str]:
        return ["127.0.0.2"]

    proxy = EgressProxy(
        AllowList([f"bench.test:{port}"], pip_hosts=[]),
        audit=lambda record: None,
        max_bytes_per_cell=(mib + 16) * MIB,
        resolver=resolve,
        address_check=lambda a: None if a == "127.0.0.2" else is_forbidden_address(a),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "proxy.sock")
        proxy.start_in_thread(path)
        assert proxy._thread is not None
        assert proxy._thread.native_id is not None
        tid = proxy._thread.native_id
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            client.sendall(
                f"CONNECT bench.test:{port} HTTP/1.1\r\nHost: bench.test:{port}\r\n\r\n".encode()
            )
            head = client.recv(4096)
            assert head.startswith(b"HTTP/1.1 200"), head
            cpu0, t0 = _thread_cpu(tid), time.perf_counter()
            got = len(head.split(b"\r\n\r\n", 1)[1])
            while got < mib * MIB:
                chunk = client.recv(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
            cpu1, t1 = _thread_cpu(tid), time.perf_counter()
        proxy.stop()
    server.close()
    return (cpu1 - cpu0) * 1000 / mib, mib / (t1 - t0)


def dialer_round_trip_ms(n: int = 300) -> tuple[float, float]:
    """(median ms per connection over the landlock level's dialer, the same by direct connect).

    The dialer (launcher/dialer.py) as the supervisor runs it, in a thread here, towards a
    unix listener that accepts and closes; the control connects to that listener itself.
    """
    from sandbox_kernel.launcher import dialer

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "proxy.sock")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(128)

        def accept() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                conn.close()

        threading.Thread(target=accept, daemon=True).start()
        sup, cells = dialer.pair()
        dialer.start_dialer(sup, path)
        via: list[float] = []
        direct: list[float] = []
        for _ in range(n):
            t0 = time.perf_counter()
            cells.send(b"c")
            _, fds, _, _ = socket.recv_fds(cells, 16, 1)
            via.append(time.perf_counter() - t0)
            os.close(fds[0])
            t0 = time.perf_counter()
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
            direct.append(time.perf_counter() - t0)
        cells.close()
        server.close()
    return statistics.median(via) * 1000, statistics.median(direct) * 1000


def main() -> None:
    global KERNEL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument(
        "--kernel",
        default=KERNEL,
        help="kernelspec (sandbox-python-docker: the landlock level on a Docker-like host)",
    )
    args = parser.parse_args()
    KERNEL = args.kernel
    import tests.conftest as conf  # registers this checkout's kernelspec

    conf.pytest_configure(None)  # type: ignore[arg-type]
    via, direct = dialer_round_trip_ms()
    print(f"landlock dialer: {via:.3f} ms per connection (a direct unix connect: {direct:.3f} ms)")
    cpu_per_mib, rate = proxy_cpu_per_mib(args.mib)
    print(f"proxy tunnel: {cpu_per_mib:.2f} ms CPU per MiB in the proxy thread, {rate:.0f} MiB/s")
    with tempfile.TemporaryDirectory() as ws:
        os.chmod(ws, 0o777)
        sandbox, host, kernel_cpu_ms = sandbox_installs(args.rounds, ws)
        offline_pip_error(ws)
    print(
        json.dumps(
            {
                "kernel": KERNEL,
                "package": PACKAGE,
                "sandbox_s": [round(t, 2) for t in sandbox],
                "host_s": [round(t, 2) for t in host],
                "median_sandbox_s": round(statistics.median(sandbox), 2),
                "median_host_s": round(statistics.median(host), 2),
                "ratio": round(statistics.median(sandbox) / statistics.median(host), 2),
                "kernel_cpu_ms_total": kernel_cpu_ms,
                **REFUSALS,
            }
        )
    )


if __name__ == "__main__":
    main()
