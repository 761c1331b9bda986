"""A hostile host set-up for the attack cells: canaries, listeners, secrets, a marker process.

Every boundary test runs a cell that tries to cross it and then checks from
OUTSIDE the kernel (here, in the test process) that nothing got through.
Each level the machine can offer is tested: ``namespaces`` directly, and
``landlock`` by starting the same kernel under a Docker-like seccomp profile
(tests/security/restricted_host.py).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.utils import TIMEOUT, execute, kernel_info, kernel_pid, process_tree

# On a real host (a container, tests/containers/), the boundary suite runs on the
# plain kernel only, which must reach exactly this level (a lower one is a failure).
HOST_LEVEL = os.environ.get("SANDBOX_TEST_HOST_LEVEL", "")
LEVEL_KERNELS = (
    {HOST_LEVEL: "sandbox-python"}
    if HOST_LEVEL
    else {"namespaces": "sandbox-python", "landlock": "sandbox-python-docker"}
)
# The boundary tests prove the OS sandbox on its own: the policy layer stands aside
# (nothing denied, no audit hooks) so that it cannot hide a hole in the layer below.
OS_LAYER_ONLY = ["--Policy.preset=permissive", "--Policy.runtime_hooks=False"]
# Further hosts the boundary tests also run on: name -> (kernelspec, the level it must reach).
HOST_KERNELS = {
    "k8s-restricted": ("sandbox-python-k8s", "landlock"),
    # User namespaces allowed, but /proc masked: namespaces without a procfs.
    "k8s-unconfined": ("sandbox-python-k8s-unconfined", "namespaces"),
}
# The same levels, each on a kernel started from a pre-warmed spare (issue 14): the
# boundary suite runs against it as against a fresh one.
WARM_KERNELS = {f"{level}-warm": level for level in LEVEL_KERNELS}
SECRET_ENV = {
    "JUPYTERHUB_API_TOKEN": "hub-token-" + uuid.uuid4().hex,
    "AWS_SECRET_ACCESS_KEY": "aws-secret-" + uuid.uuid4().hex,
    "MY_SERVICE_TOKEN": "service-token-" + uuid.uuid4().hex,
}


class Listener:
    """Records every connection or datagram that reaches it."""

    def __init__(self, sock: socket.socket, stream: bool) -> None:
        self.sock = sock
        self.hits: list[bytes] = []
        self.stream = stream
        sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.stream:
                    conn, _ = self.sock.accept()
                    conn.settimeout(0.5)
                    try:
                        self.hits.append(conn.recv(1024) or b"<connected>")
                    except OSError:
                        self.hits.append(b"<connected>")
                    conn.close()
                else:
                    self.hits.append(self.sock.recv(1024))
            except (TimeoutError, OSError):
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@dataclass
class Host:
    """What a hostile cell would like to reach, and how to check it afterwards."""

    root: Path
    canary_read: Path
    canary_write: Path
    venv_canary: Path
    fake_home: Path
    secret_text: str
    tcp_port: int = 0
    udp_port: int = 0
    abstract_name: str = ""
    unix_path: str = ""
    listeners: dict[str, Listener] = field(default_factory=dict)
    marker: subprocess.Popen[bytes] | None = None

    def digest(self, path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    root = tmp_path_factory.mktemp("host")
    root.chmod(0o755)
    secret = "host-secret-" + uuid.uuid4().hex
    canary_read = root / "secret.txt"
    canary_read.write_text(secret)
    canary_read.chmod(0o644)
    canary_write = root / "world-writable.txt"
    canary_write.write_text("original")
    # World-writable on purpose: only the sandbox may stop the write, not DAC.
    canary_write.chmod(0o666)
    import site

    venv_canary, own_venv_canary = world_writable_canary(
        Path(site.getsitepackages()[0]), "SANDBOX_TEST_VENV_CANARY"
    )
    fake_home = root / "home"
    for sub in (".ssh", ".jupyter", ".ipython/profile_default/startup"):
        (fake_home / sub).mkdir(parents=True)
    (fake_home / ".ssh" / "id_rsa").write_text(secret)
    h = Host(root, canary_read, canary_write, venv_canary, fake_home, secret)

    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    h.tcp_port = tcp.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    h.udp_port = udp.getsockname()[1]
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    h.abstract_name = "sandbox-test-" + uuid.uuid4().hex
    abstract.bind("\0" + h.abstract_name)
    abstract.listen()
    pathname = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Like an ssh-agent socket: a pathname socket outside the workspace.
    h.unix_path = str(root / "agent.sock")
    pathname.bind(h.unix_path)
    os.chmod(h.unix_path, 0o777)
    pathname.listen()
    h.listeners = {
        "tcp": Listener(tcp, True),
        "udp": Listener(udp, False),
        "abstract": Listener(abstract, True),
        "unix": Listener(pathname, True),
    }
    _prove_listeners_work(h)
    h.marker = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(3600)", "host-marker"]
    )
    try:
        yield h
    finally:
        for listener in h.listeners.values():
            listener.close()
        h.marker.kill()
        h.marker.wait()
        if own_venv_canary:
            venv_canary.unlink(missing_ok=True)


def world_writable_canary(directory: Path, variable: str) -> tuple[Path, bool]:
    """A world-writable file in ``directory`` (code the kernel runs): only the sandbox,
    not file permissions, may stop a cell writing to it. Returns the file and whether
    this run created it (and removes it afterwards).

    An unprivileged run cannot create files in root's virtualenv: the owner creates
    one beforehand and names it in ``variable`` (.ci/run does).
    """
    if os.access(directory, os.W_OK):
        canary = directory / f"zz_sandbox_canary_{uuid.uuid4().hex}.txt"
        canary.write_text("original")
        canary.chmod(0o666)
        return canary, True
    given = os.environ.get(variable)
    if given and Path(given).parent == directory and os.access(given, os.W_OK):
        canary = Path(given)
        canary.write_text("original")
        return canary, False
    pytest.fail(
        f"{directory} is not writable by this user: set {variable} to a world-writable "
        "file in it, created by its owner"
    )


def _prove_listeners_work(h: Host) -> None:
    """Positive control: each listener records a contact from the host, then starts clean."""
    with socket.create_connection(("127.0.0.1", h.tcp_port)) as s:
        s.sendall(b"control")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"control", ("127.0.0.1", h.udp_port))
    for address in ("\0" + h.abstract_name, h.unix_path):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(address)
            s.sendall(b"control")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(
        listener.hits for listener in h.listeners.values()
    ):
        time.sleep(0.05)
    for name, listener in h.listeners.items():
        assert listener.hits, (
            f"the {name} listener does not record contacts: the check would be vacuous"
        )
        listener.hits.clear()


@dataclass
class Sandbox:
    level: str
    km: KernelManager
    kc: BlockingKernelClient
    workspace: Path

    def run(self, code: str, timeout: float = TIMEOUT):
        return execute(self.kc, code, timeout=timeout)

    def executor_pids(self) -> list[int]:
        """Every process of the sandbox, seen from the host (not the kernel itself)."""
        return [p.pid for p in process_tree(kernel_pid(self.km))[1:]]

    def close(self) -> None:
        """Stop the client and shut the kernel down the way a frontend does."""
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


def start_sandbox(
    level: str,
    workspace: Path,
    host: Host,
    extra: list[str] | None = None,
    home: Path | None = None,
    kernel_name: str | None = None,
    env: dict[str, str] | None = None,
    warm: bool = False,
) -> Sandbox:
    env = {**os.environ, **SECRET_ENV, "HOME": str(home or host.fake_home), **(env or {})}
    name = kernel_name or LEVEL_KERNELS[level]
    args = OS_LAYER_ONLY if extra is None else extra
    if warm:
        km = start_from_spare(name, workspace, env, args)
    else:
        km = KernelManager(kernel_name=name)
        km.start_kernel(cwd=str(workspace), env=env, extra_arguments=args)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=TIMEOUT)
    reply = kernel_info(kc)
    actual = reply["content"]["sandbox"]["level"]
    if actual is None:
        failure = reply["content"]["sandbox"].get("failure")
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        pytest.fail(f"the sandbox did not start at the {level!r} level: {failure}")
    if actual != level:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        if HOST_LEVEL:
            pytest.fail(f"this host must offer the {level!r} level, the kernel reports {actual!r}")
        sandbox = reply["content"]["sandbox"]
        why = (sandbox.get("unavailable") or {}).get(level) or sandbox.get("failure")
        pytest.skip(
            f"this host cannot offer the {level!r} level (the kernel reports {actual!r}: "
            f"{why or reply['content']['banner']})"
        )
    return Sandbox(level, km, kc, workspace)


def spare_manager(name: str) -> KernelManager:
    """A KernelManager whose provisioner keeps one spare (the suite's default is none)."""
    from traitlets.config import Config

    from tests.conftest import _provisioner_missing, runs_from_a_bare_checkout

    missing = _provisioner_missing()
    if missing and runs_from_a_bare_checkout():
        pytest.skip(
            "no pre-warmed spares here: the package runs from a checkout on sys.path "
            "without its metadata, so the provisioner's entry point is not registered"
        )
    if missing:
        pytest.fail(missing)

    return KernelManager(kernel_name=name, config=Config({"SandboxProvisioner": {"spares": 1}}))


def start_from_spare(
    name: str, workspace: Path, env: dict[str, str], args: list[str]
) -> KernelManager:
    """Start a kernel the way a second start with the same launch does: from the spare.

    A first kernel (its own key, its own cells) starts, leaves a spare behind and is
    shut down; the kernel returned is the spare, assigned. Fails if it is not.
    """
    from sandbox_kernel.provisioner import POOL, spares_ready

    first = spare_manager(name)
    first.start_kernel(cwd=str(workspace), env=env, extra_arguments=args)
    try:
        assert spares_ready(timeout=TIMEOUT), "the spare did not build its sandbox in time"
    finally:
        first.shutdown_kernel(now=False)
    km = spare_manager(name)
    km.start_kernel(cwd=str(workspace), env=env, extra_arguments=args)
    # The spare this start left for the next one is not needed by the tests.
    POOL.retire_all()
    assert km.provisioner.from_spare, "the kernel did not start from the pre-warmed spare"  # type: ignore[union-attr]
    return km


@pytest.fixture(
    scope="module",
    params=[
        *sorted(LEVEL_KERNELS),
        *sorted(WARM_KERNELS),
        *([] if HOST_LEVEL else HOST_KERNELS),
    ],
)
def sandbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, host: Host
) -> Iterator[Sandbox]:
    workspace = tmp_path_factory.mktemp(f"workspace-{request.param}")
    workspace.chmod(0o777)
    if request.param in HOST_KERNELS:
        # The pod's kernel runs as another user: let it traverse (only) to its workspace.
        base = tmp_path_factory.getbasetemp()
        for directory in (base.parent, base):
            directory.chmod(directory.stat().st_mode | 0o011)
        if os.geteuid() == 0:
            # A pod's volume belongs to the pod's user, as fsGroup/initContainers arrange.
            from tests.security.restricted_host import POD_USER

            pod_user = pwd.getpwnam(POD_USER)
            os.chown(workspace, pod_user.pw_uid, pod_user.pw_gid)
        kernel_name, level = HOST_KERNELS[request.param]
        box = start_sandbox(level, workspace, host, kernel_name=kernel_name)
    elif request.param in WARM_KERNELS:
        box = start_sandbox(WARM_KERNELS[request.param], workspace, host, warm=True)
        assert "Started from a pre-warmed spare" in box.run("%sandbox").stdout
    else:
        box = start_sandbox(request.param, workspace, host)
    try:
        yield box
    finally:
        box.close()
