"""The note the sandbox adds to errors it caused (child/explain.py), exception by
exception: what it says, the setting it names, and the errors it leaves alone."""

from __future__ import annotations

import errno
import socket
import urllib.error
from typing import Any

import pytest

from sandbox_kernel.child.explain import Explainer, installs_packages, private_notice

FACTS: dict[str, Any] = {
    "level": "landlock",
    "allow_network": False,
    "workspace": "/home/ann/course",
    "workspace_writable": True,
    "hidden": ["/home/ann/.ssh", "/home/ann/course/grading"],
    "memory_bytes": 2048 * 1024 * 1024,
    "memory_limit_set": True,
    "private": ["/tmp", "/home/ann"],
}


def _notes(exc: BaseException, **facts: Any) -> list[str]:
    Explainer({**FACTS, **facts}).explain(exc)
    return list(getattr(exc, "__notes__", []))


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


class MaxRetryError(Exception):
    """urllib3's wrapper: the cause is in .reason."""

    def __init__(self, reason: BaseException) -> None:
        super().__init__("Max retries exceeded")
        self.reason = reason


class ConnectionError(OSError):  # requests' name, on purpose
    pass


def _requests_style() -> BaseException:
    try:
        try:
            raise MaxRetryError(socket.gaierror(-3, "Temporary failure in name resolution"))
        except MaxRetryError as inner:
            raise ConnectionError(inner) from inner
    except ConnectionError as outer:
        return outer


@pytest.mark.parametrize(
    "exc",
    [
        socket.gaierror(-2, "Name or service not known"),
        urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")),
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        OSError(errno.ENETUNREACH, "Network is unreachable"),
        _requests_style(),
    ],
    ids=["dns", "urllib", "refused", "unreachable", "requests"],
)
def test_a_connection_without_network_says_the_network_is_off(exc: BaseException) -> None:
    notes = _notes(exc)
    assert len(notes) == 1
    assert notes[0].startswith("[sandbox] The network is off in this sandbox")
    assert "c.Isolation.allow_network = True" in notes[0]


def test_with_network_on_a_connection_error_is_left_alone() -> None:
    assert _notes(socket.gaierror(-2, "x"), allow_network=True) == []


def test_allowed_hosts_are_named() -> None:
    notes = _notes(socket.gaierror(-2, "x"), allowed_hosts=["pypi.org", "files.pythonhosted.org"])
    assert "Isolation.allowed_hosts (pypi.org, files.pythonhosted.org)" in notes[0]


def test_a_socket_refused_by_seccomp_is_explained() -> None:
    # the EPERM seccomp gives, raised inside socket.py as socket() raises it
    exc = PermissionError(errno.EPERM, "Operation not permitted")
    code = compile("raise exc", socket.__file__, "exec")
    with pytest.raises(PermissionError) as caught:
        exec(code, {"exc": exc})
    assert _notes(caught.value)[0].startswith("[sandbox] The network is off")


@pytest.mark.parametrize(
    ("path", "level"),
    [
        ("/home/ann/.ssh/id_rsa", "landlock"),
        ("/home/ann/course/grading/tests.py", "landlock"),
        ("/home/ann/.ssh/id_rsa", "namespaces"),
    ],
)
def test_a_hidden_path_is_named_hidden(path: str, level: str) -> None:
    for exc in (
        FileNotFoundError(errno.ENOENT, "No such file or directory", path),
        PermissionError(errno.EACCES, "Permission denied", path),
    ):
        notes = _notes(exc, level=level)
        assert notes == [
            f"[sandbox] {path} is hidden by the sandbox: cells see only the workspace, the "
            "Python environment and the system's own files. An administrator can show more "
            "with c.Isolation.extra_mounts."
        ]


def test_a_file_missing_from_the_private_home_or_tmp_says_they_start_empty() -> None:
    for root, path in (("/home/ann", "/home/ann/data.csv"), ("/tmp", "/tmp/cache/x")):
        notes = _notes(FileNotFoundError(errno.ENOENT, "No such file", path))
        assert notes == [
            f"[sandbox] {root} is private to this sandbox and starts empty: the host's files "
            "there are not visible. Keep data in the workspace (/home/ann/course)."
        ]


def test_a_missing_file_in_the_workspace_is_just_missing() -> None:
    exc = FileNotFoundError(errno.ENOENT, "No such file", "/home/ann/course/data.csv")
    assert _notes(exc) == []
    # at the landlock level the host's tree is the view: missing is missing
    assert _notes(FileNotFoundError(errno.ENOENT, "x", "/etc/nothing-here")) == []


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.EROFS, "Read-only file system", "/usr/lib/x.txt"),
        PermissionError(errno.EACCES, "Permission denied", "/etc/hosts"),
    ],
)
def test_a_read_only_path_names_the_workspace(exc: OSError) -> None:
    notes = _notes(exc)
    assert notes == [
        f"[sandbox] {exc.filename} is read-only in this sandbox: only the workspace "
        "(/home/ann/course) is writable, with the private /tmp and HOME. An administrator "
        "can mount more with c.Isolation.extra_mounts = ['/path:rw']."
    ]


def test_a_read_only_workspace_says_so() -> None:
    exc = PermissionError(errno.EACCES, "Permission denied", "/home/ann/course/out.txt")
    notes = _notes(exc, workspace_writable=False)
    assert "Isolation.workspace_writable" in notes[0]


def test_a_permission_error_inside_the_writable_places_is_left_alone() -> None:
    exc = PermissionError(errno.EACCES, "Permission denied", "/home/ann/course/locked.txt")
    assert _notes(exc) == []


def test_memory_error_names_the_limit() -> None:
    assert _notes(MemoryError()) == [
        "[sandbox] The sandbox's memory limit is 2048 MiB (Limits.memory_limit_mb). An "
        "administrator can change it with c.Limits.memory_limit_mb."
    ]
    unset = _notes(MemoryError(), memory_limit_set=False, memory_bytes=8 << 30)
    assert "8192 MiB (half of this machine's memory" in unset[0]


def test_other_errors_are_left_alone_and_notes_are_added_once() -> None:
    assert _notes(ZeroDivisionError()) == []
    assert _notes(KeyError("x")) == []
    exc = _raised(MemoryError())
    explainer = Explainer(FACTS)
    explainer.explain(exc)
    explainer.explain(exc)
    assert len(exc.__notes__) == 1


@pytest.mark.parametrize(
    ("cell", "installs"),
    [
        ("!pip install requests", True),
        ("%pip install -q numpy", True),
        ("x = 1\n!pip3 install --user foo", True),
        ("!python -m pip install foo", True),
        ("%conda install foo", True),
        ("get_ipython().system('pip install foo')", True),
        ("!pip list", False),
        ("print('pip install foo')", False),
        ("# pip install foo", False),
    ],
)
def test_package_installs_are_recognised(cell: str, installs: bool) -> None:
    assert installs_packages(cell) is installs


def test_private_notices() -> None:
    assert private_notice("tmp", "/tmp") == (
        "[sandbox] /tmp is private to this sandbox: what you write there stays inside it, "
        "and is gone when the kernel restarts. Keep files in the workspace."
    )
    assert private_notice("home", "/home/ann").startswith(
        "[sandbox] The home directory (/home/ann) is private"
    )
