"""The executor's environment, set in the launcher before the executor forks.

HOME, TMPDIR and caches point into the sandbox's private space, PATH names only what
the sandbox shows, USER and LOGNAME agree with the sandbox's /etc/passwd, and the
network's variables (proxy, pip, the package directory) come from the kernel's spec.
"""

from __future__ import annotations

import os

from ..isolation import accounts, mountns, userns
from ..isolation.spec import SandboxSpec
from ..paths import SANDBOX_SITE
from . import dialer

__all__ = ["set_accounts", "set_command_path", "set_environment"]


def sandbox_home(plan: mountns.MountPlan) -> str:
    """HOME at the namespaces level: its real path (a private tmpfs), else in /tmp."""
    if any(m.kind == "tmpfs" and m.path == plan.home for m in plan.mounts):
        return plan.home
    return plan.tmp + "/home"


def set_command_path(plan: mountns.MountPlan) -> None:
    """PATH with only what the sandbox shows: a dangling entry would name a host path.

    Called right after the plan, while the launcher still has the kernel's ids:
    a root launcher can no longer see into 0700 directories (/root/.pyenv) once
    it has taken the sandbox's.
    """
    os.environ["PATH"] = mountns.visible_command_path(os.environ.get("PATH", ""), plan)


def set_accounts(plan: mountns.MountPlan, idmap: userns.IdMap, kernel_uid: int) -> None:
    """The sandbox's /etc/passwd and /etc/group (accounts.py), before the trees are captured.

    USER and LOGNAME follow, so that ``getpass.getuser()`` and ``pwd`` agree even
    where a root kernel runs its cells as the workspace's owner.
    """
    name = accounts.account_name(idmap.inner_uid, kernel_uid)
    plan.synthesize(accounts.etc_files(idmap.inner_uid, idmap.inner_gid, name, sandbox_home(plan)))
    os.environ.update(USER=name, LOGNAME=name)


def set_environment(level: str, spec: SandboxSpec, plan: mountns.MountPlan) -> None:
    """HOME, TMPDIR and caches point into the sandbox's private space.

    At the namespaces level HOME keeps its real path (an empty tmpfs there),
    so ``~`` in paths and tracebacks reads as it does outside. Caches go to
    /tmp, which is private too and never the workspace.
    """
    if level == "namespaces":
        home, tmp = sandbox_home(plan), plan.tmp
    else:
        home, tmp = spec.private_dir + "/home", spec.private_dir + "/tmp"
        for path in (home, tmp):
            os.makedirs(path, mode=0o700, exist_ok=True)
    if not spec.isolation.allow_network and not spec.explain.allowed_hosts:
        # No index can answer: pip fails at once instead of retrying five times.
        os.environ.setdefault("PIP_RETRIES", "0")
        os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    os.environ.update(
        HOME=home,
        TMPDIR=tmp,
        XDG_CACHE_HOME=tmp + "/.cache",
        XDG_CONFIG_HOME=tmp + "/.config",
        MPLCONFIGDIR=tmp + "/.matplotlib",
        IPYTHONDIR=tmp + "/.ipython",
    )
    _network_environment(level, spec)


def _network_environment(level: str, spec: SandboxSpec) -> None:
    """Proxy variables, pip's settings and the package directory (from the kernel's spec).

    Set here, in the launcher's environment after it started, so they reach the
    executor and its children but never the launcher's own interpreter start
    (PYTHONPATH names a directory cells write).
    """
    network = spec.network
    if network is None:
        return
    env = dict(network.env)
    if network.proxy_socket and level != "namespaces":
        # No network namespace: cells open no socket, and the proxy is reached through
        # the supervisor's dialer (launcher/dialer.py), which the shim on PYTHONPATH
        # makes Python's clients use. The descriptor's number is set at the fork.
        env[dialer.ADDRESS_ENV] = f"127.0.0.1:{network.proxy_port}"
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (SANDBOX_SITE, env.get("PYTHONPATH", "")) if p
        )
    os.environ.update(env)
    bin_dir = os.path.join(network.package_prefix, "bin")
    if network.package_prefix:
        os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + bin_dir
