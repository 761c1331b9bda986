"""Start-up where the system knows little, and errors that say what to do (issue 16)."""

from __future__ import annotations

import errno
import os
import pwd
import socket
from pathlib import Path

import pytest

from sandbox_kernel import identity
from sandbox_kernel.errors import SetupError
from sandbox_kernel.isolation import mountns
from sandbox_kernel.isolation.report import Report
from sandbox_kernel.launcher import failure
from sandbox_kernel.relay.reader import FrameReader


def _no_passwd_entry(uid: int) -> pwd.struct_passwd:
    raise KeyError(f"getpwuid(): uid not found: {uid}")


def test_a_uid_without_passwd_entry_has_a_name_and_a_home(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pwd, "getpwuid", _no_passwd_entry)
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME", "HOME"):
        monkeypatch.delenv(name, raising=False)
    assert identity.user_name() == f"uid {os.getuid()}"
    assert identity.home_dir() == "/"
    monkeypatch.setenv("HOME", "/")
    assert identity.home_dir() == "/"
    monkeypatch.setenv("HOME", "relative")
    assert identity.home_dir() == "/"


def test_a_setup_error_names_the_fix() -> None:
    error = SetupError("mountns", "cannot mask /x", errno.EACCES, fix="move /x")
    assert str(error) == "mountns: cannot mask /x: EACCES (Permission denied). To fix: move /x"


def test_an_unexpected_error_reaches_the_kernel_in_words() -> None:
    relay, kernel_side = socket.socketpair()
    try:
        raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found")
    except FileNotFoundError as exc:
        failure.fail_unexpected(relay, Report(), exc)
    relay.close()
    (frame,) = FrameReader(1 << 20).feed(kernel_side.recv(1 << 16))
    kernel_side.close()
    assert isinstance(frame, dict)
    assert frame["type"] == "setup_failed"
    assert "FileNotFoundError" in frame["error"]
    assert "No usable temporary directory" in frame["error"]
    assert "test_startup_errors.py" in frame["error"]


def _in_child_as(uid: int, check: object) -> int:
    """Run ``check`` in a child that switched to ``uid``; its exit code says how it went."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 3
        try:
            if uid != os.getuid():
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
            code = check()  # type: ignore[operator]
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _mask_check(root: str, path: str) -> int:
    try:
        note = mountns.mask_not_applied(root, path, "/ws", OSError(errno.EACCES, "denied"))
    except SetupError as exc:
        return 1 if "could otherwise reach" in str(exc) and "To fix" in str(exc) else 2
    return 0 if "needs no mask" in note else 2


def test_a_mask_that_fails_fails_closed_where_cells_could_reach_the_path(tmp_path: Path) -> None:
    (tmp_path / "ws" / ".jupyter").mkdir(parents=True)
    tmp_path.chmod(0o755)
    (tmp_path / "ws").chmod(0o755)
    path = str(tmp_path / "ws" / ".jupyter")
    assert _in_child_as(os.getuid(), lambda: _mask_check("", path)) == 1


def test_a_mask_that_fails_is_not_needed_where_nothing_can_reach_the_path(tmp_path: Path) -> None:
    (tmp_path / "ws" / "locked" / ".jupyter").mkdir(parents=True)
    tmp_path.chmod(0o755)
    (tmp_path / "ws").chmod(0o755)
    (tmp_path / "ws" / "locked").chmod(0o700)
    path = str(tmp_path / "ws" / "locked" / ".jupyter")
    # Root (pid 1's stand-in here) would pass any directory: check as another uid,
    # which is what the cells are to a directory that is not theirs.
    uid = 65534 if os.getuid() == 0 else os.getuid()
    if os.getuid() != 0:
        (tmp_path / "ws" / "locked").chmod(0o000)
    try:
        assert _in_child_as(uid, lambda: _mask_check("", path)) == 0
    finally:
        (tmp_path / "ws" / "locked").chmod(0o700)
