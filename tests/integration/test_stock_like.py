"""What a notebook sees of the kernel itself is what it sees under stock ipykernel:
tracebacks without the sandbox's own frames, standard-library source in tracebacks,
``input``/``get_ipython`` as ipykernel shows them, the ``execfile``/``runfile``
builtins. Each check runs the same cell under the sandbox and under stock ipykernel
(the ``python3`` kernelspec of the test environment)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.utils import execute, reply_to, running_kernel, strip_ansi, wait_for_output

STOCK = "python3"
ADDRESS = re.compile(r"0x[0-9a-f]+")


@pytest.fixture(scope="module")
def kernels(
    module_workspace: Path,
) -> Iterator[dict[str, tuple[KernelManager, BlockingKernelClient]]]:
    with (
        running_kernel(module_workspace) as sandbox,
        running_kernel(module_workspace, kernel_name=STOCK) as stock,
    ):
        yield {"sandbox": sandbox, "stock": stock}


def _both(kernels: dict, code: str) -> dict[str, str]:
    return {
        name: ADDRESS.sub("0x...", strip_ansi(execute(kc, code).stdout))
        for name, (_, kc) in kernels.items()
    }


@pytest.mark.parametrize(
    "code",
    [
        "print(input)",
        "print(get_ipython)",
        "print(get_ipython())",
        "print(type(get_ipython()).__name__)",
        "import getpass\nprint(getpass.getpass)",
        "print(callable(execfile), callable(runfile))",
    ],
)
def test_the_kernels_own_objects_look_as_under_stock(kernels: dict, code: str) -> None:
    seen = _both(kernels, code)
    assert seen["sandbox"] == seen["stock"]
    assert "sandbox" not in seen["sandbox"]


def test_runfile_and_execfile_run_a_workspace_script(kernels: dict, module_workspace: Path) -> None:
    (module_workspace / "script_for_runfile.py").write_text(
        "import sys\nran_with = sys.argv[1:]\nvalue = 6 * 7\n"
    )
    code = (
        "runfile('script_for_runfile.py', args='a b')\n"
        "print(ran_with, value)\n"
        "execfile('script_for_runfile.py')\n"
        "print(value)"
    )
    seen = _both(kernels, code)
    assert seen["sandbox"] == seen["stock"] == "['a', 'b'] 42\n42\n"


def test_runfile_is_checked_by_the_policy(kernels: dict, module_workspace: Path) -> None:
    (module_workspace / "native_for_runfile.py").write_text("import ctypes\n")
    _, kc = kernels["sandbox"]
    result = execute(kc, "runfile('native_for_runfile.py')")
    assert result.error is not None
    assert result.error["ename"] == "SandboxPolicyError"
    assert "[SKP201]" in result.error["evalue"]


def _frames(traceback: list[str]) -> str:
    return strip_ansi("\n".join(traceback))


def test_standard_library_frames_show_their_source(kernels: dict) -> None:
    code = "import os\nos.makedirs('')"
    for name, (_, kc) in kernels.items():
        error = execute(kc, code).error
        assert error is not None
        assert error["ename"] == "FileNotFoundError", name
        text = _frames(error["traceback"])
        assert "<frozen os>" not in text, (name, text)
        assert "os.py" in text, (name, text)
        assert "Could not get source" not in text, (name, text)


def test_a_runtime_refusal_shows_no_frame_of_the_sandbox(
    kernels: dict, module_workspace: Path
) -> None:
    (module_workspace / "native_for_import.py").write_text("import ctypes\n")
    _, kc = kernels["sandbox"]
    error = execute(kc, "import native_for_import").error
    assert error is not None
    assert error["ename"] == "SandboxPolicyError"
    text = _frames(error["traceback"])
    assert "sandbox_kernel/" not in text, text
    assert "audit.py" not in text, text
    assert "import native_for_import" in text


def test_keyboard_interrupt_shows_only_the_cell(kernels: dict) -> None:
    for name, (km, kc) in kernels.items():
        msg_id = kc.execute(
            # One expression: the interrupt cannot land between two statements, in the
            # shell's own frames, after the marker.
            "import time\nprint('@@running', flush=True) or time.sleep(60)",
            stop_on_error=False,
        )
        wait_for_output(kc, msg_id, "@@running")
        km.interrupt_kernel()
        reply = reply_to(kc, msg_id)
        content = reply["content"]
        assert content["ename"] == "KeyboardInterrupt", name
        text = _frames(content["traceback"])
        assert "time.sleep(60)" in text, (name, text)
        assert "sandbox_kernel/" not in text, (name, text)
        assert "_InterruptGate" not in text, (name, text)


def test_cells_after_a_background_thread_read_as_under_stock(kernels: dict) -> None:
    # %%script keeps an event loop thread alive; while it runs no snapshot is taken,
    # and the cells after it used to print a "dropped a snapshot announcement" notice.
    for code in ("%%script bash\necho from bash", "print('after')", "1 + 1"):
        seen = {}
        for name, (_, kc) in kernels.items():
            result = execute(kc, code)
            seen[name] = (result.stdout, result.stderr, result.status)
        assert seen["sandbox"] == seen["stock"], code
