"""The examples/kubernetes image itself, built from the local base image (issue 16).

No cluster can run here: the Dockerfile is built with ``BASE_IMAGE`` set to the test
image (made from Debian's packages, no registry), and the container runs as the uid
and gid the chart's values give the pod, in a restricted pod's shape. The tour runs
with the classroom preset the image locks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest
import yaml

pytestmark = [pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parent.parent.parent
# The classroom preset refuses these on purpose (shell escapes, sockets, subprocess,
# class-hierarchy walking); the tour's crash cell ends its executor (and is rolled back).
EXPECTED_ERRORS = {"SandboxPolicyError", "ExecutorDied"}


def test_the_kubernetes_image_runs_the_tour_locked(image: str) -> None:
    values = yaml.safe_load((REPO / "examples" / "kubernetes" / "values.yaml").read_text())
    uid, gid = values["singleuser"]["uid"], values["singleuser"]["fsGid"]
    built = subprocess.run(
        [
            "docker",
            "build",
            "-q",
            "--network",
            "none",
            "-f",
            "examples/kubernetes/Dockerfile",
            "--build-arg",
            f"BASE_IMAGE={image}",
            "-t",
            "sandbox-notebook:test",
            ".",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    work = Path(tempfile.mkdtemp(prefix="sandbox-k8s-image-"))
    try:
        work.chmod(0o777)
        nb = nbformat.read(REPO / "notebooks" / "tour.ipynb", as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell("%sandbox"))
        nbformat.write(nb, work / "tour.ipynb")
        (work / "tour.ipynb").chmod(0o666)
        run = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "--user",
                f"{uid}:{gid}",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
                "-v",
                f"{work}:/home/jovyan/work",
                "-w",
                "/home/jovyan/work",
                "sandbox-notebook:test",
                "jupyter",
                "nbconvert",
                "--to",
                "notebook",
                "--execute",
                "--allow-errors",
                "--output",
                "executed.ipynb",
                "tour.ipynb",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-4000:]
        executed = json.loads((work / "executed.ipynb").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    errors = [o["ename"] for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert set(errors) <= EXPECTED_ERRORS, errors
    assert errors.count("ExecutorDied") == 1
    report = "".join("".join(o.get("text", "")) for o in code[-1]["outputs"])
    assert "Sandbox level: landlock" in report, report
    assert "Locked by the administrator" in report
    assert "SandboxKernelApp.preset='classroom'" in report
    # Every cell ran (the crash cell's successor found the earlier state restored).
    assert all(c["execution_count"] for c in code)
