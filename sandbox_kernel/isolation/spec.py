"""The sandbox's spec: what the trusted kernel asks of the launcher, typed and frozen.

Built on the trusted side (``kernel/spec.py``), sent as JSON over the spec pipe, and
parsed once in the launcher by :func:`parse`, which checks every field's type and
allowed values and names the first one that is wrong. After that nothing reads a
string key: the mechanisms get these objects.

The launcher holds no configuration of its own (it must not load configuration
files, which may sit in a writable place), so everything it decides comes from here.

The records are typed NamedTuples rather than frozen dataclasses: as immutable and
as typed, but a dataclass costs about 0.4 ms to create, and the launcher, which
every executor start waits for, would pay 3 ms for these alone.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, NamedTuple

__all__ = [
    "CgroupSpec",
    "CpuShareSpec",
    "ExplainSpec",
    "IsolationSpec",
    "Launch",
    "LimitsSpec",
    "NetworkSpec",
    "SandboxSpec",
    "SpecError",
    "dumps",
    "from_plain",
    "parse",
    "plain",
]

T = typing.TypeVar("T")
Level = Literal["namespaces", "landlock", "none"]
# How a mechanism is asked for: fail closed without it, use it where it works, or not at all.
Want = Literal["required", "auto", "disabled"]


class SpecError(ValueError):
    """The spec the launcher received is malformed; the message names the field."""


class IsolationSpec(NamedTuple):
    level: Literal["auto", "namespaces", "landlock", "none"]
    required_isolation: Level
    workspace: str
    workspace_writable: bool
    # (real path, "ro" | "rw"): the configured extra mounts, then the network's.
    extra_mounts: tuple[tuple[str, Literal["ro", "rw"]], ...]
    allow_network: bool
    tmp_size_mb: int
    seccomp: Want
    landlock: Want
    sandbox_uid_base: int
    home: str
    # Paths a cell must never reach, even inside the workspace (real paths).
    protected: tuple[str, ...]
    # Top-level workspace entries bound read-only inside (namespaces level only).
    read_only_inside: tuple[str, ...] = ()

    def writable_shares(self) -> list[str]:
        """The extra mounts cells may write to."""
        return [path for path, mode in self.extra_mounts if mode == "rw"]


class LimitsSpec(NamedTuple):
    """The executor's limits, resolved by the kernel (memory from the machine's size)."""

    wall_time_limit_s: float
    cpu_time_limit_s: float
    memory_bytes: int
    max_processes: int
    max_open_files: int
    max_file_size_mb: int
    workspace_quota_mb: int
    interrupt_grace_s: float
    cpu_share: float
    rollback: bool
    snapshot_max_bytes: int
    # Pages copied ahead of the next cell after each snapshot (child/hot_pages.py).
    copy_ahead_bytes: int
    # The largest frame the kernel reads: the executor sends a stand-in for a bigger output.
    max_frame_bytes: int


class ExplainSpec(NamedTuple):
    """What the executor needs to explain errors the sandbox caused (child/explain.py)."""

    memory_limit_set: bool
    allowed_hosts: tuple[str, ...]


class CgroupSpec(NamedTuple):
    procs: tuple[str, ...]  # the cgroup.procs files the launcher joins
    detail: str


class CpuShareSpec(NamedTuple):
    on: bool
    detail: str


class NetworkSpec(NamedTuple):
    """The egress proxy and the package directory (network/kernel_side.py)."""

    proxy_socket: str | None
    proxy_port: int
    allowed: str
    index_hosts: tuple[str, ...]
    index_allowed: tuple[str, ...]
    package_prefix: str
    site_dirs: tuple[str, ...]
    env: dict[str, str]
    off_message: str


class SandboxSpec(NamedTuple):
    isolation: IsolationSpec
    limits: LimitsSpec
    # RLIMIT_* name -> value (isolation/rlimits.py decides which, in the kernel).
    rlimits: dict[str, int]
    private_dir: str
    explain: ExplainSpec
    cpu_share: CpuShareSpec
    # The executor's policy settings; the launcher passes them on unread, the
    # executor checks them (policy/settings.py, PolicySettings.from_dict).
    policy: dict[str, Any]
    cgroup: CgroupSpec | None = None
    cgroup_unavailable: str = "not used"
    network: NetworkSpec | None = None


class Launch(NamedTuple):
    """One start of the launcher: the sandbox and how this launcher reaches the kernel."""

    sandbox: SandboxSpec
    kernel_pid: int  # the launcher's parent; it exits at once if that is not so
    relay_fd: int
    supervisor_fd: int
    cwd: str
    # The environment the kernel built from its configuration (scrubbed).
    env: dict[str, str]


def _is_record(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def plain(value: Any) -> Any:
    """A spec object as JSON-able data: records to dicts, tuples to lists."""
    if _is_record(value):
        return {name: plain(item) for name, item in zip(value._fields, value, strict=True)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def dumps(launch: Launch) -> str:
    return json.dumps(plain(launch))


def parse(text: str) -> Launch:
    """The launch the kernel sent, checked field by field; SpecError names what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"the spec is not JSON: {exc}") from None
    result: Launch = _build(Launch, data, "spec")
    return result


def from_plain(cls: type[T], data: Any, where: str = "spec") -> T:
    """``cls`` from JSON-able data (lists for tuples), checked as :func:`parse` checks."""
    result: T = _build(cls, plain(data), where)
    return result


def _build(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(cls._fields))
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name in cls._fields:
        if name not in data:
            if name not in cls._field_defaults:
                raise SpecError(f"{where}.{name}: missing")
            continue
        values[name] = _check(hints[name], data[name], f"{where}.{name}")
    return cls(**values)


def _check(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check(inner, value, where)
    if origin is Literal:
        if value not in args:
            raise SpecError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        return _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise SpecError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise SpecError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(
            _check(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected an object, got {type(value).__name__}")
        return {
            _check(args[0], k, f"{where} key"): _check(args[1], v, f"{where}[{k!r}]")
            for k, v in value.items()
        }
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is an int to Python, never to the spec.
    if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        raise SpecError(f"{where}: expected {hint.__name__}, got {type(value).__name__}")
    return value
