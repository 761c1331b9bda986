"""Resource limits (setrlimit) for the executor."""

from __future__ import annotations

import os
import resource
from typing import TYPE_CHECKING, Any

from ..errors import SetupError
from ..units import MIB

if TYPE_CHECKING:
    from .report import Report

__all__ = ["apply", "prepare", "set_limits"]


def prepare(
    limits: dict[str, Any], *, memory_in_cgroup: bool, pids_in_cgroup: bool
) -> dict[str, int]:
    """Which rlimits to set, by name, from the limits config (computed in the kernel)."""
    out = {
        # A crash must not write a core file into the workspace, nor run a
        # host-side core_pattern helper.
        "RLIMIT_CORE": 0,
        "RLIMIT_NOFILE": int(limits["max_open_files"]),
        "RLIMIT_FSIZE": int(limits["max_file_size_mb"]) * MIB,
    }
    if not pids_in_cgroup:
        # Threads count too; not enforced at all for a real uid of root.
        out["RLIMIT_NPROC"] = int(limits["max_processes"])
    if not memory_in_cgroup and limits.get("memory_bytes"):
        # Address space, not memory: looser, but it still stops a runaway
        # allocation. Snapshots (copy-on-write) do not add to it.
        out["RLIMIT_AS"] = int(limits["memory_bytes"])
    return out


def apply(rlimits: dict[str, int], level: str, report: Report) -> None:
    """In the executor, before seccomp: the first line of user code already runs under them."""
    set_limits(rlimits)
    detail = ", ".join(f"{k[7:].lower()}={v}" for k, v in rlimits.items())
    if "RLIMIT_NPROC" in rlimits and level != "namespaces" and os.getuid() == 0:
        # Linux never applies RLIMIT_NPROC to the host's uid 0, capabilities or not.
        detail += (
            " (nproc is not enforced: the kernel runs as root and has no pids cgroup;"
            " give the container a pids limit)"
        )
    report.layer("rlimits", True, detail)


def set_limits(rlimits: dict[str, int]) -> None:
    for name, wanted in rlimits.items():
        which = getattr(resource, name)
        try:
            _, hard = resource.getrlimit(which)
            # Lowering is always allowed; a hard limit already below ours stays.
            value = hard if hard != resource.RLIM_INFINITY and wanted > hard else wanted
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError) as exc:
            raise SetupError("rlimits", f"cannot set {name}={wanted}: {exc}") from None
