"""End-to-end: hostile HTML/JS outputs in a real JupyterLab, under stock ipykernel and classroom.

JupyterLab renders the outputs of a live session as trusted: scripts in HTML run, event
handlers fire, ``javascript:`` links and ``data-commandlinker-command`` buttons work, and
ipywidgets' HTML widget sets ``innerHTML``. The sandbox kernel's ``classroom`` preset cleans
HTML with nh3, drops ``application/javascript`` outputs and cleans the HTML of widgets.

For each hostile payload, each test runs one cell in a new notebook in headless Chromium and
checks in the page (``window.__pwned``, an open About dialog) and in the DOM whether the
payload took effect:

- under stock ipykernel (kernelspec ``python3``) it must take effect. This is the positive
  control: it shows that the check can fail. A payload that this JupyterLab and Chromium
  leave inert even under stock is marked ``stock_inert``. Its stock test checks that it is
  still inert and then skips with the reason;
- under the sandbox kernel with ``--SandboxKernelApp.preset=classroom`` (a kernelspec of
  this module's own) it must have no effect, none of its hostile markup may reach the DOM,
  and the kernel's ``[sandbox] ...`` notice must appear on stderr in the output area (the
  kernel sends none for a cleaned widget); a widget must still render, with its value
  cleaned.

One ``jupyter lab`` serves the whole module (built from test_browser.py's helpers). Each
test gets a new page (in one browser context, which caches JupyterLab's code), a JupyterLab
workspace of its own and a new notebook, and its kernel is shut down afterwards. When a test
fails it saves a screenshot in its tmp_path. The tests are skipped only when Chromium,
Playwright or JupyterLab is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import secrets
import shutil
import struct
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.test_browser import (
    CELL_TIMEOUT_MS,
    CHROMIUM,
    CHROMIUM_ARGS,
    EXPECT_TIMEOUT_MS,
    KERNEL_TIMEOUT_MS,
    PAGE_TIMEOUT_MS,
    KernelTraffic,
    LabServer,
    decode_frame,
    expect,
    install_kernelspec,
    require_browser_stack,
    start_lab,
)

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page, WebSocket

CLASSROOM_KERNEL = "sandbox-python-classroom-e2e"
CLASSROOM_DISPLAY = "Python 3 (sandboxed, classroom e2e)"
CLASSROOM_FLAG = "--SandboxKernelApp.preset=classroom"


@dataclass(frozen=True)
class Kernel:
    name: str  # kernelspec name
    display_name: str  # what the status bar shows


KERNELS = {
    "stock": Kernel("python3", "Python 3 (ipykernel)"),
    "classroom": Kernel(CLASSROOM_KERNEL, CLASSROOM_DISPLAY),
}

# How long a rendered (or clicked) payload gets to fire before the test decides it did not.
SETTLE_MS = 2_000
# How long stock gets to show the payload's effect.
FIRE_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Payload:
    """One hostile output and how to tell that it took effect."""

    name: str  # also the value the payload gives window.__pwned
    code: str  # the cell
    # The sandbox's stderr notice under classroom; "" where the kernel sends none.
    notice: str
    click: str = ""  # CSS selector of the element a user would click
    about_dialog: bool = False  # the effect is JupyterLab's About dialog, not window.__pwned
    widget: bool = False  # an ipywidgets HTML widget
    # Selector of the hostile markup: stock puts it in the DOM, classroom must not.
    hostile_dom: str = ""
    # Why this JupyterLab and Chromium leave the payload inert even under stock ipykernel.
    stock_inert: str = ""

    def __str__(self) -> str:
        return self.name


HTML_NOTICE = "[sandbox] HTML output was sanitized"
PAYLOADS = [
    Payload(
        "script",
        """from IPython.display import HTML; HTML('<script>window.__pwned="script"</script>')""",
        HTML_NOTICE,
        hostile_dom="script",
    ),
    Payload(
        "onerror",
        """from IPython.display import HTML; """
        """HTML('<img src=x onerror="window.__pwned=\\'onerror\\'">')""",
        HTML_NOTICE,
        hostile_dom="img[onerror]",
    ),
    Payload(
        "jsurl",
        """from IPython.display import HTML; """
        """HTML('<a id="jslink" href="javascript:window.__pwned=\\'jsurl\\'">click</a>')""",
        HTML_NOTICE,
        click="#jslink",
        hostile_dom='a[href^="javascript:"]',
        stock_inert=(
            "JupyterLab gives a link to a non-local URL target=_blank rel=noopener "
            "(rendermime's handleDefaults), so the click opens an about:blank popup and "
            "Chromium does not run the javascript: URL in it, or in the page"
        ),
    ),
    # The same link with an explicit target, which JupyterLab keeps. void() keeps the
    # result from replacing the document, which would wipe window.__pwned.
    Payload(
        "jsurl-self",
        """from IPython.display import HTML; HTML('<a id="jslink" target="_self" """
        """href="javascript:void(window.__pwned=\\'jsurl-self\\')">click</a>')""",
        HTML_NOTICE,
        click="#jslink",
        hostile_dom='a[href^="javascript:"]',
    ),
    Payload(
        "commandlinker",
        """from IPython.display import HTML; """
        """HTML('<button id="cl" data-commandlinker-command="help:about">About</button>')""",
        HTML_NOTICE,
        click="#cl",
        about_dialog=True,
        hostile_dom="[data-commandlinker-command]",
    ),
    Payload(
        "javascript",
        """from IPython.display import Javascript; Javascript('window.__pwned="javascript"')""",
        "[sandbox] a application/javascript output was dropped",
    ),
    Payload(
        "iframe",
        """from IPython.display import HTML; """
        """HTML("<iframe srcdoc='<script>parent.__pwned=\\"iframe\\"</script>'></iframe>")""",
        HTML_NOTICE,
        hostile_dom="iframe",
    ),
    Payload(
        "widget",
        """import ipywidgets as w; w.HTML('<img src=x onerror="window.__pwned=\\'widget\\'">')""",
        # The kernel cleans the widget's comm state without saying so (OutputSanitizer
        # .comm_data returns no notes).
        "",
        widget=True,
        hostile_dom="img[onerror]",
    ),
]


# -- the server, the browser -------------------------------------------------------------


def write_classroom_kernelspec(data_dir: Path) -> None:
    """This checkout's sandbox kernelspec plus the classroom preset, under its own name."""
    from sandbox_kernel.install import kernel_dict, template_dir

    spec = kernel_dict(display_name=CLASSROOM_DISPLAY, python=sys.executable)
    spec["argv"] = [*spec["argv"], CLASSROOM_FLAG]
    spec_dir = data_dir / "kernels" / CLASSROOM_KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    for logo in template_dir().glob("logo-*"):
        shutil.copy(logo, spec_dir)


def api_request(server: LabServer, method: str, path: str, body: Any = None) -> Any:
    """A REST call to the server with its token (token requests need no XSRF cookie)."""
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def sanitize_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """One ``jupyter lab`` for the module, offering python3 and the classroom kernel."""
    require_browser_stack()
    base = tmp_path_factory.mktemp("sanitize-lab")
    base.chmod(0o755)
    classroom_dir = base / "classroom-kernelspec"
    write_classroom_kernelspec(classroom_dir)
    # The classroom spec and the installer's sandbox-python (with logos) go before
    # tests/conftest.py's directory; python3 is ipykernel's, in the virtualenv.
    jupyter_path = [str(classroom_dir), str(install_kernelspec(base / "prefix"))]
    with start_lab(base, jupyter_path) as server:
        specs = server.api("/api/kernelspecs")["kernelspecs"]
        missing = [k.name for k in KERNELS.values() if k.name not in specs]
        assert not missing, f"kernelspecs {missing} are not offered; the server has {sorted(specs)}"
        argv = specs[CLASSROOM_KERNEL]["spec"]["argv"]
        assert CLASSROOM_FLAG in argv, f"{CLASSROOM_KERNEL} runs {argv}"
        yield server


@pytest.fixture(scope="module")
def lab_context() -> Iterator[BrowserContext]:
    """Debian's headless Chromium (never a browser Playwright downloads), for the module."""
    require_browser_stack()
    from playwright.sync_api import expect as playwright_expect
    from playwright.sync_api import sync_playwright

    playwright_expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium.new_context(viewport={"width": 1400, "height": 1000})
        finally:
            chromium.close()


@dataclass
class WidgetStates:
    """The ``value`` of every HTML widget model the page received over the kernel websocket."""

    values: list[str] = field(default_factory=list)

    def attach(self, ws: WebSocket) -> None:
        if "/api/kernels/" in ws.url:
            ws.on("framereceived", self._record)

    def _record(self, frame: str | bytes) -> None:
        try:
            _, msg_type, content = decode_frame(frame)
        except (ValueError, KeyError, IndexError, struct.error):
            return
        if msg_type not in {"comm_open", "comm_msg"}:
            return
        state = (content.get("data") or {}).get("state") or {}
        if isinstance(state.get("value"), str) and (
            state.get("_model_name") in {"HTMLModel", "HTMLMathModel"} or msg_type == "comm_msg"
        ):
            self.values.append(state["value"])


@dataclass
class Session:
    """A page showing a new notebook on the kernel under test, and what it saw."""

    page: Page
    notebook: Locator
    kernel: Kernel
    traffic: KernelTraffic = field(default_factory=KernelTraffic)
    widgets: WidgetStates = field(default_factory=WidgetStates)
    popups: list[Page] = field(default_factory=list)
    console: list[str] = field(default_factory=list)


def handle_interruptions(page: Page, kernel: Kernel) -> None:
    """Answer the toasts and dialogs JupyterLab may put in front of the notebook.

    Only these two: a handler for every dialog would close the About dialog by which the
    command-linker payload is detected.
    """
    news = page.locator(".jp-Notification-Toast-default").filter(has_text="Jupyter news")

    def decline_news(toast: Locator) -> None:
        # A click event, not a mouse click: a modal dialog may be covering the toast.
        toast.get_by_role("button", name="No", exact=True).dispatch_event("click")

    page.add_locator_handler(news, decline_news)

    kernel_dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")

    def choose_kernel(dialog: Locator) -> None:
        dialog.locator("select").select_option(label=kernel.display_name)
        dialog.locator("button.jp-mod-accept").click()

    page.add_locator_handler(kernel_dialog, choose_kernel)


def expect_idle(page: Page, kernel: Kernel, timeout_ms: float) -> None:
    status = page.locator(".jp-StatusBar-Widget").get_by_text(f"{kernel.display_name} | Idle")
    expect(status, f"the {kernel.name} kernel is idle").to_be_visible(timeout=timeout_ms)


def create_notebook(server: LabServer, name: str, kernel: Kernel) -> None:
    """An empty notebook whose metadata names the kernel, so JupyterLab starts that one."""
    content = {
        "cells": [
            {
                "cell_type": "code",
                "id": "payload",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": "",
            }
        ],
        "metadata": {
            "kernelspec": {
                "name": kernel.name,
                "display_name": kernel.display_name,
                "language": "python",
            }
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    api_request(server, "PUT", f"/api/contents/{name}", {"type": "notebook", "content": content})


def open_notebook(server: LabServer, session: Session, name: str, workspace: str) -> None:
    page = session.page
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.on("websocket", session.traffic.attach)
    page.on("websocket", session.widgets.attach)
    page.on("console", lambda msg: session.console.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: session.console.append(f"pageerror: {exc}"))

    def remember_popup(popup: Page) -> None:
        # A named function: Playwright cannot wrap the builtin list.append as a handler.
        session.popups.append(popup)

    page.on("popup", remember_popup)
    handle_interruptions(page, session.kernel)
    # A workspace of its own: nothing an earlier test opened is restored.
    page.goto(f"{server.url}/lab/workspaces/{workspace}/tree/{name}?token={server.token}")
    expect(session.notebook, f"the notebook {name} is open").to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect_idle(page, session.kernel, KERNEL_TIMEOUT_MS)


def run_cell(session: Session, code: str) -> Locator:
    """Type ``code`` into the notebook's cell, run it and wait for idle; return its outputs."""
    page = session.page
    cell = session.notebook.locator(".jp-Notebook-cell").first
    editor = cell.locator(".jp-InputArea-editor .cm-content")
    editor.click()
    # insert_text, not type(): CodeMirror would auto-close the brackets and quotes.
    page.keyboard.insert_text(code)
    expect(editor, "the cell holds the typed code").to_have_text(code)
    page.keyboard.press("Shift+Enter")
    expect(cell.locator(".jp-InputPrompt"), f"the cell finished: {code!r}").to_have_text(
        re.compile(r"\[\d+\]:"), timeout=CELL_TIMEOUT_MS
    )
    # "Idle" comes on IOPub after the cell's last output, so the outputs are all in.
    expect_idle(page, session.kernel, CELL_TIMEOUT_MS)
    assert not session.traffic.errors, f"the cell {code!r} raised {session.traffic.errors}"
    return cell.locator(".jp-OutputArea")


def shut_down_kernels(server: LabServer, name: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        for session in api_request(server, "GET", "/api/sessions"):
            if session.get("path") == name:
                api_request(server, "DELETE", f"/api/sessions/{session['id']}")


def widgets_frontend_missing() -> str:
    """What ipywidgets lacks to render in this JupyterLab, or ""."""
    from jupyter_core.paths import jupyter_path

    if importlib.util.find_spec("ipywidgets") is None:
        return f"ipywidgets is not installed in {sys.prefix}"
    for directory in jupyter_path("labextensions"):
        if (Path(directory) / "@jupyter-widgets" / "jupyterlab-manager").is_dir():
            return ""
    return "the @jupyter-widgets/jupyterlab-manager labextension (pip install jupyterlab_widgets)"


# -- what a payload did ------------------------------------------------------------------

# Evaluated in the page and in every popup: window.__pwned, or a document that a
# javascript: URL's result replaced.
PWNED_JS = """() => {
    const hits = [];
    if (window.__pwned !== undefined) hits.push(`__pwned=${String(window.__pwned)}`);
    if (location.protocol.startsWith("http") && !document.querySelector("#main")) {
        hits.push(`document replaced: ${document.documentElement.textContent.slice(0, 80)}`);
    }
    return hits;
}"""


def effects(session: Session) -> list[str]:
    """Every trace of a payload having run, in the page or a window it opened."""
    from playwright.sync_api import Error as PlaywrightError

    found = []
    for where, target in [("page", session.page), *(("popup", p) for p in session.popups)]:
        try:
            found += [f"{where}: {hit}" for hit in target.evaluate(PWNED_JS)]
        except PlaywrightError as exc:  # a popup closed, or navigated away meanwhile
            found.append(f"{where}: not inspectable ({exc.message.splitlines()[0]})")
    return found


def about_dialog(page: Page) -> Locator:
    return page.locator(".jp-Dialog").filter(has=page.locator(".jp-About-header"))


def click_payload(output: Locator, selector: str) -> None:
    """Click the payload's element or, when the sanitizer removed it, its rendered text."""
    target = output.locator(selector)
    if target.count() == 0:
        target = output.locator(".jp-RenderedHTMLCommon").first
    target.click()


# -- the test ------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.timeout(300)  # the first test also starts JupyterLab
@pytest.mark.parametrize("payload", PAYLOADS, ids=str)
@pytest.mark.parametrize("kernel_id", list(KERNELS))
def test_hostile_output(
    sanitize_server: LabServer,
    lab_context: BrowserContext,
    kernel_id: str,
    payload: Payload,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import Error as PlaywrightError

    if payload.widget and (missing := widgets_frontend_missing()):
        pytest.skip(f"ipywidgets cannot render in this JupyterLab: missing {missing}")
    kernel = KERNELS[kernel_id]
    tag = f"{kernel_id}-{payload.name}-{secrets.token_hex(3)}"
    name = f"{tag}.ipynb"
    screenshot = tmp_path / f"{tag}.png"
    create_notebook(sanitize_server, name, kernel)
    page = lab_context.new_page()
    session = Session(page, page.locator(".jp-NotebookPanel").first, kernel)
    try:
        open_notebook(sanitize_server, session, name, tag)
        output = run_cell(session, payload.code)
        if payload.widget:
            expect_widget_state(session)
        if payload.click:
            click_payload(output, payload.click)
        if kernel_id == "stock":
            check_fires(session, output, payload)
        else:
            check_blocked(session, output, payload)
    except (AssertionError, PlaywrightError) as exc:
        with contextlib.suppress(PlaywrightError):
            page.screenshot(path=screenshot)
        exc.add_note(f"screenshot: {screenshot}")
        exc.add_note(f"jupyter lab log ({sanitize_server.log_path}):\n{sanitize_server.log_tail()}")
        exc.add_note(f"kernel websocket traffic (last messages):\n{session.traffic.tail()}")
        exc.add_note("browser console:\n" + ("\n".join(session.console[-30:]) or "<empty>"))
        raise
    finally:
        for opened in [*session.popups, page]:
            with contextlib.suppress(PlaywrightError):
                opened.close()
        shut_down_kernels(sanitize_server, name)


def expect_widget_state(session: Session) -> None:
    """Wait until the page has the HTML widget's model state from the kernel."""
    deadline = time.monotonic() + EXPECT_TIMEOUT_MS / 1000
    while not session.widgets.values and time.monotonic() < deadline:
        session.page.wait_for_timeout(100)
    assert session.widgets.values, "no HTMLModel state reached the page"


def check_fires(session: Session, output: Locator, payload: Payload) -> None:
    """Stock ipykernel: the hostile markup reaches the DOM and the payload takes effect."""
    page = session.page
    if payload.hostile_dom:
        expect(
            output.locator(payload.hostile_dom).first,
            f"stock: the hostile markup {payload.hostile_dom} is in the DOM",
        ).to_be_attached()
    if payload.widget:
        assert any("onerror" in value for value in session.widgets.values), session.widgets
    if payload.stock_inert:
        page.wait_for_timeout(SETTLE_MS)
        found = effects(session)
        assert not found, (
            f"stock now executes {payload.name} ({found}): drop its stock_inert, "
            f"which says: {payload.stock_inert}"
        )
        pytest.skip(f"stock does not execute {payload.name} either: {payload.stock_inert}")
    if payload.about_dialog:
        dialog = about_dialog(page)
        expect(dialog, "stock: the clicked command ran (About dialog)").to_be_visible(
            timeout=FIRE_TIMEOUT_MS
        )
        dialog.get_by_role("button", name="Close", exact=True).click()
        expect(dialog, "the About dialog closes").to_have_count(0)
        return
    expected = f"page: __pwned={payload.name}"
    deadline = time.monotonic() + FIRE_TIMEOUT_MS / 1000
    while expected not in (found := effects(session)) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert expected in found, (
        f"stock: {payload.name} did not set window.__pwned (found {found}): the positive "
        "control failed, so the classroom check could not tell a blocked payload either"
    )


def check_blocked(session: Session, output: Locator, payload: Payload) -> None:
    """Classroom: no hostile markup in the DOM, no effect, and the sandbox's notice."""
    page = session.page
    page.wait_for_timeout(SETTLE_MS)
    assert effects(session) == [], f"classroom: {payload.name} ran: {effects(session)}"
    expect(about_dialog(page), "classroom: no JupyterLab command ran").to_have_count(0)
    html = output.inner_html().lower()
    for needle in ("<script", "<iframe", "onerror", "javascript:", "data-commandlinker"):
        assert needle not in html, f"classroom: {needle!r} is in the output's DOM:\n{html}"
    if payload.hostile_dom:
        expect(output.locator(payload.hostile_dom), "classroom: hostile markup").to_have_count(0)
    if payload.notice:
        stderr = output.locator('[data-mime-type="application/vnd.jupyter.stderr"]')
        expect(
            stderr.filter(has_text=payload.notice).first,
            f"classroom: the sandbox's notice {payload.notice!r} is shown",
        ).to_be_visible()
    if payload.widget:
        check_widget_blocked(session, output)


def check_widget_blocked(session: Session, output: Locator) -> None:
    values = session.widgets.values
    assert all("onerror" not in value for value in values), (
        f"classroom: the HTML widget's value reached the page unsanitized: {values}"
    )
    view = output.locator(".widget-html-content")
    expect(
        view.first, "classroom: the HTML widget renders (with its cleaned value)"
    ).to_be_attached()
    expect(
        view.locator("img").first, "classroom: the widget shows the cleaned image"
    ).to_be_attached()
