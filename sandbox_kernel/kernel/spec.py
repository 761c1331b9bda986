"""Freeze the kernel's configuration into the spec the launcher receives.

The launcher gets a frozen ``SandboxSpec`` (isolation/spec.py) as JSON, never traitlets
objects: it is a separate process that must not load configuration files (they may be
in a writable place).
"""

from __future__ import annotations

import os
from typing import Any

import psutil

from ..config import Isolation, Limits
from ..isolation import cgroups, rlimits
from ..isolation.cgroups import Cgroup
from ..isolation.spec import SandboxSpec, from_plain
from ..units import MIB
from .env import scrubbed_environment

__all__ = ["build_environment", "build_spec", "effective_memory_bytes", "protected_paths"]

# Below HOME: credentials (reading them is the leak) and configuration or code
# that something outside the sandbox runs (writing them is the escape).
HOME_PROTECTED = (
    ".ssh",
    ".gnupg",
    ".pki",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".jupyter",
    ".ipython",
    ".local",
    ".config",
    ".cache",
    ".mozilla",
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zprofile",
    ".bash_history",
    ".python_history",
    ".condarc",
    ".gitconfig",
    ".pam_environment",
)


def protected_paths(home: str) -> list[str]:
    """Paths a cell must never reach, even inside its workspace (a server may run in ~)."""
    import site

    from jupyter_core.paths import (
        jupyter_config_dir,
        jupyter_config_path,
        jupyter_data_dir,
        jupyter_path,
        jupyter_runtime_dir,
    )

    paths = [
        jupyter_runtime_dir(),
        jupyter_data_dir(),
        jupyter_config_dir(),
        *jupyter_config_path(),
        *jupyter_path(),
    ]
    paths += [os.path.join(home, name) for name in HOME_PROTECTED]
    paths.append(os.environ.get("IPYTHONDIR", os.path.join(home, ".ipython")))
    paths.append(site.getusersitepackages())
    return sorted({os.path.realpath(p) for p in paths if p and os.path.isabs(p)})


def effective_memory_bytes(limits: Limits) -> int:
    """The executor's memory limit: as configured, else half of what this machine has.

    "This machine" is the smaller of the RAM and the enclosing cgroup's limit (a
    container's --memory): half of a host's RAM inside a 512 MiB container would let
    a cell bring the container's OOM killer down on the kernel itself.
    """
    available = int(psutil.virtual_memory().total)
    enclosing = cgroups.enclosing_limits().memory_bytes
    if enclosing is not None:
        available = min(available, enclosing)
    if limits.memory_limit_mb:
        return min(int(limits.memory_limit_mb) * MIB, available)
    return available // 2


def limits_dict(limits: Limits) -> dict[str, Any]:
    return {
        "wall_time_limit_s": limits.wall_time_limit_s,
        "cpu_time_limit_s": limits.cpu_time_limit_s,
        "memory_bytes": effective_memory_bytes(limits),
        "max_processes": limits.max_processes,
        "max_open_files": limits.max_open_files,
        # One file can never be larger than the whole quota.
        "max_file_size_mb": min(limits.max_file_size_mb, limits.workspace_quota_mb)
        if limits.workspace_quota_mb
        else limits.max_file_size_mb,
        "workspace_quota_mb": limits.workspace_quota_mb,
        "interrupt_grace_s": limits.interrupt_grace_s,
        "cpu_share": limits.cpu_share,
        "rollback": limits.rollback,
        "snapshot_max_bytes": int(limits.snapshot_max_mb) * MIB
        or effective_memory_bytes(limits) // 2,
        "copy_ahead_bytes": int(limits.snapshot_copy_ahead_mb) * MIB,
    }


def build_spec(
    isolation: Isolation,
    limits: Limits,
    *,
    workspace: str,
    home: str,
    private_dir: str,
    cgroup: Cgroup | None,
    cgroup_reason: str | None,
    policy: dict[str, Any] | None = None,
    hidden: list[str] | None = None,
    network: dict[str, Any] | None = None,
    network_mounts: list[list[str]] | None = None,
    max_frame_bytes: int,
) -> SandboxSpec:
    """The sandbox's spec (isolation/spec.py), checked here as the launcher checks it."""
    extra = []
    for item in isolation.extra_mounts:
        path, _, mode = item.rpartition(":")
        extra.append([os.path.realpath(path), mode])
    extra += network_mounts or []
    limit_values = limits_dict(limits)
    # The executor sends a small stand-in for an output its frame could not carry.
    limit_values["max_frame_bytes"] = max_frame_bytes
    spec: dict[str, Any] = {
        "isolation": {
            "level": isolation.level,
            "required_isolation": isolation.required_isolation,
            "workspace": workspace,
            "workspace_writable": isolation.workspace_writable,
            "extra_mounts": extra,
            "allow_network": isolation.allow_network,
            "tmp_size_mb": isolation.tmp_size_mb,
            "seccomp": isolation.seccomp,
            "landlock": isolation.landlock,
            "sandbox_uid_base": isolation.sandbox_uid_base,
            "home": home,
            "protected": sorted(
                {
                    *protected_paths(home),
                    *(os.path.realpath(p) for p in [*isolation.hidden_paths, *(hidden or [])]),
                }
            ),
        },
        "limits": limit_values,
        "rlimits": rlimits.prepare(
            limit_values, memory_in_cgroup=cgroup is not None, pids_in_cgroup=cgroup is not None
        ),
        "private_dir": private_dir,
        "policy": policy or {},
        "explain": {
            "memory_limit_set": bool(limits.memory_limit_mb),
            "allowed_hosts": list(getattr(isolation, "allowed_hosts", []) or []),
        },
        "network": network,
    }
    if cgroup is not None:
        spec["cgroup"] = {
            "procs": cgroup.procs_files,
            "detail": f"cgroup v{cgroup.version}: memory "
            f"{limit_values['memory_bytes'] // MIB} MiB, {limits.max_processes} processes",
        }
    else:
        spec["cgroup_unavailable"] = cgroup_reason or "not used"
    spec["cpu_share"] = cpu_share_layer(limits.cpu_share, cgroup, cgroup_reason)
    return from_plain(SandboxSpec, spec)


def cpu_share_layer(share: float, cgroup: Cgroup | None, reason: str | None) -> dict[str, Any]:
    """Whether the CPU share is in force, and why not, for the level report."""
    if not share:
        return {
            "on": False,
            "detail": "no share set (Limits.cpu_share = 0): cells may use every core",
        }
    if cgroup is not None and cgroup.cpu_share:
        return {
            "on": True,
            "detail": f"{share:g} core(s) for the executor and all it starts (cgroup v"
            f"{cgroup.version} cpu controller)",
        }
    why = cgroup.cpu_unavailable if cgroup is not None else (reason or "no cgroup")
    return {
        "on": False,
        "detail": f"Limits.cpu_share = {share:g} is NOT enforced: no cgroup cpu controller "
        f"({why}); cells may use every core",
    }


def build_environment(isolation: Isolation, limits: Limits) -> dict[str, str]:
    threads = str(max(1, min(os.cpu_count() or 1, limits.blas_threads)))
    return scrubbed_environment(
        os.environ,
        passthrough=isolation.env_passthrough,
        overrides={
            # As ipykernel: figures go inline.
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            # Each BLAS thread costs address space, and forking while one is
            # busy deadlocks OpenBLAS (feasibility.md, Q5).
            "OPENBLAS_NUM_THREADS": threads,
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "NUMEXPR_MAX_THREADS": threads,
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            # No bytecode caches from the sandbox's interpreters (!python, scripts):
            # a __pycache__ left in the workspace would run for the user's own next
            # import of that module, unseen in its source; hygiene.py removes any.
            "PYTHONDONTWRITEBYTECODE": "1",
        },
    )
