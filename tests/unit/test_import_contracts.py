"""The trust zones' import contracts (pyproject.toml, [tool.importlinter]) hold.

The contracts say which zone may import which (ARCHITECTURE.md): the trusted kernel
never imports code that runs in the sandbox, the launcher and the executor never
import the kernel or the relay, the isolation mechanisms know nothing of
Jupyter, the policy is pure. Running them here makes `make test` (CI) enforce them.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(*config: str) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the test extras (make install-test)")
    # --no-cache: nothing is written into the checkout (CI's second run is unprivileged).
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *config],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_trust_zones_import_contracts_are_kept() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout
    # Every contract in pyproject.toml was checked (none silently dropped).
    assert result.stdout.count(" KEPT") == 4, result.stdout


def test_a_forbidden_import_breaks_a_contract(tmp_path: Path) -> None:
    # Positive control: a contract the code does break (the launcher does import the
    # executor's code, inside a function, to become the executor) is reported, with
    # the import line, so the kept contracts above are not kept because the tool sees
    # nothing.
    config = tmp_path / "contracts.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_package = "sandbox_kernel"\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "control"\n'
        'type = "forbidden"\n'
        'source_modules = ["sandbox_kernel.launcher"]\n'
        'forbidden_modules = ["sandbox_kernel.child"]\n'
    )
    result = lint_imports(str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "control BROKEN" in result.stdout, result.stdout
    assert "sandbox_kernel.launcher.contain -> sandbox_kernel.child.child" in result.stdout


@pytest.mark.parametrize("package", ["network", "relay"])
def test_a_package_that_is_one_zone_is_named_whole(package: str) -> None:
    # network/ holds only the trusted egress proxy and its allow-list (the sandbox's end
    # of the way to it, pid 1's forwarder and the supervisor's dialer, is in launcher/);
    # relay/ only the trusted parser, gate and publisher (the frame format the sandbox
    # writes with is sandbox_kernel/framing.py). So the contracts name each package, and
    # a module added to it later is covered without anyone remembering to list it.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}
    trusted = contracts["The trusted kernel never imports code that runs in the sandbox"]
    sandboxed = contracts[
        "The launcher and the executor never import the trusted kernel or the relay"
    ]
    assert f"sandbox_kernel.{package}" in trusted["source_modules"]
    assert f"sandbox_kernel.{package}" in sandboxed["forbidden_modules"]
    named = [
        module
        for contract in contracts.values()
        for key in ("source_modules", "forbidden_modules")
        for module in contract.get(key, [])
    ]
    assert not [m for m in named if m.startswith(f"sandbox_kernel.{package}.")], named
    # And nothing the sandbox runs is left in it.
    sandbox_side = {"network": {"forward.py", "dialer.py"}, "relay": {"framing.py"}}[package]
    assert not sandbox_side & {p.name for p in (ROOT / "sandbox_kernel" / package).iterdir()}
