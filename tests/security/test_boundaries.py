"""Attack cells for every boundary of the OS sandbox, checked from outside the kernel.

Each test is written the way a hostile notebook would try it, and asserts on
what the host saw (canary unchanged, listener never contacted, process alive,
key bytes absent), not only on what the cell printed. A positive control in
each family shows the check could fail.
"""

from __future__ import annotations

import json
import os
import re
import sysconfig
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.security.conftest import SECRET_ENV, Host, Sandbox


def _all_text(result) -> str:
    return json.dumps([m["content"] for m in result.outputs]) + json.dumps(result.reply["content"])


# -- filesystem --------------------------------------------------------------------


def test_cant_read_host_files(sandbox: Sandbox, host: Host) -> None:
    targets = [
        host.canary_read,
        host.fake_home / ".ssh" / "id_rsa",
        sandbox.km.connection_file,
        "/etc/shadow",
        "/root/.bashrc",
    ]
    code = "\n".join(
        f"try:\n    print('READ', open({str(p)!r}).read())\nexcept OSError as e:\n    print('DENIED', e.errno)"
        for p in targets
    )
    result = sandbox.run(code)
    text = _all_text(result)
    assert host.secret_text not in text
    assert "READ" not in result.stdout
    assert result.stdout.count("DENIED") == len(targets)
    with open(sandbox.km.connection_file) as f:
        key = json.load(f)["key"]
    assert key not in text


def test_cant_write_outside_the_workspace(sandbox: Sandbox, host: Host) -> None:
    before = {p: host.digest(p) for p in (host.canary_write, host.venv_canary)}
    startup = host.fake_home / ".ipython" / "profile_default" / "startup" / "00-evil.py"
    import site

    sitecustomize = os.path.join(site.getsitepackages()[0], "sitecustomize.py")
    targets = [
        str(host.canary_write),
        str(host.venv_canary),
        str(startup),
        str(host.fake_home / ".jupyter" / "jupyter_server_config.py"),
        sitecustomize,
        os.path.join(os.path.dirname(os.__file__), "evil_stdlib.py"),
        "/usr/local/evil",
        "/etc/evil",
    ]
    code = "\n".join(
        f"try:\n    open({t!r}, 'w').write('pwned')\n    print('WROTE')\nexcept OSError as e:\n    print('DENIED', e.errno)"
        for t in targets
    )
    result = sandbox.run(code)
    assert "WROTE" not in result.stdout, result.stdout
    assert result.stdout.count("DENIED") == len(targets)
    for path, digest in before.items():
        assert host.digest(path) == digest, f"{path} was modified"
    for path in (startup, host.fake_home / ".jupyter" / "jupyter_server_config.py"):
        assert not path.exists()
    assert not os.path.exists(sitecustomize)


def test_workspace_is_writable_and_owned_by_its_owner(sandbox: Sandbox) -> None:
    """Positive control: the one writable host path works, so the denials above mean something."""
    name = f"note-{uuid.uuid4().hex}.txt"
    result = sandbox.run(f"open({name!r}, 'w').write('hello')\nimport os\nprint(os.getcwd())")
    assert result.status == "ok"
    written = sandbox.workspace / name
    assert written.read_text() == "hello"
    assert written.stat().st_uid == sandbox.workspace.stat().st_uid
    assert result.stdout.strip() == str(sandbox.workspace)


def test_cant_remount_or_create_namespaces(sandbox: Sandbox, host: Host) -> None:
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "r = libc.mount(None, b'/usr', None, 32 | 4096, None)\n"  # MS_REMOUNT|MS_BIND: drop read-only
        "print('remount', r, ctypes.get_errno())\n"
        "r = libc.unshare(0x10000000)\n"  # CLONE_NEWUSER
        "print('unshare', r, ctypes.get_errno())\n"
        "r = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\n"
        "print('mount', r, ctypes.get_errno())\n"
        f"try:\n    open({str(host.venv_canary)!r}, 'a').write('x')\nexcept OSError as e:\n    print('write', e.errno)\n"
    )
    before = host.digest(host.venv_canary)
    result = sandbox.run(code)
    for call in ("remount", "unshare", "mount"):
        match = re.search(rf"^{call} (-?\d+) (\d+)$", result.stdout, re.M)
        assert match, result.stdout
        assert match.group(1) == "-1", f"{call} succeeded: {result.stdout}"
    if sandbox.level == "namespaces":
        # Under the simulated container the host's own filter answers EPERM
        # first (ERRNO outranks USER_NOTIF), so only here is ours the one to report.
        assert "blocked unshare(CLONE_NEWUSER)" in result.stderr
    assert host.digest(host.venv_canary) == before


def test_tmp_is_private_and_bounded(sandbox: Sandbox) -> None:
    if sandbox.level != "namespaces":
        pytest.skip("a private size-limited /tmp needs a mount namespace (level 'namespaces')")
    marker = f"/tmp/host-marker-{uuid.uuid4().hex}"
    open(marker, "w").close()
    try:
        code = (
            f"import os\nprint('visible', os.path.exists({marker!r}))\n"
            "try:\n"
            "    with open('/tmp/fill', 'wb') as f:\n"
            "        for _ in range(400):\n"
            "            f.write(b'x' * (1 << 20))\n"
            "    print('filled')\n"
            "except OSError as e:\n"
            "    print('full', e.errno)\n"
            "os.remove('/tmp/fill')"
        )
        result = sandbox.run(code)
        assert "visible False" in result.stdout
        assert "full 28" in result.stdout  # ENOSPC at the tmpfs size, not the host's disk
    finally:
        os.unlink(marker)


# -- network -------------------------------------------------------------------


def test_no_network(sandbox: Sandbox, host: Host) -> None:
    with open(sandbox.km.connection_file) as f:
        shell_port = json.load(f)["shell_port"]
    code = (
        "import socket\n"
        "def attempt(name, fn):\n"
        "    try:\n"
        "        fn(); print(name, 'REACHED')\n"
        "    except OSError as e:\n"
        "        print(name, 'blocked', e.errno)\n"
        "def tcp(port):\n"
        "    s = socket.socket(); s.settimeout(2); s.connect(('127.0.0.1', port)); s.send(b'hi')\n"
        f"attempt('tcp', lambda: tcp({host.tcp_port}))\n"
        f"attempt('zmq', lambda: tcp({shell_port}))\n"
        f"attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'hi', ('127.0.0.1', {host.udp_port})))\n"
        "def unix(addr):\n"
        "    s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(addr); s.send(b'hi')\n"
        f"attempt('abstract', lambda: unix('\\0{host.abstract_name}'))\n"
        f"attempt('pathname', lambda: unix({host.unix_path!r}))\n"
        "attempt('internet', lambda: tcp.__call__(80) if False else socket.create_connection(('1.1.1.1', 53), timeout=2))\n"
    )
    result = sandbox.run(code)
    # A UDP send "succeeds" inside a network namespace of its own: the datagram
    # goes to the sandbox's loopback. What matters is what the host received.
    connected = [
        line
        for line in result.stdout.splitlines()
        if "REACHED" in line and not line.startswith("udp")
    ]
    assert connected == [], result.stdout
    time.sleep(0.5)
    for name, listener in host.listeners.items():
        assert listener.hits == [], f"the host's {name} listener was contacted: {listener.hits}"


def test_loopback_inside_the_sandbox_still_works(sandbox: Sandbox) -> None:
    """Local servers a cell starts for itself work where the level allows sockets."""
    if sandbox.level != "namespaces":
        pytest.skip("sockets are closed entirely at the 'landlock' level (no network namespace)")
    code = (
        "import socket, threading\n"
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()\n"
        "threading.Thread(target=lambda: srv.accept()[0].sendall(b'pong'), daemon=True).start()\n"
        "c = socket.create_connection(srv.getsockname()); print(c.recv(4))"
    )
    assert "b'pong'" in sandbox.run(code).stdout


# -- processes and privileges --------------------------------------------------------


def test_cant_see_or_signal_host_processes(sandbox: Sandbox, host: Host) -> None:
    assert host.marker is not None
    kernel = sandbox.km.provisioner.process.pid  # type: ignore[union-attr]
    code = (
        "import os, signal\n"
        f"for pid in ({host.marker.pid}, {kernel}, 1):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL); print('KILLED', pid)\n"
        "    except OSError as e:\n"
        "        print('denied', pid, e.errno)\n"
        f"for path in ('/proc/{kernel}/environ', '/proc/{kernel}/mem', '/proc/{kernel}/maps'):\n"
        "    try:\n"
        "        print('READ', path, len(open(path, 'rb').read(4096)))\n"
        "    except OSError as e:\n"
        "        print('denied', path, e.errno)\n"
    )
    result = sandbox.run(code)
    assert "KILLED" not in result.stdout
    assert "READ" not in result.stdout
    time.sleep(0.2)
    assert host.marker.poll() is None, "the host marker process was killed"
    assert psutil.pid_exists(kernel)
    if sandbox.level == "namespaces":
        listing = sandbox.run(
            "import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"
        )
        visible = json.loads(listing.stdout)
        assert host.marker.pid not in visible or len(visible) < 10
        assert len(visible) < 10, f"host processes are visible: {visible}"


def test_executor_has_no_privileges(sandbox: Sandbox) -> None:
    """From the host: every sandbox process has no capabilities, no_new_privs and seccomp."""
    result = sandbox.run("import os; print(os.getpid())")
    assert result.status == "ok"
    checked = 0
    for pid in sandbox.executor_pids():
        try:
            status = dict(
                line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            )
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        name = status["Name"].strip()
        if b"sandbox_kernel.launcher.launch" not in cmdline:
            continue
        if int(status["PPid"]) == sandbox.km.provisioner.process.pid:  # type: ignore[union-attr]
            continue  # the launcher: outside the sandbox by design
        checked += 1
        assert int(status["CapEff"], 16) == 0, (pid, name, status["CapEff"])
        assert int(status["CapPrm"], 16) == 0, (pid, name)
        assert status["NoNewPrivs"].strip() == "1", (pid, name)
        assert int(status["Uid"].split()[1]) != 0 or sandbox.level != "namespaces", (
            "host root inside the sandbox"
        )
    assert checked >= 1
    executor = [
        p for p in sandbox.executor_pids() if b"launch" in Path(f"/proc/{p}/cmdline").read_bytes()
    ][-1]
    status = Path(f"/proc/{executor}/status").read_text()
    assert re.search(r"^Seccomp:\s+2$", status, re.M), "the executor runs without a seccomp filter"


def test_blocked_syscall_is_reported_by_name(sandbox: Sandbox) -> None:
    result = sandbox.run("import socket\nsocket.socket(socket.AF_PACKET, socket.SOCK_RAW)")
    assert result.status == "error"
    assert result.reply["content"]["ename"] == "PermissionError"
    assert "[sandbox] blocked socket(AF_PACKET, SOCK_RAW)" in result.stderr


def test_foreign_architecture_syscalls_kill_the_executor(sandbox: Sandbox, host: Host) -> None:
    """The int 0x80 (i386) path to socket()+sendto() must not bypass the x86_64 filter."""
    if os.uname().machine != "x86_64":
        pytest.skip("the int 0x80 bypass exists on x86_64 only")
    # i386: socketcall is 102, but socket (359) and sendto (369) exist since 4.3.
    code = (
        "import ctypes, mmap, struct\n"
        "code = bytes([0xB8]) + struct.pack('<I', 359)"  # mov eax, 359 (socket)
        " + bytes([0xBB, 2, 0, 0, 0, 0xB9, 2, 0, 0, 0, 0x31, 0xD2, 0xCD, 0x80, 0xC3])\n"  # ebx=2 ecx=2 edx=0 int 0x80 ret
        "buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "buf.write(code)\n"
        "addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))\n"
        "fd = ctypes.CFUNCTYPE(ctypes.c_int)(addr)()\n"
        "print('int80 socket returned', fd)\n"
    )
    result = sandbox.run(code)
    assert "int80 socket returned" not in result.stdout
    assert result.reply["content"]["ename"] == "ExecutorDied"
    assert "SIGSYS" in result.reply["content"]["evalue"]
    assert host.listeners["udp"].hits == []
    assert sandbox.run("1 + 1").status == "ok"


# -- secrets -------------------------------------------------------------------------


def test_secrets_stay_out_of_the_sandbox(sandbox: Sandbox) -> None:
    kernel = sandbox.km.provisioner.process.pid  # type: ignore[union-attr]
    code = (
        "import os\nprint(dict(os.environ))\n"
        f"for path in ('/proc/self/environ', '/proc/1/environ', '/proc/{kernel}/environ', '/proc/{kernel}/cmdline'):\n"
        "    try:\n"
        "        print(path, open(path, 'rb').read())\n"
        "    except OSError as e:\n"
        "        print(path, 'denied', e.errno)\n"
    )
    result = sandbox.run(code)
    text = _all_text(result)
    for value in SECRET_ENV.values():
        assert value not in text
    assert "JUPYTERHUB" not in result.stdout
    assert "JPY_" not in result.stdout


def test_hmac_key_is_not_in_executor_memory(sandbox: Sandbox) -> None:
    """Scan every sandbox process's memory from the host for the connection key."""
    from sandbox_kernel.isolation import libc

    cap_sys_ptrace = 19
    if os.geteuid() != 0 or not libc.capget_effective() >> cap_sys_ptrace & 1:
        # Default Docker gives root no CAP_SYS_PTRACE: the executor (not dumpable)
        # cannot be read from there.
        pytest.skip("needs root with CAP_SYS_PTRACE to read other processes' memory")
    with open(sandbox.km.connection_file) as f:
        key = json.load(f)["key"].encode()
    sandbox.run("x = [bytes(1000) for _ in range(100)]")
    scanned = 0
    for pid in sandbox.executor_pids():
        try:
            maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
            mem = open(f"/proc/{pid}/mem", "rb")  # noqa: SIM115 - closed by the with below
        except OSError:
            continue
        with mem:
            for line in maps:
                addresses, perms = line.split()[:2]
                if "r" not in perms or "[vvar" in line or "[vsyscall" in line:
                    continue
                start, end = (int(a, 16) for a in addresses.split("-"))
                try:
                    mem.seek(start)
                    chunk = mem.read(end - start)
                except (OSError, OverflowError, ValueError):
                    continue
                scanned += len(chunk)
                assert key not in chunk, f"the HMAC key is in the memory of sandbox process {pid}"
    assert scanned > 10_000_000, "nothing was scanned: the check would pass vacuously"


# Rewrites a bytes object through /proc/self/mem: the way past the audit hooks (and any
# other check written in Python) that needs no ctypes. 32 is where CPython 3.11 keeps a
# bytes object's data, counted from its id().
PATCH_OWN_MEMORY = """
import os
canary = ("untouched-" + os.urandom(4).hex()).encode()
try:
    fd = os.open("/proc/self/mem", os.O_RDWR)
except OSError as exc:
    print("denied", exc.errno)
else:
    os.pwrite(fd, b"PATCHED!!", id(canary) + 32)
    os.close(fd)
print(canary)
"""


def test_the_executor_cannot_rewrite_its_own_memory(sandbox: Sandbox) -> None:
    """Not dumpable, the executor's /proc files belong to the host's root. It inherits that
    from pid 1 and is dumpable for one open() at its start, before any cell (the pagemap
    that child/hot_pages.py reads): it must not stay so."""
    result = sandbox.run(PATCH_OWN_MEMORY)
    assert result.status == "ok", result.reply["content"]
    assert "PATCHED" not in result.stdout
    assert "untouched-" in result.stdout
    assert "denied" in result.stdout
    # From the host, where the executor's uid is not the host's root (where it is, the
    # owner says nothing): its /proc files are root's, as for a process not dumpable.
    executor = [
        p for p in sandbox.executor_pids() if b"launch" in Path(f"/proc/{p}/cmdline").read_bytes()
    ][-1]
    uid = int(Path(f"/proc/{executor}/status").read_text().split("Uid:")[1].split()[1])
    if uid != 0:
        assert os.stat(f"/proc/{executor}/mem").st_uid == 0, "the executor is dumpable"


def test_stock_ipykernel_rewrites_its_own_memory(tmp_path: Path) -> None:
    """The positive control: the same cell patches stock ipykernel's memory."""
    from tests.utils import execute, running_kernel

    with running_kernel(tmp_path, kernel_name="python3") as (_, kc):
        result = execute(kc, PATCH_OWN_MEMORY)
    assert "PATCHED!!" in result.stdout, (result.stdout, result.stderr)


def test_no_core_dump_and_the_kernel_survives_a_segfault(sandbox: Sandbox) -> None:
    marker = uuid.uuid4().hex
    assert sandbox.run(f"kept_through_the_crash = {marker!r}").status == "ok"
    before = set(os.listdir(sandbox.workspace))
    result = sandbox.run("import ctypes\nctypes.string_at(0)")
    assert result.reply["content"]["ename"] == "ExecutorDied"
    assert "segmentation fault" in result.reply["content"]["evalue"]
    after = set(os.listdir(sandbox.workspace))
    assert not [n for n in after - before if n.startswith("core")]
    # Rolled back to the state before the cell, on every host: also where the sandbox
    # has no /proc of its own (k8s-unconfined, and containers that mask their /proc),
    # where pid 1 checks the snapshot through its pidfd.
    kept = sandbox.run("print(kept_through_the_crash)")
    assert kept.stdout.strip() == marker, (result.reply["content"]["evalue"], kept.stderr)


def test_workspace_in_home_keeps_secrets_and_config_out_of_reach(
    tmp_path_factory: pytest.TempPathFactory, host: Host
) -> None:
    """A notebook server started in ~ makes ~ the workspace: credentials and config must stay hidden."""
    from tests.security.conftest import LEVEL_KERNELS, start_sandbox

    for level in sorted(LEVEL_KERNELS):
        home = tmp_path_factory.mktemp(f"home-{level}")
        home.chmod(0o777)
        (home / ".ssh").mkdir()
        (home / ".ssh" / "id_rsa").write_text(host.secret_text)
        kernels = home / ".local" / "share" / "jupyter" / "kernels" / "python3"
        kernels.mkdir(parents=True)
        (kernels / "kernel.json").write_text('{"argv": ["python"]}')
        (home / ".jupyter").mkdir()
        (home / ".bashrc").write_text("# the user's own\n")
        (home / "project").mkdir()
        (home / "project").chmod(0o777)
        before = (kernels / "kernel.json").read_text()
        box = start_sandbox(level, home, host, home=home)
        try:
            code = (
                "import os\n"
                "for path in ('.ssh/id_rsa', '.local/share/jupyter/kernels/python3/kernel.json', '.bashrc'):\n"
                "    try:\n        print('READ', open(path).read())\n    except OSError as e:\n        print('denied', e.errno)\n"
                "for path in ('.local/share/jupyter/kernels/python3/kernel.json', '.jupyter/jupyter_server_config.py', '.bashrc'):\n"
                "    try:\n        open(path, 'w').write('evil'); print('WROTE', path)\n    except OSError as e:\n        print('denied', e.errno)\n"
                "open('project/result.txt', 'w').write('ok'); print('project ok')\n"
            )
            result = box.run(code)
            assert host.secret_text not in result.stdout
            assert "READ" not in result.stdout, result.stdout
            assert "WROTE" not in result.stdout, result.stdout
            assert "project ok" in result.stdout, result.stdout + result.stderr
            assert (kernels / "kernel.json").read_text() == before
            assert not (home / ".jupyter" / "jupyter_server_config.py").exists()
            assert (home / ".bashrc").read_text() == "# the user's own\n"
            # Hidden, not emptied: neither read (as empty) nor written (into nothing).
            assert result.stdout.count("denied") == 6, result.stdout
            assert (home / "project" / "result.txt").read_text() == "ok"
        finally:
            box.close()


def test_a_workspace_inside_the_kernels_code_stays_read_only(host: Host) -> None:
    """A notebook opened in the project checkout or in site-packages: the kernel's code
    lives there, and a cell that changed it would run outside the sandbox next time."""
    import sandbox_kernel
    from tests.security.conftest import LEVEL_KERNELS, start_sandbox

    package = Path(sandbox_kernel.__file__).resolve().parent
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    for level in sorted(LEVEL_KERNELS):
        for workspace in (package.parent, package, site_packages):
            probe = workspace / f"zz_sandbox_probe_{uuid.uuid4().hex}.pth"
            box = start_sandbox(level, workspace, host)
            try:
                result = box.run(
                    "import os\n"
                    "print('cwd', os.getcwd())\n"
                    f"try:\n    open({str(probe)!r}, 'w').write('import os')\n    print('WROTE')\n"
                    "except OSError as e:\n    print('denied', e.errno)\n"
                )
                assert f"cwd {workspace}" in result.stdout, result.stdout + result.stderr
                assert "denied" in result.stdout, (level, workspace, result.stdout)
                assert not probe.exists()
                if level == "namespaces":
                    # Read-only in the executor's own view: nothing there for the
                    # workspace scan to undo (a checkout: 5,283 directories, 156 ms a scan).
                    report = box.run("%sandbox").stdout
                    assert "the whole workspace is read-only in the sandbox" in report, report
            finally:
                if probe.exists():  # (a read-only filesystem refuses even a missing unlink)
                    probe.unlink()
                box.close()
