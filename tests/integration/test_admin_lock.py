"""Admin-locked configuration: every way a user could loosen a locked setting is refused and audited."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.utils import KERNEL_NAME, execute, running_kernel, strip_ansi

LOCKS = {
    "locked_by": "CS101 staff",
    "locked": {
        "Limits.wall_time_limit_s": 3,
        "Limits.interrupt_grace_s": 1,
        "Policy.rules": {"shell": "deny"},
        "Output.sanitize_html": True,
        "Isolation.allow_network": False,
    },
}
LOOSER = {
    "Limits": {"wall_time_limit_s": 0, "interrupt_grace_s": 30},
    "Policy": {"rules": {"SKP101": "off", "shell": "off"}},
    "Output": {"sanitize_html": False},
    "Isolation": {"allow_network": True},
}


@pytest.fixture
def locked_env(tmp_path: Path) -> dict[str, str]:
    lock_file = tmp_path / "locks.json"
    lock_file.write_text(json.dumps(LOCKS))
    audit = tmp_path / "audit.jsonl"
    admin_conf = tmp_path / "admin"
    admin_conf.mkdir()
    return {
        **os.environ,
        "SANDBOX_KERNEL_LOCKS": str(lock_file),
        # Where the audit log goes (set from below, but not a loosening).
        "SANDBOX_TEST_AUDIT": str(audit),
    }


def _assert_lock_holds(kc, audit: Path, *, attempts: bool = True) -> None:
    res = execute(kc, "import time\ntime.sleep(20)", stop_on_error=False, timeout=60)
    assert res.reply["content"]["ename"] == "CellTimeout", res.reply["content"]
    assert "3 s" in strip_ansi(res.reply["content"]["evalue"])
    res = execute(kc, "!echo shell", stop_on_error=False)
    assert res.reply["content"]["ename"] == "SandboxPolicyError"
    assert "SKP101" in res.reply["content"]["evalue"] or "SKP101" in "".join(
        res.reply["content"]["traceback"]
    )
    res = execute(kc, "from IPython.display import HTML\nHTML('<script>x=1</script><b>b</b>')")
    assert "<script" not in res.of_type("execute_result")[0]["data"]["text/html"]
    text = execute(kc, "%sandbox").stdout
    assert "Locked by the administrator:" in text
    assert "CS101 staff" in text
    if attempts:
        records = [json.loads(line) for line in audit.read_text().splitlines()]
        refused = [r for r in records if r.get("event") == "lock"]
        assert refused, "the loosening attempts were not audited"


def _audit_arg(env: dict[str, str]) -> str:
    return f"--Policy.audit_log={env['SANDBOX_TEST_AUDIT']}"


def test_kernel_arguments_cannot_loosen(workspace: Path, locked_env: dict[str, str]) -> None:
    args = [
        _audit_arg(locked_env),
        "--Limits.wall_time_limit_s=0",
        "--Limits.interrupt_grace_s=30",
        "--Policy.rules={'SKP101': 'off', 'shell': 'off'}",
        "--Output.sanitize_html=False",
        "--Isolation.allow_network=True",
        "--SandboxKernelApp.preset=permissive",
    ]
    with running_kernel(workspace, env=locked_env, extra_arguments=args) as (_, kc):
        _assert_lock_holds(kc, Path(locked_env["SANDBOX_TEST_AUDIT"]))


def test_user_config_file_cannot_loosen(
    workspace: Path, locked_env: dict[str, str], tmp_path: Path
) -> None:
    user_conf = tmp_path / "user-jupyter"
    user_conf.mkdir()
    (user_conf / "sandbox_kernel_config.json").write_text(json.dumps(LOOSER))
    env = {**locked_env, "JUPYTER_CONFIG_DIR": str(user_conf)}
    with running_kernel(workspace, env=env, extra_arguments=[_audit_arg(env)]) as (_, kc):
        _assert_lock_holds(kc, Path(env["SANDBOX_TEST_AUDIT"]))


def test_config_path_variable_and_a_second_lock_file_cannot_loosen(
    workspace: Path, locked_env: dict[str, str], tmp_path: Path
) -> None:
    extra = tmp_path / "extra-config"
    extra.mkdir()
    (extra / "sandbox_kernel_config.py").write_text(
        "c.Limits.wall_time_limit_s = 0\nc.Policy.rules = {'shell': 'off'}\nc.Output.sanitize_html = False\n"
    )
    env = {**locked_env, "JUPYTER_CONFIG_PATH": str(extra)}
    with running_kernel(workspace, env=env, extra_arguments=[_audit_arg(env)]) as (_, kc):
        _assert_lock_holds(kc, Path(env["SANDBOX_TEST_AUDIT"]))


def test_notebook_metadata_cannot_loosen(workspace: Path, locked_env: dict[str, str]) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(20)")])
    # Notebook metadata carries no configuration to the kernel at all; try anyway.
    nb.metadata["sandbox_kernel"] = {"Limits": {"wall_time_limit_s": 0}}
    nb.cells[0].metadata["sandbox_kernel"] = {"Limits": {"wall_time_limit_s": 0}}
    client = NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=60,
        allow_errors=True,
        resources={"metadata": {"path": str(workspace)}},
    )
    old = dict(os.environ)
    os.environ.update(locked_env)
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert nb.cells[0].outputs[-1]["ename"] == "CellTimeout"


def test_cell_code_cannot_loosen(
    workspace: Path, locked_env: dict[str, str], tmp_path: Path
) -> None:
    user_conf = tmp_path / "user-jupyter"
    user_conf.mkdir()
    env = {**locked_env, "JUPYTER_CONFIG_DIR": str(user_conf)}
    with running_kernel(workspace, env=env, extra_arguments=[_audit_arg(env)]) as (km, kc):
        code = (
            "import os\n"
            f"for path in [{str(user_conf / 'sandbox_kernel_config.py')!r}, {locked_env['SANDBOX_KERNEL_LOCKS']!r}]:\n"
            "    try:\n"
            "        open(path, 'w').write('c.Limits.wall_time_limit_s = 0')\n"
            "        print('WROTE', path)\n"
            "    except OSError as e:\n"
            "        print('denied', e.errno)\n"
        )
        lock_before = Path(locked_env["SANDBOX_KERNEL_LOCKS"]).read_text()
        execute(kc, code)
        # Checked on the host: the sandbox may write into its own private /tmp,
        # where these paths can exist as the parents of its workspace mount.
        assert Path(locked_env["SANDBOX_KERNEL_LOCKS"]).read_text() == lock_before
        assert not (user_conf / "sandbox_kernel_config.py").exists()
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=60)
        _assert_lock_holds(kc, Path(env["SANDBOX_TEST_AUDIT"]), attempts=False)


@pytest.mark.parametrize(
    "disabled", [False, True], ids=["user-config-read", "hub-disabled-user-config"]
)
def test_hub_can_disable_user_config(workspace: Path, tmp_path: Path, disabled: bool) -> None:
    """JUPYTERHUB_DISABLE_USER_CONFIG: ~/.jupyter does not configure the kernel either."""
    user_conf = tmp_path / "user-jupyter"
    user_conf.mkdir()
    (user_conf / "sandbox_kernel_config.json").write_text(
        json.dumps({"Limits": {"max_open_files": 77}})
    )
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(user_conf)}
    if disabled:
        env["JUPYTERHUB_DISABLE_USER_CONFIG"] = "1"
    with running_kernel(workspace, env=env) as (_, kc):
        limit = execute(kc, "import resource; resource.getrlimit(resource.RLIMIT_NOFILE)[0]")
        value = limit.of_type("execute_result")[0]["data"]["text/plain"]
        assert value == ("1024" if disabled else "77")
