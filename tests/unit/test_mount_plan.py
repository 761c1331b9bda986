"""The filesystem view the launcher plans, from the host's layout (no namespaces needed)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sandbox_kernel.isolation.mountns import MountPlan, plan_mounts


def _plan(workspace: str, home: Path, protected: list[str] | None = None) -> MountPlan:
    return plan_mounts(workspace, True, [], 64, False, str(home), protected or [])


def test_a_workspace_that_holds_the_kernels_code_is_planned_once_and_read_only(
    tmp_path: Path,
) -> None:
    # A notebook next to its project's .venv: the workspace is a code root too.
    prefix = os.path.realpath(sys.prefix)
    plan = _plan(prefix, tmp_path)
    at_prefix = [m for m in plan.mounts if m.path == prefix]
    assert len(at_prefix) == 1, at_prefix
    assert at_prefix[0].kind == "bind"
    assert not at_prefix[0].writable
    assert any("read-only" in note for note in plan.notes), plan.notes


def test_every_path_is_mounted_once(tmp_path: Path) -> None:
    workspace = tmp_path / "work"
    workspace.mkdir()
    plan = _plan(str(workspace), tmp_path / "home")
    paths = [m.path for m in plan.mounts]
    assert len(paths) == len(set(paths)), paths
    ws = [m for m in plan.mounts if m.path == str(workspace)]
    assert len(ws) == 1
    assert ws[0].writable


def test_protected_entries_of_a_writable_workspace_are_masked(tmp_path: Path) -> None:
    (tmp_path / ".jupyter").mkdir()
    (tmp_path / ".bashrc").write_text("")
    (tmp_path / "project").mkdir()
    protected = [str(tmp_path / ".jupyter"), str(tmp_path / ".bashrc")]
    plan = _plan(str(tmp_path), tmp_path, protected)
    kinds = {m.path: m for m in plan.mounts}
    assert kinds[str(tmp_path / ".jupyter")].kind == "mask"
    assert kinds[str(tmp_path / ".bashrc")].kind == "mask"
    assert kinds[str(tmp_path / ".bashrc")].is_file
    # The tree itself is read-only; its other entries stay writable.
    assert not kinds[str(tmp_path)].writable
    assert kinds[str(tmp_path / "project")].writable


def test_a_workspace_inside_the_kernels_code_is_read_only(tmp_path: Path) -> None:
    # A notebook kept in site-packages, or in this package's own directory (an
    # editable install): writing there would change what the next kernel imports.
    import sandbox_kernel

    for inner in (
        os.path.join(os.path.realpath(sys.prefix), "lib"),
        os.path.dirname(os.path.realpath(sandbox_kernel.__file__)),
    ):
        plan = _plan(inner, tmp_path)
        (mount,) = [m for m in plan.mounts if m.path == inner]
        assert not mount.writable, inner


def test_a_writable_extra_mount_of_the_kernels_code_is_read_only(tmp_path: Path) -> None:
    workspace = tmp_path / "work"
    workspace.mkdir()
    prefix = os.path.realpath(sys.prefix)
    plan = plan_mounts(str(workspace), True, [(prefix, "rw")], 64, False, str(tmp_path), [])
    (mount,) = [m for m in plan.mounts if m.path == prefix]
    assert not mount.writable
    assert any("read-only" in note and prefix in note for note in plan.notes)


def test_existing_control_files_are_bound_read_only_and_links_never(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / ".git").mkdir(parents=True)
    (ws / "conftest.py").write_text("")
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws / ".vscode").symlink_to(outside)
    wanted = [str(ws / ".git"), str(ws / "conftest.py"), str(ws / ".vscode"), str(outside)]
    plan = plan_mounts(str(ws), True, [], 64, False, str(tmp_path / "home"), [], wanted)
    by_path = {m.path: m for m in plan.mounts}
    assert not by_path[str(ws / ".git")].writable
    assert by_path[str(ws / "conftest.py")].is_file
    assert not by_path[str(ws / "conftest.py")].writable
    # A link would bring its target in; a path outside the workspace is never added.
    assert str(ws / ".vscode") not in by_path
    assert str(outside) not in by_path
    assert by_path[str(ws)].writable


def test_guarded_entries_inside_a_code_root_in_the_workspace_are_not_bound_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook next to the .venv the kernel runs from: the .venv is bound read-only
    whole, so its pip and __pycache__ trees do not each take one of the 64 binds."""
    from sandbox_kernel.isolation import mountns

    ws = tmp_path / "ws"
    venv = ws / ".venv"
    (venv / "lib" / "pip").mkdir(parents=True)
    (ws / ".git").mkdir()
    code_paths = mountns._code_paths
    monkeypatch.setattr(mountns, "_code_paths", lambda: [*code_paths(), str(venv)])
    wanted = [str(ws / ".git"), str(venv / "lib" / "pip")]
    plan = plan_mounts(str(ws), True, [], 64, False, str(tmp_path / "home"), [], wanted)
    by_path = {m.path: m for m in plan.mounts}
    assert by_path[str(ws)].writable
    assert not by_path[str(venv)].writable
    assert str(venv / "lib" / "pip") not in by_path
    assert not by_path[str(ws / ".git")].writable


def test_a_workspace_that_is_tmp_gets_another_private_tmp(tmp_path: Path) -> None:
    # A notebook kept in /tmp: cells' temporary files must not land in the workspace,
    # and /tmp may be read-only there (it holds protected paths).
    plan = _plan("/tmp", tmp_path / "home")
    assert plan.tmp == "/var/tmp"
    assert any(m.path == "/var/tmp" and m.kind == "tmpfs" and m.writable for m in plan.mounts)
    assert _plan(str(tmp_path), tmp_path / "home").tmp == "/tmp"


def test_a_root_kernels_workspace_is_id_mapped_even_read_only(tmp_path: Path) -> None:
    # /root or a job's 0700 directory: the cells (its owner, mapped) and pid 1 (which
    # mounts the masks) must be able to enter it, read-only or split around secrets.
    (tmp_path / ".bashrc").write_text("")
    (tmp_path / "notebooks").mkdir()
    split = plan_mounts(
        str(tmp_path), True, [], 64, True, str(tmp_path), [str(tmp_path / ".bashrc")]
    )
    mounts = {m.path: m for m in split.mounts}
    assert mounts[str(tmp_path)].idmap
    assert not mounts[str(tmp_path)].writable
    assert mounts[str(tmp_path / "notebooks")].idmap
    read_only = plan_mounts(str(tmp_path), False, [], 64, True, str(tmp_path / "h"), [])
    assert {m.path: m for m in read_only.mounts}[str(tmp_path)].idmap
