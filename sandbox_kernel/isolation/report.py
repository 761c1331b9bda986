"""What isolation is actually in force: built while the sandbox is set up, never guessed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LAYER_ORDER", "Report"]

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
