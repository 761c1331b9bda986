"""The project's own command line and %sandbox: help, version, install names, rules, locks."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from sandbox_kernel import __version__
from sandbox_kernel.policy.rules import RULES
from tests.utils import execute, running_kernel, strip_ansi


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox_kernel", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_help_shows_commands_presets_and_main_settings() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for word in ("install", "uninstall", "standard", "classroom", "permissive", "--help-all"):
        assert word in out
    for setting in ("--SandboxKernelApp.preset=", "--Limits.wall_time_limit_s=", "--Policy.rules="):
        assert setting in out
    # Not IPython's option list: that is behind --help-all.
    assert "--IPKernelApp" not in out
    assert "--Session.key" not in out
    assert len(out.splitlines()) < 80


def test_help_all_lists_every_setting() -> None:
    result = run_cli("--help-all")
    assert result.returncode == 0, result.stderr
    for setting in ("--Limits.snapshot_max_mb", "--Output.widget_modules", "--Session.key"):
        assert setting in result.stdout


def test_version_is_sandbox_kernels() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sandbox-kernel {__version__}"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], "Python 3 (sandboxed)"),
        (["--preset", "classroom"], "Python 3 (sandboxed, classroom)"),
        (["--preset", "standard"], "Python 3 (sandboxed)"),
        (["--preset", "classroom", "--display-name", "CS101"], "CS101"),
    ],
)
def test_install_display_name_says_the_preset(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    result = run_cli("install", "--prefix", str(tmp_path), "--name", "t", *extra)
    assert result.returncode == 0, result.stderr
    spec = json.loads((tmp_path / "share/jupyter/kernels/t/kernel.json").read_text())
    assert spec["display_name"] == expected


@pytest.mark.parametrize(("extra", "named"), [([], False), (["--spares"], True)])
def test_install_elsewhere_names_the_spare_provisioner_only_when_asked(
    tmp_path: Path, extra: list[str], named: bool
) -> None:
    # Another prefix (or --user) may be read by another Python's Jupyter, which cannot
    # load the provisioner and would hide the kernel (install.names_provisioner).
    result = run_cli("install", "--prefix", str(tmp_path), "--name", "t", *extra)
    assert result.returncode == 0, result.stderr
    spec = json.loads((tmp_path / "share/jupyter/kernels/t/kernel.json").read_text())
    provisioner = spec["metadata"].get("kernel_provisioner", {}).get("provisioner_name")
    from sandbox_kernel.install import provisioner_registered
    from tests.conftest import runs_from_a_bare_checkout

    if not runs_from_a_bare_checkout():
        # Installed: the entry point is registered (else: reinstall the package).
        assert provisioner_registered()
    # Named only where asked and jupyter_client can load it: else it would hide the kernel.
    expected = named and provisioner_registered()
    assert provisioner == ("sandbox-kernel-provisioner" if expected else None)
    # The output says which, and how to change it.
    if expected:
        assert "--no-spares" in result.stdout
    elif not named:
        assert "--spares" in result.stdout

    if not runs_from_a_bare_checkout():
        # Installed: the entry point is registered (else: reinstall the package).
        assert provisioner_registered()
    # Named only where jupyter_client can load it: else it would hide the kernel.
    expected = named and provisioner_registered()
    assert provisioner == ("sandbox-kernel-provisioner" if expected else None)


@pytest.mark.parametrize(
    ("where", "spares", "named"),
    [
        # Into this environment (a virtualenv's default): its own Jupyter loads it.
        ({"sys_prefix": True}, None, True),
        ({"prefix": sys.prefix}, None, True),
        ({"sys_prefix": True}, False, False),
        ({"user": True}, None, False),
        ({"prefix": "/elsewhere"}, None, False),
        ({"user": True}, True, True),
    ],
)
def test_which_installs_name_the_spare_provisioner(
    where: dict[str, Any], spares: bool | None, named: bool
) -> None:
    from sandbox_kernel.install import names_provisioner

    args = {"user": False, "prefix": None, "sys_prefix": False, "spares": spares, **where}
    assert names_provisioner(argparse.Namespace(**args)) is named


def test_sandbox_magic_help_and_rules(kc: BlockingKernelClient) -> None:
    res = execute(kc, "%sandbox?")
    assert res.status == "ok", res.reply
    # The help goes to the pager, as for any magic's docstring.
    (page,) = res.reply["content"]["payload"]
    assert "%sandbox rules" in strip_ansi(page["data"]["text/plain"]), page
    res = execute(kc, "%sandbox help")
    assert "%sandbox rules" in res.stdout
    res = execute(kc, "%sandbox rules")
    lines = res.stdout.splitlines()
    for rid, rule in RULES.items():
        (line,) = [line for line in lines if line.split()[:1] == [rid]]
        assert line.split()[1] == rule.group
        assert line.split()[2] == rule.standard, line
    res = execute(kc, "%sandbox nonsense", stop_on_error=False)
    assert res.reply["content"]["ename"] == "UsageError"
    assert "rules" in res.reply["content"]["evalue"]


def test_locked_settings_are_one_line_per_lock_file(tmp_path: Path, workspace: Path) -> None:
    first = tmp_path / "course.json"
    first.write_text(
        json.dumps(
            {
                "locked_by": "CS101 staff",
                "locked": {
                    "SandboxKernelApp.preset": "classroom",
                    "Policy.rules": {"shell": "deny"},
                },
            }
        )
    )
    env = {**os.environ, "SANDBOX_KERNEL_LOCKS": str(first)}
    with running_kernel(workspace, env=env) as (_, kc):
        report = execute(kc, "%sandbox").stdout
        section = report.split("Locked by the administrator:\n", 1)[1].splitlines()
        lock_lines = section[: next(i for i, x in enumerate(section) if not x.startswith("  "))]
        # The preset lock pins some forty settings and every rule: still one line.
        assert report.count("CS101 staff") == 1, report
        assert lock_lines == [
            f"  CS101 staff ({first}): SandboxKernelApp.preset='classroom', "
            "Policy.rules={'shell': 'deny'}"
        ], report
        rules = execute(kc, "%sandbox rules").stdout
        (skp101,) = [line for line in rules.splitlines() if line.split()[:1] == ["SKP101"]]
        assert "deny (locked)" in skp101
