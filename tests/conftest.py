"""Suite-wide set-up: the kernelspec of this checkout, and a kernel fixture per test module."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

KERNEL_NAME = "sandbox-python"


def pytest_configure(config: pytest.Config) -> None:
    # Register this checkout's kernelspec in a private Jupyter data directory
    # that comes first on JUPYTER_PATH, so every test (and every kernel that
    # nbclient, papermill or nbconvert start) runs this code, not whatever is
    # installed on the machine.
    from sandbox_kernel.install import kernel_dict

    data_dir = Path(tempfile.mkdtemp(prefix="sandbox-kernel-tests-"))
    spec_dir = data_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps(kernel_dict(python=sys.executable)))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(data_dir), *filter(None, os.environ.get("JUPYTER_PATH", "").split(os.pathsep))]
    )
    # Reference kernel for side-by-side comparisons.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    """A notebook directory of its own for the kernel under test."""
    ws = tmp_path / "workspace"
    ws.mkdir()
    os.chmod(tmp_path, 0o755)
    yield ws
