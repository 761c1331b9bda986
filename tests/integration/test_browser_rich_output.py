"""Rich output still works in the default preset, in a real JupyterLab and Chromium.

The output gate isolates active content in sandboxed frames (relay/gate.py). These
tests show that interactive libraries keep working there: each output is seen
rendered (a canvas, an svg or the expected elements, inside its frame where it has
one) and answers an interaction (a hover, a click or a slider drag changes the DOM
or the kernel's state). Libraries that load their JavaScript from CDNs get it from
local packages (tests/integration/cdn.py): there is no internet here.

Also here, the frame's height listener under attack: a frame may only choose its own
height, within the clamp, and nothing a hostile frame posts changes another frame.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.cdn import CdnFiles, cdn_files, npm_missing
from tests.integration.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    EXPECT_TIMEOUT_MS,
    LabServer,
    expect,
    install_kernelspec,
    require_browser_stack,
    start_lab,
)
from tests.integration.test_browser_attacks import Notebook, open_attack_notebook, run_in_cell
from tests.integration.test_browser_sanitize import Kernel, widgets_frontend_missing

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Frame, FrameLocator, Locator

SANDBOX = Kernel("sandbox-python", "Python 3 (sandboxed)")
FRAME = "iframe.sandbox-kernel-frame"
MAX_HEIGHT = 8000


@pytest.fixture(scope="module")
def rich_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    require_browser_stack()
    base = tmp_path_factory.mktemp("rich-lab")
    base.chmod(0o755)
    with start_lab(base, [str(install_kernelspec(base / "prefix"))]) as server:
        yield server


@pytest.fixture(scope="module")
def cdn() -> CdnFiles:
    return cdn_files()


@pytest.fixture(scope="module")
def rich_context(cdn: CdnFiles) -> Iterator[BrowserContext]:
    require_browser_stack()
    from playwright.sync_api import expect as playwright_expect
    from playwright.sync_api import sync_playwright

    playwright_expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        # Sandboxed frames stay in the page's renderer process here: Chromium otherwise
        # moves them into processes of their own, and a library's first requests from a
        # brand-new frame can leave before Playwright's routing is attached to it (then
        # they meet this machine's missing DNS). The frames' opaque origin and sandbox
        # are the same either way; only the stand-in CDN needs this.
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, "--disable-features=IsolateSandboxedIframes"],
            headless=True,
        )
        try:
            context = chromium.new_context(viewport={"width": 1400, "height": 1000})
            cdn.route(context)
            yield context
        finally:
            chromium.close()


@dataclass
class Lab:
    server: LabServer
    notebook: Notebook

    def run(self, code: str) -> Locator:
        return run_in_cell(self.notebook, code)


@pytest.fixture
def lab(rich_server: LabServer, rich_context: BrowserContext, tmp_path: Path) -> Iterator[Lab]:
    from playwright.sync_api import Error as PlaywrightError

    notebook = open_attack_notebook(rich_server, rich_context, SANDBOX)
    try:
        yield Lab(rich_server, notebook)
    finally:
        with contextlib.suppress(PlaywrightError):
            notebook.page.screenshot(path=str(tmp_path / "page.png"))
        with contextlib.suppress(PlaywrightError):
            notebook.page.close()


def need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed in {sys.prefix} (the 'browser' extra has it)")


def frame_in(output: Locator, index: int = -1) -> FrameLocator:
    frames = output.locator(FRAME)
    expect(frames.first, "the output is isolated in the gate's frame").to_be_attached()
    assert frames.first.get_attribute("sandbox") == "allow-scripts"
    target = frames.last if index == -1 else frames.nth(index)
    return target.content_frame


def frame_object(output: Locator, index: int = -1) -> Frame:
    frames = output.locator(FRAME)
    target = frames.last if index == -1 else frames.nth(index)
    handle = target.element_handle()
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None
    return frame


def frame_height(output: Locator, index: int = -1) -> float:
    frames = output.locator(FRAME)
    target = frames.last if index == -1 else frames.nth(index)
    return float(target.evaluate("f => f.getBoundingClientRect().height"))


def wait_height(output: Locator, low: float, high: float, index: int = -1) -> float:
    """Wait until the frame's height is in [low, high] (the listener applied a report)."""
    frames = output.locator(FRAME)
    target = frames.last if index == -1 else frames.nth(index)
    handle = target.element_handle()
    assert handle is not None
    output.page.wait_for_function(
        f"f => {{ const h = f.getBoundingClientRect().height; return h >= {low} && h <= {high} }}",
        arg=handle,
        timeout=EXPECT_TIMEOUT_MS,
    )
    return frame_height(output, index)


# -- passive output and widgets: in the page itself --------------------------------------


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_pandas_styler_renders_in_the_page_and_shows_its_tooltip(lab: Lab) -> None:
    output = lab.run(
        "import pandas as pd\n"
        "df = pd.DataFrame({'a': [1, 5], 'b': [3, 2]})\n"
        "tips = pd.DataFrame({'a': ['low a', 'high a'], 'b': ['high b', 'low b']})\n"
        "df.style.highlight_max(color='yellow').set_tooltips(tips)"
    )
    assert output.locator(FRAME).count() == 0, "passive HTML must not be isolated"
    cell = output.locator("table td").filter(has_text="5").first
    expect(cell, "the Styler table is rendered in the page").to_be_visible()
    color = cell.evaluate("td => getComputedStyle(td).backgroundColor")
    assert color == "rgb(255, 255, 0)", color
    tip = cell.locator(".pd-t")
    assert tip.evaluate("t => getComputedStyle(t).visibility") == "hidden"
    cell.hover()
    expect(tip, "hovering shows the Styler's tooltip").to_be_visible()


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_ipywidgets_slider_changes_kernel_state(lab: Lab) -> None:
    if missing := widgets_frontend_missing():
        pytest.skip(f"ipywidgets cannot render in this JupyterLab: missing {missing}")
    output = lab.run("import ipywidgets as w\nslider = w.IntSlider(value=3, max=10)\nslider")
    handle = output.locator(".widget-slider .noUi-handle")
    expect(handle, "the slider is rendered").to_be_visible()
    box = handle.bounding_box()
    assert box is not None
    page = lab.notebook.page
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 150, box["y"] + box["height"] / 2, steps=10)
    page.mouse.up()
    readout = output.locator(".widget-readout")
    expect(readout, "the drag moved the slider").not_to_have_text("3")
    shown = readout.inner_text().strip()
    result = lab.run("print('value', slider.value)")
    expect(result).to_contain_text(f"value {shown}")


# -- plotly: its mime renderer (page) and its HTML renderer (isolated) ------------------


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_plotly_mime_renderer_hovers(lab: Lab) -> None:
    need("plotly")
    output = lab.run(
        "import plotly.express as px\n"
        "fig = px.scatter(x=[1, 2, 3], y=[3, 1, 2])\nfig.show(renderer='plotly_mimetype')"
    )
    point = output.locator(".js-plotly-plot .scatterlayer .point").first
    expect(point, "plotly's extension drew the figure").to_be_visible()
    point.hover(force=True)
    expect(output.locator(".hoverlayer .hovertext").first, "hover label").to_be_visible()


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_plotly_html_renderer_works_isolated_with_its_library(lab: Lab) -> None:
    need("plotly")
    # The 'notebook' renderer: plotly.js (a library output) then the figure, which uses it.
    output = lab.run(
        "import plotly.express as px, plotly.io as pio\n"
        "pio.renderers.default = 'notebook'\n"
        "px.scatter(x=[1, 2, 3], y=[3, 1, 2]).show()"
    )
    frame = frame_in(output)
    point = frame.locator(".js-plotly-plot .scatterlayer .point").first
    expect(point, "the figure is drawn inside its frame").to_be_attached()
    height = wait_height(output, 400, 1000)
    assert height >= 400, f"the frame is {height}px high: the plot does not fit"
    point.hover(force=True)
    expect(frame.locator(".hoverlayer .hovertext").first, "hover label").to_be_attached()
    # A later cell: the library is replayed in the new figure's frame.
    output = lab.run("px.bar(x=['a', 'b'], y=[2, 5]).show()")
    frame = frame_in(output)
    expect(frame.locator(".js-plotly-plot .barlayer .point").first).to_be_attached()


# -- bokeh: output_notebook in one cell, show in another -----------------------------------


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_bokeh_library_cell_then_plot_cell(lab: Lab, cdn: CdnFiles) -> None:
    need("bokeh")
    lab.run("from bokeh.io import output_notebook\noutput_notebook()")
    output = lab.run(
        "from bokeh.plotting import figure, show\n"
        "p = figure(width=400, height=300, tools='pan,box_zoom,reset')\n"
        "p.scatter([1, 2, 3], [3, 1, 2], size=12)\nshow(p)"
    )
    frame = frame_in(output)
    canvas = frame.locator("canvas").first
    expect(canvas, "BokehJS drew the plot inside the frame").to_be_attached()
    assert any("bokeh" in url for url in cdn.served), cdn.served
    wait_height(output, 250, 1000)
    expect(frame.locator(".bk-tool-icon-pan").first, "the toolbar is rendered").to_be_attached()
    # Dragging the plot pans it (the pan tool is active): its x range moves.
    bokeh = frame_object(output)
    x_range = "() => { const r = Bokeh.documents[0].roots()[0].x_range; return [r.start, r.end]; }"
    bokeh.wait_for_function(f"() => ({x_range})()[0] !== null && !isNaN(({x_range})()[0])")
    before = bokeh.evaluate(x_range)
    box = canvas.bounding_box()
    assert box is not None
    page = lab.notebook.page
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 120, y, steps=12)
    page.mouse.up()
    bokeh.wait_for_function(f"before => ({x_range})()[0] !== before[0]", arg=before)
    after = bokeh.evaluate(x_range)
    assert after[0] > before[0], f"dragging left should pan right: {before} -> {after}"


# -- altair (vega-embed from the CDN) ---------------------------------------------------------


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_altair_chart_renders_and_opens_its_menu(lab: Lab) -> None:
    need("altair")
    if missing := npm_missing():
        pytest.skip(f"the Vega files come from npm packages: missing {missing}")
    output = lab.run(
        "import altair as alt, pandas as pd\n"
        "df = pd.DataFrame({'x': [1, 2, 3], 'y': [3, 1, 2]})\n"
        "alt.Chart(df).mark_point().encode(x='x', y='y').interactive()"
    )
    frame = frame_in(output)
    chart = frame.locator(".vega-embed canvas, .vega-embed svg").first
    expect(chart, "vega-embed drew the chart inside the frame").to_be_attached()
    wait_height(output, 200, 1000)
    menu = frame.locator(".vega-embed details").first
    assert menu.get_attribute("open") is None
    frame.locator(".vega-embed details summary").first.click()
    expect(menu, "clicking opens the actions menu").to_have_attribute("open", "")


# -- folium (Leaflet from the CDN, in folium's own nested frame) ----------------------------


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_folium_map_renders_and_zooms(lab: Lab) -> None:
    need("folium")
    if missing := npm_missing():
        pytest.skip(f"Leaflet comes from its npm package: missing {missing}")
    output = lab.run("import folium\nfolium.Map(location=[0, 0], zoom_start=2)")
    outer = frame_in(output)
    inner = outer.locator("iframe").first.content_frame
    container = inner.locator(".leaflet-container").first
    expect(container, "Leaflet drew the map in folium's nested frame").to_be_attached()
    wait_height(output, 200, 2000)
    frame = frame_object(output)
    nested = frame.child_frames[0]
    zoom = "() => Object.keys(window).filter(k => k.startsWith('map_')).map(k => window[k].getZoom())[0]"
    assert nested.evaluate(zoom) == 2
    inner.locator(".leaflet-control-zoom-in").first.click(force=True)
    nested.wait_for_function(f"() => ({zoom})() === 3")


# -- the height listener under attack ---------------------------------------------------------

HOSTILE_FRAME = r"""
from IPython.display import HTML, display
display(HTML('''<div style="height:200px">hostile</div><script>
function say(m) { parent.postMessage(m, "*"); }
setTimeout(function () {
  say({type: "sandbox-kernel-height", height: "5000"});
  say({type: "sandbox-kernel-height", height: NaN});
  say({type: "sandbox-kernel-height", height: Infinity});
  say({type: "sandbox-kernel-height", height: {valueOf: function () { return 5000; }}});
  say({type: "something-else", height: 5000});
  say([5000]);
  say("5000");
  var nested = document.createElement("iframe");
  nested.style.display = "none";
  nested.srcdoc = "<script>parent.parent.postMessage({type: 'sandbox-kernel-height', " +
    "height: 4321}, '*')<\/script>";
  document.body.appendChild(nested);
}, 300);
</script>'''))
"""
TALL_FRAME = r"""
display(HTML('''<script>setTimeout(function () {
  parent.postMessage({type: "sandbox-kernel-height", height: 777}, "*");
  parent.postMessage({type: "sandbox-kernel-height", height: 1e12}, "*");
}, 300)</script>'''))
"""


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_the_height_listener_believes_only_a_clamped_number_from_its_own_frame(
    lab: Lab,
) -> None:
    output = lab.run(HOSTILE_FRAME)
    first = wait_height(output, 180, 280)
    lab.notebook.page.wait_for_timeout(2000)  # the crafted messages have all arrived
    assert 180 <= frame_height(output) <= 280, "a crafted message changed the frame's height"
    # A second frame's messages: its own height changes, never the first one's.
    output = lab.run(HOSTILE_FRAME + TALL_FRAME)
    assert output.locator(FRAME).count() == 2
    lab.notebook.page.wait_for_timeout(2000)
    assert frame_height(output, 0) == pytest.approx(first, abs=40)
    # 1e12 was clamped (it came after 777), and no other frame moved to it.
    assert frame_height(output, 1) == MAX_HEIGHT
    heights = lab.notebook.page.evaluate(
        "() => Array.from(document.querySelectorAll('iframe')).map("
        "f => f.getBoundingClientRect().height)"
    )
    assert max(heights) <= MAX_HEIGHT
    assert not re.search(r"4321", str(heights)), heights
