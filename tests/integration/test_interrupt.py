"""Interrupts: KeyboardInterrupt when the cell yields, a kill with a clear message when it does not."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import psutil
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.utils import (
    execute,
    kernel_pid,
    process_tree,
    reply_to,
    running_kernel,
    strip_ansi,
    wait_for_output,
)

# What the cells below print once they are where the interrupt must find them.
RUNNING = "@@running"
# sum() over a range runs in C and never checks for signals.
C_LOOP = f"print({RUNNING!r}, flush=True)\nsum(range(10**14))"
# CPU seconds the kernel's process tree spends after RUNNING before a C-loop cell is
# taken to be inside its loop (a SIGINT before it would still raise KeyboardInterrupt).
IN_LOOP_CPU_S = 0.3


def _tree_cpu_s(pid: int) -> float:
    total = 0.0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _wait_until_spinning(km: KernelManager, timeout: float = 60) -> None:
    """Wait until the kernel's processes have used IN_LOOP_CPU_S more CPU: the cell is past
    its print and the statements after it, spinning in C."""
    pid = kernel_pid(km)
    start, deadline = _tree_cpu_s(pid), time.monotonic() + timeout
    while _tree_cpu_s(pid) - start < IN_LOOP_CPU_S:
        assert time.monotonic() < deadline, "the cell did not start spinning"
        time.sleep(0.05)


def _interrupt_after(km: KernelManager, kc: BlockingKernelClient, code: str) -> tuple[dict, float]:
    """Run ``code``, interrupt it once it printed RUNNING (and, for C_LOOP, once it spins),
    return the reply and the seconds from the interrupt to the reply."""
    # stop_on_error=False: an interrupted cell is an error, and the abort window
    # that follows would race with the next request of the test.
    msg_id = kc.execute(code, stop_on_error=False)
    wait_for_output(kc, msg_id, RUNNING)
    if code == C_LOOP:
        _wait_until_spinning(km)
    sent = time.monotonic()
    km.interrupt_kernel()
    reply = reply_to(kc, msg_id, timeout=60)
    return reply, time.monotonic() - sent


@pytest.fixture
def kernel(workspace: Path):
    with running_kernel(workspace, extra_arguments=["--Limits.interrupt_grace_s=2"]) as pair:
        yield pair


def test_keyboard_interrupt_keeps_state(kernel: tuple[KernelManager, BlockingKernelClient]) -> None:
    km, kc = kernel
    execute(kc, "kept = 'still here'")
    reply, _ = _interrupt_after(
        km, kc, f"import time\nprint({RUNNING!r}, flush=True)\ntime.sleep(60)"
    )
    assert reply["content"]["status"] == "error"
    # KeyboardInterrupt, not CellInterrupted: the cell stopped on SIGINT, before the 2 s
    # grace ran out. How fast is the interrupt row of bench/run.py, not asserted here.
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    res = execute(kc, "kept")
    assert res.of_type("execute_result")[0]["data"]["text/plain"] == "'still here'"


def test_interrupt_while_waiting_for_input(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    km, kc = kernel
    msg_id = kc.execute("answer = input('? ')", allow_stdin=True, stop_on_error=False)
    kc.get_stdin_msg(timeout=30)
    km.interrupt_kernel()
    reply = reply_to(kc, msg_id, timeout=30)  # past a late kernel_info_reply from start-up
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert execute(kc, "1 + 1").status == "ok"


@pytest.mark.parametrize(
    "stubborn_code",
    [
        pytest.param(
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            f"print({RUNNING!r}, flush=True)\ntime.sleep(120)",
            id="ignores-SIGINT",
        ),
        pytest.param(C_LOOP, id="C-loop"),
    ],
)
def test_stubborn_cell_is_killed_after_grace(
    kernel: tuple[KernelManager, BlockingKernelClient], stubborn_code: str
) -> None:
    km, kc = kernel
    execute(kc, "lost = 1")
    reply, latency = _interrupt_after(km, kc, stubborn_code)
    content = reply["content"]
    assert content["status"] == "error"
    assert content["ename"] == "CellInterrupted"
    text = strip_ansi(content["evalue"])
    assert "did not stop within 2 s of the interrupt" in text
    assert "restored to what it was before this cell" in text
    assert 1.5 < latency < 10
    # The kernel keeps serving from the snapshot taken before the cell.
    res = execute(kc, "lost")
    assert res.of_type("execute_result")[0]["data"]["text/plain"] == "1"


def test_stubborn_cell_without_rollback_restarts_clean(workspace: Path) -> None:
    with running_kernel(
        workspace, extra_arguments=["--Limits.interrupt_grace_s=1", "--Limits.rollback=False"]
    ) as (km, kc):
        execute(kc, "lost = 1")
        reply, _ = _interrupt_after(km, kc, C_LOOP)
        text = strip_ansi(reply["content"]["evalue"])
        assert reply["content"]["ename"] == "CellInterrupted"
        assert "variables and imports from earlier cells are gone" in text
        assert "rollback is turned off" in text
        res = execute(kc, "'lost' in globals()")
        assert res.of_type("execute_result")[0]["data"]["text/plain"] == "False"
