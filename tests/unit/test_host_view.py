"""What of the host the sandbox's accounts and PATH show (no namespaces needed)."""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

from sandbox_kernel.identity import user_name
from sandbox_kernel.isolation import accounts
from sandbox_kernel.isolation.mountns import plan_mounts, visible_command_path


def _entries(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines()]


def test_passwd_and_group_hold_root_nobody_and_the_cells_user_only() -> None:
    files = accounts.etc_files(1234, 1234, "alice", "/home/alice")
    passwd = _entries(files["/etc/passwd"])
    assert [e[0] for e in passwd] == ["root", "alice", "nobody"]
    alice = passwd[1]
    assert alice[2:4] == ["1234", "1234"]
    assert alice[5] == "/home/alice"
    group = _entries(files["/etc/group"])
    assert [e[2] for e in group] == ["0", "1234", "65534"]
    # Groups name no members: on the host they list other users.
    assert all(e[3] == "" for e in group)


def test_a_root_sandbox_user_is_root_with_the_sandbox_home() -> None:
    files = accounts.etc_files(0, 0, "root", "/root")
    passwd = _entries(files["/etc/passwd"])
    assert [e[0] for e in passwd] == ["root", "nobody"]
    assert passwd[0][5] == "/root"
    assert passwd[0][6] == "/bin/sh"


def test_the_cells_user_is_named_as_getpass_names_the_kernels_user() -> None:
    own = os.getuid()
    if own != 0:
        assert accounts.account_name(own, own) == user_name()
    assert accounts.account_name(0, own) == "root"
    # A uid the host does not know, other than the kernel's: no name to borrow.
    unknown = next(u for u in range(4_000_000, 4_001_000) if not _known(u))
    assert accounts.account_name(unknown, own) == accounts.FALLBACK_NAME


def _known(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def test_synthesized_files_replace_the_host_binds(tmp_path: Path) -> None:
    plan = plan_mounts(str(tmp_path), True, [], 64, False, str(tmp_path / "home"), [])
    assert any(m.path == "/etc/passwd" for m in plan.mounts), "the host binds /etc/passwd"
    plan.synthesize(accounts.etc_files(1000, 1000, "u", "/home/u"))
    assert not any(m.path in ("/etc/passwd", "/etc/group") for m in plan.mounts)
    assert set(plan.files) == {"/etc/passwd", "/etc/group"}


def test_path_lists_only_directories_the_sandbox_shows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    local_bin = home / ".local" / "bin"
    local_bin.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    interpreter_bin = os.path.dirname(os.path.realpath(sys.executable))
    link = home / "bin-link"
    link.symlink_to(interpreter_bin)
    workspace = tmp_path / "work"
    workspace.mkdir()
    plan = plan_mounts(str(workspace), True, [], 64, False, str(home), [str(home / ".local")])
    # ``elsewhere`` is not on the launcher's PATH, so nothing binds it.
    entries = [
        "relative/bin",
        str(local_bin),
        str(tmp_path / "missing"),
        str(elsewhere),
        str(link),
        interpreter_bin,
        "/usr/bin",
    ]
    shown = visible_command_path(os.pathsep.join(entries), plan).split(os.pathsep)
    # Listed once each: where the interpreter is the system's (Debian's python3 in
    # /usr/bin, as in a fresh container) the two are one entry.
    assert shown == list(dict.fromkeys([interpreter_bin, "/usr/bin"]))
