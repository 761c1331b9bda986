"""How many spares a kernel's manager keeps by default: where restarts happen, one."""

from __future__ import annotations

import pytest
from jupyter_client.manager import KernelManager
from jupyter_client.multikernelmanager import MultiKernelManager

from sandbox_kernel.provisioner import SPARES_ENV, SandboxProvisioner


def _spares(kernel_manager: KernelManager) -> int:
    return SandboxProvisioner(kernel_id="k", parent=kernel_manager).spares


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite sets SANDBOX_KERNEL_SPARES=0 for every other test (tests/conftest.py).
    monkeypatch.delenv(SPARES_ENV, raising=False)


def test_a_server_keeps_one_spare() -> None:
    # jupyter_server's MappingKernelManager is a MultiKernelManager; its kernels are
    # restarted by users, which is what a spare is for.
    assert _spares(KernelManager(parent=MultiKernelManager())) == 1


def test_a_one_shot_run_keeps_none() -> None:
    # nbclient, nbconvert, papermill and graders make a KernelManager of their own,
    # run the notebook once and shut the kernel down: a spare would never be used.
    assert _spares(KernelManager()) == 0


def test_the_environment_and_the_configuration_decide_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SPARES_ENV, "2")
    assert _spares(KernelManager()) == 2
    monkeypatch.setenv(SPARES_ENV, "0")
    assert _spares(KernelManager(parent=MultiKernelManager())) == 0
    configured = SandboxProvisioner(kernel_id="k", parent=KernelManager(), spares=1)
    assert configured.spares == 1
