"""The workspace as a boundary: what a cell leaves there for trusted programs to read or run.

The workspace is the one host directory a cell writes, and programs outside the
sandbox read, write and run what is in it afterwards: the Jupyter server (saves,
checkpoints, downloads), nbconvert, a grader, git, the user's shell and their next
ordinary kernel. Each test plants what a hostile notebook would and then checks
from outside, as those programs would see it, that nothing got through.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.conftest import LEVEL_KERNELS, OS_LAYER_ONLY, Host, Sandbox, start_sandbox
from tests.utils import Result, reply_to, wait_for_output


@pytest.fixture(scope="module", params=sorted(LEVEL_KERNELS))
def box(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, host: Host
) -> Iterator[Sandbox]:
    workspace = tmp_path_factory.mktemp(f"shared-{request.param}")
    workspace.chmod(0o777)
    sandbox = start_sandbox(request.param, workspace, host)
    try:
        yield sandbox
    finally:
        sandbox.close()


def _all_text(result) -> str:
    return json.dumps([m["content"] for m in result.outputs]) + json.dumps(result.reply["content"])


def _naive_reader(root: Path) -> str:
    """What a grader or a file browser that follows links would show: every file's bytes."""
    seen: list[str] = []
    for dirpath, dirs, names in os.walk(root, followlinks=True):
        for name in [*names, *dirs]:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                try:
                    with open(path, "rb") as f:
                        seen.append(f.read(1 << 20).decode("utf-8", "replace"))
                except OSError:
                    continue
    return "\n".join(seen)


def _dangerous_entries(root: Path) -> list[str]:
    """Entries no trusted reader should meet, found with lstat (links are not followed)."""
    found: list[str] = []
    owner = root.stat().st_uid
    for dirpath, dirs, names in os.walk(root):
        for name in [*names, *dirs]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(path)
                if not (target + "/").startswith(str(root.resolve()) + "/"):
                    found.append(f"{rel}: symlink out to {os.readlink(path)}")
            elif stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
                found.append(f"{rel}: fifo or socket")
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append(f"{rel}: device node")
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISDIR(st.st_mode):
                found.append(f"{rel}: setuid/setgid {oct(st.st_mode)}")
            if st.st_uid != owner:
                found.append(f"{rel}: owned by uid {st.st_uid}")
    return found


ATTEMPT = """
import os, socket, stat, subprocess
def attempt(what, fn):
    try:
        fn()
        print('MADE', what)
    except (OSError, subprocess.CalledProcessError) as e:
        print('REFUSED', what, getattr(e, 'errno', e))
"""
# One cell per kind of trap, so that each refusal's own notice is shown.
TRAPS = [
    "attempt('symlink-secret', lambda: os.symlink({secret!r}, 'data.csv'))",
    "attempt('symlink-home', lambda: os.symlink({home_key!r}, 'notes.txt'))",
    "attempt('symlink-dir', lambda: os.symlink('/', 'root-link'))",
    "attempt('ln-s', lambda: subprocess.run(['ln', '-s', {secret!r}, 'shell-link'], check=True,"
    " stderr=subprocess.DEVNULL) and None)",
    "attempt('hardlink-secret', lambda: os.link({secret!r}, 'hard.txt'))",
    "attempt('fifo', lambda: os.mkfifo('pipe'))",
    "attempt('device', lambda: os.mknod('null-dev', stat.S_IFCHR | 0o666, os.makedev(1, 3)))",
    # (At the landlock level seccomp refuses socket(2) itself; at the namespaces level
    # the socket is made, and the scan at the cell's end removes it.)
    "attempt('socket', lambda: socket.socket(socket.AF_UNIX).bind('agent.sock'))",
    "open('tool', 'w').write('#!/bin/sh\\necho hi\\n')\n"
    "attempt('chmod-setuid', lambda: os.chmod('tool', 0o4755))\n"
    "attempt('chmod-setgid', lambda: os.chmod('tool', 0o2755))",
    "attempt('open-setuid', lambda: os.close(os.open('tool2', os.O_CREAT | os.O_WRONLY, 0o6755)))",
    # What stays inside the workspace is the user's business.
    "open('real.txt', 'w').write('inside')\n"
    "attempt('hardlink-inside', lambda: os.link('real.txt', 'real-hard.txt'))",
]


def test_trap_entries_are_refused_or_gone_before_a_reader_runs(box: Sandbox, host: Host) -> None:
    ws = box.workspace
    # The user's own link inside the workspace, made before the cell: it must keep working.
    (ws / "data").mkdir(exist_ok=True)
    (ws / "data" / "table.csv").write_text("a,b\n")
    (ws / "table-link.csv").unlink(missing_ok=True)
    (ws / "table-link.csv").symlink_to("data/table.csv")
    assert box.run(ATTEMPT).status == "ok"
    stdout, text = "", ""
    for trap in TRAPS:
        code = trap.format(
            secret=str(host.canary_read), home_key=str(host.fake_home / ".ssh" / "id_rsa")
        )
        result = box.run(code)
        assert result.status == "ok", result.text()
        stdout += result.stdout
        text += _all_text(result)
    # Checked from outside, as the programs that read the workspace would see it.
    assert _dangerous_entries(ws) == [], stdout
    assert host.secret_text not in _naive_reader(ws)
    for made in ("symlink-secret", "symlink-home", "symlink-dir", "ln-s", "fifo", "device"):
        assert f"MADE {made}" not in stdout, stdout
    for made in ("chmod-setuid", "chmod-setgid", "open-setuid"):
        assert f"MADE {made}" not in stdout, stdout
    # Refusals are reported to the user, naming the sandbox and why.
    assert "symbolic links cannot be made in the sandbox" in text, text
    assert "FIFOs, sockets and device nodes cannot be made" in text, text
    assert "setuid and setgid bits cannot be set" in text, text
    if "MADE socket" in stdout:
        # Made (namespaces level), then removed before the reply, and the user told.
        assert (
            "agent.sock: a socket, which programs outside the sandbox would block on; removed"
            in text
        ), text
    # Positive controls: the user's inside link and the cell's inside hardlink remain.
    assert (ws / "table-link.csv").read_text() == "a,b\n"
    assert "MADE hardlink-inside" in stdout, stdout
    assert (ws / "real-hard.txt").read_text() == "inside"
    assert (ws / "tool").read_text().startswith("#!/bin/sh")


def test_path_binds_respect_the_protected_paths(
    tmp_path_factory: pytest.TempPathFactory, host: Host
) -> None:
    """~/.local/bin on PATH (Ubuntu's .profile) must not bring ~/.local into the sandbox."""
    for level in sorted(LEVEL_KERNELS):
        home = tmp_path_factory.mktemp(f"pathhome-{level}")
        home.chmod(0o755)
        bin_dir = home / ".local" / "bin"
        bin_dir.mkdir(parents=True)
        token = "path-token-" + uuid.uuid4().hex
        (bin_dir / "deploy").write_text(f"#!/bin/sh\nTOKEN={token}\n")
        (bin_dir / "deploy").chmod(0o755)
        workspace = tmp_path_factory.mktemp(f"pathws-{level}")
        workspace.chmod(0o777)
        env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
        sandbox = start_sandbox(level, workspace, host, home=home, env=env)
        try:
            result = sandbox.run(
                f"try:\n    print('READ', open({str(bin_dir / 'deploy')!r}).read())\n"
                "except OSError as e:\n    print('DENIED', e.errno)\n"
                f"import os\nprint('LISTED', os.path.isdir({str(bin_dir)!r}))"
            )
            assert token not in _all_text(result)
            assert "DENIED" in result.stdout, result.stdout
            if level == "namespaces":
                # Not even there: the mount namespace shows no ~/.local at all.
                assert "LISTED False" in result.stdout, result.stdout
        finally:
            sandbox.close()


# -- files that trusted programs run later -------------------------------------------------


def _marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')\n"


def _plants(marker_dir: Path) -> dict[str, dict[str, str]]:
    """What a cell writes, per tool: relative path -> content. Each runs the cell's code."""
    hook = f"#!/bin/sh\ntouch {marker_dir / 'git'}\n"
    return {
        "git": {
            ".git/config": (
                "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
                f"\tfsmonitor = {marker_dir / 'fsmonitor.sh'}\n"
            ),
            ".git/hooks/fsmonitor-watchman": hook,
        },
        "kernel": {"ipykernel_launcher.py": _marker_code(marker_dir / "kernel")},
        "pip": {
            "pip/__init__.py": "",
            "pip/__main__.py": _marker_code(marker_dir / "pip"),
        },
        "pytest": {"conftest.py": _marker_code(marker_dir / "pytest")},
    }


def _run_tools(directory: Path, marker_dir: Path) -> None:
    """What the user (or a grader, or a shell prompt) runs there later, outside the sandbox."""
    import subprocess
    import sys

    # The fsmonitor hook git would run: it marks that it ran.
    fsmonitor = marker_dir / "fsmonitor.sh"
    fsmonitor.write_text(f"#!/bin/sh\ntouch {marker_dir / 'git'}\n")
    fsmonitor.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "PYTHONPATH")}
    commands = [
        ["git", "status", "--short"],
        [sys.executable, "-m", "ipykernel_launcher", "--version"],
        [sys.executable, "-m", "pip", "--version"],
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--co"],
    ]
    for command in commands:
        # Their exit status does not matter (pytest finds no tests): only the markers do.
        subprocess.run(
            command, check=False, cwd=directory, env=env, capture_output=True, timeout=120
        )


def _prove_the_traps_work(tmp_path: Path) -> None:
    """Positive control: planted from outside, each file does run when the tool runs."""
    scratch = tmp_path / "scratch"
    markers = tmp_path / "control-markers"
    markers.mkdir()
    import subprocess

    subprocess.run(["git", "init", "-q", str(scratch)], check=True)
    for files in _plants(markers).values():
        for rel, content in files.items():
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            (scratch / rel).write_text(content)
    _run_tools(scratch, markers)
    ran = sorted(p.name for p in markers.iterdir() if p.name != "fsmonitor.sh")
    assert ran == ["git", "kernel", "pip", "pytest"], f"a trap does not work: only {ran} ran"


def test_planted_control_files_and_shadow_modules_never_run(
    box: Sandbox, host: Host, tmp_path: Path
) -> None:
    import subprocess

    _prove_the_traps_work(tmp_path)
    ws = box.workspace / "repo"
    if not ws.exists():
        ws.mkdir()
        ws.chmod(0o777)
        # The user's own repository, there before the kernel's start... (a second
        # workspace level: the box's workspace is shared by this module's tests)
        subprocess.run(["git", "init", "-q", str(ws)], check=True)
    markers = tmp_path / "markers"
    markers.mkdir()
    markers.chmod(0o777)
    config_before = (ws / ".git" / "config").read_bytes()
    cells = []
    for tool, files in _plants(markers).items():
        lines = ["import os"]
        for rel, content in files.items():
            path = f"repo/{rel}"
            lines.append(f"os.makedirs(os.path.dirname({path!r}), exist_ok=True)")
            lines.append(
                f"try:\n    open({path!r}, 'w').write({content!r})\n    print('WROTE', {path!r})\n"
                f"except OSError as e:\n    print('REFUSED', {path!r}, e.errno)"
            )
        cells.append((tool, "\n".join(lines)))
    text = ""
    for _tool, code in cells:
        result = box.run(code)
        assert result.status == "ok", result.text()
        text += _all_text(result)
    # Checked from outside: the tools run in the workspace and none runs the cell's code.
    _run_tools(ws, markers)
    ran = sorted(p.name for p in markers.iterdir() if p.name != "fsmonitor.sh")
    assert ran == [], f"the cell's code ran outside the sandbox through {ran}"
    assert (ws / ".git" / "config").read_bytes() == config_before
    for gone in ("ipykernel_launcher.py", "pip", "conftest.py", ".git/hooks/fsmonitor-watchman"):
        assert not (ws / gone).exists(), gone
    # ... and the user was told, naming the setting.
    assert "Isolation.control_files" in text, text
    assert "Isolation.shadow_modules" in text, text


# -- trusted writers after a hostile cell ----------------------------------------------------

# Each attempt says whether the sandbox let it through (MADE) or refused it (REFUSED errno).
ATTEMPT_OS = """
import os
def attempt(what, fn):
    try:
        fn()
        print('MADE', what)
    except OSError as e:
        print('REFUSED', what, e.errno)
"""

WRITER_TRAPS = (
    ATTEMPT_OS
    + """
os.makedirs('.ipynb_checkpoints', exist_ok=True)
# The next checkpoint of nb.ipynb would be copied into ~/.bashrc.
attempt('checkpoint-file', lambda: os.symlink({bashrc!r}, '.ipynb_checkpoints/nb-checkpoint.ipynb'))
# Every checkpoint of notebooks and files in sub/ would land in IPython's startup directory.
os.makedirs('sub', exist_ok=True)
attempt('checkpoint-dir', lambda: os.symlink({startup!r}, 'sub/.ipynb_checkpoints'))
# Saving the notebook itself would write ~/.bashrc.
attempt('notebook-itself', lambda: os.symlink({bashrc!r}, 'victim.ipynb'))
# nbconvert's FilesWriter output names.
attempt('nbconvert-ipynb', lambda: os.symlink({bashrc!r}, 'nb.nbconvert.ipynb'))
attempt('nbconvert-html', lambda: os.symlink({canary!r}, 'nb.html'))
attempt('hardlink-bashrc', lambda: os.link({bashrc!r}, 'nb2.ipynb'))
"""
)


def test_jupyter_server_and_nbconvert_write_nothing_outside_after_a_hostile_cell(
    box: Sandbox, host: Host
) -> None:
    result = _writers_after_a_hostile_cell(box, host)
    assert "MADE" not in result.stdout, result.stdout


@pytest.fixture(scope="module", params=sorted(LEVEL_KERNELS))
def box_without_seccomp(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, host: Host
) -> Iterator[Sandbox]:
    workspace = tmp_path_factory.mktemp(f"noseccomp-{request.param}")
    workspace.chmod(0o777)
    extra = [*OS_LAYER_ONLY, "--Isolation.seccomp=disabled"]
    sandbox = start_sandbox(request.param, workspace, host, extra=extra)
    try:
        yield sandbox
    finally:
        sandbox.close()


def test_each_layer_holds_without_seccomp(box_without_seccomp: Sandbox, host: Host) -> None:
    """Defence in depth: with seccomp off, Landlock refuses the links (landlock level) or
    the scan removes them before the reply (namespaces level, whose Landlock grants
    everything under /tmp, where these workspaces are)."""
    result = _writers_after_a_hostile_cell(box_without_seccomp, host)
    if "MADE" in result.stdout:
        text = _all_text(result)
        assert "outside the workspace; removed" in text, text


def _writers_after_a_hostile_cell(box: Sandbox, host: Host) -> Result:
    import nbformat
    from jupyter_server.services.contents.filemanager import FileContentsManager
    from nbconvert.writers import FilesWriter

    bashrc = host.fake_home / ".bashrc"
    bashrc.write_text("# the user's own\n")
    startup = host.fake_home / ".ipython" / "profile_default" / "startup"
    before = {bashrc: bashrc.read_bytes(), host.canary_write: host.canary_write.read_bytes()}
    startup_before = sorted(os.listdir(startup))
    code = WRITER_TRAPS.format(
        bashrc=str(bashrc), startup=str(startup), canary=str(host.canary_write)
    )
    result = box.run(code)
    assert result.status == "ok", result.text()

    # The user's next save in JupyterLab: the server's own contents and checkpoint code.
    ws = box.workspace
    cm = FileContentsManager(root_dir=str(ws))
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("print('shaped to run as shell code')"))
    model = {"type": "notebook", "format": "json", "content": nb}
    for path in ("nb.ipynb", "sub/nb.ipynb", "victim.ipynb", "nb2.ipynb"):
        cm.save(model, path)
        cm.create_checkpoint(path)
        cm.save(model, path)
    cm.save({"type": "file", "format": "text", "content": "x = 1\n"}, "sub/helper.py")
    cm.create_checkpoint("sub/helper.py")
    # nbconvert writing its outputs next to the notebook.
    writer = FilesWriter(build_directory=str(ws))
    writer.write(nbformat.writes(nb), {"output_extension": ".nbconvert.ipynb"}, "nb")
    writer.write("<html></html>", {"output_extension": ".html"}, "nb")

    # Checked from outside: nothing was written outside the workspace.
    for path, content in before.items():
        assert path.read_bytes() == content, f"{path} was written through a link"
    assert sorted(os.listdir(startup)) == startup_before
    assert _dangerous_entries(ws) == []
    assert (ws / ".ipynb_checkpoints" / "nb-checkpoint.ipynb").is_file()
    return result


def test_existing_control_files_are_read_only_during_the_cell(
    tmp_path_factory: pytest.TempPathFactory, host: Host
) -> None:
    """A trusted program that runs *during* a cell (jupyterlab-git polling git status)
    must not meet the cell's version: at the namespaces level existing control files
    and shadow modules are read-only binds; at the landlock level (no way to carve
    them out of the workspace's grant) they are put back at the cell's end."""
    import subprocess

    for level in sorted(LEVEL_KERNELS):
        ws = tmp_path_factory.mktemp(f"ro-{level}")
        ws.chmod(0o777)
        subprocess.run(["git", "init", "-q", str(ws)], check=True)
        (ws / "conftest.py").write_text("# the user's own\n")
        config = (ws / ".git" / "config").read_bytes()
        sandbox = start_sandbox(level, ws, host)
        try:
            kc = sandbox.kc
            # The cell holds on until the test has looked (no guessed sleep): it waits
            # for a file the test writes after its mid-cell checks.
            go = f"go-{uuid.uuid4().hex[:8]}"
            msg_id = kc.execute(
                "import os, time\n"
                "for path in ('.git/config', 'conftest.py'):\n"
                "    try:\n"
                "        open(path, 'a').write('\\n[core]\\n\\tfsmonitor = evil\\n')\n"
                "        print('WROTE', path, flush=True)\n"
                "    except OSError as e:\n"
                "        print('REFUSED', path, e.errno, flush=True)\n"
                "print('@@tried', flush=True)\n"
                "deadline = time.monotonic() + 60\n"
                f"while not os.path.exists({go!r}) and time.monotonic() < deadline:\n"
                "    time.sleep(0.05)\n"
            )
            # Mid-cell, from outside: what a poller would read now.
            printed = "".join(
                m["content"]["text"]
                for m in wait_for_output(kc, msg_id, "@@tried")
                if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream"
            )
            mid_config = (ws / ".git" / "config").read_bytes()
            mid_conftest = (ws / "conftest.py").read_text()
            if level == "namespaces":
                # The user's own git, in a terminal, while the cell runs (.git is
                # read-only only inside the sandbox): kept after the cell.
                (ws / ".git" / "description").write_text("the user's own\n")
            (ws / go).touch()
            reply_to(kc, msg_id)
            if level == "namespaces":
                assert printed.count("REFUSED") == 2, printed
                assert mid_config == config
                assert mid_conftest == "# the user's own\n"
            if level == "namespaces":
                assert (ws / ".git" / "description").read_text() == "the user's own\n"
            # After the cell, at every level.
            assert (ws / ".git" / "config").read_bytes() == config
            assert (ws / "conftest.py").read_text() == "# the user's own\n"
        finally:
            sandbox.close()


def test_a_tree_read_only_in_the_sandbox_is_left_out_of_the_scan_and_stays_as_it_was(
    tmp_path_factory: pytest.TempPathFactory, host: Host
) -> None:
    """The project's .venv a kernel runs from is bound read-only into the sandbox, and
    the scans leave it out (every __pycache__ of a virtualenv is a guarded tree: 10-60 ms
    a scan). That is sound only where no cell can change the tree, which the kernel
    reads from the executor's own mountinfo. A read-only extra mount inside the
    workspace stands for the .venv here. At the landlock level Landlock keeps it
    read-only, and it is scanned as before. Either way the user's next `pip` outside
    runs the real one."""
    for level in sorted(LEVEL_KERNELS):
        ws = tmp_path_factory.mktemp(f"frozen-{level}")
        ws.chmod(0o777)
        tools = ws / "tools"
        site = tools / "lib" / "python3" / "site-packages"
        pip = site / "pip" / "__init__.py"
        pip.parent.mkdir(parents=True)
        pip.write_text("# the real pip\n")
        # uv links a virtualenv's files from its cache; a cache inside the workspace is
        # writable, and a write through it changes the read-only tree's file too.
        (ws / "uv-cache").mkdir()
        os.link(pip, ws / "uv-cache" / "pip-init")
        for index in range(40):
            (site / f"pkg{index}" / "__pycache__").mkdir(parents=True)
        extra = [*OS_LAYER_ONLY, f"--Isolation.extra_mounts=['{tools}:ro']"]
        sandbox = start_sandbox(level, ws, host, extra=extra)
        try:
            result = sandbox.run(
                f"try:\n    open({str(pip)!r}, 'w').write('import os; os.system(\"id\")')\n"
                "    print('WROTE')\n"
                "except OSError as e:\n    print('REFUSED', e.errno)\n"
            )
            assert pip.read_text() == "# the real pip\n", (level, result.stdout)
            through_link = sandbox.run(
                "open('uv-cache/pip-init', 'w').write('import os; os.system(\"id\")')\n"
                "print('WROTE THROUGH THE LINK')\n"
            )
            assert "WROTE THROUGH THE LINK" in through_link.stdout, through_link.stdout
            report = sandbox.run("%sandbox").stdout
            # From outside, after the cells: what the user's pip would import.
            assert pip.read_text() == "# the real pip\n", (level, _all_text(through_link))
            if level == "namespaces":
                assert "REFUSED 30" in result.stdout, result.stdout  # EROFS
                assert "not scanned, read-only in the sandbox: tools" in report, report
            else:
                # Landlock grants the workspace's other entries one by one around it
                # (EACCES); no read-only mount shows that, so it is scanned as before.
                assert "REFUSED 13" in result.stdout, result.stdout
                assert "not scanned" not in report, report
        finally:
            sandbox.close()


# -- a real Jupyter server ---------------------------------------------------------------------

SERVER_TRAPS = (
    ATTEMPT_OS
    + """
attempt('download', lambda: os.symlink({secret!r}, 'data.csv'))
os.makedirs('.ipynb_checkpoints', exist_ok=True)
attempt('checkpoint', lambda: os.symlink({bashrc!r}, '.ipynb_checkpoints/nb-checkpoint.ipynb'))
attempt('notebook', lambda: os.symlink({bashrc!r}, 'nb.ipynb'))
"""
)


def test_a_real_jupyter_server_saves_checkpoints_and_serves_downloads_inside(
    tmp_path_factory: pytest.TempPathFactory, host: Host
) -> None:
    """JupyterLab's own HTTP paths after a hostile cell: save, checkpoint, download."""
    import urllib.error

    import nbformat

    from tests.integration.test_browser import install_kernelspec, start_lab
    from tests.integration.test_browser_sanitize import api_request

    bashrc = host.fake_home / ".bashrc"
    bashrc.write_text("# the user's own\n")
    for level in sorted(LEVEL_KERNELS):
        base = tmp_path_factory.mktemp(f"lab-{level}")
        base.chmod(0o755)
        with start_lab(base, [str(install_kernelspec(base / "prefix"))]) as server:
            ws = Path(server.root_dir)
            ws.chmod(0o777)
            sandbox = start_sandbox(level, ws, host)
            try:
                code = SERVER_TRAPS.format(secret=str(host.canary_read), bashrc=str(bashrc))
                result = sandbox.run(code)
                assert result.status == "ok", result.text()
            finally:
                sandbox.close()
            nb = nbformat.v4.new_notebook()
            nb.cells.append(nbformat.v4.new_code_cell("print('shaped to run as shell code')"))
            model = {"type": "notebook", "format": "json", "content": nb}
            # The user's save, the checkpoint JupyterLab asks for, a second save.
            api_request(server, "PUT", "/api/contents/nb.ipynb", model)
            api_request(server, "POST", "/api/contents/nb.ipynb/checkpoints")
            api_request(server, "PUT", "/api/contents/nb.ipynb", model)
            # The file browser's download of what the cell left.
            try:
                downloaded = api_request_raw(server, "/files/data.csv")
            except urllib.error.HTTPError:
                downloaded = b""
            assert host.secret_text.encode() not in downloaded
            assert bashrc.read_text() == "# the user's own\n", f"{level}: written through a link"
            assert _dangerous_entries(ws) == []


def api_request_raw(server, path: str) -> bytes:  # type: ignore[no-untyped-def]
    import urllib.request

    request = urllib.request.Request(
        f"{server.url}{path}", headers={"Authorization": f"token {server.token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return bytes(response.read())


FORGE_PYC = """
import importlib._bootstrap_external as be, os, sys
st = os.stat({source!r})
code = compile("open({marker!r}, 'w').write('ran')\\nVALUE = 1\\n", {source!r}, 'exec')
os.makedirs(os.path.join(os.path.dirname({source!r}), '__pycache__'), exist_ok=True)
target = os.path.join(os.path.dirname({source!r}), '__pycache__',
                      'helper.' + sys.implementation.cache_tag + '.pyc')
with open(target, 'wb') as f:
    f.write(be._code_to_timestamp_pyc(code, st.st_mtime, st.st_size))
print('FORGED', target)
"""


def _import_helper(directory: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "PYTHONPATH")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-c", "import helper"],
        check=False,
        cwd=directory,
        env=env,
        capture_output=True,
        timeout=60,
    )


def test_a_forged_bytecode_cache_never_runs(box: Sandbox, tmp_path: Path) -> None:
    """The user's helper.py, unchanged, with a __pycache__ entry forged to match it: the
    user's next import would run the cell's code and a git diff would show nothing."""
    # Positive control, planted from outside.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "helper.py").write_text("VALUE = 1\n")
    control = tmp_path / "control-marker"
    exec(FORGE_PYC.format(source=str(scratch / "helper.py"), marker=str(control)))
    _import_helper(scratch)
    assert control.exists(), "a forged bytecode cache does not run: the check would be vacuous"

    case = box.workspace / f"pyc-{uuid.uuid4().hex[:8]}"
    case.mkdir()
    case.chmod(0o777)
    (case / "helper.py").write_text("VALUE = 1\n")
    marker = tmp_path / "marker"
    tmp_path.chmod(0o777)
    result = box.run(FORGE_PYC.format(source=f"{case.name}/helper.py", marker=str(marker)))
    assert result.status == "ok", result.text()
    assert not (case / "__pycache__").exists()
    _import_helper(case)
    assert not marker.exists(), "the cell's bytecode ran outside the sandbox"
    assert "Isolation.shadow_modules" in _all_text(result)


# -- between cells ------------------------------------------------------------------------------

LATE_PLANT = """
import os, threading, time
os.makedirs({dir!r}, exist_ok=True)
def plant():
    time.sleep(1.0)
    with open(os.path.join({dir!r}, 'conftest.py'), 'w') as f:
        f.write({code!r})
    with open(os.path.join({dir!r}, 'done.txt'), 'w') as f:
        f.write('planted')
threading.Thread(target=plant, daemon=True).start()
print('started')
"""


def test_a_thread_that_plants_between_cells_is_undone_before_the_next_cell(
    box: Sandbox, tmp_path: Path
) -> None:
    """A cell leaves a thread that writes conftest.py a second after the cell ended. The
    user runs pytest in a terminal before any next cell: it must not run the cell's code."""
    import subprocess
    import sys
    import time

    name = f"late-{uuid.uuid4().hex[:8]}"
    late = box.workspace / name
    marker = tmp_path / "conftest-ran"
    tmp_path.chmod(0o777)
    code = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    result = box.run(LATE_PLANT.format(dir=name, code=code))
    assert result.status == "ok", result.text()
    assert "started" in result.stdout, result.text()
    # Checked from outside, while no cell runs: the thread wrote, then its plant went.
    deadline = time.monotonic() + 30
    while not (late / "done.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (late / "done.txt").exists(), "the cell's thread never wrote"
    while (late / "conftest.py").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (late / "conftest.py").exists(), "conftest.py planted between cells stayed"
    (late / "test_x.py").write_text("def test_x():\n    pass\n")
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(late)],
        cwd=late,
        capture_output=True,
        timeout=120,
        check=False,  # the test itself may pass or fail: only the marker matters
    )
    assert not marker.exists(), "pytest ran the conftest.py a thread planted between cells"
    # The next cell says what happened while no cell ran.
    text = _all_text(box.run("print('next')"))
    assert "while no cell was running" in text, text
    assert "conftest.py" in text, text
