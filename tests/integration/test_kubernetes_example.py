"""examples/kubernetes: the image's lock file on a simulated restricted pod, and the files agree.

No container runtime runs in CI, so the pod is simulated the way the security suite
does it (tests/security/restricted_host.py, profile ``k8s-restricted``: RuntimeDefault
seccomp, runc's masked /proc, no capabilities, no_new_privs, a non-root uid). The
values.yaml must ask Kubernetes for exactly what that profile simulates.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from sandbox_kernel.lock import load_locks
from tests.utils import execute, running_kernel, strip_ansi

EXAMPLE = Path(__file__).parents[2] / "examples" / "kubernetes"
REPO = EXAMPLE.parents[1]


def test_values_ask_for_the_simulated_restricted_pod() -> None:
    values = yaml.safe_load((EXAMPLE / "values.yaml").read_text())
    spawner = values["hub"]["config"]["KubeSpawner"]
    pod, container = spawner["pod_security_context"], spawner["container_security_context"]
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert values["singleuser"]["uid"] != 0


def test_dockerfile_copies_files_that_exist() -> None:
    text = (EXAMPLE / "Dockerfile").read_text()
    sources = [
        word
        for line in re.findall(r"^COPY (.+)$", text, re.M)
        for word in line.split()[:-1]
        if not word.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which does not exist"


def test_lock_file_is_valid() -> None:
    locks = load_locks(extra_files=[str(EXAMPLE / "sandbox_kernel_locks.json")], environ={})
    assert locks.errors == []
    assert locks.values["SandboxKernelApp.preset"] == "classroom"


@pytest.fixture
def pod_locks(tmp_path: Path) -> Path:
    """The image's lock file, with the audit log moved from /home/jovyan to this test."""
    locks = json.loads((EXAMPLE / "sandbox_kernel_locks.json").read_text())
    audit = tmp_path / "audit" / "audit.jsonl"
    audit.parent.mkdir()
    audit.parent.chmod(0o777)
    locks["locked"]["Policy.audit_log"] = str(audit)
    path = tmp_path / "sandbox_kernel_locks.json"
    path.write_text(json.dumps(locks))
    path.chmod(0o644)
    return path


def test_the_image_configuration_on_a_restricted_pod(tmp_path: Path, pod_locks: Path) -> None:
    workspace = tmp_path / "work"
    workspace.mkdir()
    workspace.chmod(0o777)
    for directory in (tmp_path, tmp_path.parent, tmp_path.parent.parent):
        directory.chmod(directory.stat().st_mode | 0o011)
    user_conf = tmp_path / "student-jupyter"
    user_conf.mkdir()
    user_conf.chmod(0o755)
    # A student's own configuration tries to loosen what the image locks.
    (user_conf / "sandbox_kernel_config.json").write_text(
        json.dumps({"Limits": {"wall_time_limit_s": 0}, "Policy": {"preset": "permissive"}})
    )
    (user_conf / "sandbox_kernel_config.json").chmod(0o644)
    env = {
        **os.environ,
        "SANDBOX_KERNEL_LOCKS": str(pod_locks),
        "JUPYTER_CONFIG_DIR": str(user_conf),
    }
    with running_kernel(workspace, kernel_name="sandbox-python-k8s", env=env) as (_, kc):
        report = execute(kc, "%sandbox").stdout
        assert "Sandbox level: landlock" in report
        assert "course staff" in report
        assert "Limits.wall_time_limit_s=60" in report
        res = execute(kc, "!echo shell", stop_on_error=False)
        assert res.reply["content"]["ename"] == "SandboxPolicyError"
        assert "SKP101" in strip_ansi("".join(res.reply["content"]["traceback"]))
        res = execute(kc, "import os\nprint(os.getuid())")
        assert res.stdout.strip() != "0", "the pod's cells must not run as root"
    audit = Path(json.loads(pod_locks.read_text())["locked"]["Policy.audit_log"])
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    refused = [r for r in records if r.get("event") == "lock"]
    assert refused, "the loosening attempt was not audited"
    # Only what the student's file tried is an attempt: the default preset gives way silently.
    assert all("SandboxKernelApp.preset" not in json.dumps(r) for r in refused), refused
    assert any(r.get("kind") == "cell" and r.get("verdict") == "denied" for r in records)


Z2JH = Path(__file__).parent / "z2jh"


def _merged(defaults: dict, values: dict) -> dict:
    """Helm's merge of user values over the chart's defaults (maps merge, the rest wins)."""
    out = dict(defaults)
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(defaults.get(key), dict):
            out[key] = _merged(defaults[key], value)
        else:
            out[key] = value
    return out


def test_values_validate_against_the_charts_schema() -> None:
    """No cluster runs here: check examples/kubernetes/values.yaml as `helm install`
    would, against the Zero to JupyterHub chart's own values schema (vendored)."""
    import jsonschema

    schema = yaml.safe_load((Z2JH / "values.schema.yaml").read_text())
    defaults = yaml.safe_load((Z2JH / "values.yaml").read_text())
    values = yaml.safe_load((REPO / "examples" / "kubernetes" / "values.yaml").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{list(e.path)}: {e.message}" for e in validator.iter_errors(_merged(defaults, values))
    ]
    assert errors == []
    # The check can fail: a misspelt key in singleuser is refused.
    broken = _merged(values, {"singleuser": {"uidd": 1000}})
    assert list(validator.iter_errors(_merged(defaults, broken)))
