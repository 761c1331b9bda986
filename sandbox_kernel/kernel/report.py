"""What the kernel says about its sandbox: the banner and ``%sandbox``.

Both are answered on the trusted side, from the kernel's own record of what the
launcher set up: a cell cannot make the executor misreport its sandbox.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from .. import __version__
from ..config import Isolation, Limits
from ..log import AuditLog
from ..policy import PolicySettings
from ..policy.rules import RULES
from ..sandbox_magic import SANDBOX_MAGIC_DOC, rules_table
from ..units import MIB
from .debug import debugger_unavailable
from .sandbox import Sandbox

__all__ = ["banner", "magic_argument", "magic_text", "sandbox_report"]

# ``%sandbox`` alone in a cell, after IPython's transformation.
SANDBOX_MAGIC = re.compile(r"^get_ipython\(\)\.run_line_magic\('sandbox', '([^']*)'\)\s*$")


def banner(sandbox: Sandbox) -> str:
    lines = [f"Python {sys.version.split()[0]} | sandbox-kernel {__version__}"]
    report = sandbox.report
    if sandbox.setup_failure:
        lines.append(f"Sandbox: NOT RUNNING - {sandbox.setup_failure}")
    elif report:
        on = [name for name, layer in report.get("layers", {}).items() if layer.get("on")]
        lines.append(f"Sandbox level: {report.get('level')} ({', '.join(on)})")
        if report.get("level") == "none":
            lines.append("WARNING: the filesystem and processes are not isolated at this level.")
    else:
        lines.append("Sandbox: starting")
    lines.append("Type %sandbox for details.")
    return "\n".join(lines)


def magic_argument(code: str) -> str | None:
    """The argument of a ``%sandbox`` alone in the cell ("" for none); None for other cells."""
    from IPython.core.inputtransformer2 import TransformerManager

    if "sandbox" not in code:
        return None
    try:
        match = SANDBOX_MAGIC.match(TransformerManager().transform_cell(code).strip())
    except Exception:
        return None
    return match.group(1).strip() if match else None


def magic_text(
    argument: str,
    sandbox: Sandbox,
    *,
    policy: PolicySettings,
    audit: AuditLog,
    locked: dict[str, Any],
    locked_files: dict[str, dict[str, Any]],
) -> str | None:
    """The text of ``%sandbox ARGUMENT`` (the executor is started first, if need be);
    None for an unknown subcommand."""
    if argument == "":
        return sandbox_report(sandbox, policy=policy, audit=audit, locked_files=locked_files)
    if argument == "rules":
        locked_rules = locked.get("Policy.rules", ({}, ""))[0]
        return rules_table(policy.actions, policy.preset, dict(locked_rules))
    if argument == "help":
        return SANDBOX_MAGIC_DOC.rstrip()
    return None


def sandbox_report(
    sandbox: Sandbox,
    *,
    policy: PolicySettings,
    audit: AuditLog,
    locked_files: dict[str, dict[str, Any]],
) -> str:
    from ..isolation.report import render_report

    if sandbox.setup_failure:
        return f"Sandbox level: NOT RUNNING\n  {sandbox.setup_failure}"
    executor = sandbox.executor
    info = {
        "isolation": sandbox.report,
        "limits": _limits_report(sandbox),
        "setup_ms": round(executor.setup_time_s * 1000, 1)
        if executor and executor.setup_time_s
        else None,
        "last_cell": {k: v for k, v in sandbox.last_cell.items() if v is not None},
        "warm": _warm_line(sandbox),
        "locked": locked_files,
        "network": _network_report(sandbox.isolation, sandbox),
        "debugger": "available (debugpy in the executor, on the sandbox's own loopback)"
        if debugger_unavailable(sandbox.report) is None
        else f"not available: {debugger_unavailable(sandbox.report)}",
        "policy": {
            "preset": policy.preset,
            # Only where the actions differ from the preset's (a lock on the preset
            # pins every rule at its preset action): %sandbox rules lists them all.
            "rule overrides": _rule_overrides(policy) or "none",
            "runtime audit hooks": "on" if policy.runtime_hooks else "off",
            "audit log": audit.path
            if audit.path and not audit.error
            else f"kernel log only ({audit.error or 'no file configured'})",
        },
    }
    return render_report(info)


def _warm_line(sandbox: Sandbox) -> str | None:
    """Whether the sandbox was built ahead of need (a spare, kernel/warm.py), and when."""
    warm = sandbox.warm
    if warm is None or sandbox.executor is None:
        return None
    return (
        f"Started from a pre-warmed spare: this sandbox was built {warm.built_s_before:.1f} s "
        "before this kernel was assigned, for this workspace only, from this kernel's "
        "configuration, and checked at assignment against what a fresh start would build; "
        "it held no connection key and no socket before."
    )


def _limits_report(sandbox: Sandbox) -> dict[str, Any]:
    from .spec import limits_dict

    settings: Limits = sandbox.limits
    limits: dict[str, Any] = limits_dict(settings)
    if settings.rollback:
        limits["rollback"] = (
            "the state (variables, imports); files in the workspace are not rolled back"
        )
    meter = sandbox.meter
    if meter is not None:
        limits["workspace_growth"] = (
            f"{meter.growth / MIB:.1f} MiB since the kernel started (measured from outside "
            f"every {meter.interval():.2g} s)"
        )
    guard = sandbox.guard
    if guard is not None:
        bound = f"; read-only inside: {', '.join(sorted(guard.bound))}" if guard.bound else ""
        if "." in guard.frozen:
            bound += "; not scanned: the whole workspace is read-only in the sandbox"
        elif guard.frozen:
            bound += f"; not scanned, read-only in the sandbox: {', '.join(sorted(guard.frozen))}"
        limits["workspace_hygiene"] = (
            f"{sandbox.hygiene_findings} entries undone this session (links, special files, "
            "Isolation.control_files, Isolation.shadow_modules); last check "
            f"{guard.stats.seconds * 1000:.1f} ms over {guard.stats.dirs} directories{bound}"
        )
    return limits


def _rule_overrides(policy: PolicySettings) -> dict[str, str]:
    preset = policy.preset
    return {
        rid: action
        for rid, action in policy.actions.items()
        if action != RULES[rid].default(preset)
    }


def _network_report(isolation: Isolation, sandbox: Sandbox) -> dict[str, Any]:
    network = sandbox.network
    if isolation.allow_network:
        return {"network": "the host's network (Isolation.allow_network)"}
    if network is None:
        return {}
    level = sandbox.report.get("level")
    if not network.enabled:
        hosts = "none: the network is off (Isolation.allowed_hosts is empty)"
    elif level != "namespaces":
        # The supervisor's dialer (launcher/dialer.py): no socket of the cells' own.
        hosts = (
            f"{network.allow.describe()} (through the kernel's egress proxy, for Python's "
            f"HTTP clients only at the '{level}' level: not curl or git)"
        )
    else:
        hosts = f"{network.allow.describe()} (through the kernel's egress proxy)"
    where = network.prefix + ("" if network.persistent else " (until the kernel stops)")
    return {
        "allowed hosts": hosts,
        "package directory": where,
        "installed with %pip": ", ".join(network.installed()) or "nothing yet",
    }
