"""The trusted side's workspace scan (sandbox_kernel/kernel/hygiene.py), without a sandbox.

The test process plays the cell: it plants entries between two scans, and the
scan must undo exactly what a trusted program outside could trip on.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

from sandbox_kernel.config import CONTROL_FILES, SHADOW_MODULES
from sandbox_kernel.kernel.hygiene import WorkspaceGuard


def _guard(ws: Path) -> WorkspaceGuard:
    return WorkspaceGuard(str(ws), list(CONTROL_FILES), list(SHADOW_MODULES))


def _project(tmp_path: Path) -> tuple[Path, Path]:
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    (ws / "data" / "table.csv").write_text("a,b\n")
    (ws / "inside-link.csv").symlink_to("data/table.csv")
    (ws / ".git" / "hooks").mkdir(parents=True)
    (ws / ".git" / "objects").mkdir()
    (ws / ".git" / "config").write_text("[core]\n\tbare = false\n")
    (ws / "conftest.py").write_text("# the user's own\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    return ws, outside


def test_links_and_special_files_made_during_a_cell_are_removed(tmp_path: Path) -> None:
    ws, outside = _project(tmp_path)
    guard = _guard(ws)
    (ws / "data.csv").symlink_to(outside / "secret.txt")
    (ws / "data" / "deep.txt").symlink_to("../../outside/secret.txt")
    (ws / "ok-link").symlink_to("data/table.csv")
    os.link(outside / "secret.txt", ws / "hard.txt")
    (ws / "real.txt").write_text("x")
    os.link(ws / "real.txt", ws / "data" / "real-hard.txt")
    os.mkfifo(ws / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(ws / "agent.sock"))
    (ws / "tool").write_text("#!/bin/sh\n")
    os.chmod(ws / "tool", 0o4755)
    findings = {f.path: f for f in guard.scan()}
    sock.close()
    for gone in ("data.csv", "data/deep.txt", "hard.txt", "pipe", "agent.sock"):
        assert not os.path.lexists(ws / gone), gone
        assert findings[gone].action == "removed", findings[gone]
    assert (outside / "secret.txt").read_text() == "secret"  # only the name in the workspace
    assert not (ws / "tool").stat().st_mode & stat.S_ISUID
    assert findings["tool"].action == "setuid/setgid bits cleared"
    # What stays inside the workspace is the user's business.
    assert (ws / "ok-link").read_text() == "a,b\n"
    assert (ws / "inside-link.csv").read_text() == "a,b\n"
    assert (ws / "data" / "real-hard.txt").read_text() == "x"
    assert set(findings) == {"data.csv", "data/deep.txt", "hard.txt", "pipe", "agent.sock", "tool"}


def test_control_files_and_shadow_modules_are_put_back_or_removed(tmp_path: Path) -> None:
    ws, _ = _project(tmp_path)
    guard = _guard(ws)
    (ws / ".git" / "config").write_text("[core]\n\tfsmonitor = touch /tmp/pwned\n")
    (ws / ".git" / "hooks" / "post-checkout").write_text("#!/bin/sh\nevil\n")
    (ws / ".git" / "objects" / "ab").write_text("object")  # data: left alone
    (ws / "conftest.py").write_text("import os; os.system('evil')\n")
    (ws / "ipykernel_launcher.py").write_text("evil\n")
    (ws / "pip").mkdir()
    (ws / "pip" / "__main__.py").write_text("evil\n")
    (ws / "sub" / ".git").mkdir(parents=True)
    (ws / "sub" / ".git" / "config").write_text("[core]\n\tfsmonitor = evil\n")
    (ws / "helper.py").write_text("def f(): return 1\n")  # ordinary code stays
    findings = {f.path: f for f in guard.scan()}
    assert (ws / ".git" / "config").read_text() == "[core]\n\tbare = false\n"
    assert (ws / "conftest.py").read_text() == "# the user's own\n"
    for gone in (".git/hooks/post-checkout", "ipykernel_launcher.py", "pip", "sub/.git"):
        assert not os.path.lexists(ws / gone), gone
    assert (ws / ".git" / "objects" / "ab").exists()
    assert (ws / "helper.py").exists()
    assert findings[".git/config"].action.startswith("restored")
    assert "pip/__main__.py" not in findings  # reported once, with its directory
    # A second scan with nothing new finds nothing.
    assert guard.scan() == []


def test_deleted_control_files_come_back(tmp_path: Path) -> None:
    ws, _ = _project(tmp_path)
    guard = _guard(ws)
    (ws / ".git" / "config").unlink()
    findings = guard.scan()
    assert (ws / ".git" / "config").read_text() == "[core]\n\tbare = false\n"
    assert [f.path for f in findings] == [".git/config"]


def test_entries_older_than_the_last_scan_are_not_examined(tmp_path: Path) -> None:
    ws, outside = _project(tmp_path)
    (ws / "users-own-link").symlink_to(outside / "secret.txt")  # before the kernel
    # File times come from a clock with 4 ms ticks: the kernel starts a tick later.
    time.sleep(0.02)
    guard = _guard(ws)
    assert guard.scan() == []
    assert os.path.islink(ws / "users-own-link")


def test_what_the_user_changes_between_cells_is_kept(tmp_path: Path) -> None:
    ws, _ = _project(tmp_path)
    guard = _guard(ws)
    # Outside the sandbox, between cells: a new clone and an edited config.
    (ws / "clone" / ".git").mkdir(parents=True)
    (ws / "clone" / ".git" / "config").write_text("[remote]\n")
    (ws / ".git" / "config").write_text("[user]\n\tname = me\n")
    guard.begin_cell()
    # The cell.
    (ws / "clone" / ".git" / "config").write_text("[core]\n\tfsmonitor = evil\n")
    findings = guard.scan()
    assert [f.path for f in findings] == ["clone/.git/config"]
    assert (ws / "clone" / ".git" / "config").read_text() == "[remote]\n"
    assert (ws / ".git" / "config").read_text() == "[user]\n\tname = me\n"


def test_files_the_sandbox_made_as_another_uid_are_removed(tmp_path: Path) -> None:
    import pytest

    if os.geteuid() != 0:
        pytest.skip("needs root to give a file another owner")
    ws, _ = _project(tmp_path)
    guard = WorkspaceGuard(
        str(ws), list(CONTROL_FILES), list(SHADOW_MODULES), sandbox_uids=range(12345, 12350)
    )
    (ws / "sandboxs.txt").write_text("x")
    os.chown(ws / "sandboxs.txt", 12345, 12345)
    # Made by someone else outside the sandbox (a server running as another user):
    # reported, never removed.
    (ws / "colleagues.txt").write_text("x")
    os.chown(ws / "colleagues.txt", 23456, 23456)
    findings = {f.path: f.action for f in guard.scan()}
    assert findings == {
        "sandboxs.txt": "removed",
        "colleagues.txt": "left as is (made outside the sandbox)",
    }
    assert not (ws / "sandboxs.txt").exists()
    assert (ws / "colleagues.txt").exists()


def test_refusals_in_the_workspace_are_explained_on_the_exception() -> None:
    from sandbox_kernel.child.explain import Explainer

    facts = {
        "level": "namespaces",
        "workspace": "/home/ann/course",
        "workspace_writable": True,
        "private": ["/tmp", "/home/ann"],
        "read_only_inside": ["/home/ann/course/.git"],
    }
    explainer = Explainer(facts)
    link = PermissionError(1, "Operation not permitted", "/home/ann/.bashrc", None, "nb.ipynb")
    assert "Symbolic links cannot be made" in (explainer.note(link) or "")
    rofs = OSError(30, "Read-only file system", "/home/ann/course/.git/config")
    assert "Isolation.control_files" in (explainer.note(rofs) or "")
    # An ordinary file of the workspace is writable: nothing to explain.
    other = PermissionError(13, "Permission denied", "/home/ann/course/data.csv")
    assert explainer.note(other) is None


def test_pth_files_are_guarded_only_in_site_packages(tmp_path: Path) -> None:
    ws, _ = _project(tmp_path)
    site = ws / "myenv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    guard = _guard(ws)
    (ws / "model.pth").write_bytes(b"weights")  # PyTorch's usual name: the user's data
    (site / "evil.pth").write_text("import os; os.system('evil')\n")
    findings = {f.path: f.action for f in guard.scan()}
    assert findings == {"myenv/lib/python3.11/site-packages/evil.pth": "removed"}
    assert (ws / "model.pth").read_bytes() == b"weights"


def test_changes_in_a_tree_bound_read_only_are_the_users(tmp_path: Path) -> None:
    """At the namespaces level the sandbox cannot write a bound .git: a rebase the user
    runs in a terminal during a long cell is left alone, and becomes the state kept."""
    ws, _ = _project(tmp_path)
    guard = _guard(ws)
    guard.bound = {".git"}
    (ws / ".git" / "rebase-merge").mkdir()
    (ws / ".git" / "rebase-merge" / "git-rebase-todo").write_text("pick abc\n")
    (ws / ".git" / "config").write_text("[user]\n\tname = me\n")
    (ws / ".git" / "index.lock").write_text("")
    assert guard.scan() == []
    assert (ws / ".git" / "rebase-merge" / "git-rebase-todo").exists()
    # Not bound any more (the next executor could not bind it): the user's state is kept.
    guard.bound = set()
    (ws / ".git" / "config").write_text("[core]\n\tfsmonitor = evil\n")
    guard.scan()
    assert (ws / ".git" / "config").read_text() == "[user]\n\tname = me\n"


def test_a_bytecode_cache_for_the_users_module_is_removed(tmp_path: Path) -> None:
    """A .pyc whose header matches helper.py runs for the user's next import, unseen in
    the source (a git diff shows nothing): the sandbox writes none of its own."""
    ws, _ = _project(tmp_path)
    (ws / "helper.py").write_text("def f():\n    return 1\n")
    time.sleep(0.02)
    guard = _guard(ws)
    (ws / "__pycache__").mkdir()
    (ws / "__pycache__" / "helper.cpython-311.pyc").write_bytes(b"forged")
    findings = {f.path: f.action for f in guard.scan()}
    assert findings == {"__pycache__": "removed"}
    assert (ws / "helper.py").exists()


def test_a_wide_workspace_is_scanned_within_a_small_descriptor_budget(tmp_path: Path) -> None:
    """A busy /tmp as the workspace: thousands of sibling directories, soft limit 1024.

    The walk used to open every waiting subdirectory at once: EMFILE in the trusted
    kernel, and the cell got no reply (CI's unprivileged run, /tmp with 1,175 entries).
    """
    import resource

    ws, outside = _project(tmp_path)
    for index in range(1500):
        (ws / f"d{index}" / "inner").mkdir(parents=True)
    guard = _guard(ws)
    open_now = len(os.listdir("/proc/self/fd"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 64, hard))
    try:
        (ws / "d0" / "late.csv").symlink_to(outside / "secret.txt")
        findings = {f.path: f for f in guard.scan()}
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert findings["d0/late.csv"].action == "removed"
    assert not os.path.lexists(ws / "d0" / "late.csv")
    assert len(os.listdir("/proc/self/fd")) <= open_now  # nothing left open


def _venv(ws: Path) -> Path:
    """A project's .venv as the kernel's own prefix: pip and a bytecode cache, guarded."""
    site = ws / ".venv" / "lib" / "python3.11" / "site-packages"
    (site / "pip" / "__pycache__").mkdir(parents=True)
    (site / "pip" / "__init__.py").write_text("# pip\n")
    (site / "pip" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"pyc")
    (site / "numpy").mkdir()
    (site / "numpy" / "__init__.py").write_text("# numpy\n")
    return site


def test_a_tree_read_only_in_the_executors_view_is_not_walked(tmp_path: Path) -> None:
    """The kernel's own .venv inside the workspace is bound read-only (namespaces): no
    cell can change it, so the scans leave it out, and the guard keeps nothing of it."""
    ws, outside = _project(tmp_path)
    site = _venv(ws)
    guard = _guard(ws)
    assert ".venv/lib/python3.11/site-packages/pip/__init__.py" in guard.kept
    tops_before = guard.top_entries(64)
    guard.scan()
    walked_before = guard.stats.dirs
    guard.freeze({".venv"})
    assert not any(rel.startswith(".venv/") for rel in [*guard.known, *guard.kept])
    # The binds asked for stay those the executor was built with (a spare compares them).
    assert guard.top_entries(64) == tops_before
    guard.begin_cell()
    (site / "pip" / "__init__.py").write_text("# changed by the user, pip install -U pip\n")
    (ws / "data" / "late.csv").symlink_to(outside / "secret.txt")  # outside the frozen tree
    findings = {f.path: f.action for f in guard.scan()}
    assert findings == {"data/late.csv": "removed"}
    venv_dirs = sum(1 for _ in os.walk(ws / ".venv"))
    assert guard.stats.dirs == walked_before - venv_dirs  # none of .venv's opened
    assert (site / "pip" / "__init__.py").read_text().startswith("# changed by the user")


def test_a_tree_no_longer_read_only_is_guarded_again_as_it_is_now(tmp_path: Path) -> None:
    """A new executor without that bind (another level): the tree's guarded files as
    they are before its first cell are the ones put back."""
    ws, _ = _project(tmp_path)
    site = _venv(ws)
    guard = _guard(ws)
    guard.freeze({".venv"})
    (site / "pip" / "__init__.py").write_text("# upgraded by the user\n")
    guard.freeze(set())
    guard.begin_cell()
    (site / "pip" / "__init__.py").write_text("import os; os.system('evil')\n")
    findings = {f.path: f.action for f in guard.scan()}
    assert findings[".venv/lib/python3.11/site-packages/pip/__init__.py"].startswith("restored")
    assert (site / "pip" / "__init__.py").read_text() == "# upgraded by the user\n"


def test_a_guarded_file_of_a_frozen_tree_changed_through_another_name_is_put_back(
    tmp_path: Path,
) -> None:
    """uv links a virtualenv's files from its cache: with the cache inside the
    workspace (UV_CACHE_DIR=.uv-cache), a cell can write the .venv's pip through the
    cache's name, without touching the read-only tree."""
    ws, outside = _project(tmp_path)
    site = _venv(ws)
    pip = site / "pip" / "__init__.py"
    (ws / ".uv-cache").mkdir()
    os.link(pip, ws / ".uv-cache" / "pip-init")
    os.link(site / "numpy" / "__init__.py", outside / "numpy-init")  # a cache outside
    time.sleep(0.02)  # one tick of the clock file times come from
    guard = _guard(ws)
    guard.freeze({".venv"})
    time.sleep(0.02)
    assert guard.scan() == []  # nothing changed: nothing put back
    (ws / ".uv-cache" / "pip-init").write_text("import os; os.system('evil')\n")
    os.utime(site / "numpy" / "__init__.py")  # ctime moves; no content change, not guarded
    findings = {f.path: f.action for f in guard.scan()}
    assert findings == {
        ".venv/lib/python3.11/site-packages/pip/__init__.py": (
            "restored as it was when the kernel started"
        )
    }
    assert pip.read_text() == "# pip\n"
    assert (site / "numpy" / "__init__.py").exists()


def test_hard_links_into_a_frozen_tree_count_its_names(tmp_path: Path) -> None:
    """A file linked (outside the sandbox) to one in the frozen tree has both names in
    the workspace: not 'a hard link to a file outside'."""
    ws, _ = _project(tmp_path)
    site = _venv(ws)
    guard = _guard(ws)
    guard.freeze({".venv"})
    os.link(site / "numpy" / "__init__.py", ws / "numpy_init_copy.py")
    assert {f.path for f in guard.scan()} == set()
    assert (ws / "numpy_init_copy.py").exists()


def test_frozen_trees_are_the_read_only_mounts_with_nothing_writable_under_them() -> None:
    from sandbox_kernel.kernel.hygiene import frozen_trees

    view = {
        "/": True,
        "/home/u/proj": False,  # the workspace
        "/home/u/proj/.venv": True,  # the kernel's prefix: a code root
        "/home/u/proj/.venv/lib": True,  # nested: the outermost is enough
        "/home/u/proj/.git": True,  # a guarded entry the kernel asked to bind
        "/home/u/proj/ro-data": True,  # read-only, but with a writable mount under it
        "/home/u/proj/ro-data/out": False,
        "/home/u/other": True,  # not in the workspace
    }
    assert frozen_trees(view, "/home/u/proj", exclude=["/home/u/proj/.git"]) == {".venv"}
    # The notebook in the checkout of an editable install: the workspace is the kernel's
    # code, read-only as a whole.
    checkout = {"/": True, "/home/u/proj": True, "/home/u/proj/.venv/etc/jupyter": True}
    assert frozen_trees(checkout, "/home/u/proj") == {"."}
    # Read-only with its entries granted one by one (a server started in ~): not whole.
    home = {"/home/u": True, "/home/u/notes": False, "/home/u/.pyenv": True}
    assert frozen_trees(home, "/home/u") == {".pyenv"}


def test_a_workspace_read_only_as_a_whole_is_not_walked_at_all(tmp_path: Path) -> None:
    ws, _ = _project(tmp_path)
    _venv(ws)
    guard = _guard(ws)
    tops_before = guard.top_entries(64)
    guard.freeze({"."})
    assert guard.known == set()
    assert guard.kept == {}
    assert guard.top_entries(64) == tops_before
    guard.begin_cell()
    assert guard.scan() == []
    assert guard.stats.dirs == 0


def test_a_workspace_read_only_as_a_whole_still_watches_its_multi_named_guarded_files(
    tmp_path: Path,
) -> None:
    """The other name may lie in a writable extra mount outside the workspace."""
    ws, outside = _project(tmp_path)
    pip = _venv(ws) / "pip" / "__init__.py"
    os.link(pip, outside / "pip-init")
    time.sleep(0.02)  # one tick of the clock file times come from
    guard = _guard(ws)
    guard.freeze({"."})
    time.sleep(0.02)
    assert guard.scan() == []  # nothing changed: nothing put back
    (outside / "pip-init").write_text("import os; os.system('evil')\n")
    (finding,) = guard.scan()
    assert finding.path == ".venv/lib/python3.11/site-packages/pip/__init__.py"
    assert finding.what.startswith("changed"), finding
    assert finding.action == "restored as it was when the kernel started"
    assert guard.stats.dirs == 0
    assert pip.read_text() == "# pip\n"


def test_the_mount_view_is_read_from_mountinfo_with_its_escapes() -> None:
    from sandbox_kernel.kernel.hygiene import mount_view

    view = mount_view(os.getpid())
    assert view.get("/") is not None
    assert mount_view(None) == {}
