"""The output gate, one test (at least) per message field in its table (relay/gate.py).

stream, error and clear_output do not pass through the gate (they are relayed as they are):
tests/unit/test_publisher.py checks that the publisher sends them unchanged."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox_kernel.relay import frame
from sandbox_kernel.relay.gate import REMOVED, GateSettings, OutputGate
from sandbox_kernel.relay.html import (
    is_passive_html,
    is_passive_markdown,
    is_passive_rst,
    sanitize_html,
)
from sandbox_kernel.relay.widgets import CORE_WIDGET_MODULES, WIDGET_TARGETS

HOSTILE_HTML = "<img src=x onerror=\"fetch('/api/kernels',{method:'POST'})\">"


def gate(mode: str = "isolate", **kw: Any) -> OutputGate:
    settings: dict[str, Any] = {
        "active_content": mode,
        "comm_targets": frozenset(WIDGET_TARGETS),
        "renderer_mime_types": frozenset({"application/vnd.vegalite.v5+json"}),
        **kw,
    }
    return OutputGate(GateSettings(**settings))


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def parse(markup: str) -> _Elements:
    parser = _Elements()
    parser.feed(markup)
    parser.close()
    return parser


def assert_isolated(markup: str, content: str) -> str:
    """``markup`` is exactly the gate's frame and its listener; return the frame's document."""
    parsed = parse(markup)
    assert [tag for tag, _ in parsed.elements] == ["iframe", "script"], parsed.elements
    attrs = parsed.elements[0][1]
    assert set(attrs) == {"class", "sandbox", "referrerpolicy", "style", "srcdoc"}
    assert attrs["sandbox"] == "allow-scripts"
    assert attrs["class"] == frame.FRAME_MARKER
    # The listener is the fixed text of relay/frame.py: nothing from the cell.
    assert markup.endswith(frame._LISTENER)
    document = attrs["srcdoc"]
    assert document is not None
    assert content in document
    return document


# -- display_data / execute_result / update_display_data: text/html ---------------------


def test_pandas_tables_pass_byte_for_byte() -> None:
    pd = pytest.importorskip("pandas")
    frame_ = pd.DataFrame({"a": [1, 2], "b": ["x<y", "&"]})
    # The Styler does not escape cells: "x<y" would be markup under stock too.
    styler = frame_[["a"]].style.highlight_max().set_caption("caption").format(precision=2)
    for markup in (frame_._repr_html_(), styler._repr_html_(), frame_.to_html()):
        data, notes = gate().bundle({"text/html": markup, "text/plain": "t"})
        assert data["text/html"] == markup
        assert notes == []


@pytest.mark.parametrize("mode", ["isolate", "sanitize", "drop"])
def test_passive_html_is_unchanged_in_every_mode(mode: str) -> None:
    markup = '<b class="x">bold</b> <a href="https://example.org">link</a> <img src="data:,">'
    data, notes = gate(mode).bundle({"text/html": markup})
    assert data == {"text/html": markup}
    assert notes == []


@pytest.mark.parametrize("mode", ["isolate", "sanitize", "drop"])
def test_ipythons_progress_bar_is_passive(mode: str) -> None:
    from IPython.display import ProgressBar

    bar = ProgressBar(10)
    bar._progress = 3  # the setter prints the bar (a display update)
    markup = bar._repr_html_()
    assert markup.startswith("<progress")
    for passive in (markup, '<meter min="0" max="3" low="1" high="2" value="2"></meter>'):
        assert gate(mode).bundle({"text/html": passive}) == ({"text/html": passive}, [])


@pytest.mark.parametrize(
    "markup",
    [
        '<progress max="3" onmouseover="alert(1)"></progress>',
        '<meter value="1" style="x" formaction="javascript:alert(1)"></meter>',
        "<progress><script>alert(1)</script></progress>",
    ],
)
def test_progress_and_meter_with_anything_more_are_active(markup: str) -> None:
    assert not is_passive_html(markup)
    assert_isolated(gate().bundle({"text/html": markup})[0]["text/html"], markup)


def test_active_html_is_isolated_in_a_sandboxed_frame() -> None:
    data, notes = gate().bundle({"text/html": HOSTILE_HTML, "text/plain": "t"})
    assert notes == []
    assert data["text/plain"] == "t"
    document = assert_isolated(data["text/html"], HOSTILE_HTML)
    assert frame.MESSAGE_TYPE in document  # the height reporter


def test_the_frame_cannot_be_escaped_from_its_srcdoc() -> None:
    breakout = '"><script>parent.x=1</script><iframe srcdoc="\' </iframe><script>y</script>'
    data, _ = gate().bundle({"text/html": breakout})
    assert_isolated(data["text/html"], breakout)


def test_sanitize_mode_cleans_active_html_and_says_so() -> None:
    data, notes = gate("sanitize").bundle({"text/html": HOSTILE_HTML + "<b>kept</b>"})
    assert "onerror" not in data["text/html"]
    assert "<b>kept</b>" in data["text/html"]
    assert any("HTML output was sanitized" in n for n in notes)


def test_drop_mode_removes_active_html() -> None:
    data, notes = gate("drop").bundle({"text/html": HOSTILE_HTML, "text/plain": "t"})
    assert data == {"text/plain": "t"}
    assert notes


def test_an_emptied_bundle_says_why() -> None:
    data, _ = gate("drop").bundle({"text/html": HOSTILE_HTML})
    assert data == {"text/plain": REMOVED}


# -- application/javascript ---------------------------------------------------------------


@pytest.mark.parametrize(
    "mime", ["application/javascript", "text/javascript", "application/ecmascript"]
)
def test_javascript_runs_only_in_a_frame(mime: str) -> None:
    code = 'element.textContent = "</script><b>" + document.cookie'
    data, notes = gate().bundle({mime: code, "text/plain": "t"})
    assert mime not in data
    assert notes == []
    document = assert_isolated(data["text/html"], "sandbox-kernel-output")
    # The code travels base64-encoded: no '</script>' in it can end its script early.
    encoded = re.search(r'atob\("([A-Za-z0-9+/=]+)"\)', html.unescape(document))
    assert encoded is not None


@pytest.mark.parametrize("mode", ["sanitize", "drop"])
def test_javascript_is_dropped_outside_isolation(mode: str) -> None:
    data, notes = gate(mode).bundle({"application/javascript": "alert(1)", "text/plain": "t"})
    assert data == {"text/plain": "t"}
    assert any("a application/javascript output was dropped" in n for n in notes)


# -- text/markdown, text/latex ----------------------------------------------------------


def test_markdown_without_html_is_unchanged() -> None:
    text = "# Title\n\n*a* < b, [docs](https://example.org) and $x^2$"
    assert gate().bundle({"text/markdown": text}) == ({"text/markdown": text}, [])


@pytest.mark.parametrize(
    "text",
    [
        "<img src=x onerror=alert(1)>",
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt&#58;alert(1))",
        "<https://example.org>",
        "$\\href{javascript:alert(1)}{x}$",
    ],
)
def test_markdown_with_raw_html_or_active_links_is_active(text: str) -> None:
    assert not is_passive_markdown(text)
    data, _ = gate().bundle({"text/markdown": text})
    assert "text/markdown" not in data
    assert_isolated(data["text/html"], "")
    data, notes = gate("sanitize").bundle({"text/markdown": text, "text/plain": "t"})
    assert data == {"text/plain": "t"}
    assert notes


@pytest.mark.parametrize("mode", ["isolate", "sanitize", "drop"])
def test_latex_that_makes_links_is_dropped(mode: str) -> None:
    data, notes = gate(mode).bundle(
        {"text/latex": "$\\href{javascript:alert(1)}{x}$", "text/plain": "t"}
    )
    assert data == {"text/plain": "t"}
    assert notes
    plain = {"text/latex": "$\\frac{1}{2}$"}
    assert gate(mode).bundle(plain) == (plain, [])


# -- other MIME types ---------------------------------------------------------------------


def test_passive_types_pass_and_svg_is_passive_as_an_image() -> None:
    bundle = {
        "image/png": "iVBORw0KGgo=",
        "image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        "application/json": {"a": 1},
        "application/vnd.jupyter.widget-view+json": {"model_id": "m", "version_major": 2},
    }
    assert gate().bundle(bundle) == (bundle, [])


def test_extension_types_pass_only_when_listed() -> None:
    data, notes = gate().bundle(
        {
            "application/vnd.vegalite.v5+json": {"mark": "point"},
            "application/vnd.unknown+json": "",
            "text/plain": "t",
        }
    )
    assert set(data) == {"application/vnd.vegalite.v5+json", "text/plain"}
    assert any("Output.renderer_mime_types" in n for n in notes)


# -- libraries and element adoption ----------------------------------------------------


def test_a_library_emitted_once_is_replayed_in_later_frames() -> None:
    g = gate()
    library = "<script>window.Lib = {draw: function(e) { e.textContent = 'drawn'; }};</script>"
    g.bundle({"text/html": library})
    data, _ = g.bundle({"text/html": '<div id="plot1"></div><script>Lib.draw(plot1)</script>'})
    document = assert_isolated(data["text/html"], "Lib.draw")
    assert document.index("window.Lib") < document.index("Lib.draw")
    g.bundle({"application/javascript": "window.Other = 1"})
    data, _ = g.bundle({"text/html": "<script>x()</script>"})
    document = html.unescape(data["text/html"])
    assert "window.Lib" in document
    assert "document.createElement" in document  # the replayed script draws nowhere


def test_library_memory_is_bounded() -> None:
    g = gate(library_bytes=1000)
    g.bundle({"text/html": "<script>/*" + "x" * 2000 + "*/</script>"})
    g.bundle({"text/html": "<script>window.Small = 1</script>"})
    assert g.libraries.size < 1000
    assert g.libraries.skipped_bytes > 2000
    data, _ = g.bundle({"text/html": "<script>use()</script>"})
    assert "x" * 2000 not in data["text/html"]
    assert "Small" in data["text/html"]


def test_a_script_output_adopts_the_element_an_earlier_output_of_its_cell_holds() -> None:
    g = gate()
    g.begin_cell()
    div = '<div id="a1b2c3d4" data-root-id="p1"></div>'
    g.bundle({"text/html": div})
    data, _ = g.bundle({"application/javascript": 'document.getElementById("a1b2c3d4")'})
    document = html.unescape(data["text/html"])
    assert document.index(div) < document.index("atob(")
    g.begin_cell()
    data, _ = g.bundle({"application/javascript": 'document.getElementById("a1b2c3d4")'})
    assert div not in html.unescape(data["text/html"])


# -- execute_reply user_expressions, inspect_reply, payloads ---------------------------


def test_user_expressions_bundles_go_through_the_gate() -> None:
    expressions = {
        "x": {"status": "ok", "data": {"text/html": HOSTILE_HTML}, "metadata": {}},
        "y": {"status": "error", "ename": "E", "evalue": "v", "traceback": []},
    }
    clean, _ = gate().user_expressions(expressions)
    assert_isolated(clean["x"]["data"]["text/html"], HOSTILE_HTML)
    assert clean["y"] == expressions["y"]
    clean, _ = gate("drop").user_expressions(expressions)
    assert clean["x"]["data"] == {"text/plain": REMOVED}


def test_inspect_data_is_text_only() -> None:
    data = {"text/plain": "help", "text/html": HOSTILE_HTML}
    assert gate().inspect_data(data) == {"text/plain": "help"}
    assert gate().inspect_data({"text/html": "<b>a</b>&amp;"}) == {"text/plain": "a&"}


def test_pager_payload_is_text_only() -> None:
    payloads = [{"source": "page", "data": {"text/html": HOSTILE_HTML, "text/plain": "p"}}]
    kept, _ = gate().payloads(payloads)
    assert kept == [{"source": "page", "data": {"text/plain": "p"}}]


@pytest.mark.parametrize("strict", [False, True])
def test_set_next_input_replacing_the_cell_and_edit_are_dropped_when_strict(
    strict: bool,
) -> None:
    payloads = [
        {"source": "set_next_input", "text": "a", "replace": True},
        {"source": "set_next_input", "text": "b", "replace": False},
        {"source": "edit_magic", "filename": "f", "line_number": 1},
        {"source": "ask_exit", "keepkernel": False},
    ]
    kept, notes = gate(drop_frontend_payloads=strict).payloads(payloads)
    if strict:
        assert [p.get("text", p["source"]) for p in kept] == ["b", "ask_exit"]
        assert len(notes) == 2
    else:
        assert kept == payloads


# -- comm_open / comm_msg ---------------------------------------------------------------


def widget_open(comm_id: str, model: str, module: str, **state: Any) -> dict[str, Any]:
    return {
        "comm_id": comm_id,
        "target_name": "jupyter.widget",
        "data": {
            "state": {
                "_model_name": model,
                "_model_module": module,
                "_view_module": module,
                **state,
            },
            "buffer_paths": [],
        },
    }


def test_comm_to_an_unlisted_target_is_refused_with_its_messages() -> None:
    g = gate()
    message = {"comm_id": "c1", "target_name": "evil", "data": {"html": HOSTILE_HTML}}
    # Refused with a note in the cell, and handed to the caller to audit and count,
    # once per comm.
    out, notes = g.comm("comm_open", message)
    assert out is None
    assert len(notes) == 1
    assert "'evil' was refused" in notes[0]
    assert "Output.comm_targets" in notes[0]
    assert g.take_refused_comms() == ["evil"]
    assert g.comm("comm_msg", {"comm_id": "c1", "data": {}}) == (None, [])
    assert g.comm("comm_close", {"comm_id": "c1", "data": {}}) == (None, [])
    assert g.take_refused_comms() == []
    allowed = gate(comm_targets=frozenset({"evil"}))
    assert allowed.comm("comm_open", message) == (message, [])
    assert allowed.take_refused_comms() == []


def test_comm_messages_on_a_comm_never_opened_are_dropped() -> None:
    """A comm_msg names its comm: one the gate never saw open has passed no check."""
    g = gate()
    assert g.comm("comm_msg", {"comm_id": "ghost", "data": {"html": HOSTILE_HTML}}) == (None, [])


def test_comm_close_of_an_allowed_comm_is_relayed_as_it_is() -> None:
    """The table: comm_close has no content to gate; the frontend must learn of it."""
    g = gate(comm_targets=frozenset({"echo"}))
    opened = {"comm_id": "c2", "target_name": "echo", "data": {}}
    assert g.comm("comm_open", opened) == (opened, [])
    close = {"comm_id": "c2", "data": {}}
    assert g.comm("comm_close", close) == (close, [])
    # Closed: later messages on it have no comm to belong to.
    assert g.comm("comm_msg", {"comm_id": "c2", "data": {}}) == (None, [])


def test_a_widget_from_an_unlisted_module_is_refused() -> None:
    g = gate()
    message = widget_open("w1", "AnyModel", "anywidget", _esm="export default {render(){}}")
    out, notes = g.comm("comm_open", message)
    assert out is None
    assert "Output.widget_modules" in notes[0]
    assert g.comm("comm_msg", {"comm_id": "w1", "data": {"method": "update", "state": {}}}) == (
        None,
        [],
    )
    trusting = gate(widget_modules=frozenset({*CORE_WIDGET_MODULES, "anywidget"}))
    assert trusting.comm("comm_open", message) == (message, [])


def test_a_core_model_with_a_foreign_view_module_is_refused() -> None:
    message = widget_open("w1", "HTMLModel", "@jupyter-widgets/controls")
    message["data"]["state"]["_view_module"] = "evil-views"
    assert gate().comm("comm_open", message)[0] is None


@pytest.mark.parametrize("model", ["HTMLModel", "HTMLMathModel"])
def test_html_widget_values_are_gated_on_open_and_update(model: str) -> None:
    g = gate()
    out, notes = g.comm(
        "comm_open", widget_open("w1", model, "@jupyter-widgets/controls", value=HOSTILE_HTML)
    )
    assert out is not None
    assert "onerror" not in out["data"]["state"]["value"]
    assert "<img" in out["data"]["state"]["value"]
    assert notes
    update = {"comm_id": "w1", "data": {"method": "update", "state": {"value": HOSTILE_HTML}}}
    out, _ = g.comm("comm_msg", update)
    assert out is not None
    assert "onerror" not in out["data"]["state"]["value"]
    passive = {"comm_id": "w1", "data": {"method": "update", "state": {"value": "<b>ok</b>"}}}
    assert g.comm("comm_msg", passive) == (passive, [])


def test_descriptions_and_typeset_fields_are_gated() -> None:
    g = gate()
    out, _ = g.comm(
        "comm_open",
        widget_open(
            "w1",
            "IntSliderModel",
            "@jupyter-widgets/controls",
            description=HOSTILE_HTML + "$\\href{javascript:1}{x}$",
            description_allow_html=True,
            value=3,
        ),
    )
    assert out is not None
    description = out["data"]["state"]["description"]
    assert "onerror" not in description
    assert "\\href" not in description
    out, _ = g.comm(
        "comm_open",
        widget_open("w2", "LabelModel", "@jupyter-widgets/controls", value="$\\url{x}$"),
    )
    assert out is not None
    assert out["data"]["state"]["value"] == "$url{x}$"


def test_output_widget_outputs_get_the_display_data_treatment() -> None:
    outputs = [
        {"output_type": "display_data", "data": {"text/html": HOSTILE_HTML}, "metadata": {}},
        {"output_type": "stream", "name": "stdout", "text": "<b>text</b>"},
        {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t"]},
        {"output_type": "evil", "data": {"text/html": HOSTILE_HTML}},
    ]
    for mode in ("isolate", "sanitize"):
        g = gate(mode)
        out, _ = g.comm(
            "comm_open",
            widget_open("o1", "OutputModel", "@jupyter-widgets/output", outputs=outputs),
        )
        assert out is not None
        gated = out["data"]["state"]["outputs"]
        assert [o["output_type"] for o in gated] == ["display_data", "stream", "error"]
        expected, _ = gate(mode).bundle({"text/html": HOSTILE_HTML})
        assert gated[0]["data"] == expected
        assert gated[1]["text"] == "<b>text</b>"
        update = {"comm_id": "o1", "data": {"method": "update", "state": {"outputs": outputs}}}
        out, _ = g.comm("comm_msg", update)
        assert out is not None
        assert out["data"]["state"]["outputs"][0]["data"] == expected


def test_buffers_may_not_stand_in_for_gated_fields() -> None:
    g = gate()
    g.comm("comm_open", widget_open("w1", "HTMLModel", "@jupyter-widgets/controls", value=""))
    update = {
        "comm_id": "w1",
        "data": {"method": "update", "state": {}, "buffer_paths": [["value"]]},
    }
    out, notes = g.comm("comm_msg", update)
    assert out is None
    assert notes


def test_the_control_comms_state_reply_is_gated_model_by_model() -> None:
    g = gate()
    g.frontend_comm("ctl", "jupyter.widget.control")
    g.comm("comm_open", widget_open("w1", "HTMLModel", "@jupyter-widgets/controls", value=""))
    reply = {
        "comm_id": "ctl",
        "data": {
            "method": "update_states",
            "states": {
                "w1": {
                    "model_name": "HTMLModel",
                    "model_module": "@jupyter-widgets/controls",
                    "model_module_version": "2.0.0",
                    "state": {"value": HOSTILE_HTML, "_view_module": "@jupyter-widgets/controls"},
                },
                "w2": {
                    "model_name": "AnyModel",
                    "model_module": "anywidget",
                    "model_module_version": "0.9",
                    "state": {"_esm": "alert(1)"},
                },
            },
            "buffer_paths": {},
        },
    }
    out, notes = g.comm("comm_msg", reply)
    assert out is not None
    states = out["data"]["states"]
    assert set(states) == {"w1"}
    assert "onerror" not in states["w1"]["state"]["value"]
    assert any("anywidget" in n for n in notes)


def test_frontend_opened_comms_keep_working() -> None:
    g = gate()
    g.frontend_comm("f1", "my.target")
    message = {"comm_id": "f1", "data": {"x": 1}}
    assert g.comm("comm_msg", message) == (message, [])


def test_kernel_updates_of_a_frontend_created_widget_are_gated() -> None:
    g = gate()
    g.frontend_comm("f2", "jupyter.widget")
    update = {"comm_id": "f2", "data": {"method": "update", "state": {"value": HOSTILE_HTML}}}
    out, _ = g.comm("comm_msg", update)
    assert out is not None
    assert "onerror" not in out["data"]["state"]["value"]
    plain = {"comm_id": "f2", "data": {"method": "update", "state": {"value": 5}}}
    assert g.comm("comm_msg", plain) == (plain, [])


def test_extension_code_types_are_dropped_quietly() -> None:
    data, notes = gate().bundle(
        {"application/vnd.bokehjs_exec.v0+json": "", "text/html": "<div>x</div>"}
    )
    assert data == {"text/html": "<div>x</div>"}
    assert notes == []


# -- the passive check itself -----------------------------------------------------------

ACTIVE_MARKUP = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=x OnError=alert(1)>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="jav&#x61;script:alert(1)">x</a>',
    '<a href="jav&#97;script&colon;alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href=" \x01javascript:alert(1)">x</a>',
    '<a href="vbscript:x">x</a>',
    '<a href="https://x" target="_top">x</a>',
    '<iframe src="/lab"></iframe>',
    '<iframe srcdoc="<script>1</script>"></iframe>',
    '<form action="/api/contents" method="post"><button>go</button></form>',
    '<base href="https://attacker.example/">',
    '<meta http-equiv="refresh" content="0;url=/logout">',
    '<link rel="stylesheet" href="x.css">',
    '<object data="x.swf"></object>',
    '<embed src="x">',
    '<details open ontoggle="alert(1)">',
    '<span data-commandlinker-command="terminal:create-new">x</span>',
    '<button data-commandlinker-command="help:about">x</button>',
    "<input autofocus onfocus=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<template><img src=x onerror=alert(1)></template>",
    "<p>$\\href{javascript:alert(1)}{x}$</p>",
    "<p>&#92;url{x}</p>",
    '<img name="currentScript" src="x">',
    '<a href="' + "a" * 100 + ':x">long scheme</a>',
    '<video poster="x" src="y"></video>',
    '<div style="x" onmouseover="alert(1)">',
    "<custom-element></custom-element>",
]


@pytest.mark.parametrize("markup", ACTIVE_MARKUP)
def test_active_markup_is_recognised(markup: str) -> None:
    assert not is_passive_html(markup)
    cleaned = sanitize_html(markup)
    assert is_passive_html(cleaned), cleaned


PASSIVE_MARKUP = [
    "plain text & more",
    '<table border="1" class="dataframe"><tr style="text-align: right;"><th>a</th></tr></table>',
    "<style scoped>.dataframe tbody tr th { vertical-align: top; }</style>",
    '<a href="https://example.org/x:y">x</a> <a href="#anchor">y</a> <a href="rel/path">z</a>',
    '<img src="data:image/png;base64,AAAA" alt="x">',
    "<!-- a comment <b>with markup</b> in it -->",
    "<img/src=x/onerror=1>",  # one attribute: src="x/onerror=1"
    "<details open><summary>s</summary>body</details>",
]


@pytest.mark.parametrize("markup", PASSIVE_MARKUP)
def test_passive_markup_is_recognised(markup: str) -> None:
    assert is_passive_html(markup)


def test_a_script_tag_named_anywhere_errs_on_the_side_of_isolation() -> None:
    # The fast path for large documents: a false hit costs a frame, never a hole.
    assert not is_passive_html("<!-- only a comment mentions <script> -->")


def test_the_autograders_answers_pass_by_default() -> None:
    from sandbox_kernel.config import Output

    grader = Path(__file__).parents[2] / "examples" / "autograde" / "grade.py"
    [mime] = re.findall(r'^ANSWER_MIME = "([^"]+)"', grader.read_text(), re.M)
    settings = GateSettings(renderer_mime_types=frozenset(Output().renderer_mime_types))
    data, notes = OutputGate(settings).bundle({mime: "nonce{}", "text/plain": "t"})
    assert data[mime] == "nonce{}"
    assert notes == []


# -- text/x-rst ---------------------------------------------------------------------

# nbconvert's rst_output test notebook: a note admonition (the page shows text/html).
NOTE_RST = ".. note::\n\n    Testing testing"
ACTIVE_RST = [
    ".. raw:: html\n\n    <img src=x onerror=alert(1)>",
    ".. raw:: html\n\n    &lt;img src=x onerror=alert(1)&gt;",
    ".. RAW:: html\n\n    x",
    ".. meta::\n   :http-equiv=refresh: 0; url=javascript:alert(1)",
    ".. include:: /etc/passwd",
    "`click <javascript:alert(1)>`_",
    "`click`_\n\n.. _click: javascript:alert(1)",
    "__ javascript:alert(1)",
    ".. |x| image:: javascript:alert(1)",
    ".. image:: data:text/html,<script>alert(1)</script>",
    "see javascript:alert(1)",
    "see java\tscript:alert(1)",
    "see JavaScript:alert(1)",
    "see vbscript:msgbox",
    ":raw-html:`<b>x</b>`",
    ".. math:: \\href{javascript:alert(1)}{x}",
    "<b>x</b>",
    "+--------------------+\n| .. meta::          |\n|    :refresh: 0    |\n+--------------------+",
    "| .. |x| replace:: y |",
]
PASSIVE_RST = [
    NOTE_RST,
    ".. warning::\n   Careful: 3 items.",
    "Result: 5\n\nSee https://example.org/a?b=c and mailto:a@example.org",
    "Title\n=====\n\n* one\n* two\n\n.. code-block:: python\n\n   x = 1",
]


@pytest.mark.parametrize("text", PASSIVE_RST)
def test_passive_rst_is_relayed_unchanged(text: str) -> None:
    data = {"text/plain": "<Note>", "text/x-rst": text}
    assert is_passive_rst(text)
    assert gate().bundle(data) == (data, [])
    assert gate("sanitize").bundle(data) == (data, [])


@pytest.mark.parametrize("text", ACTIVE_RST)
@pytest.mark.parametrize("mode", ["isolate", "sanitize", "drop"])
def test_rst_that_a_renderer_could_make_active_is_dropped(text: str, mode: str) -> None:
    assert not is_passive_rst(text)
    out, notes = gate(mode).bundle({"text/plain": "<Note>", "text/x-rst": text})
    assert out == {"text/plain": "<Note>"}
    assert len(notes) == 1
    assert "text/x-rst" in notes[0]


def test_rst_beside_active_html_keeps_the_html_isolated() -> None:
    out, _ = gate().bundle({"text/html": HOSTILE_HTML, "text/x-rst": NOTE_RST})
    assert out["text/x-rst"] == NOTE_RST
    assert_isolated(out["text/html"], HOSTILE_HTML)


# -- the scheme patterns are linear (a long run of letters once held the kernel's loop) ----

PLAIN_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*(?=:)")
PLAIN_RST_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(?=[^\s:])")


@settings(max_examples=500, deadline=None, database=None)
@given(st.text(alphabet="aZz09+.-: \t/_é", max_size=60))
def test_the_linear_scheme_patterns_find_what_the_plain_ones_find(text: str) -> None:
    from sandbox_kernel.relay import html as gate_html

    assert gate_html._SCHEME.findall(text) == PLAIN_SCHEME.findall(text)
    assert gate_html._RST_URL_SCHEME.findall(text) == PLAIN_RST_URL_SCHEME.findall(text)


@pytest.mark.parametrize(
    ("mime", "unit"),
    [("text/html", "a"), ("text/html", "a1"), ("text/x-rst", "A"), ("text/x-rst", "a1")],
)
def test_a_megabyte_of_letters_is_gated_in_one_pass(mime: str, unit: str) -> None:
    """With the plain patterns each of these took the trusted kernel about an hour (a
    run of n scheme characters not followed by ':' was scanned from each of its n
    positions). The bound is three orders of magnitude above what one pass takes."""
    import threading

    gate = OutputGate(GateSettings())
    text = unit * (1_000_000 // len(unit))
    done = threading.Event()
    result: list[Any] = []

    def run() -> None:
        result.append(gate.bundle({mime: text, "text/plain": "t"}))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(120), f"gating {len(text):,} characters of {unit!r} did not finish"
    data, _ = result[0]
    assert data[mime] == text  # passive: relayed as it is


_PLAIN_SCRIPT_OR_STYLE = re.compile(
    r"<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?-->|<link\b[^>]*>", re.S | re.I
)
_TOKENS = [
    "<script>",
    "</script>",
    "<style>",
    "</style >",
    "<SCRIPT a=1>",
    "</Script>",
    "<!--",
    "-->",
    "<link a>",
    "<link",
    " ",
    "\n",
    "\u2003",
    "x",
    "<",
    ">",
    "-",
]


@settings(max_examples=500, deadline=None, database=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=12))
def test_shows_nothing_says_what_the_substitution_said(tokens: list[str]) -> None:
    markup = "".join(tokens)
    assert frame.shows_nothing(markup) == (not _PLAIN_SCRIPT_OR_STYLE.sub("", markup).strip())


@pytest.mark.parametrize("unit", ["<script>", "<style>", "<!--", "<script>x</script"])
def test_a_megabyte_of_unclosed_scripts_is_isolated_in_one_pass(unit: str) -> None:
    """sub() tried each unclosed construct to the end of the markup: minutes of the
    trusted kernel's loop for a megabyte. The bound is far above what one pass takes."""
    import threading

    gate = OutputGate(GateSettings(active_content="isolate"))
    markup = unit * (1_000_000 // len(unit))
    done = threading.Event()
    threading.Thread(
        target=lambda: (gate.bundle({"text/html": markup}), done.set()), daemon=True
    ).start()
    assert done.wait(120), f"isolating {len(markup):,} characters of {unit!r} did not finish"


_MD_TOKENS = ["[", "]", "(", ")", ":", " ", "\n", "<", ">", "a", "](", "]:", "\t", "x:y", "  ["]


@settings(max_examples=1000, deadline=None, database=None)
@given(st.lists(st.sampled_from(_MD_TOKENS), max_size=16))
def test_markdown_links_are_what_the_pattern_finds(tokens: list[str]) -> None:
    from sandbox_kernel.relay import html as gate_html

    text = "".join(tokens)
    assert gate_html.markdown_links(text) == gate_html._MARKDOWN_LINK.findall(text)


@pytest.mark.parametrize("unit", ["[a\n", "[\n", "](", "[a\n]:"])
def test_megabytes_of_markdown_labels_are_gated_in_one_pass(unit: str) -> None:
    """The pattern's findall scanned from every line starting with '[' to the next ']':
    about 7 minutes of the trusted kernel's loop for 2 MB without one."""
    import threading

    gate = OutputGate(GateSettings())
    text = unit * (2_000_000 // len(unit))
    done = threading.Event()
    threading.Thread(
        target=lambda: (gate.bundle({"text/markdown": text}), done.set()), daemon=True
    ).start()
    assert done.wait(120), f"gating {len(text):,} characters of {unit!r} did not finish"
