"""What isolation is actually in force: built while the sandbox is set up, never guessed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..units import MIB

__all__ = ["LAYER_ORDER", "Report", "render_report"]

# Display order for the banner and %sandbox.
LAYER_ORDER = (
    "userns",
    "pidns",
    "mountns",
    "netns",
    "ipcns",
    "utsns",
    "cgroupns",
    "proc",
    "capabilities",
    "no_new_privs",
    "seccomp",
    "landlock",
    "rlimits",
    "cgroup",
    "cpu_share",
    "environment",
)


@dataclass
class Report:
    level: str = "none"
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Why stronger levels were not used, by level.
    unavailable: dict[str, str] = field(default_factory=dict)

    def layer(self, name: str, on: bool, detail: str) -> None:
        self.layers[name] = {"on": bool(on), "detail": detail}

    def as_dict(self) -> dict[str, Any]:
        ordered = {k: self.layers[k] for k in LAYER_ORDER if k in self.layers}
        ordered.update({k: v for k, v in self.layers.items() if k not in ordered})
        return {
            "level": self.level,
            "layers": ordered,
            "notes": list(self.notes),
            "unavailable": dict(self.unavailable),
        }


def _fmt_limit(name: str, value: Any) -> str:
    if name.endswith("_bytes"):
        label = name[: -len("_bytes")].replace("_", " ")
        return f"{label}: {int(value) // MIB} MiB"
    if name.endswith("_s"):
        label = name[:-2].replace("_", " ")
        return f"{label}: {'none' if not value else f'{value:g} s'}"
    return f"{name.replace('_', ' ')}: {value}"


def render_report(info: dict[str, Any]) -> str:
    """The text of ``%sandbox``: level, each layer and why, limits, locks, last cell."""
    report = info.get("isolation", {})
    lines = [f"Sandbox level: {report.get('level', 'unknown')}"]
    if report.get("level") == "none":
        lines.append("  WARNING: files, processes and the network of the host are NOT isolated.")
    lines.append("Layers:")
    for name, layer in report.get("layers", {}).items():
        mark = "on " if layer.get("on") else "off"
        lines.append(f"  [{mark}] {name:<13} {layer.get('detail', '')}")
    unavailable = report.get("unavailable") or {}
    if unavailable:
        lines.append("Stronger levels not available here:")
        lines.extend(f"  {level}: {why}" for level, why in unavailable.items())
    notes = report.get("notes") or []
    if notes:
        lines.append("Notes:")
        lines.extend(f"  - {note}" for note in notes)
    limits = info.get("limits") or {}
    if limits:
        lines.append("Limits:")
        lines.extend(f"  {_fmt_limit(k, v)}" for k, v in limits.items())
    network = info.get("network") or {}
    if network:
        lines.append("Network:")
        lines.extend(f"  {k}: {v}" for k, v in network.items())
    if info.get("debugger"):
        lines.append(f"Debugger: {info['debugger']}")
    policy = info.get("policy") or {}
    if policy:
        lines.append("Policy:")
        lines.extend(f"  {k}: {v}" for k, v in policy.items())
    locked = info.get("locked") or {}
    if locked:
        # One line per lock file, as the file says it; what a locked preset implies
        # shows in the limits and policy above.
        lines.append("Locked by the administrator:")
        for owner, values in locked.items():
            pinned = ", ".join(f"{name}={value!r}" for name, value in values.items())
            lines.append(f"  {owner}: {pinned or 'nothing'}")
    last = info.get("last_cell")
    if last:
        lines.append("Last cell:")
        lines.extend(f"  {k.replace('_', ' ')}: {v}" for k, v in last.items())
    if info.get("setup_ms") is not None:
        lines.append(f"Sandbox set-up took {info['setup_ms']} ms.")
    if info.get("warm"):
        lines.append(info["warm"])
    return "\n".join(lines)
