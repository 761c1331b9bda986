"""The sandbox's spec (isolation/spec.py): built by the kernel, checked once by the launcher.

The launcher reads no string key after :func:`parse`; a malformed spec is refused there,
with the field named, instead of failing later somewhere in the containment sequence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox_kernel.config import Isolation, Limits
from sandbox_kernel.isolation.spec import Launch, SandboxSpec, SpecError, dumps, parse
from sandbox_kernel.kernel.spec import build_spec


def _spec(tmp_path: Path, **isolation: Any) -> SandboxSpec:
    return build_spec(
        Isolation(**isolation),
        Limits(),
        workspace=str(tmp_path),
        home=str(tmp_path / "home"),
        private_dir=str(tmp_path / "private"),
        cgroup=None,
        cgroup_reason="no cgroup in this test",
        policy={"preset": "standard", "rules": {}, "runtime_hooks": True},
        network={
            "proxy_socket": None,
            "proxy_port": 3128,
            "allowed": "",
            "index_hosts": ["pypi.org"],
            "index_allowed": [],
            "package_prefix": str(tmp_path / "packages"),
            "site_dirs": [str(tmp_path / "packages" / "site")],
            "env": {"PIP_RETRIES": "0"},
            "off_message": "no network",
        },
        network_mounts=[[str(tmp_path / "packages"), "rw"]],
        max_frame_bytes=1 << 20,
    )


def _launch(tmp_path: Path, **isolation: Any) -> Launch:
    return Launch(
        sandbox=_spec(tmp_path, **isolation),
        kernel_pid=1234,
        relay_fd=3,
        supervisor_fd=4,
        cwd=str(tmp_path),
        env={"PATH": "/usr/bin"},
    )


def test_the_spec_survives_its_json_round_trip(tmp_path: Path) -> None:
    launch = _launch(tmp_path, extra_mounts=[f"{tmp_path}:ro"], level="landlock")
    again = parse(dumps(launch))
    assert again == launch
    iso = again.sandbox.isolation
    assert iso.level == "landlock"
    assert iso.extra_mounts == ((str(tmp_path), "ro"), (str(tmp_path / "packages"), "rw"))
    assert iso.writable_shares() == [str(tmp_path / "packages")]
    assert again.sandbox.limits.max_frame_bytes == 1 << 20
    assert again.sandbox.cgroup is None
    assert again.sandbox.cgroup_unavailable == "no cgroup in this test"
    # Frozen: nothing in the launcher changes what the kernel asked for.
    with pytest.raises(AttributeError):
        iso.workspace = "/"  # type: ignore[misc]


def _broken(tmp_path: Path, change: Any) -> str:
    data = json.loads(dumps(_launch(tmp_path)))
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["sandbox"]["isolation"].pop("workspace"),
            "spec.sandbox.isolation.workspace: missing",
        ),
        (
            lambda d: d["sandbox"]["isolation"].update(seccomp="off"),
            "spec.sandbox.isolation.seccomp: 'off' is not one of 'required', 'auto', 'disabled'",
        ),
        (
            lambda d: d["sandbox"]["limits"].update(max_processes="128"),
            "spec.sandbox.limits.max_processes: expected int, got str",
        ),
        (
            # bool is an int to Python, never to the spec.
            lambda d: d["sandbox"]["limits"].update(max_open_files=True),
            "spec.sandbox.limits.max_open_files: expected int, got bool",
        ),
        (
            lambda d: d["sandbox"]["isolation"].update(extra_mounts=[["/data"]]),
            "spec.sandbox.isolation.extra_mounts[0]: expected 2 items, got 1",
        ),
        (
            lambda d: d["sandbox"]["rlimits"].update(RLIMIT_AS="lots"),
            "spec.sandbox.rlimits['RLIMIT_AS']: expected int, got str",
        ),
        (lambda d: d.update(relay_fd=None), "spec.relay_fd: expected int, got NoneType"),
        (lambda d: d["sandbox"].update(extra=1), "spec.sandbox: unknown field(s) extra"),
    ],
)
def test_a_malformed_spec_is_refused_with_the_field_named(
    tmp_path: Path, change: Any, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        parse(_broken(tmp_path, change))
    assert str(caught.value) == message


def test_a_spec_that_is_not_json_is_refused() -> None:
    with pytest.raises(SpecError, match="not JSON"):
        parse("{")
