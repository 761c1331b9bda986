"""Output that cannot hurt the frontend: caps, rate limit and sanitizing, for every client."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbclient import NotebookClient

from tests.utils import (
    KERNEL_NAME,
    control_round_trip,
    execute,
    execute_until_idle,
    kernel_pid,
    running_kernel,
)

MIB = 1 << 20


@pytest.mark.slow
def test_endless_print_loop_is_capped_and_the_kernel_stays_responsive(workspace: Path) -> None:
    cap = 2 * MIB
    with running_kernel(workspace, extra_arguments=[f"--Output.max_cell_output_bytes={cap}"]) as (
        _,
        kc,
    ):
        code = "import time\nt = time.time()\nwhile time.time() - t < 30:\n    print('flood ' * 20)"
        latencies: list[float] = []
        next_probe = time.monotonic() + 3

        def probe() -> None:
            # While the flood runs, the kernel must keep answering (control channel).
            nonlocal next_probe
            if time.monotonic() <= next_probe:
                return
            latencies.append(control_round_trip(kc, timeout=10))
            next_probe = time.monotonic() + 3

        run = execute_until_idle(kc, code, poll=probe, timeout=120)
        assert run.reply is not None
        assert run.reply["content"]["status"] == "ok"
        streams = [m["content"]["text"] for m in run.own() if m["msg_type"] == "stream"]
        notices = [text for text in streams if "[sandbox]" in text]
        received = sum(len(text) for text in streams if "[sandbox]" not in text)
        assert cap // 2 < received <= cap
        assert any("Output.max_cell_output_bytes" in n for n in notices)
        # Each probe was answered within get_control_msg's 10 s, or it raised. How fast is
        # measured in bench/responsiveness.py (flood), not asserted here.
        assert len(latencies) >= 5, latencies
        assert execute(kc, "'next cell'").status == "ok"


def test_a_single_huge_string(workspace: Path) -> None:
    cap = 4 * MIB
    with running_kernel(workspace, extra_arguments=[f"--Output.max_cell_output_bytes={cap}"]) as (
        km,
        kc,
    ):
        kernel = psutil.Process(kernel_pid(km))
        rss_before = kernel.memory_info().rss
        res = execute(kc, "print('x' * 10**9)", timeout=300)
        assert res.status == "ok"
        assert len(res.stdout) <= cap
        assert "Output.max_cell_output_bytes" in res.stderr
        assert kernel.memory_info().rss - rss_before < 300 * MIB
        assert execute(kc, "1 + 1").status == "ok"


def test_oversized_message_is_replaced_by_a_notice(workspace: Path) -> None:
    with running_kernel(workspace, extra_arguments=[f"--Output.max_message_bytes={MIB}"]) as (
        _,
        kc,
    ):
        res = execute(
            kc,
            "from IPython.display import display\ndisplay({'text/plain': 'y' * (3 << 20)}, raw=True)\nprint('after')",
        )
        assert res.of_type("display_data") == []
        assert "Output.max_message_bytes" in res.stderr
        assert res.stdout == "after\n"


def test_rate_limit_keeps_the_final_display_state(workspace: Path) -> None:
    with running_kernel(workspace, extra_arguments=["--Output.max_messages_per_s=50"]) as (_, kc):
        res = execute(
            kc, "h = display('0', display_id=True)\nfor i in range(3000):\n    h.update(str(i))"
        )
        updates = res.of_type("update_display_data")
        assert len(updates) < 500
        assert updates[-1]["data"]["text/plain"] == "'2999'"
        assert "Output.max_messages_per_s" in res.stderr


def test_caps_apply_under_nbclient(workspace: Path) -> None:
    cap = MIB
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("for i in range(10**6):\n    print(i)")]
    )
    client = NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=120,
        extra_arguments=[f"--Output.max_cell_output_bytes={cap}"],
        resources={"metadata": {"path": str(workspace)}},
    )
    client.execute()
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert len(text) <= cap + 4096
    assert "Output.max_cell_output_bytes" in text


PAYLOADS = {
    "script": "<script>document.title='pwned'</script><b>ok</b>",
    "onerror": "<img src=x onerror=\"document.title='pwned'\">",
    "javascript-url": "<a href=\"javascript:document.title='pwned'\">click</a>",
    "commandlinker": '<button data-commandlinker-command="terminal:create-new">Run</button>',
    "iframe": '<iframe src="https://example.com"></iframe>',
    "form": '<form action="/api/contents"><input name=q></form>',
}


def test_classroom_preset_sanitizes_outputs(workspace: Path) -> None:
    with running_kernel(workspace, extra_arguments=["--SandboxKernelApp.preset=classroom"]) as (
        _,
        kc,
    ):
        for name, html in PAYLOADS.items():
            res = execute(kc, f"from IPython.display import HTML\nHTML({html!r})")
            [result] = res.of_type("execute_result")
            cleaned = result["data"].get("text/html", "")
            for bad in (
                "<script",
                "onerror",
                "javascript:",
                "commandlinker",
                "<iframe",
                "<form",
                "<button",
            ):
                assert bad not in cleaned.lower(), (name, cleaned)
            assert "sanitized" in res.stderr, name
        res = execute(kc, "from IPython.display import Javascript\nJavascript('document.title=1')")
        assert "application/javascript" not in res.of_type("execute_result")[0]["data"]
        # The pager's content is text only; the cell's code may not be replaced.
        res = execute(kc, "len?")
        [page] = res.reply["content"]["payload"]
        assert set(page["data"]) == {"text/plain"}
        assert "Return the number of items" in page["data"]["text/plain"]
        res = execute(kc, "get_ipython().set_next_input('x', replace=True)")
        assert res.reply["content"]["payload"] == []
        assert "replaces the cell's code was dropped" in res.stderr
        res = execute(kc, "get_ipython().set_next_input('x')")
        assert res.reply["content"]["payload"][0]["source"] == "set_next_input"


def test_standard_preset_isolates_active_html(workspace: Path) -> None:
    with running_kernel(workspace) as (_, kc):
        res = execute(kc, f"from IPython.display import HTML\nHTML({PAYLOADS['script']!r})")
        markup = res.of_type("execute_result")[0]["data"]["text/html"]
        assert markup.startswith('<iframe class="sandbox-kernel-frame" sandbox="allow-scripts" ')
        assert "<script>document.title" not in markup
        assert "&lt;script&gt;document.title" in markup
