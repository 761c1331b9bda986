"""PolicySettings: the preset and overrides that decide each rule's action, as plain data.

The trusted kernel builds it from the ``Policy`` traitlets configurable; the executor
receives it as JSON (``to_dict``/``from_dict``), since the sandboxed child never sees
the kernel's configuration objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from .rules import ACTIONS, GROUPS, PRESET_NAMES, RULES, default_actions

__all__ = ["PolicySettings", "check_overrides"]


class _PolicyConfig(Protocol):
    """What ``from_configurable`` reads: the traits of ``sandbox_kernel.config.Policy``."""

    # Read-only properties, so a traitlets class with wider attribute types conforms.
    @property
    def preset(self) -> str: ...
    @property
    def rules(self) -> Mapping[str, Any]: ...
    @property
    def runtime_hooks(self) -> bool: ...


def check_overrides(overrides: Mapping[str, Any]) -> dict[str, str]:
    """Validate a rules mapping (rule id or group name -> action); return a clean copy.

    Raises ``ValueError`` with a message that says how to fix the entry.
    """
    clean: dict[str, str] = {}
    for key, action in overrides.items():
        name = str(key)
        if name.upper() in RULES:
            name = name.upper()
        elif name.lower() in GROUPS:
            name = name.lower()
        else:
            raise ValueError(
                f"unknown policy rule or group {key!r}: use a rule id such as 'SKP201' or one "
                f"of the groups {', '.join(sorted(GROUPS))}"
            )
        value = str(action).lower()
        if value not in ACTIONS:
            raise ValueError(
                f"unknown action {action!r} for {name}: use one of {', '.join(ACTIONS)}"
            )
        clean[name] = value
    return clean


@dataclass(frozen=True)
class PolicySettings:
    """A preset name plus per-rule and per-group overrides.

    Precedence: a rule id's own override beats its group's override, which beats the
    preset's default.
    """

    preset: str = "standard"
    # Not hashed: a mapping is not hashable; equality still compares it.
    overrides: Mapping[str, str] = field(default_factory=dict, hash=False)
    runtime_hooks: bool = True

    def __post_init__(self) -> None:
        preset = str(self.preset).lower()
        if preset not in PRESET_NAMES:
            raise ValueError(
                f"unknown policy preset {self.preset!r}: use one of {', '.join(PRESET_NAMES)}"
            )
        overrides = MappingProxyType(check_overrides(self.overrides))
        actions = default_actions(preset)
        for name, action in overrides.items():
            if name in GROUPS:
                for rule_id in GROUPS[name]:
                    if rule_id not in overrides:
                        actions[rule_id] = action
        for name, action in overrides.items():
            if name in RULES:
                actions[name] = action
        # frozen: set the normalised values through object.__setattr__
        object.__setattr__(self, "preset", preset)
        object.__setattr__(self, "overrides", overrides)
        object.__setattr__(self, "_actions", MappingProxyType(actions))

    def action(self, rule_id: str) -> str:
        """The effective action of ``rule_id``."""
        actions: Mapping[str, str] = object.__getattribute__(self, "_actions")
        return actions[rule_id]

    @property
    def actions(self) -> Mapping[str, str]:
        """Effective action of every rule, by id."""
        actions: Mapping[str, str] = object.__getattribute__(self, "_actions")
        return actions

    @classmethod
    def from_configurable(cls, policy: _PolicyConfig) -> PolicySettings:
        """Build from a ``sandbox_kernel.config.Policy`` instance (or anything with its traits)."""
        return cls(
            preset=str(policy.preset),
            overrides=dict(policy.rules),
            runtime_hooks=bool(policy.runtime_hooks),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, for the executor."""
        return {
            "preset": self.preset,
            "rules": dict(self.overrides),
            "runtime_hooks": self.runtime_hooks,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicySettings:
        """Inverse of ``to_dict``; raises ``ValueError`` on anything malformed."""
        if not isinstance(data, Mapping):
            raise ValueError("policy settings must be a mapping")
        rules = data.get("rules", {})
        if not isinstance(rules, Mapping):
            raise ValueError("policy settings 'rules' must be a mapping")
        return cls(
            preset=str(data.get("preset", "standard")),
            overrides=dict(rules),
            runtime_hooks=bool(data.get("runtime_hooks", True)),
        )
