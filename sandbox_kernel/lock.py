"""Admin locks: a system-wide file pins settings that configuration from below may only tighten.

An administrator (a JupyterHub, an autograder) writes ``sandbox_kernel_locks.json``
in a system Jupyter config directory (``/etc/jupyter``, ``/usr/local/etc/jupyter``)
or in a file named by ``SANDBOX_KERNEL_LOCKS`` (which the hub sets for the
single-user server)::

    {"locked_by": "CS101 staff",
     "locked": {"Isolation.required_isolation": "namespaces",
                "Limits.wall_time_limit_s": 60,
                "Policy.preset": "classroom",
                "Output.sanitize_html": true}}

Every later source (user config files, kernel.json arguments, the command line,
environment variables that point at other config directories) may set a locked
setting only to a stricter value; a looser value is replaced by the locked one,
and the attempt is reported for the audit log. Several lock files combine by
taking the stricter value of each setting, so an additional lock file can
never loosen what another one locks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .policy.rules import ACTIONS

__all__ = [
    "LOCKS_ENV",
    "LOCKS_FILE",
    "Attempt",
    "Lockable",
    "Locks",
    "collect_orders",
    "load_locks",
    "lock_files",
    "orders",
    "stricter",
]

LOCKS_FILE = "sandbox_kernel_locks.json"
LOCKS_ENV = "SANDBOX_KERNEL_LOCKS"

Order = Callable[[Any, Any], bool]  # stricter(a, b): is a at least as strict as b?


def _rank(order: list[Any]) -> Order:
    def stricter(a: Any, b: Any) -> bool:
        return order.index(a) <= order.index(b)

    return stricter


def _smaller(zero_is_unlimited: bool) -> Order:
    def stricter(a: Any, b: Any) -> bool:
        if zero_is_unlimited:
            if b == 0:
                return True
            if a == 0:
                return False
        return bool(a <= b)

    return stricter


def _true_is_stricter(a: Any, b: Any) -> bool:
    return bool(a) or not b


def _false_is_stricter(a: Any, b: Any) -> bool:
    return (not a) or bool(b)


def _subset(a: Any, b: Any) -> bool:
    return set(a) <= set(b)


def _superset(a: Any, b: Any) -> bool:
    return set(a) >= set(b)


def _equal(a: Any, b: Any) -> bool:
    return bool(a == b)


# Strictest first, as the policy orders them.
POLICY_ACTIONS = list(ACTIONS)


def _rules_stricter(a: Any, b: Any) -> bool:
    """Per rule: a's action is at least as strict as b's wherever b sets one."""
    order = _rank(POLICY_ACTIONS)
    return all(key in a and order(a[key], value) for key, value in b.items())


# The orders a trait's ``lock`` tag may name (config.py says which each setting uses).
KINDS: dict[str, Order] = {
    "smaller": _smaller(False),
    "smaller_or_unlimited": _smaller(True),
    "true": _true_is_stricter,
    "false": _false_is_stricter,
    "subset": _subset,
    "superset": _superset,
    "equal": _equal,
    "rules": _rules_stricter,
}


@dataclass(frozen=True)
class Lockable:
    """How one setting is locked: its order, and how two locks on it combine."""

    stricter: Order
    kind: str  # a KINDS key, or "rank"

    def strictest(self, a: Any, b: Any) -> Any:
        if self.kind == "rules":
            order = _rank(POLICY_ACTIONS)
            merged = dict(b)
            for key, value in a.items():
                keep = key not in merged or order(value, merged[key])
                merged[key] = value if keep else merged[key]
            return merged
        if self.kind == "subset":
            return [v for v in a if v in set(b)]
        if self.kind == "superset":
            return list(dict.fromkeys([*a, *b]))
        return a if self.stricter(a, b) else b


def collect_orders(classes: Iterable[type]) -> dict[str, Lockable]:
    """Every lockable setting of ours, by "Class.trait", from its trait's ``lock`` tag.

    Each configurable trait a sandbox_kernel class defines must say how it is
    locked (an order, or ``lock=False``): a setting added without one would be a
    limit an admin believes locked, or one nobody decided about. Refused here, with
    every such trait named (TypeError).
    """
    found: dict[str, Lockable] = {}
    problems: list[str] = []
    for cls in classes:
        if not cls.__module__.startswith("sandbox_kernel."):
            continue  # IPython's and ipykernel's settings are not ours to lock
        for key, trait in cls.class_own_traits(config=True).items():  # type: ignore[attr-defined]
            name = f"{cls.__name__}.{key}"
            if "lock" not in trait.metadata:
                problems.append(f"{name} has no lock order (.tag(config=True, lock=...))")
                continue
            tag = trait.metadata["lock"]
            if tag is False:
                continue
            if isinstance(tag, tuple) and tag:
                found[name] = Lockable(_rank(list(tag)), "rank")
            elif isinstance(tag, str) and tag in KINDS:
                found[name] = Lockable(KINDS[tag], tag)
            else:
                problems.append(f"{name} has an unknown lock order {tag!r}")
    if problems:
        raise TypeError("settings without a valid admin lock order: " + "; ".join(problems))
    return found


def orders() -> dict[str, Lockable]:
    """The lockable settings, as collected when the app was imported (app.LOCK_ORDERS)."""
    from .app import LOCK_ORDERS

    return LOCK_ORDERS


def stricter(name: str, a: Any, b: Any) -> bool:
    """Whether value ``a`` of setting ``name`` is at least as strict as ``b``."""
    return orders()[name].stricter(a, b)


def _strictest(name: str, a: Any, b: Any) -> Any:
    return orders()[name].strictest(a, b)


@dataclass(frozen=True)
class Attempt:
    """A looser value that configuration from below tried to set."""

    setting: str
    attempted: Any
    locked: Any


@dataclass
class Locks:
    values: dict[str, Any] = field(default_factory=dict)
    # setting -> who locked it ("CS101 staff (/etc/jupyter/sandbox_kernel_locks.json)")
    owners: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # What each lock file says, as written (before presets and groups are expanded),
    # by owner: the compact view %sandbox shows, one line per file.
    declared: dict[str, dict[str, Any]] = field(default_factory=dict)

    def merge(self, values: dict[str, Any], owner: str) -> None:
        for name, value in values.items():
            if name not in orders():
                self.errors.append(f"{owner}: {name!r} cannot be locked (unknown setting)")
                continue
            known = self.values.get(name, value)
            self.values[name] = _strictest(name, value, known) if name in self.values else value
            self.owners[name] = self.owners.get(name, owner)

    def expand(self) -> None:
        """Turn locks on presets and rule groups into locks on what they stand for.

        Locking a preset locks every setting at the preset's value (a user's
        own override of one of them may only be stricter); locking a policy
        preset or a rule group pins each of its rules.
        """
        from .config import PRESETS
        from .policy.rules import RULES

        owner = self.owners.get("SandboxKernelApp.preset", "")
        preset = self.values.get("SandboxKernelApp.preset")
        if preset is not None:
            derived = {
                f"{section}.{key}": value
                for section, values in PRESETS[preset].items()
                for key, value in values.items()
            }
            lockable = orders()
            self.merge({k: v for k, v in derived.items() if k in lockable}, owner)
        rules: dict[str, str] = {}
        if "Policy.preset" in self.values:
            rules.update(
                {rid: rule.default(self.values["Policy.preset"]) for rid, rule in RULES.items()}
            )
            owner = self.owners["Policy.preset"]
        for key, action in dict(self.values.get("Policy.rules", {})).items():
            targets = (
                [key] if key in RULES else [rid for rid, rule in RULES.items() if rule.group == key]
            )
            for rid in targets:
                rules[rid] = action if rid not in rules else _strictest_action(action, rules[rid])
            owner = self.owners.get("Policy.rules", owner)
        if rules:
            self.values.pop("Policy.rules", None)
            self.merge({"Policy.rules": rules}, owner)

    def apply(self, config: Any) -> list[Attempt]:
        """Pin the locked settings in a traitlets Config; return the refused looser values.

        ``config`` holds everything configured from below (files, arguments),
        presets already applied. A stricter value from below is kept.
        """
        attempts: list[Attempt] = []
        for name, locked in self.values.items():
            section, key = name.split(".", 1)
            if name == "Policy.rules":
                attempts += _apply_rules(config, locked)
                continue
            if key in config[section]:
                wanted = config[section][key]
                try:
                    ok = stricter(name, wanted, locked)
                except (TypeError, ValueError):
                    ok = False
                if ok:
                    continue
                attempts.append(Attempt(name, wanted, locked))
            config[section][key] = locked
        return attempts

    def describe(self) -> dict[str, tuple[Any, str]]:
        return {
            name: (value, self.owners.get(name, "")) for name, value in sorted(self.values.items())
        }


def _strictest_action(a: str, b: str) -> str:
    return a if POLICY_ACTIONS.index(a) <= POLICY_ACTIONS.index(b) else b


def _apply_rules(config: Any, locked: dict[str, str]) -> list[Attempt]:
    """Per rule: the user's override stands if it is at least as strict as the lock.

    Group entries in the user's overrides are resolved to rules first: a rule's
    own entry beats its group's, so a locked rule must be pinned by id.
    """
    from .policy.rules import RULES

    wanted = dict(config["Policy"].get("rules", {}))
    attempts = []
    for rid, action in locked.items():
        mine = wanted.get(rid) or wanted.get(RULES[rid].group) if rid in RULES else wanted.get(rid)
        if (
            mine is not None
            and mine in POLICY_ACTIONS
            and POLICY_ACTIONS.index(mine) <= POLICY_ACTIONS.index(action)
        ):
            wanted[rid] = mine
            continue
        if mine is not None:
            attempts.append(Attempt(f"Policy.rules[{rid}]", mine, action))
        wanted[rid] = action
    config["Policy"]["rules"] = wanted
    return attempts


def _system_config_dirs() -> list[str]:
    from jupyter_core.paths import SYSTEM_CONFIG_PATH

    return [p for p in SYSTEM_CONFIG_PATH if os.path.isabs(p)]


def lock_files(environ: Mapping[str, str] | None = None) -> list[str]:
    """Where admin lock files are looked for: the system config dirs, and the hub's."""
    if environ is None:
        environ = os.environ
    files = [os.path.join(d, LOCKS_FILE) for d in _system_config_dirs()]
    if environ.get(LOCKS_ENV):
        files.append(environ[LOCKS_ENV])
    return files


def load_locks(extra_files: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> Locks:
    """Read every admin lock file: the system config dirs, and the one the hub names."""
    files = lock_files(environ)
    files.extend(extra_files)
    locks = Locks()
    for path in dict.fromkeys(files):
        if not os.path.isfile(path):
            continue
        try:
            with open(path) as f:
                data = json.load(f)
            values = data["locked"]
            if not isinstance(values, dict):
                raise ValueError("'locked' must be an object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A broken lock file must not silently unlock anything: fail closed.
            raise SystemExit(
                f"sandbox-kernel: cannot read the admin lock file {path}: {exc}"
            ) from None
        owner = f"{data.get('locked_by') or 'the administrator'} ({path})"
        locks.declared[owner] = dict(values)
        locks.merge(values, owner)
    if locks.errors:
        # A misspelt setting is a lock the admin believes in and that does not hold.
        raise SystemExit("sandbox-kernel: " + "; ".join(locks.errors))
    return locks
