"""A real JupyterHub with examples/jupyterhub/: two local users, each with their own server.

The hub runs the example configuration unchanged but for paths and ports (all on
127.0.0.1, state in temporary directories). Two local Unix users are created for the
module and removed after it. Each user starts their server with their own API token
(made with ``jupyterhub token``), then talks to the sandbox kernel the way JupyterLab
does: the REST API to start it, the websocket to run cells.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.kernel_socket import CELL_TIMEOUT, Cell, KernelSocket

pytestmark = [pytest.mark.hub, pytest.mark.slow, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "jupyterhub"
BIN = Path(sys.prefix, "bin")
SECRET = "the-answer-is-" + secrets.token_hex(4)
# Per-student locks (student_limits.json): A is held to 3 s per cell, B gets more time
# than the course's 60 s (an accommodation).
A_WALL_S = 3
B_WALL_S = 120
# A's own ~/.jupyter tries to loosen what the hub locked.
LOOSER = {
    "SandboxKernelApp": {"preset": "permissive"},
    "Limits": {"wall_time_limit_s": 0, "memory_limit_mb": 0},
    "Policy": {"preset": "permissive", "rules": {"shell": "off"}},
    "Isolation": {"allow_network": True, "required_isolation": "none"},
}


def _missing() -> str | None:
    """Why the hub cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root: LocalProcessSpawner starts each student's server as that local user"
    for tool in ("useradd", "userdel", "runuser"):
        if shutil.which(tool) is None:
            return f"needs {tool} to create the two local users"
    try:
        import jupyterhub  # noqa: F401
        import requests  # noqa: F401
        import websocket  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e '.[hub]')"
    if not (BIN / "jupyterhub-singleuser").exists():
        return "jupyterhub-singleuser is not installed next to the hub (pip install -e '.[hub]')"
    if not (BIN / "configurable-http-proxy").exists() and not shutil.which(
        "configurable-http-proxy"
    ):
        return "no configurable-http-proxy (pip install configurable-http-proxy, or npm's)"
    return None


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Student:
    name: str
    home: Path
    uid: int
    token: str = ""
    kernel_id: str = ""
    kernel: KernelSocket | None = None
    log: Path | None = None

    def cell(self, code: str, timeout: float = CELL_TIMEOUT) -> Cell:
        import websocket

        assert self.kernel is not None
        try:
            return self.kernel.execute(code, timeout)
        except websocket.WebSocketException as exc:
            raise AssertionError(
                f"{self.name}: no reply to {code!r} ({exc!r}); hub log:\n{_log_tail(self.log)}"
            ) from None


@dataclass
class Hub:
    url: str
    log: Path
    audit_dir: Path
    lock_dir: Path
    students: dict[str, Student]

    def api(self, method: str, path: str, student: Student, **kw: Any) -> Any:
        import requests

        headers = {"Authorization": f"token {student.token}"}
        return requests.request(
            method, self.url + path, headers=headers, timeout=30, allow_redirects=False, **kw
        )

    def hub_log(self) -> str:
        return self.log.read_text(errors="replace")


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120, **kw)


def _make_user(name: str) -> Student:
    _run(["useradd", "--create-home", "--shell", "/bin/bash", "--user-group", name])
    entry = pwd.getpwnam(name)
    home = Path(entry.pw_dir)
    # World-readable on purpose: Unix permissions would let A read B's files, so what
    # stops A below is the sandbox (README tells instructors to keep homes 0700).
    home.chmod(0o755)
    return Student(name=name, home=home, uid=entry.pw_uid)


def _remove_user(student: Student) -> None:
    pids = [p.pid for p in psutil.process_iter(["uids"]) if p.info["uids"].real == student.uid]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=10)
    subprocess.run(["userdel", "--remove", student.name], capture_output=True, check=False)
    shutil.rmtree(student.home, ignore_errors=True)


def _wait_for(what: str, check: Any, timeout: float, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            result = check()
            if result:
                return result
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout} s; hub log:\n{_log_tail(log)}")


def _log_tail(log: Path | None) -> str:
    lines = log.read_text(errors="replace").splitlines() if log and log.exists() else []
    return "\n".join(line for line in lines if "200 GET /hub/api/" not in line)[-8000:]


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    why = _missing()
    if why:
        pytest.skip(why)
    import requests

    tag = secrets.token_hex(3)
    base = Path(tempfile.mkdtemp(prefix="sandbox-hub-"))
    base.chmod(0o755)
    students: dict[str, Student] = {}
    proc: subprocess.Popen[bytes] | None = None
    try:
        for key in ("a", "b"):
            students[key] = _make_user(f"sbxhub{tag}{key}")
        a, b = students["a"], students["b"]

        # What the README's install steps set up, in temporary directories.
        state, settings, prefix = base / "state", base / "course", base / "prefix"
        for d, mode in ((state, 0o700), (settings, 0o700), (prefix, 0o755)):
            d.mkdir()
            d.chmod(mode)
        (settings / "students.txt").write_text(f"{a.name}\n{b.name}\n")
        (settings / "student_limits.json").write_text(
            json.dumps(
                {
                    a.name: {"Limits.wall_time_limit_s": A_WALL_S, "Limits.interrupt_grace_s": 1},
                    b.name: {"Limits.wall_time_limit_s": B_WALL_S},
                }
            )
        )
        _run(
            [
                sys.executable,
                "-m",
                "sandbox_kernel",
                "install",
                "--prefix",
                str(prefix),
                "--preset",
                "classroom",
            ]
        )
        # Both students' own configuration tries to loosen the locks (as a student with a
        # terminal elsewhere could). The example hub sets disable_user_config, so B's
        # kernel never reads ~/.jupyter. A's server is started as a hub without that
        # setting would start it (see the hook below): the kernel reads ~/.jupyter, and
        # the locks alone must hold.
        for student in (a, b):
            user_conf = student.home / ".jupyter"
            user_conf.mkdir()
            (user_conf / "sandbox_kernel_config.json").write_text(json.dumps(LOOSER))
            for path in (user_conf, user_conf / "sandbox_kernel_config.json"):
                os.chown(path, student.uid, pwd.getpwnam(student.name).pw_gid)

        public, hub_port, proxy_api = _free_ports(3)
        config = base / "jupyterhub_config.py"
        config.write_text(
            "c = get_config()  # noqa\n"
            f"load_subconfig({str(EXAMPLE / 'jupyterhub_config.py')!r})\n"
            f"c.JupyterHub.bind_url = 'http://127.0.0.1:{public}'\n"
            f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{hub_port}'\n"
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{proxy_api}'\n"
            # the kernelspec installed with --prefix above, instead of --sys-prefix
            "c.Spawner.environment = {**c.Spawner.environment, "
            f"'JUPYTER_PATH': {str(prefix / 'share' / 'jupyter')!r}}}\n"
            "_example_hook = c.Spawner.pre_spawn_hook\n"
            "def _read_user_config_for_a(spawner):\n"
            "    _example_hook(spawner)\n"
            f"    if spawner.user.name == {a.name!r}:\n"
            "        spawner.disable_user_config = False\n"
            "c.Spawner.pre_spawn_hook = _read_user_config_for_a\n"
        )
        env = {
            **os.environ,
            "SANDBOX_HUB_STATE_DIR": str(state),
            "SANDBOX_HUB_SETTINGS_DIR": str(settings),
            "SANDBOX_HUB_LOCK_DIR": str(base / "locks"),
            "SANDBOX_HUB_AUDIT_DIR": str(base / "audit"),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        env.pop("JUPYTER_PATH", None)  # the test suite's own kernelspecs stay out of it
        assert (EXAMPLE / "jupyterhub_config.py").is_file()
        for student in students.values():
            out = _run(
                [str(BIN / "jupyterhub"), "token", "-f", str(config), student.name],
                env=env,
                cwd=state,
            )
            student.token = out.stdout.strip().splitlines()[-1]

        log = base / "hub.log"
        with open(log, "wb") as out_f:
            # The students' servers run the hub's interpreter: where it lives under a
            # 0700 home (pyenv under /root), the hub gets a view in which the way to it is
            # open (tests/security/restricted_host.py), instead of relying on a chmod.
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    str(REPO / "tests" / "security" / "restricted_host.py"),
                    "reachable",
                    "--",
                    str(BIN / "jupyterhub"),
                    "-f",
                    str(config),
                ],
                env=env,
                cwd=state,
                stdout=out_f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{public}"
        _wait_for(
            "the hub did not answer",
            lambda: (
                proc.poll() is None
                and requests.get(url + "/hub/api/", timeout=5).status_code == 200
            ),
            60,
            log,
        )
        the_hub = Hub(url, log, base / "audit", base / "locks", students)

        # Each student starts their own server with their own token, both at once.
        def spawn(s: Student) -> Any:
            return the_hub.api("POST", f"/hub/api/users/{s.name}/server", s)

        with ThreadPoolExecutor(len(students)) as pool:
            for r in pool.map(spawn, students.values()):
                assert r.status_code in (201, 202), (r.status_code, r.text)
        for student in students.values():

            def ready(s: Student = student) -> bool:
                model = the_hub.api("GET", f"/hub/api/users/{s.name}", s).json()
                return bool(model["servers"].get("", {}).get("ready"))

            _wait_for(f"{student.name}'s server did not start", ready, 150, log)
        yield the_hub
    finally:
        for student in students.values():
            if student.kernel is not None:
                with contextlib.suppress(Exception):
                    student.kernel.close()
        if proc is not None:
            # The hub stops the students' servers (cleanup_servers) and its proxy.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            # The proxy runs in a session of its own: stop it by its pid if it outlived the hub.
            with contextlib.suppress(OSError, ValueError, psutil.Error):
                proxy = psutil.Process(int((base / "state" / "jupyterhub-proxy.pid").read_text()))
                if "configurable-http-proxy" in " ".join(proxy.cmdline()):
                    proxy.kill()
        for student in students.values():
            _remove_user(student)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def kernels(hub: Hub) -> dict[str, Student]:
    """A sandbox kernel for each student, started as JupyterLab does when a notebook is
    opened: a session for the notebook, whose directory is the kernel's workspace."""
    for student in hub.students.values():
        r = hub.api(
            "POST",
            f"/user/{student.name}/api/sessions",
            student,
            json={"path": "hw1.ipynb", "name": "hw1.ipynb", "type": "notebook", "kernel": {}},
        )
        assert r.status_code == 201, (r.status_code, r.text)
        model = r.json()["kernel"]
        # No kernel named: the server's default is the sandbox kernel.
        assert model["name"] == "sandbox-python"
        student.kernel_id = model["id"]
        student.log = hub.log
        ws_url = hub.url.replace("http", "ws", 1)
        student.kernel = KernelSocket(
            f"{ws_url}/user/{student.name}/api/kernels/{student.kernel_id}/channels",
            student.token,
        )
    return hub.students


def test_the_sandbox_kernel_is_the_only_kernel(hub: Hub) -> None:
    for student in hub.students.values():
        base = f"/user/{student.name}/api"
        specs = hub.api("GET", f"{base}/kernelspecs", student).json()
        assert specs["default"] == "sandbox-python"
        assert set(specs["kernelspecs"]) == {"sandbox-python"}
        argv = specs["kernelspecs"]["sandbox-python"]["spec"]["argv"]
        assert "sandbox_kernel" in argv
        assert "--SandboxKernelApp.preset=classroom" in argv
        # Asked for by name, python3 (plain ipykernel, no sandbox) does not start either:
        # not through the kernels API, nor through a session as JupyterLab opens a
        # notebook whose metadata names python3.
        r = hub.api("POST", f"{base}/kernels", student, json={"name": "python3"})
        assert r.status_code >= 400, r.text
        assert hub.api("GET", f"{base}/kernelspecs/python3", student).status_code == 404
        r = hub.api(
            "POST",
            f"{base}/sessions",
            student,
            json={"path": "old.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
        )
        assert r.status_code >= 400, r.text
        kernels = hub.api("GET", f"{base}/kernels", student).json()
        assert all(k["name"] == "sandbox-python" for k in kernels)
        # No terminals either: they would run code outside the sandbox.
        assert hub.api("POST", f"{base}/terminals", student).status_code in (403, 404)


def test_a_token_reaches_its_own_server_only(hub: Hub) -> None:
    a, b = hub.students["a"], hub.students["b"]
    for path in (f"/user/{b.name}/api/kernels", f"/hub/api/users/{b.name}"):
        r = hub.api("GET", path, a)
        assert r.status_code in (302, 403, 404), (path, r.status_code)


def test_cells_run_sandboxed(kernels: dict[str, Student]) -> None:
    for student in kernels.values():
        cell = student.cell("%sandbox")
        assert cell.status == "ok", cell.text
        level = cell.reply["metadata"]["sandbox"]["level"]
        assert level in {"namespaces", "landlock"}
        assert f"Sandbox level: {level}" in cell.text
        assert "Locked by the administrator:" in cell.text
        assert "CS101 staff" in cell.text
        cell = student.cell("import getpass, os\nprint(getpass.getuser(), os.getcwd())")
        assert cell.status == "ok", cell.text
        assert cell.reply["metadata"]["sandbox"]["level"] == level


def test_kernels_talk_over_private_unix_sockets(kernels: dict[str, Student]) -> None:
    # Loopback ports are open to every user of a shared machine; unix sockets in the
    # student's runtime directory, mode 0600, are the student's alone.
    for student in kernels.values():
        runtime = student.home / ".local" / "share" / "jupyter" / "runtime"
        files = list(runtime.glob("kernel-*.json"))
        assert files, sorted(p.name for p in runtime.iterdir())
        for file in files:
            info = json.loads(file.read_text())
            assert info["transport"] == "ipc"
            assert info["key"]
            names = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
            for name in names:
                sock = Path(f"{info['ip']}-{info[name]}")
                assert sock.parent == runtime
                assert stat.S_ISSOCK(sock.stat().st_mode)
                assert stat.S_IMODE(sock.stat().st_mode) == 0o600
                assert sock.stat().st_uid == student.uid


def test_a_student_cannot_read_another_students_files(kernels: dict[str, Student]) -> None:
    a, b = kernels["a"], kernels["b"]
    cell = b.cell(
        "import os\n"
        f"open('secret.txt', 'w').write({SECRET!r})\n"
        "print(os.path.abspath('secret.txt'))"
    )
    assert cell.status == "ok", cell.text
    secret = b.home / "notebooks" / "secret.txt"
    assert cell.text.strip() == str(secret)
    # From outside: the file is in B's real home, B's own, and Unix permissions alone
    # would let A read it.
    assert secret.read_text() == SECRET
    assert secret.stat().st_uid == b.uid
    secret.chmod(0o644)
    secret.parent.chmod(0o755)
    outside = subprocess.run(
        ["runuser", "-u", a.name, "--", "cat", str(secret)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert outside.stdout == SECRET
    # From A's sandbox: not by absolute path, not by listing B's home.
    cell = a.cell(
        "import os\n"
        f"probes = (lambda: open({str(secret)!r}).read(),\n"
        f"          lambda: os.listdir({str(secret.parent)!r}))\n"
        "for probe in probes:\n"
        "    try:\n"
        "        print('READ', probe())\n"
        "    except OSError as e:\n"
        "        print('DENIED', type(e).__name__)\n"
    )
    assert cell.status == "ok", cell.text
    assert SECRET not in cell.text
    assert cell.text.count("DENIED") == 2, cell.text


def test_locks_hold_against_the_students_own_config(hub: Hub, kernels: dict[str, Student]) -> None:
    a, b = kernels["a"], kernels["b"]
    text = a.cell("%sandbox").text
    # One line per lock file (name=value, as the file says it).
    assert f"Limits.wall_time_limit_s={A_WALL_S!r}" in text, text
    assert "Policy.preset='classroom'" in text
    assert b.cell("%sandbox").text.count(f"Limits.wall_time_limit_s={B_WALL_S!r}") == 1
    # A's ~/.jupyter asked for no time limit and the permissive policy: neither holds.
    start = time.monotonic()
    cell = a.cell("import time\ntime.sleep(60)")
    assert cell.reply["content"].get("ename") == "CellTimeout", cell.text
    assert time.monotonic() - start < 30
    cell = a.cell("!echo shell")
    assert cell.reply["content"].get("ename") == "SandboxPolicyError", cell.text
    # B's accommodation is the lock's value, above the preset's 60 s.
    cell = b.cell("import time\ntime.sleep(1)\nprint('slept')")
    assert cell.status == "ok"
    assert "slept" in cell.text
    lock_file = hub.lock_dir / f"{b.name}.json"
    lock = json.loads(lock_file.read_text())
    assert lock["locked"]["Limits.wall_time_limit_s"] == B_WALL_S
    # The lock files are root's; a student's kernel reads its own, and nobody else's.
    st = lock_file.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, pwd.getpwnam(b.name).pw_gid, 0o640)
    peek = subprocess.run(
        ["runuser", "-u", a.name, "--", "cat", str(lock_file)], capture_output=True, check=False
    )
    assert peek.returncode != 0
    # The kernel's log (the hub's log, root's) has a copy of each refusal.
    assert f"lock_refused user={a.name} setting=Limits.wall_time_limit_s" in hub.hub_log()


def test_the_audit_log_records_each_students_cells(hub: Hub, kernels: dict[str, Student]) -> None:
    for key, student in kernels.items():
        path = hub.audit_dir / f"{student.name}.jsonl"
        st = path.stat()
        assert st.st_uid == student.uid
        assert st.st_mode & 0o777 == 0o600
        assert (hub.audit_dir.stat().st_mode & 0o777) == 0o711
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert records
        assert {r["user"] for r in records} == {student.name}
        cells = [r for r in records if r["kind"] == "cell"]
        assert all(r["isolation"] in {"namespaces", "landlock"} for r in cells)
        logged = {r["cell_sha256"] for r in cells}
        assert student.kernel is not None
        # Every cell that ran (%sandbox is answered by the trusted kernel, not run).
        for source in [s for s in student.kernel.sources if s != "%sandbox"]:
            digest = hashlib.sha256(source.encode()).hexdigest()
            assert digest in logged, (key, source)
        text = path.read_text()
        assert SECRET not in text  # hashes only, never a cell's source
        if key == "a":
            refused = [r for r in records if r.get("event") == "lock"]
            settings = " ".join(r["detail"] for r in refused)
            assert "Limits.wall_time_limit_s" in settings
            assert "Policy.preset" in settings
            denied = [r for r in cells if r["verdict"] == "denied"]
            assert denied
            assert "SKP101" in denied[0]["rules"]
        else:
            # B's ~/.jupyter asks for the same as A's, but the hub disabled user
            # configuration: the file was never read, so there is nothing to refuse.
            assert not [r for r in records if r.get("event") == "lock"]


def test_the_server_config_refuses_other_kernels_by_name(tmp_path: Path) -> None:
    """Without a hub: why jupyter_server_config.py needs its own KernelSpecManager."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from traitlets.config import Config

    from sandbox_kernel.install import kernel_dict

    spec_dir = tmp_path / "kernels" / "sandbox-python"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps(kernel_dict()))
    namespace: dict[str, Any] = {"get_config": Config}
    source = (EXAMPLE / "jupyter_server_config.py").read_text()
    exec(compile(source, "jupyter_server_config.py", "exec"), namespace)
    config = namespace["c"]
    dirs = [str(tmp_path / "kernels")]
    # jupyter_client alone lists only the allowed kernel, yet starts python3 when asked.
    plain = KernelSpecManager(config=config, kernel_dirs=dirs)
    assert set(plain.find_kernel_specs()) == {"sandbox-python"}
    assert "ipykernel" in " ".join(plain.get_kernel_spec("python3").argv)
    # The example's manager refuses it (and any other name), in any case.
    manager = config.ServerApp.kernel_spec_manager_class(config=config, kernel_dirs=dirs)
    assert "sandbox_kernel" in manager.get_kernel_spec("sandbox-python").argv
    for name in ("python3", "Python3", "ir"):
        with pytest.raises(NoSuchKernel):
            manager.get_kernel_spec(name)
