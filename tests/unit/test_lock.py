"""Admin locks: orders of strictness, combining lock files, applying them to configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets import Int
from traitlets.config import Config

from sandbox_kernel.config import Limits
from sandbox_kernel.lock import Locks, collect_orders, load_locks, orders, stricter


@pytest.mark.parametrize(
    ("name", "tighter", "looser"),
    [
        ("Limits.wall_time_limit_s", 30, 0),  # 0 means no limit: the loosest
        ("Limits.wall_time_limit_s", 30, 60),
        ("Limits.memory_limit_mb", 1024, 0),
        ("Limits.max_processes", 64, 512),
        ("Isolation.required_isolation", "namespaces", "landlock"),
        ("Isolation.required_isolation", "landlock", "none"),
        ("Isolation.allow_network", False, True),
        ("Isolation.allowed_hosts", [], ["pypi"]),
        ("Isolation.allowed_hosts", ["pypi"], ["pypi", "*.example.org"]),
        ("Isolation.workspace_writable", False, True),
        ("Isolation.seccomp", "required", "auto"),
        ("Isolation.extra_mounts", ["/a:ro"], ["/a:ro", "/b:rw"]),
        ("Isolation.hidden_paths", ["/srv/gradebook", "/srv/tests"], ["/srv/gradebook"]),
        ("Output.sanitize_html", True, False),
        ("Output.active_content", "drop", "sanitize"),
        ("Output.active_content", "sanitize", "isolate"),
        (
            "Output.widget_modules",
            ["@jupyter-widgets/controls"],
            ["@jupyter-widgets/controls", "anywidget"],
        ),
        ("Output.comm_targets", ["jupyter.widget"], ["jupyter.widget", "other"]),
        ("Output.renderer_mime_types", [], ["application/vnd.plotly.v1+json"]),
        ("Output.max_cell_output_bytes", 1024, 2048),
        # Widget traffic has caps of its own: an admin who locks output must reach them.
        ("Output.max_comm_bytes", 1024 * 1024, 64 * 1024 * 1024),
        ("Output.max_comm_messages_per_s", 100.0, 1000.0),
        ("Policy.preset", "classroom", "standard"),
        ("SandboxKernelApp.preset", "standard", "permissive"),
        ("Policy.runtime_hooks", True, False),
    ],
)
def test_orders(name: str, tighter: object, looser: object) -> None:
    assert stricter(name, tighter, looser)
    assert not stricter(name, looser, tighter)
    assert stricter(name, tighter, tighter)


def test_every_lockable_setting_exists() -> None:
    from sandbox_kernel.app import SandboxKernelApp

    classes = {c.__name__: c for c in SandboxKernelApp.classes}
    classes["SandboxKernelApp"] = SandboxKernelApp
    for name in orders():
        section, key = name.split(".")
        assert key in classes[section].class_trait_names(config=True), name


def test_two_lock_files_combine_to_the_stricter(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(
        json.dumps(
            {
                "locked_by": "hub",
                "locked": {"Limits.wall_time_limit_s": 60, "Output.sanitize_html": True},
            }
        )
    )
    # A second file (one a user might point SANDBOX_KERNEL_LOCKS at) cannot loosen.
    b.write_text(
        json.dumps({"locked": {"Limits.wall_time_limit_s": 0, "Output.sanitize_html": False}})
    )
    locks = load_locks(extra_files=[str(a), str(b)], environ={})
    assert locks.values == {"Limits.wall_time_limit_s": 60, "Output.sanitize_html": True}
    assert "hub" in locks.owners["Limits.wall_time_limit_s"]


def test_hidden_paths_from_two_lock_files_add_up(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"locked": {"Isolation.hidden_paths": ["/srv/gradebook"]}}))
    b.write_text(json.dumps({"locked": {"Isolation.hidden_paths": ["/srv/tests"]}}))
    locks = load_locks(extra_files=[str(a), str(b)], environ={})
    assert sorted(locks.values["Isolation.hidden_paths"]) == ["/srv/gradebook", "/srv/tests"]


def test_apply_keeps_stricter_and_refuses_looser() -> None:
    locks = Locks()
    locks.merge({"Limits.wall_time_limit_s": 60, "Limits.max_processes": 128}, "admin")
    config = Config()
    config.Limits.wall_time_limit_s = 10  # stricter: kept
    config.Limits.max_processes = 4096  # looser: refused
    attempts = locks.apply(config)
    assert config.Limits.wall_time_limit_s == 10
    assert config.Limits.max_processes == 128
    assert [(a.setting, a.attempted, a.locked) for a in attempts] == [
        ("Limits.max_processes", 4096, 128)
    ]


def test_locked_policy_preset_pins_every_rule() -> None:
    from sandbox_kernel.policy.rules import RULES

    locks = Locks()
    locks.merge({"Policy.preset": "classroom"}, "admin")
    locks.expand()
    config = Config()
    config.Policy.rules = {"SKP201": "off", "SKP101": "deny", "shell": "off"}
    attempts = locks.apply(config)
    rules = config.Policy.rules
    assert rules["SKP201"] == "deny"
    assert all(rules[rid] == rule.classroom or rules[rid] == "deny" for rid, rule in RULES.items())
    assert {a.setting for a in attempts} >= {"Policy.rules[SKP201]", "Policy.rules[SKP102]"}


def test_locked_rule_group_cannot_be_unlocked_rule_by_rule() -> None:
    locks = Locks()
    locks.merge({"Policy.rules": {"shell": "deny"}}, "admin")
    locks.expand()
    config = Config()
    config.Policy.rules = {"SKP101": "off"}
    locks.apply(config)
    assert config.Policy.rules["SKP101"] == "deny"


def test_locked_app_preset_locks_its_settings() -> None:
    locks = Locks()
    locks.merge({"SandboxKernelApp.preset": "classroom"}, "admin")
    locks.expand()
    assert locks.values["Output.active_content"] == "sanitize"
    assert locks.values["Limits.wall_time_limit_s"] == 60.0


def test_broken_lock_file_fails_closed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read the admin lock file"):
        load_locks(extra_files=[str(bad)], environ={})


def test_unknown_setting_fails_closed(tmp_path: Path) -> None:
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"locked": {"Limits.wall_time_limt_s": 10}}))
    with pytest.raises(SystemExit, match="cannot be locked"):
        load_locks(extra_files=[str(typo)], environ={})


def test_the_lock_orders_come_from_the_traits() -> None:
    # config.py tags each trait; nothing else lists the lockable settings.
    assert orders()["Limits.max_processes"].kind == "smaller"
    assert orders()["Isolation.required_isolation"].kind == "rank"
    assert "Limits.blas_threads" not in orders()  # lock=False: an admin may not lock it
    assert Limits.class_traits()["max_processes"].metadata["lock"] == "smaller"


def _new_setting(tag: dict[str, object]) -> type:
    class NewLimits(Limits):
        max_threads = Int(8, help="a setting added later").tag(config=True, **tag)

    NewLimits.__module__ = "sandbox_kernel.config"  # as if written there
    return NewLimits


def test_a_new_setting_without_a_lock_order_is_refused() -> None:
    with pytest.raises(TypeError, match=r"NewLimits\.max_threads has no lock order"):
        collect_orders([_new_setting({})])
    with pytest.raises(TypeError, match=r"NewLimits\.max_threads has an unknown lock order"):
        collect_orders([_new_setting({"lock": "looser"})])
    assert collect_orders([_new_setting({"lock": False})]) == {}
    assert collect_orders([_new_setting({"lock": "smaller"})])["NewLimits.max_threads"].stricter(
        4, 8
    )


def test_the_kernel_refuses_to_import_with_a_setting_without_a_lock_order() -> None:
    # The same setting added to config.Limits itself: importing the app (as the
    # kernel's start and every test of it does) fails, naming the setting.
    code = (
        "import sandbox_kernel.config as config\n"
        "from traitlets import Int\n"
        "class Limits(config.Limits):\n"
        "    max_threads = Int(8).tag(config=True)\n"
        "Limits.__module__ = 'sandbox_kernel.config'\n"
        "config.Limits = Limits\n"
        "import sandbox_kernel.app\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert "TypeError" in result.stderr
    assert "Limits.max_threads has no lock order" in result.stderr
    # Positive control: without the added setting the app imports.
    plain = subprocess.run(
        [sys.executable, "-c", "import sandbox_kernel.app"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert plain.returncode == 0, plain.stderr
