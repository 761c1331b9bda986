"""A hostile cell surveys the host through what the sandbox shows of it.

It reads the accounts, its environment, its mount table and pid 1's command
line, looking for the host's other users and for host paths that are not part
of its view. The host side (this process) knows what must stay out: a user it
added for the test (with a home of its own and a group membership), and a
directory on the kernel's PATH that the sandbox does not mount (``~/.local/bin``,
which sits under a protected path).
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.security.conftest import LEVEL_KERNELS, Host, Sandbox, start_sandbox

SURVEY = r"""
import getpass, json, os, pwd
out = {}
for path in ("/etc/passwd", "/etc/group", "/proc/self/mountinfo", "/proc/self/environ",
             "/proc/1/cmdline", "/proc/1/environ"):
    try:
        out[path] = open(path, "rb").read().decode("utf-8", "replace")
    except OSError as e:
        out[path] = f"unreadable {e.errno}"
out["environ"] = dict(os.environ)
out["getuser"] = getpass.getuser()
out["pw"] = list(pwd.getpwuid(os.getuid()))
# Not there, nor its parent: a host path outside the view. (The sandbox's package
# directory is mounted, and its bin/ appears with the first %pip install.)
out["dangling"] = [p for p in os.environ["PATH"].split(":")
                   if not os.path.isdir(p) and not os.path.isdir(os.path.dirname(p))]
print(json.dumps(out))
"""


@dataclass
class OtherUser:
    name: str
    home: str
    # Whether the whole survey may be searched for the name (one made up for the
    # test cannot occur by chance; an existing one, such as "daemon", may).
    distinctive: bool


@pytest.fixture(scope="module")
def other_user() -> Iterator[OtherUser]:
    """Another user of the host, who must not be visible to the sandbox."""
    if os.geteuid() == 0:
        name = "hv" + uuid.uuid4().hex[:10]
        home = f"/srv/{name}-private-home"
        # -M: the home is never created; -G users: the host's group file lists the name.
        subprocess.run(["useradd", "-M", "-d", home, "-G", "users", name], check=True)
        try:
            yield OtherUser(name, home, True)
        finally:
            subprocess.run(["userdel", name], check=False)
        return
    own = pwd.getpwuid(os.getuid()).pw_name
    others = [e for e in pwd.getpwall() if e.pw_name not in ("root", "nobody", own)]
    if not others:
        pytest.skip("needs another account in the host's /etc/passwd (or root, to add one)")
    yield OtherUser(others[0].pw_name, others[0].pw_dir, False)


@pytest.fixture(scope="module", params=sorted(LEVEL_KERNELS))
def surveyed(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    host: Host,
    other_user: OtherUser,
) -> Iterator[tuple[Sandbox, dict, str]]:
    # Ubuntu's .profile puts ~/.local/bin on PATH; ~/.local is protected, so unmounted.
    local_bin = host.fake_home / ".local" / "bin"
    local_bin.mkdir(parents=True, exist_ok=True)
    workspace = tmp_path_factory.mktemp(f"host-view-{request.param}")
    workspace.chmod(0o777)
    # The interpreter's bin directory too: it is mounted, and must stay; so must a
    # tool directory behind a 0700 directory (pyenv under /root), which is mounted.
    interpreter_bin = os.path.dirname(sys.executable)
    env = {
        "PATH": os.pathsep.join(
            [str(local_bin), interpreter_bin, str(_private_bin(host)), os.environ["PATH"]]
        )
    }
    box = start_sandbox(request.param, workspace, host, env=env)
    try:
        result = box.run(SURVEY)
        assert result.status == "ok", result.text()
        yield box, json.loads(result.stdout), result.stdout
    finally:
        box.close()


def _private_bin(host: Host) -> Path:
    private = host.root / "private-0700"
    (private / "bin").mkdir(parents=True, exist_ok=True)
    private.chmod(0o700)
    return private / "bin"


def _names(text: str) -> set[str]:
    return {line.split(":")[0] for line in text.splitlines() if line}


def test_no_other_user_of_the_host_is_listed(
    surveyed: tuple[Sandbox, dict, str], other_user: OtherUser
) -> None:
    box, seen, text = surveyed
    if box.level != "namespaces":
        pytest.skip("needs the namespaces level: at landlock the host's /etc/passwd is shown")
    assert other_user.name not in _names(seen["/etc/passwd"])
    assert other_user.name not in _names(seen["/etc/group"])
    if other_user.distinctive or other_user.home.startswith("/home/"):
        # (An existing system account's home may be a directory the sandbox shows
        # anyway, such as daemon's /usr/sbin on PATH.)
        assert other_user.home not in text
    if other_user.distinctive:
        # Nowhere: not as a member of a group, not in the mount table or environment.
        assert other_user.name not in text
    assert _names(seen["/etc/passwd"]) <= {"root", "nobody", seen["getuser"]}
    for line in seen["/etc/group"].splitlines():
        assert line.endswith(":"), f"a group lists members: {line}"


def test_the_cells_own_account_is_the_sandboxs_view(surveyed: tuple[Sandbox, dict, str]) -> None:
    box, seen, _ = surveyed
    if box.level != "namespaces":
        pytest.skip("needs the namespaces level: at landlock the host's /etc/passwd is shown")
    # Its home is the sandbox's HOME, and getpass and pwd agree on its name.
    assert seen["pw"][5] == seen["environ"]["HOME"]
    assert seen["pw"][0] == seen["getuser"]


def test_path_names_no_host_directory_the_sandbox_does_not_show(
    surveyed: tuple[Sandbox, dict, str], host: Host
) -> None:
    box, seen, text = surveyed
    local_bin = str(host.fake_home / ".local" / "bin")
    # Control: the kernel's own environment did have it on PATH. (An unprivileged
    # kernel is not dumpable, so its environ is closed even to its own uid; the PATH
    # it was started with is then the fixture's, which puts local_bin first.)
    try:
        kernel_env = Path(f"/proc/{box.km.provisioner.process.pid}/environ").read_bytes()  # type: ignore[union-attr]
    except PermissionError:
        kernel_env = None
    if kernel_env is not None:
        assert local_bin.encode() in kernel_env
    assert local_bin not in seen["environ"]["PATH"]
    assert local_bin not in text
    if box.level == "namespaces":
        assert seen["dangling"] == []
    # The interpreter's own bin directory stays (pip, jupyter's scripts), and so does
    # a mounted one the sandbox's ids could not have looked into on the host.
    inside_path = seen["environ"]["PATH"].split(os.pathsep)
    assert os.path.dirname(sys.executable) in inside_path
    assert str(_private_bin(host)) in inside_path
