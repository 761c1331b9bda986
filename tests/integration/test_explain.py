"""Errors the sandbox caused explain themselves, in the text the user sees: the network
is off, a path is hidden, only the workspace is writable, /tmp and HOME are private,
the memory limit; and policy refusals name the allowed way. A real kernel at the level
this host gives (``namespaces`` here; the landlock level's texts are in
tests/unit/test_explain.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests.utils import Result, execute, running_kernel, strip_ansi


def _seen(result: Result) -> str:
    """Everything the user sees of a cell: streams, results and the traceback."""
    parts = [result.text()]
    if result.error is not None:
        parts.append("\n".join(result.error["traceback"]))
    return strip_ansi("\n".join(parts))


@pytest.fixture(scope="module")
def level(kc: BlockingKernelClient) -> str:
    result = execute(kc, "print(get_ipython().sandbox_info['isolation']['level'])")
    return result.stdout.strip()


def test_a_connection_without_network_says_the_network_is_off(kc: BlockingKernelClient) -> None:
    for code in (
        "import urllib.request\nurllib.request.urlopen('http://example.com/', timeout=10)",
        "import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=10)",
        "import socket\nsocket.getaddrinfo('example.com', 443)",
    ):
        result = execute(kc, code)
        assert result.error is not None, code
        seen = _seen(result)
        assert "[sandbox] The network is off in this sandbox" in seen, seen
        assert "c.Isolation.allow_network = True" in seen
        # the note is the last thing the traceback says
        assert seen.rstrip().endswith("c.Isolation.allow_network = True."), seen[-300:]


def test_pip_fails_at_once_and_says_why(kc: BlockingKernelClient) -> None:
    # !pip (a shell command); %pip says it itself (tests/security/test_network_allowlist.py).
    result = execute(kc, "!pip install --no-input sandbox-kernel-no-such-package-xyz", timeout=120)
    seen = _seen(result)
    assert (
        "[sandbox] The network is off in this sandbox: pip can install only from files "
        "already here. An administrator can turn it on with c.Isolation.allow_network = True."
    ) in seen
    assert "Retrying (Retry(total=" not in seen  # PIP_RETRIES=0: no five rounds of retries


def test_a_hidden_path_is_named_hidden(kc: BlockingKernelClient, level: str) -> None:
    if level != "namespaces":
        pytest.skip(f"needs the namespaces level (this host gives {level})")
    for path in ("/etc/shadow", os.path.expanduser("~/.ssh/id_rsa")):
        result = execute(kc, f"open({path!r})")
        assert result.error is not None
        seen = _seen(result)
        assert result.error["ename"] in ("FileNotFoundError", "PermissionError"), seen
        assert f"[sandbox] {path} is hidden by the sandbox" in seen, seen
        assert "c.Isolation.extra_mounts" in seen


def test_a_file_missing_from_the_private_home_says_it_starts_empty(
    kc: BlockingKernelClient, module_workspace: Path
) -> None:
    result = execute(kc, "import os\nopen(os.path.expanduser('~/data-from-the-host.csv'))")
    assert result.error is not None
    seen = _seen(result)
    assert "is private to this sandbox and starts empty: the host's files there are not" in seen
    assert f"Keep data in the workspace ({module_workspace})." in seen


def test_a_missing_workspace_file_is_just_missing(kc: BlockingKernelClient) -> None:
    result = execute(kc, "open('no-such-file.csv')")
    assert result.error is not None
    assert result.error["ename"] == "FileNotFoundError"
    assert "[sandbox]" not in _seen(result)


def test_a_write_outside_names_the_workspace(
    kc: BlockingKernelClient, module_workspace: Path
) -> None:
    # the runtime policy refuses it first (SKP240), naming the workspace
    result = execute(kc, "open('/usr/sandbox-kernel-test.txt', 'w')")
    assert result.error is not None
    seen = _seen(result)
    assert "[SKP240]" in seen
    assert f"outside the workspace ({module_workspace})" in seen, seen


def test_the_first_write_to_tmp_and_home_gets_a_notice_once(kc: BlockingKernelClient) -> None:
    first = execute(kc, "open('/tmp/scratch.txt', 'w').write('x')")
    assert (
        "[sandbox] /tmp is private to this sandbox: what you write there stays inside it, "
        "and is gone when the kernel restarts. Keep files in the workspace."
    ) in first.stderr
    again = execute(kc, "open('/tmp/scratch2.txt', 'w').write('x')")
    assert "[sandbox]" not in again.stderr
    home = execute(kc, "import os\nopen(os.path.expanduser('~/notes.txt'), 'w').write('x')")
    assert "[sandbox] The home directory (" in home.stderr
    assert ") is private to this sandbox" in home.stderr
    workspace = execute(kc, "open('kept.txt', 'w').write('x')")
    assert "[sandbox]" not in workspace.stderr


@pytest.fixture(scope="module")
def without_hooks(module_workspace: Path) -> Iterator[BlockingKernelClient]:
    """The OS layer alone: the runtime policy off, a memory limit set."""
    with running_kernel(
        module_workspace,
        extra_arguments=["--Policy.runtime_hooks=False", "--Limits.memory_limit_mb=512"],
    ) as (_, client):
        yield client


def test_a_read_only_path_names_the_workspace(
    without_hooks: BlockingKernelClient, module_workspace: Path
) -> None:
    result = execute(without_hooks, "open('/usr/sandbox-kernel-test.txt', 'w')")
    assert result.error is not None
    seen = _seen(result)
    assert result.error["ename"] in ("OSError", "PermissionError"), seen
    assert (
        f"[sandbox] /usr/sandbox-kernel-test.txt is read-only in this sandbox: only the "
        f"workspace ({module_workspace}) is writable, with the private /tmp and HOME."
    ) in seen, seen
    assert "c.Isolation.extra_mounts" in seen


def test_memory_error_names_the_limit(without_hooks: BlockingKernelClient) -> None:
    result = execute(
        without_hooks, "x = bytearray(8 * 1024**3)\nx[::4096] = b'x' * (len(x) // 4096)"
    )
    assert result.error is not None
    seen = _seen(result)
    if result.error["ename"] == "MemoryError":
        assert (
            "[sandbox] The sandbox's memory limit is 512 MiB (Limits.memory_limit_mb)." in seen
        ), seen
    else:  # a memory cgroup killed it: the kernel's own message names the limit
        assert result.error["ename"] == "MemoryLimitExceeded", seen
        assert "512 MiB" in seen


@pytest.fixture(scope="module")
def classroom(module_workspace: Path) -> Iterator[BlockingKernelClient]:
    with running_kernel(module_workspace, extra_arguments=["--Policy.preset=classroom"]) as (
        _,
        client,
    ):
        yield client


@pytest.mark.parametrize(
    ("code", "instead"),
    [
        (
            "!ls",
            "Instead: os.listdir('.') or sorted(pathlib.Path('.').iterdir()) lists a directory.",
        ),
        (
            "int.mro()",
            "Instead: inspect.getmro(cls) gives the same classes (import inspect first).",
        ),
        (
            "dir(__builtins__)",
            "Instead: import builtins, then builtins.max or dir(builtins): the same module.",
        ),
    ],
)
def test_a_classroom_refusal_names_the_allowed_way(
    classroom: BlockingKernelClient, code: str, instead: str
) -> None:
    result = execute(classroom, code)
    assert result.error is not None
    assert result.error["ename"] == "SandboxPolicyError"
    assert instead in _seen(result)


def test_teaching_introspection_runs_under_standard(kc: BlockingKernelClient) -> None:
    result = execute(
        kc,
        "import numpy as np\nprint(np.float64.mro()[:2])\nprint(dir(__builtins__)[0:3], __builtins__.max(1, 2))",
    )
    assert result.error is None, _seen(result)
    assert "numpy.float64" in result.stdout
    assert "2" in result.stdout


@pytest.fixture(scope="module")
def landlock(module_workspace: Path) -> Iterator[BlockingKernelClient]:
    """A simulated Docker host (default seccomp profile): the landlock level, where
    seccomp allows no socket(2) and Landlock is the filesystem boundary."""
    with running_kernel(
        module_workspace,
        kernel_name="sandbox-python-docker",
        extra_arguments=["--Policy.runtime_hooks=False"],
    ) as (_, client):
        level = execute(client, "print(get_ipython().sandbox_info['isolation']['level'])")
        if level.stdout.strip() != "landlock":
            pytest.skip(f"needs the landlock level (the simulated host gave {level.stdout!r})")
        yield client


def test_at_the_landlock_level_the_same_errors_explain_themselves(
    landlock: BlockingKernelClient, module_workspace: Path
) -> None:
    for code in (
        "import socket\nsocket.socket()",
        "import urllib.request\nurllib.request.urlopen('http://example.com/', timeout=10)",
    ):
        seen = _seen(execute(landlock, code))
        assert "[sandbox] The network is off in this sandbox" in seen, seen
    seen = _seen(execute(landlock, "open('/usr/sandbox-kernel-test.txt', 'w')"))
    assert (
        f"[sandbox] /usr/sandbox-kernel-test.txt is read-only in this sandbox: only the "
        f"workspace ({module_workspace}) is writable"
    ) in seen, seen
