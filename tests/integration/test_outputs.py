"""Rich outputs: every kind of display a notebook produces, as a frontend receives them."""

from __future__ import annotations

import base64
import hashlib

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests.utils import TIMEOUT, execute, messages, reply_to, strip_ansi

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_display_update_and_clear(kc: BlockingKernelClient) -> None:
    res = execute(kc, "h = display('first', display_id='d1')\nh.update('second')")
    [shown] = res.of_type("display_data")
    [updated] = res.of_type("update_display_data")
    assert shown["transient"] == updated["transient"] == {"display_id": "d1"}
    assert updated["data"]["text/plain"] == "'second'"
    res = execute(
        kc,
        "from IPython.display import clear_output\nprint('a')\nclear_output(wait=True)\nprint('b')",
    )
    kinds = [
        (m["msg_type"], m["content"].get("wait", m["content"].get("text"))) for m in res.outputs
    ]
    assert kinds == [("stream", "a\n"), ("clear_output", True), ("stream", "b\n")]


def test_update_display_from_a_later_cell(kc: BlockingKernelClient) -> None:
    execute(
        kc, "from IPython.display import display, update_display\ndisplay('v1', display_id='later')"
    )
    res = execute(kc, "update_display('v2', display_id='later')")
    [updated] = res.of_type("update_display_data")
    assert updated["data"]["text/plain"] == "'v2'"


def test_matplotlib_inline_png_then_svg(kc: BlockingKernelClient) -> None:
    res = execute(
        kc, "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"
    )
    [figure] = res.of_type("display_data")
    png = base64.b64decode(figure["data"]["image/png"])
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 5000
    res = execute(
        kc, "%config InlineBackend.figure_formats = ['svg']\nplt.plot([1, 2]); plt.show()"
    )
    [figure] = res.of_type("display_data")
    assert "<svg" in figure["data"]["image/svg+xml"]
    execute(kc, "%config InlineBackend.figure_formats = ['png']")


def test_pandas_table_is_html(kc: BlockingKernelClient) -> None:
    res = execute(kc, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})")
    [table] = res.of_type("execute_result")
    assert "<table" in table["data"]["text/html"]
    assert "a  b" in table["data"]["text/plain"]


@pytest.mark.parametrize(
    ("code", "mime", "needle"),
    [
        ("from IPython.display import Markdown; Markdown('**bold**')", "text/markdown", "**bold**"),
        ("from IPython.display import Latex; Latex(r'$\\alpha$')", "text/latex", "\\alpha"),
        ("from IPython.display import JSON; JSON({'k': [1, 2]})", "application/json", None),
        (
            "from IPython.display import SVG; SVG('<svg xmlns=\"http://www.w3.org/2000/svg\"/>')",
            "image/svg+xml",
            "<svg",
        ),
        ("from IPython.display import HTML; HTML('<i>x</i>')", "text/html", "<i>x</i>"),
    ],
)
def test_display_mime_types(
    kc: BlockingKernelClient, code: str, mime: str, needle: str | None
) -> None:
    res = execute(kc, code)
    [result] = res.of_type("execute_result")
    assert mime in result["data"]
    if needle is not None:
        assert needle in result["data"][mime]
    else:
        assert result["data"][mime] == {"k": [1, 2]}


def test_image_from_bytes(kc: BlockingKernelClient) -> None:
    code = (
        "import io, matplotlib.pyplot as plt\nfrom IPython.display import Image, display\n"
        "buf = io.BytesIO(); plt.figure(); plt.plot([1]); plt.savefig(buf, format='png'); plt.close()\n"
        "display(Image(data=buf.getvalue(), format='png', width=100))"
    )
    res = execute(kc, code)
    [image] = res.of_type("display_data")
    assert base64.b64decode(image["data"]["image/png"]).startswith(PNG_MAGIC)
    assert image["metadata"]["image/png"]["width"] == 100


def test_magics(kc: BlockingKernelClient) -> None:
    assert "per loop" in execute(kc, "%timeit -n1 -r1 sum(range(10))").stdout
    res = execute(kc, "%%time\nsum(range(1000))")
    assert "Wall time" in res.stdout
    assert res.of_type("execute_result")[0]["data"]["text/plain"] == "499500"
    execute(kc, "who_marker = 1")
    assert "who_marker" in execute(kc, "%who").stdout
    res = execute(kc, "%%capture captured\nprint('hidden')")
    assert res.outputs == []
    assert (
        execute(kc, "captured.stdout").of_type("execute_result")[0]["data"]["text/plain"]
        == "'hidden\\n'"
    )
    assert "bash works" in execute(kc, "%%bash\necho bash works").stdout


def test_shell_escape_output_and_variables(kc: BlockingKernelClient) -> None:
    res = execute(kc, "name = 'sandbox'\n!echo hello $name")
    assert res.stdout.strip() == "hello sandbox"
    res = execute(kc, "files = !ls /\nfiles")
    assert "usr" in res.of_type("execute_result")[0]["data"]["text/plain"]


def test_stderr_and_warnings(kc: BlockingKernelClient) -> None:
    res = execute(
        kc, "import warnings, sys\nwarnings.warn('careful')\nprint('err', file=sys.stderr)"
    )
    assert "UserWarning: careful" in res.stderr
    assert "err\n" in res.stderr


def test_output_from_c_level_writes(kc: BlockingKernelClient) -> None:
    res = execute(kc, "import os\nos.write(1, b'raw fd output\\n')\nimport time; time.sleep(0.3)")
    assert "raw fd output" in res.stdout


def test_last_raw_and_subprocess_output_comes_before_idle(kc: BlockingKernelClient) -> None:
    """What a cell wrote last to fds 1 and 2 is its output, ahead of its `idle`.

    Clients stop reading a cell's output at `idle` (nbclient, JupyterLab). Sent back
    to back, as Run All sends them; before the executor drained its fd pipes at the
    end of a cell, 5 to 10 cells in 40 had their last line arrive after `idle`.
    """
    cells = 40
    code = (
        "import os, subprocess\n"
        "print('print-{i}')\n"
        "subprocess.run(['sh', '-c', 'echo sub-{i} >&2'])\n"
        "os.write(1, b'raw-{i}\\n')"
    )
    ids = {kc.execute(code.format(i=i)): i for i in range(cells)}
    text: dict[int, str] = dict.fromkeys(range(cells), "")
    late: list[tuple[int, str]] = []
    idle: set[str] = set()
    for msg in messages(
        lambda left: kc.get_iopub_msg(timeout=left),
        TIMEOUT,
        lambda: f"idle for {len(idle)} of {cells} cells",
    ):
        parent = msg["parent_header"].get("msg_id")
        if parent not in ids:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            idle.add(parent)
            if len(idle) == cells:
                break
        elif msg["msg_type"] == "stream":
            if parent in idle:
                late.append((ids[parent], msg["content"]["text"]))
            text[ids[parent]] += msg["content"]["text"]
    for msg_id in ids:
        assert reply_to(kc, msg_id)["content"]["status"] == "ok"
    assert late == []
    for i in range(cells):
        # (The policy's note on subprocess comes too, on stderr.)
        for marker in (f"print-{i}", f"sub-{i}", f"raw-{i}"):
            assert marker in text[i].split(), (marker, text[i])


def test_syntax_error_is_pythons(kc: BlockingKernelClient) -> None:
    res = execute(kc, "def broken(:\n    pass")
    assert res.reply["content"]["ename"] == "SyntaxError"
    assert "SyntaxError" in strip_ansi("\n".join(res.error["traceback"])) if res.error else False


def test_unicode_and_surrogates_survive(kc: BlockingKernelClient) -> None:
    res = execute(kc, "print('héllo ☃ \\U0001F600')\nprint('lone \\udc80 surrogate')")
    assert "héllo ☃ \U0001f600" in res.stdout
    assert "lone" in res.stdout
    assert "surrogate" in res.stdout


def test_large_outputs_arrive_exactly_as_displayed(kc: BlockingKernelClient) -> None:
    """Values of 64 KiB and more travel attached after the frame's JSON head
    (sandbox_kernel/framing.py): a 1.5 MB image, passive HTML with quotes, backslashes and
    non-ASCII text, and a large execute_result reach the frontend byte for byte, in
    the order of the bundle, next to the small values of the same bundle."""
    res = execute(
        kc,
        "import base64, hashlib, os\n"
        "from IPython.display import display\n"
        "_big = os.urandom(1_500_000)\n"
        "_html = '<table>' + '<tr><td>é \"q\" \\\\ ☃</td></tr>' * 20000 + '</table>'\n"
        "display({'text/plain': 'small', 'image/png': base64.b64encode(_big).decode(),\n"
        "         'text/html': _html}, raw=True)\n"
        "print(hashlib.sha256(_big).hexdigest(), hashlib.sha256(_html.encode()).hexdigest())\n"
        "class _R:\n"
        "    def _repr_html_(self): return _html + '<p>end</p>'\n"
        "_R()",
    )
    [shown] = res.of_type("display_data")
    assert list(shown["data"]) == ["text/plain", "image/png", "text/html"]
    assert shown["data"]["text/plain"] == "small"
    png_digest, html_digest = res.stdout.split()
    assert hashlib.sha256(base64.b64decode(shown["data"]["image/png"])).hexdigest() == png_digest
    assert hashlib.sha256(shown["data"]["text/html"].encode()).hexdigest() == html_digest
    [result] = res.of_type("execute_result")
    assert result["data"]["text/html"] == shown["data"]["text/html"] + "<p>end</p>"
