"""The kernel starts wherever users start it (issue 16).

Each place is built the way users end up in it (a notebook in /tmp, a server in
a 0700 home, a grader's private job directory holding the Jupyter config and
runtime directories, a uid without a passwd entry ...), then a kernel is started
there through jupyter_client and runs a cell. Where the place holds something
the sandbox must hide (~/.bashrc, the job's config), the cell tries to read it
and the test checks from outside that nothing came back.

Every place runs at the ``namespaces`` level and at the ``landlock`` level (the
same kernel under a Docker-like seccomp profile, tests/security/restricted_host.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.utils import execute, kernel_info, running_kernel

pytestmark = pytest.mark.timeout(240)

LEVEL_KERNELS = {"namespaces": "sandbox-python", "landlock": "sandbox-python-docker"}
ROOT = os.geteuid() == 0
# Reads a list of files from inside; prints what it could read.
PROBE = """
import os
print("CWD", os.getcwd())
for path in {paths!r}:
    try:
        with open(path) as f:
            print("READ", path, f.read())
    except OSError as exc:
        print("DENIED", path, type(exc).__name__)
"""


@dataclass
class Place:
    """Where a kernel is started: its cwd, its environment, what must stay hidden."""

    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    secrets: list[Path] = field(default_factory=list)
    kernel_name: str | None = None
    cleanup: list[Any] = field(default_factory=list)


def _secret(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("secret-" + uuid.uuid4().hex)
    return path


def _private_dir(tmp_path: Path, name: str) -> Path:
    """A 0700 directory reached through traversable parents (pytest's are 0700)."""
    for parent in (tmp_path.parent.parent, tmp_path.parent, tmp_path):
        parent.chmod(parent.stat().st_mode | 0o011)
    directory = tmp_path / name
    directory.mkdir()
    directory.chmod(0o700)
    return directory


def place_tmp(tmp_path: Path) -> Place:
    # The tests' own JUPYTER_PATH data directory lives in /tmp too: it is a protected
    # path inside this workspace, as a server's would be.
    return Place(Path("/tmp"))


def place_home_0700(tmp_path: Path) -> Place:
    # `jupyter lab --allow-root` from /root, or any user's server from a 0700 home.
    home = _private_dir(tmp_path, "home")
    secrets = [_secret(home / ".bashrc"), _secret(home / ".jupyter" / "jupyter_config.json")]
    (home / "notebooks").mkdir()
    return Place(home, env={"HOME": str(home)}, secrets=secrets)


def place_job_dir(tmp_path: Path) -> Place:
    # A grader or CI job keeping Jupyter's config and runtime dirs in its 0700 work dir.
    job = _private_dir(tmp_path, "job")
    config = job / "config"
    runtime = job / "runtime"
    runtime.mkdir()
    runtime.chmod(0o700)
    secrets = [_secret(config / "jupyter_config.json")]
    return Place(
        job,
        env={"JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(runtime)},
        secrets=secrets,
    )


def place_kernelspec_in_workspace(tmp_path: Path) -> Place:
    # A project that registers its kernelspec inside itself: JUPYTER_PATH=<ws>/share/jupyter.
    workspace = _private_dir(tmp_path, "project")
    data = workspace / "share" / "jupyter"
    for name in ("sandbox-python", "sandbox-python-docker"):
        source = Path(_kernelspec_dir(name))
        shutil.copytree(source, data / "kernels" / name)
    secrets = [_secret(data / "runtime" / "kernel-x.json")]
    path = os.pathsep.join([str(data), os.environ.get("JUPYTER_PATH", "")])
    return Place(workspace, env={"JUPYTER_PATH": path}, secrets=secrets)


def place_home_unset(tmp_path: Path) -> Place:
    return Place(_private_dir(tmp_path, "ws"), unset=("HOME",))


def place_home_is_root(tmp_path: Path) -> Place:
    return Place(_private_dir(tmp_path, "ws"), env={"HOME": "/"})


def place_symlink(tmp_path: Path) -> Place:
    real = _private_dir(tmp_path, "real")
    link = tmp_path / "link"
    link.symlink_to(real)
    return Place(link)


def place_odd_name(tmp_path: Path) -> Place:
    workspace = tmp_path / "my notebooks" / "données été 数据"
    workspace.mkdir(parents=True)
    (tmp_path / "my notebooks").chmod(0o755)
    return Place(workspace)


def place_long_path(tmp_path: Path) -> Place:
    # About 2,000 bytes: far past what sun_path or a careless buffer holds.
    workspace = tmp_path
    for index in range(9):
        workspace = workspace / f"{index}-{'x' * 220}"
    workspace.mkdir(parents=True)
    return Place(workspace)


def place_read_only_mount(tmp_path: Path) -> Place:
    if not ROOT:
        pytest.skip("needs root (CAP_SYS_ADMIN) to make a read-only bind mount")
    source = _private_dir(tmp_path, "source")
    (source / "data.csv").write_text("a,b\n1,2\n")
    target = tmp_path / "ro"
    target.mkdir()
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
    return Place(target, cleanup=[["umount", str(target)]])


def place_no_passwd_entry(tmp_path: Path) -> Place:
    if not ROOT:
        pytest.skip("needs root to start a kernel as a uid with no passwd entry")
    from tests.security.restricted_host import NO_PASSWD_UID

    workspace = _private_dir(tmp_path, "pod")
    os.chown(workspace, NO_PASSWD_UID, 0)
    return Place(workspace, kernel_name="sandbox-python-nopasswd")


def place_unreachable_mask(tmp_path: Path) -> Place:
    # A config dir inside the workspace, under a 0700 directory of another uid: the
    # sandbox cannot mask it, and need not, since nothing inside can reach it.
    if not ROOT:
        pytest.skip("needs root to give a directory to another uid")
    workspace = _private_dir(tmp_path, "ws")
    locked = workspace / "locked"
    config = locked / "config"
    secrets = [_secret(config / "jupyter_config.json")]
    for path in (config, locked):
        os.chown(path, 4242, 4242)
    locked.chmod(0o700)
    return Place(workspace, env={"JUPYTER_CONFIG_DIR": str(config)}, secrets=secrets)


PLACES = {
    "tmp": place_tmp,
    "home-0700": place_home_0700,
    "job-dir": place_job_dir,
    "kernelspec-in-workspace": place_kernelspec_in_workspace,
    "home-unset": place_home_unset,
    "home-is-root": place_home_is_root,
    "symlink": place_symlink,
    "spaces-non-ascii": place_odd_name,
    "long-path": place_long_path,
    "read-only-mount": place_read_only_mount,
    "unreachable-mask": place_unreachable_mask,
}


def _kernelspec_dir(name: str) -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return str(KernelSpecManager().find_kernel_specs()[name])


@contextlib.contextmanager
def _started(place: Place, kernel_name: str) -> Iterator[Any]:
    env = {**os.environ, **place.env}
    for name in place.unset:
        env.pop(name, None)
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH",)}
    # The kernelspec itself is looked up with the place's JUPYTER_PATH.
    if "JUPYTER_PATH" in place.env:
        os.environ["JUPYTER_PATH"] = place.env["JUPYTER_PATH"]
    try:
        with running_kernel(place.cwd, kernel_name=kernel_name, env=env) as (km, kc):
            yield km, kc
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for command in place.cleanup:
            subprocess.run(command, check=False)


def _level(kc: Any) -> tuple[str | None, str | None]:
    reply = kernel_info(kc)
    sandbox = reply["content"]["sandbox"]
    return sandbox["level"], sandbox.get("failure")


# Filesystems seen to refuse id-mapped mounts (`stat -f -c %T` names): a container's
# own root filesystem. The kernel's probe does not decide what these tests expect.
IDMAP_REFUSED = {"overlayfs"}


def _filesystem_type(path: Path) -> str:
    found = subprocess.run(
        ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() or "unknown"


def _idmap_refused(path: Path) -> str | None:
    """Why a root kernel cannot run at the namespaces level with this workspace, if so."""
    fstype = _filesystem_type(path)
    if fstype not in IDMAP_REFUSED:
        return None
    return (
        f"the namespaces level of a root kernel needs id-mapped mounts on the notebook "
        f"directory's filesystem, which {fstype} ({path}) refuses; there the kernel runs "
        "at landlock (test_root_kernel_falls_back_where_the_workspace_cannot_be_id_mapped)"
    )


def _check_place(place: Place, kernel_name: str, level: str) -> None:
    if level == "namespaces" and ROOT and kernel_name == LEVEL_KERNELS["namespaces"]:
        reason = _idmap_refused(place.cwd)
        if reason:
            pytest.skip(reason)
    with _started(place, kernel_name) as (_, kc):
        result = execute(kc, PROBE.format(paths=[str(s) for s in place.secrets]))
        assert result.status == "ok", result.text()
        assert f"CWD {os.path.realpath(place.cwd)}" in result.stdout
        for secret in place.secrets:
            # From outside: the secret's content never came back.
            assert secret.read_text() not in result.text()
            assert f"DENIED {secret}" in result.stdout
        assert _level(kc) == (level, None)
        magic = execute(kc, "%sandbox")
        assert f"Sandbox level: {level}" in magic.stdout


@pytest.mark.parametrize("level", sorted(LEVEL_KERNELS))
@pytest.mark.parametrize("name", sorted(PLACES))
def test_kernel_starts_and_runs_a_cell(name: str, level: str, tmp_path: Path) -> None:
    place = PLACES[name](tmp_path)
    _check_place(place, LEVEL_KERNELS[level], level)


def test_kernel_starts_as_a_uid_without_passwd_entry(tmp_path: Path) -> None:
    # OpenShift and restricted pods: getpass.getuser() raises KeyError, HOME is /.
    place = place_no_passwd_entry(tmp_path)
    _check_place(place, "sandbox-python-nopasswd", "namespaces")


@pytest.mark.parametrize("level", sorted(LEVEL_KERNELS))
def test_a_busy_directory_that_holds_protected_paths(level: str, tmp_path: Path) -> None:
    """A notebook in a busy /tmp that also holds the server's config or runtime dir.

    Each entry of such a workspace is bound on its own; with a login's soft limit of
    1,024 open files, 1,100 entries failed with EMFILE (CI's unprivileged run, whose
    /tmp had 1,175 entries).
    """
    import resource

    place = place_job_dir(tmp_path)
    for index in range(1100):
        (place.cwd / f"d{index}").mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1400:
        pytest.skip(f"needs an open-files hard limit above 1,400 (ulimit -Hn is {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        _check_place(place, LEVEL_KERNELS[level], level)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_unreadable_notebook_dir_says_what_to_do(tmp_path: Path) -> None:
    """A directory its owner may not read: the kernel can enter it, the sandbox cannot."""
    workspace = _private_dir(tmp_path, "ws")
    workspace.chmod(0o300 if ROOT else 0o100)
    try:
        with _started(Place(workspace), "sandbox-python") as (_, kc):
            result = execute(kc, "1 + 1")
            magic = execute(kc, "%sandbox")
    finally:
        workspace.chmod(0o700)
    assert result.error is not None
    assert result.error["ename"] == "SandboxUnavailable"
    for text in (result.error["evalue"], magic.stdout):
        assert "cannot read the notebook directory" in text
        assert str(workspace) in text
        assert f"chmod u+rx '{workspace}'" in text
    assert "exited with status" not in result.error["evalue"]


@contextlib.contextmanager
def _workspace_refusing_idmap(tmp_path: Path) -> Iterator[Path]:
    """A root-owned 0700 notebook directory on a filesystem that refuses id-mapped mounts.

    Where pytest's own directory is on one (a container's overlay root), that; else an
    overlayfs mounted for the test, outside /tmp so that no other test's /tmp
    workspace gets it as a submount while it is there.
    """
    if _idmap_refused(tmp_path):
        yield _private_dir(tmp_path, "ws")
        return
    layers = tmp_path / "layers"
    for name in ("lower", "upper", "work"):
        (layers / name).mkdir(parents=True)
    merged = Path(tempfile.mkdtemp(prefix="sandbox-overlay-", dir="/var/tmp"))
    options = f"lowerdir={layers / 'lower'},upperdir={layers / 'upper'},workdir={layers / 'work'}"
    mounted = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
        check=False,
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        merged.rmdir()
        pytest.skip(f"needs to mount an overlayfs (root with CAP_SYS_ADMIN): {mounted.stderr}")
    try:
        workspace = merged / "ws"
        workspace.mkdir(mode=0o700)
        yield workspace
    finally:
        subprocess.run(["umount", str(merged)], check=False)
        merged.rmdir()


def test_root_kernel_falls_back_where_the_workspace_cannot_be_id_mapped(tmp_path: Path) -> None:
    """overlayfs refuses the id-mapped mount a root kernel's cells need to use their
    notebook directory at the namespaces level (they run as an unprivileged host uid).
    At level auto the kernel runs at landlock and says why; a required namespaces level
    fails closed, naming the mechanism, the path and the fix. Checked from outside: the
    file the cell wrote is on disk, owned by the directory's owner."""
    if not ROOT:
        pytest.skip("needs root: only a root kernel's cells run as another host uid")
    if _level_offered("namespaces", tmp_path) != "namespaces":
        pytest.skip("needs the namespaces level on this host (user namespaces)")
    with _workspace_refusing_idmap(tmp_path) as workspace:
        with _started(Place(workspace), "sandbox-python") as (_, kc):
            wrote = execute(kc, "open('out.txt', 'w').write('written')")
            info = kernel_info(kc)
            magic = execute(kc, "%sandbox")
        assert wrote.status == "ok", wrote.text()
        out = workspace / "out.txt"
        assert out.read_text() == "written"
        assert (out.stat().st_uid, out.stat().st_gid) == (0, 0)
        sandbox = info["content"]["sandbox"]
        assert sandbox["level"] == "landlock"
        why = sandbox["unavailable"]["namespaces"]
        for words in ("id-mapped mount", str(workspace), "(overlay)"):
            assert words in why
        assert "Sandbox level: landlock" in magic.stdout
        assert why in " ".join(magic.stdout.split())
        args = ["--Isolation.level=namespaces"]
        with running_kernel(workspace, extra_arguments=args) as (_, kc):
            refused = execute(kc, "open('second.txt', 'w').write('x')")
            magic = execute(kc, "%sandbox")
        assert not (workspace / "second.txt").exists()
        assert refused.error is not None
        assert refused.error["ename"] == "SandboxUnavailable"
        for text in (refused.error["evalue"], magic.stdout):
            flat = " ".join(text.split())
            for words in ("id-mapped mount", str(workspace), "To fix:", "level=landlock"):
                assert words in flat
        assert "exited with status" not in refused.error["evalue"]


def _level_offered(level: str, tmp_path: Path) -> str | None:
    """The level a root kernel reaches in a directory that takes id-mapped mounts
    (the positive control: this host offers the namespaces level at all)."""
    control = tmp_path / "control"
    control.mkdir()
    if _idmap_refused(control):
        # pytest's directory is on the overlay: /dev/shm is a tmpfs, which takes them.
        control = Path(tempfile.mkdtemp(prefix="sandbox-control-", dir="/dev/shm"))
    try:
        with running_kernel(control) as (_, kc):
            return _level(kc)[0]
    finally:
        if control.parent != tmp_path:
            shutil.rmtree(control, ignore_errors=True)


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip(reason="needs Linux")
