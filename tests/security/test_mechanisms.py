"""Each isolation mechanism on its own, outside any kernel: a child process applies it
through the module the launcher uses (sandbox_kernel/isolation/), tries what it must
stop, and the test checks from the parent, from outside, that it held: the file was not
written, the link not made, /proc shows the limit and the map. Each has a positive
control where the check could otherwise pass vacuously: the same attempt without the
mechanism succeeds.

The child is a fresh interpreter (fork and exec), single-threaded as the launcher is
when it applies them: Landlock binds only the calling thread and the threads it starts
later. Where the host lacks what a mechanism needs, the test skips and says what, in
the words of the launcher's own probe.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MIB = 1 << 20

PRELUDE = """
import errno, json, os, socket, sys
sys.path.insert(0, {root!r})

def report(**values):
    sys.stdout.write(json.dumps(values) + "\\n")
    sys.stdout.flush()

def hold():
    # The parent looks at this process in /proc, then lets it go on.
    report(hold=os.getpid())
    sys.stdin.readline()

def skip(reason):
    report(skip=reason)
    sys.exit(0)

def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
"""
ROOT = str(Path(__file__).resolve().parents[2])


@dataclass
class Child:
    reports: dict[str, Any]
    returncode: int
    stderr: str


def run_child(
    body: str, cwd: Path, while_held: Callable[[int], None] | None = None, timeout: float = 60
) -> Child:
    """Run ``body`` in a fresh interpreter; collect what it reported. A reported skip
    skips the test with the child's reason."""
    errors = cwd / f"stderr-{os.urandom(4).hex()}.txt"
    reports: dict[str, Any] = {}
    with (
        errors.open("w") as err,
        subprocess.Popen(
            [sys.executable, "-c", PRELUDE.format(root=ROOT) + textwrap.dedent(body)],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        ) as proc,
    ):
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                message = json.loads(line)
                if "hold" in message:
                    if while_held is not None:
                        while_held(int(message["hold"]))
                    proc.stdin.write("\n")
                    proc.stdin.flush()
                else:
                    reports.update(message)
            returncode = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
    child = Child(reports, returncode, errors.read_text())
    if "skip" in reports:
        pytest.skip(str(reports["skip"]))
    return child


def proc_lines(pid: int, name: str) -> list[str]:
    return Path(f"/proc/{pid}/{name}").read_text().splitlines()


# -- Landlock ------------------------------------------------------------------------


LANDLOCK = """
from sandbox_kernel.isolation import landlock, privs, probe
abi, why = probe.probe_landlock()
if why:
    skip(f"needs Landlock: {{why}}")
if {apply}:
    # As the launcher does: no_new_privs lets an unprivileged process restrict itself.
    privs.set_no_new_privs()
    landlock.restrict(landlock.LandlockRules(read_paths=["/"], write_paths=[{inside!r}]))
def write(path):
    with open(path, "w") as f:
        f.write("written")
report(
    inside=attempt(lambda: write({inside!r} + "/new.txt")),
    outside=attempt(lambda: write({outside!r} + "/new.txt")),
    replace=attempt(lambda: write({outside!r} + "/existing.txt")),
    read=attempt(lambda: open({outside!r} + "/existing.txt").read()),
)
"""


def landlock_child(tmp_path: Path, *, apply: bool) -> tuple[Child, Path, Path]:
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    (outside / "existing.txt").write_text("original")
    body = LANDLOCK.format(apply=apply, inside=str(inside), outside=str(outside))
    return run_child(body, tmp_path), inside, outside


@pytest.mark.needs_landlock
def test_landlock_denies_writes_outside_the_writable_paths(tmp_path: Path) -> None:
    child, inside, outside = landlock_child(tmp_path, apply=True)
    assert child.returncode == 0, child.stderr
    assert child.reports == {"inside": "ok", "outside": "EACCES", "replace": "EACCES", "read": "ok"}
    # From outside: what the child was refused did not happen.
    assert not (outside / "new.txt").exists()
    assert (outside / "existing.txt").read_text() == "original"
    assert (inside / "new.txt").read_text() == "written"


@pytest.mark.needs_landlock
def test_landlock_control_the_same_writes_succeed_without_it(tmp_path: Path) -> None:
    child, _, outside = landlock_child(tmp_path, apply=False)
    assert child.reports == {"inside": "ok", "outside": "ok", "replace": "ok", "read": "ok"}
    assert (outside / "new.txt").read_text() == "written"


# -- seccomp --------------------------------------------------------------------------


SECCOMP = """
from sandbox_kernel.isolation import libc
if {apply}:
    try:
        from sandbox_kernel.isolation import seccomp
        # notify=False: refused calls fail with EPERM instead of waiting for a supervisor.
        seccomp.load(seccomp.build(socket_families=(socket.AF_UNIX,), notify=False))
    except ImportError as exc:
        skip(f"needs pyseccomp and libseccomp: {{exc}}")
report(
    symlink=attempt(lambda: os.symlink("target.txt", "link")),
    setuid_bit=attempt(lambda: os.chmod("program", 0o4755)),
    plain_chmod=attempt(lambda: os.chmod("program", 0o700)),
    inet=attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()),
    unix=attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()),
    unshare=attempt(lambda: libc.unshare(libc.CLONE_NEWUSER)),
    write=attempt(lambda: open("written.txt", "w").write("x")),
)
"""


def test_seccomp_refuses_the_calls_it_lists(tmp_path: Path) -> None:
    (tmp_path / "program").write_text("#!/bin/sh\n")
    child = run_child(SECCOMP.format(apply=True), tmp_path)
    assert child.returncode == 0, child.stderr
    assert child.reports == {
        "symlink": "EPERM",
        "setuid_bit": "EPERM",
        "plain_chmod": "ok",
        "inet": "EPERM",
        "unix": "ok",
        "unshare": "EPERM",
        "write": "ok",
    }
    # From outside: no link, no setuid bit.
    assert not os.path.lexists(tmp_path / "link")
    mode = (tmp_path / "program").stat().st_mode
    assert not mode & stat.S_ISUID
    assert stat.S_IMODE(mode) == 0o700
    assert (tmp_path / "written.txt").read_text() == "x"


def test_seccomp_control_the_same_calls_succeed_without_it(tmp_path: Path) -> None:
    (tmp_path / "program").write_text("#!/bin/sh\n")
    child = run_child(SECCOMP.format(apply=False), tmp_path)
    reports = child.reports
    assert reports["symlink"] == reports["setuid_bit"] == reports["inet"] == "ok"
    assert os.path.islink(tmp_path / "link")
    # (chmod 0o700 came after: the bit was set, then cleared by the test's own call.)
    assert reports["plain_chmod"] == "ok"


# -- rlimits ---------------------------------------------------------------------------


RLIMITS = """
import resource
from sandbox_kernel.isolation import rlimits
plan = rlimits.prepare(
    {"max_open_files": 64, "max_file_size_mb": 1, "max_processes": 50},
    memory_in_cgroup=True,
    pids_in_cgroup=True,
)
report(plan=plan)
rlimits.set_limits(plan)
hold()
opened = []
while True:
    try:
        opened.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as exc:
        report(open_error=errno.errorcode[exc.errno], highest_fd=max(opened))
        break
for fd in opened:
    os.close(fd)
def fill():
    # Past RLIMIT_FSIZE: EFBIG (Python ignores SIGXFSZ, which would kill by default).
    with open("big.bin", "wb") as f:
        f.write(b"x" * (2 << 20))
report(big_write=attempt(fill))
"""


def test_rlimits_cap_open_files_and_file_size(tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    def look(pid: int) -> None:
        for line in proc_lines(pid, "limits"):
            for name in ("Max open files", "Max file size", "Max core file size"):
                if line.startswith(name):
                    seen[name] = " ".join(line[len(name) :].split()[:2])

    child = run_child(RLIMITS, tmp_path, while_held=look)
    assert child.reports["plan"] == {"RLIMIT_CORE": 0, "RLIMIT_NOFILE": 64, "RLIMIT_FSIZE": MIB}
    # From outside, in /proc: soft and hard alike, so the cell cannot raise them.
    assert seen == {
        "Max open files": "64 64",
        "Max file size": f"{MIB} {MIB}",
        "Max core file size": "0 0",
    }
    assert child.reports["open_error"] == "EMFILE"
    assert child.reports["highest_fd"] == 63
    # The write past the limit failed, and the file stopped at the limit.
    assert child.returncode == 0, child.stderr
    assert child.reports["big_write"] == "EFBIG"
    assert (tmp_path / "big.bin").stat().st_size == MIB
    # Control: this test process itself is not so limited (the check could fail).
    assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] != MIB


# -- user namespace --------------------------------------------------------------------


USERNS_SELF = """
from sandbox_kernel.isolation import libc, probe, userns
why = probe.probe_namespaces()
if why:
    skip(f"needs user namespaces: {why}")
uid, gid = os.geteuid(), os.getegid()
libc.unshare(libc.CLONE_NEWUSER)
userns.write_self_map(userns.IdMap("self", uid, gid, uid, gid))
report(
    inside_uid=os.geteuid(),
    # Only our own uid is mapped: no other uid can be taken, root least of all.
    become_other=attempt(lambda: os.setuid(uid + 1)),
)
hold()
"""


@pytest.mark.needs_userns
def test_userns_self_map_maps_only_the_users_own_ids(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def look(pid: int) -> None:
        seen["uid_map"] = [line.split() for line in proc_lines(pid, "uid_map")]
        seen["gid_map"] = [line.split() for line in proc_lines(pid, "gid_map")]
        seen["setgroups"] = proc_lines(pid, "setgroups")
        seen["ns"] = os.readlink(f"/proc/{pid}/ns/user")

    child = run_child(USERNS_SELF, tmp_path, while_held=look)
    uid, gid = os.geteuid(), os.getegid()
    assert child.reports == {"inside_uid": uid, "become_other": "EINVAL"}
    assert seen["uid_map"] == [[str(uid), str(uid), "1"]]
    assert seen["gid_map"] == [[str(gid), str(gid), "1"]]
    assert seen["setgroups"] == ["deny"]
    # Control: the child really was in a namespace of its own.
    assert seen["ns"] != os.readlink("/proc/self/ns/user")


USERNS_RANGE = """
from sandbox_kernel.isolation import libc, probe, userns
why = probe.probe_namespaces()
if why:
    skip(f"needs user namespaces: {{why}}")
idmap = userns.IdMap("range", 0, 0, {outer}, {outer})
helper = userns.MapHelper(idmap, [])  # forked before unshare: it keeps root outside
libc.unshare(libc.CLONE_NEWUSER)
report(unmapped=helper.map_now())
# As the launcher does next: take the inner ids, which are the outer uid on the host.
os.setgroups([])
os.setresgid(0, 0, 0)
os.setresuid(0, 0, 0)
def append():
    with open({target!r}, "a") as f:
        f.write("written by the sandbox")
report(inside_uid=os.geteuid(), write_root_file=attempt(append))
hold()
"""


@pytest.fixture
def root_owned_file() -> Iterator[Path]:
    """A root-owned 0644 file in a directory any uid may enter (not under pytest's
    0700 base temp): only its owner, or real root, may write it."""
    directory = Path(tempfile.mkdtemp(prefix="sandbox-mechanism-"))
    directory.chmod(0o755)
    target = directory / "root-owned.txt"
    target.write_text("original")
    target.chmod(0o644)
    try:
        yield target
    finally:
        shutil.rmtree(directory)


@pytest.mark.needs_userns
def test_userns_range_map_never_leaves_host_root(tmp_path: Path, root_owned_file: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: a range map is written by a helper that keeps root outside")
    outer = 2_100_000_000 + os.getpid() % 1000
    seen: dict[str, Any] = {}

    def look(pid: int) -> None:
        seen["uid_map"] = [line.split() for line in proc_lines(pid, "uid_map")]
        seen["uids"] = next(
            line.split()[1:] for line in proc_lines(pid, "status") if line.startswith("Uid:")
        )

    child = run_child(
        USERNS_RANGE.format(outer=outer, target=str(root_owned_file)), tmp_path, while_held=look
    )
    assert child.reports == {"unmapped": [], "inside_uid": 0, "write_root_file": "EACCES"}
    # From outside: root inside is the unprivileged host uid, and the file is as it was.
    assert seen["uid_map"] == [["0", str(outer), "1"]]
    assert seen["uids"] == [str(outer)] * 4
    assert root_owned_file.read_text() == "original"
    # Control: real root may write it (the check could fail).
    with root_owned_file.open("a") as f:
        f.write("")


# -- mount namespace -------------------------------------------------------------------


MOUNTNS = """
from sandbox_kernel.isolation import libc, probe, userns
why = probe.probe_namespaces()
if why:
    skip(f"needs user and mount namespaces: {{why}}")
uid, gid = os.geteuid(), os.getegid()
libc.unshare(libc.CLONE_NEWUSER | libc.CLONE_NEWNS)
userns.write_self_map(userns.IdMap("self", uid, gid, uid, gid))
# As the launcher does first: nothing mounted here propagates back to the host.
libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
libc.mount("tmpfs", {masked!r}, "tmpfs", libc.MS_NOSUID | libc.MS_NODEV, "size=1m")
with open({masked!r} + "/planted.txt", "w") as f:
    f.write("only in the sandbox")
report(listing=sorted(os.listdir({masked!r})))
hold()
"""


@pytest.mark.needs_userns
def test_mountns_masks_a_path_and_nothing_propagates_back(tmp_path: Path) -> None:
    masked = tmp_path / "masked"
    masked.mkdir()
    (masked / "secret.txt").write_text("host secret")
    seen: dict[str, Any] = {}

    def look(pid: int) -> None:
        # While the child's tmpfs is mounted: the host still sees its own directory.
        seen["host_listing"] = sorted(os.listdir(masked))
        seen["child_mounts"] = [
            line.split()[4] for line in proc_lines(pid, "mountinfo") if " - tmpfs " in line
        ]

    child = run_child(MOUNTNS.format(masked=str(masked)), tmp_path, while_held=look)
    assert child.returncode == 0, child.stderr
    # Inside: the secret is hidden, the planted file is there (the write did happen).
    assert child.reports == {"listing": ["planted.txt"]}
    # Outside: the secret is still there and nothing was planted.
    assert seen["host_listing"] == ["secret.txt"]
    assert str(masked) in seen["child_mounts"]
    assert not (masked / "planted.txt").exists()
    assert (masked / "secret.txt").read_text() == "host secret"
