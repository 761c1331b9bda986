"""Fixtures for tests that drive a real kernel through jupyter_client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests.utils import running_kernel


@pytest.fixture(scope="module")
def module_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("workspace")
    ws.chmod(0o755)
    return ws


@pytest.fixture(scope="module")
def kc(module_workspace: Path) -> Iterator[BlockingKernelClient]:
    """One kernel for a whole test module (cells may share state within it)."""
    with running_kernel(module_workspace) as (_, client):
        yield client
