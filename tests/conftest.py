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
# Kernelspecs that start the same kernel on a simulated restricted host
# (tests/security/restricted_host.py): name -> profile.
RESTRICTED_KERNELS = {
    "sandbox-python-docker": "docker",
    "sandbox-python-k8s": "k8s-restricted",
    "sandbox-python-k8s-unconfined": "k8s-unconfined",
    "sandbox-python-nolandlock": "no-landlock",
    "sandbox-python-nopasswd": "no-passwd",
}


def _provisioner_missing() -> str | None:
    """Why this environment cannot load the spare provisioner, if it cannot.

    Its entry point is registered when the package is installed: a virtualenv
    installed before it existed needs `pip install -e .` (make install-test) again.
    """
    from sandbox_kernel.install import provisioner_registered

    if provisioner_registered():
        return None
    return (
        "the jupyter_client entry point sandbox-kernel-provisioner is not registered in "
        "this environment: reinstall the package (pip install -e . or make install-test)"
    )


def runs_from_a_bare_checkout() -> bool:
    """Whether the package runs from a checkout on sys.path without its metadata (the
    container tests' image: a .pth to /src), where no entry point can be registered."""
    import importlib.metadata

    try:
        importlib.metadata.distribution("sandbox-kernel")
    except importlib.metadata.PackageNotFoundError:
        return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    # Register this checkout's kernelspec in a private Jupyter data directory
    # that comes first on JUPYTER_PATH, so every test (and every kernel that
    # nbclient, papermill or nbconvert start) runs this code, not whatever is
    # installed on the machine.
    import shutil

    from sandbox_kernel.install import kernel_dict, template_dir

    data_dir = Path(tempfile.mkdtemp(prefix="sandbox-kernel-tests-"))
    data_dir.chmod(0o755)
    specs = {KERNEL_NAME: kernel_dict(python=sys.executable)}
    wrapper = str(Path(__file__).parent / "security" / "restricted_host.py")
    for name, profile in RESTRICTED_KERNELS.items():
        spec = kernel_dict(display_name=f"sandbox ({profile} host)", python=sys.executable)
        spec["argv"] = [sys.executable, "-I", wrapper, profile, "--", *spec["argv"]]
        specs[name] = spec
    # kernel_dict names the spare provisioner only where it is registered (else
    # jupyter_client would hide the kernelspec); the warm tests say why it is not.
    for name, spec in specs.items():
        spec_dir = data_dir / "kernels" / name
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        for logo in template_dir().glob("logo-*"):
            shutil.copy(logo, spec_dir)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(data_dir), *filter(None, os.environ.get("JUPYTER_PATH", "").split(os.pathsep))]
    )
    # No pre-warmed spares (sandbox_kernel/provisioner.py) unless a test asks for one:
    # tests start kernels in directories of their own, where a spare is never used.
    os.environ.setdefault("SANDBOX_KERNEL_SPARES", "0")
    # Reference kernel for side-by-side comparisons.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    """A notebook directory of its own for the kernel under test."""
    ws = tmp_path / "workspace"
    ws.mkdir()
    os.chmod(tmp_path, 0o755)
    return ws
