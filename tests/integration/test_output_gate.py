"""Every renderable field a real kernel sends goes through the output gate (relay/gate.py).

Checked on the messages a client receives, next to stock ipykernel where the
comparison matters: passive HTML must come out byte for byte as stock sends it.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_client.blocking.client import BlockingKernelClient

from sandbox_kernel.relay.frame import FRAME_MARKER
from tests.utils import execute, reply_to, running_kernel

HOSTILE = "<img src=x onerror=\"fetch('/api/kernels',{method:'POST'})\">"


def is_frame(markup: str) -> bool:
    return markup.startswith(f'<iframe class="{FRAME_MARKER}" sandbox="allow-scripts" ')


def test_passive_html_is_byte_for_byte_what_stock_sends(
    kc: BlockingKernelClient, module_workspace: Path
) -> None:
    cells = [
        "import pandas as pd\ndf = pd.DataFrame({'a': [1.5, 2], 'b': ['x<y', 'z']})\ndf",
        "df[['a']].style.highlight_max().format(precision=1).set_uuid('fixed')",
        "from IPython.display import HTML\nHTML('<b>bold</b> <a href=\"https://x.org\">x</a>')",
    ]
    ours = [execute(kc, code).of_type("execute_result")[0]["data"] for code in cells]
    with running_kernel(module_workspace, kernel_name="python3") as (_, stock):
        theirs = [execute(stock, code).of_type("execute_result")[0]["data"] for code in cells]
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine["text/html"] == reference["text/html"]


def test_active_outputs_are_isolated(kc: BlockingKernelClient) -> None:
    cells = {
        "html": f"from IPython.display import HTML, display\ndisplay(HTML({HOSTILE!r}))",
        "javascript": "from IPython.display import Javascript\n"
        "display(Javascript('parent.location = \"/lab\"'))",
        "markdown": f"from IPython.display import Markdown\ndisplay(Markdown({HOSTILE!r}))",
        "repr_html": f"class X:\n    def _repr_html_(self):\n        return {HOSTILE!r}\nX()",
    }
    for name, code in cells.items():
        res = execute(kc, code)
        [output] = res.of_type("display_data") + res.of_type("execute_result")
        data = output["data"]
        assert is_frame(data["text/html"]), (name, data)
        assert "onerror" not in data["text/html"].replace("onerror=&quot;", ""), name
        assert not {"application/javascript", "text/markdown"} & set(data), name


def test_update_display_data_is_gated(kc: BlockingKernelClient) -> None:
    res = execute(
        kc,
        "from IPython.display import HTML, display\n"
        "h = display(HTML('<b>first</b>'), display_id=True)\n"
        f"h.update(HTML({HOSTILE!r}))",
    )
    [first] = res.of_type("display_data")
    assert first["data"]["text/html"] == "<b>first</b>"
    [update] = res.of_type("update_display_data")
    assert is_frame(update["data"]["text/html"])


def test_user_expressions_are_gated(kc: BlockingKernelClient) -> None:
    execute(kc, f"from IPython.display import HTML\nhostile = HTML({HOSTILE!r})")
    msg_id = kc.execute("1", user_expressions={"h": "hostile"})
    reply = reply_to(kc, msg_id)
    result = reply["content"]["user_expressions"]["h"]
    assert result["status"] == "ok"
    assert is_frame(result["data"]["text/html"])


def test_pager_and_inspect_replies_are_text_only(kc: BlockingKernelClient) -> None:
    res = execute(
        kc,
        "from IPython.core.page import page\n"
        f"page({{'text/plain': 'help text', 'text/html': {HOSTILE!r}}})",
    )
    [page] = res.reply["content"]["payload"]
    assert page["data"] == {"text/plain": "help text"}
    # A cell can make the executor's inspector answer with HTML.
    execute(
        kc,
        "ip = get_ipython()\n"
        "ip.object_inspect_mime = lambda *a, **k: "
        f"{{'text/plain': 'doc', 'text/html': {HOSTILE!r}}}",
    )
    kc.inspect("len")
    reply = kc.get_shell_msg(timeout=60)
    assert reply["msg_type"] == "inspect_reply"
    assert reply["content"]["data"] == {"text/plain": "doc"}
