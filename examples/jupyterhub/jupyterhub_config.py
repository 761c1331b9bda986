"""A classroom JupyterHub on one machine: every student cell runs in the sandbox kernel.

Students are local Unix users. The hub runs as root and starts each student's Jupyter
server as that student (LocalProcessSpawner). The only kernel a student's server offers
or starts is the sandbox kernel (see jupyter_server_config.py beside this file), and each
student's kernel reads an admin lock file the hub writes for them at every spawn:
course-wide settings, the student's own limits, and where their audit log goes.

README.md beside this file has the install steps and what instructors see. Paths can be
set below or through the environment variables named there (the test does that).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import sys
from pathlib import Path
from typing import Any

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (JupyterHub provides it)

# -- site settings --------------------------------------------------------------------
HERE = Path(__file__).resolve().parent
# The hub's own state: its database, cookie secret and the proxy's pid (root only, 0700).
STATE_DIR = Path(os.environ.get("SANDBOX_HUB_STATE_DIR", "/srv/jupyterhub"))
# What instructors edit (root only, 0700): students.txt and instructors.txt (one user
# name a line; read when the hub starts) and student_limits.json (per-student settings,
# read at each server start).
SETTINGS_DIR = Path(os.environ.get("SANDBOX_HUB_SETTINGS_DIR", "/etc/jupyterhub/course"))
# The lock files the hub writes for the students' kernels, one per student (0711).
LOCK_DIR = Path(os.environ.get("SANDBOX_HUB_LOCK_DIR", "/etc/jupyterhub/locks"))
# One JSON-lines audit log per student, written by their kernels: <name>.jsonl (0711).
AUDIT_DIR = Path(os.environ.get("SANDBOX_HUB_AUDIT_DIR", "/var/log/sandbox-kernel"))
# Each student's server reads jupyter_server_config.py from here (this directory).
SERVER_CONFIG_DIR = HERE
STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
# Each student's notebooks: a directory in their home, created at the first spawn.
NOTEBOOK_DIR = "notebooks"
LOCKED_BY = os.environ.get("SANDBOX_HUB_LOCKED_BY", "CS101 staff")

# Course-wide settings, locked: a student's own configuration (~/.jupyter) may only make
# them stricter. Any lockable setting may appear (sandbox_kernel/lock.py, ORDERS).
# The kernelspec itself carries --SandboxKernelApp.preset=classroom, whose values fill in
# whatever is not locked here.
COURSE_LOCKS: dict[str, Any] = {
    "Isolation.required_isolation": "landlock",
    "Isolation.allow_network": False,
    "Policy.preset": "classroom",
    "Policy.runtime_hooks": True,
    "Output.active_content": "sanitize",
    "Output.drop_frontend_payloads": True,
    "Limits.wall_time_limit_s": 60,
    "Limits.cpu_time_limit_s": 60,
    "Limits.memory_limit_mb": 2048,
    "Limits.max_processes": 128,
    "Limits.kill_cell_processes": True,
}


def _names(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line}


def student_settings(name: str) -> dict[str, Any]:
    """The course locks with this student's own values on top (these may be looser:
    extra time or memory as an accommodation)."""
    locked = dict(COURSE_LOCKS)
    path = SETTINGS_DIR / "student_limits.json"
    if path.is_file():
        per_student = json.loads(path.read_text())
        locked.update(per_student.get(name, {}))
    # Where this student's kernels write their audit log: not theirs to choose.
    locked["Policy.audit_log"] = str(AUDIT_DIR / f"{name}.jsonl")
    return locked


def prepare_student(spawner: Any) -> None:
    """pre_spawn_hook (runs in the hub, as root): the student's lock file and audit log."""
    name = spawner.user.name
    if "/" in name or name.startswith("."):
        raise ValueError(f"unexpected user name {name!r}")
    user = pwd.getpwnam(name)
    # The lock file is root's, readable by the student's group only: their kernel (which
    # runs as the student) must read it, cannot change it, and other students cannot see
    # a classmate's accommodations (give each student a group of their own, as Debian's
    # useradd does). Written whole, then renamed into place.
    LOCK_DIR.mkdir(mode=0o711, parents=True, exist_ok=True)
    lock_file = LOCK_DIR / f"{name}.json"
    tmp = LOCK_DIR / f".{name}.json.tmp"
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"locked_by": LOCKED_BY, "locked": student_settings(name)}, f, indent=2)
        os.fchown(f.fileno(), 0, user.pw_gid)
        os.fchmod(f.fileno(), 0o640)
    tmp.replace(lock_file)
    # The audit directory is root's (0711: students cannot list it or delete from it); each
    # student's file belongs to them so that their kernel can append, and is 0600, so no
    # other student can read it. Instructors read the files as root.
    AUDIT_DIR.mkdir(mode=0o711, parents=True, exist_ok=True)
    audit = AUDIT_DIR / f"{name}.jsonl"
    fd = os.open(audit, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, user.pw_uid, user.pw_gid)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    # The notebook directory: created here if missing, as the student's own. (lchown: a
    # student who swaps in a symlink gets nothing.)
    notebooks = Path(user.pw_dir, NOTEBOOK_DIR)
    with contextlib.suppress(FileExistsError):
        notebooks.mkdir(mode=0o700)
        os.lchown(notebooks, user.pw_uid, user.pw_gid)
    # A new dict: the configured one is shared by every spawner.
    spawner.environment = {**spawner.environment, "SANDBOX_KERNEL_LOCKS": str(lock_file)}


# -- the hub ----------------------------------------------------------------------------
c.JupyterHub.bind_url = "http://127.0.0.1:8000"  # behind a TLS reverse proxy (README)
c.JupyterHub.db_url = f"sqlite:///{STATE_DIR / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE_DIR / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(STATE_DIR / "jupyterhub-proxy.pid")
# configurable-http-proxy: the npm package, or the Python port of it (pip install
# configurable-http-proxy, in sandbox-kernel's `hub` extra) installed next to the hub.
_proxy = Path(sys.prefix, "bin", "configurable-http-proxy")
if _proxy.exists():
    c.ConfigurableHTTPProxy.command = [str(_proxy)]

# Local Unix users log in with their passwords (PAM): the hub must run as root.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = _names(SETTINGS_DIR / "students.txt") | _names(
    SETTINGS_DIR / "instructors.txt"
)
c.Authenticator.admin_users = _names(SETTINGS_DIR / "instructors.txt")

# -- each student's server --------------------------------------------------------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(Path(sys.prefix, "bin", "jupyterhub-singleuser"))]
# A directory of its own rather than the home directory itself: a kernel's workspace is
# its notebook's directory, and a workspace that holds ~/.jupyter, ~/.local and the like
# stays read-only at its top level (only existing entries are writable there).
c.Spawner.notebook_dir = f"~/{NOTEBOOK_DIR}"
c.Spawner.default_url = "/lab"
# The server ignores ~/.jupyter and ~/.local/share/jupyter (a student's own server
# config would be code running outside the sandbox)...
c.Spawner.disable_user_config = True
# ...and reads jupyter_server_config.py from here: the sandbox kernel only, no terminals.
c.Spawner.environment = {"JUPYTER_CONFIG_PATH": str(SERVER_CONFIG_DIR)}
c.Spawner.pre_spawn_hook = prepare_student
