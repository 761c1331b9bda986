"""Interrupts: KeyboardInterrupt when the cell yields, a kill with a clear message when it does not."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.utils import execute, running_kernel, strip_ansi


def _interrupt_after(
    km: KernelManager, kc: BlockingKernelClient, code: str, delay: float = 1.0
) -> tuple[dict, float]:
    # stop_on_error=False: an interrupted cell is an error, and the abort window
    # that follows would race with the next request of the test.
    msg_id = kc.execute(code, stop_on_error=False)
    time.sleep(delay)
    sent = time.monotonic()
    km.interrupt_kernel()
    while True:
        reply = kc.get_shell_msg(timeout=60)
        if reply["parent_header"]["msg_id"] == msg_id:
            return reply, time.monotonic() - sent


@pytest.fixture
def kernel(workspace: Path):
    with running_kernel(workspace, extra_arguments=["--Limits.interrupt_grace_s=2"]) as pair:
        yield pair


def test_keyboard_interrupt_keeps_state(kernel: tuple[KernelManager, BlockingKernelClient]) -> None:
    km, kc = kernel
    execute(kc, "kept = 'still here'")
    reply, latency = _interrupt_after(km, kc, "import time\ntime.sleep(60)")
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert latency < 2.0
    res = execute(kc, "kept")
    assert res.of_type("execute_result")[0]["data"]["text/plain"] == "'still here'"


def test_interrupt_while_waiting_for_input(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    km, kc = kernel
    msg_id = kc.execute("answer = input('? ')", allow_stdin=True, stop_on_error=False)
    kc.get_stdin_msg(timeout=30)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=30)
    while reply["parent_header"]["msg_id"] != msg_id:  # a late kernel_info_reply from start-up
        reply = kc.get_shell_msg(timeout=30)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert execute(kc, "1 + 1").status == "ok"


@pytest.mark.parametrize(
    "stubborn_code",
    [
        pytest.param(
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(120)",
            id="ignores-SIGINT",
        ),
        # sum() over a range runs in C and never checks for signals.
        pytest.param("sum(range(10**14))", id="C-loop"),
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
        reply, _ = _interrupt_after(km, kc, "sum(range(10**14))")
        text = strip_ansi(reply["content"]["evalue"])
        assert reply["content"]["ename"] == "CellInterrupted"
        assert "variables and imports from earlier cells are gone" in text
        assert "rollback is turned off" in text
        res = execute(kc, "'lost' in globals()")
        assert res.of_type("execute_result")[0]["data"]["text/plain"] == "False"
