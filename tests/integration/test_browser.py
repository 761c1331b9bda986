"""End-to-end: the kernel in a real JupyterLab, driven through headless Chromium.

A ``jupyter lab`` server from this virtualenv is started on a free loopback port with
this checkout's kernelspec first on ``JUPYTER_PATH``; Playwright drives Debian's
Chromium to the Launcher, checks the "Python 3 (sandboxed)" card and its logo, opens a
notebook with that kernel and runs three cells (stdout, a pandas table, a matplotlib
figure), asserting on what the page renders.

The test is skipped only when Chromium, Playwright or JupyterLab is missing; see
tests/integration/BROWSER.md for how CI installs them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, WebSocket

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking switches Chromium keeps dialling Google services,
# and this closed network refuses its connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KERNEL_NAME = "sandbox-python"
DISPLAY_NAME = "Python 3 (sandboxed)"

SERVER_START_TIMEOUT = 90.0  # the first start of JupyterLab builds caches: 10-20 s
SERVER_STOP_TIMEOUT = 20.0
PAGE_TIMEOUT_MS = 60_000  # the Launcher after the first page load
KERNEL_TIMEOUT_MS = 90_000  # kernel start until "Idle"
CELL_TIMEOUT_MS = 90_000  # one cell; importing pandas or matplotlib cold takes a while
EXPECT_TIMEOUT_MS = 30_000  # anything else the page should show

# User settings for the fresh JupyterLab: never ask about (or fetch) Jupyter news.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


@dataclass
class LabServer:
    """A running ``jupyter lab`` and where its traces are."""

    url: str
    token: str
    root_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no server log>"
        return "\n".join(text.splitlines()[-lines:])

    def api(self, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


@dataclass
class KernelTraffic:
    """What went over the page's kernel websocket: a summary line per message."""

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the ``error`` messages received
    kernel_info: dict[str, Any] = field(default_factory=dict)  # the last kernel_info_reply

    def attach(self, ws: WebSocket) -> None:
        if "/api/kernels/" not in ws.url:
            return
        ws.on("framesent", lambda frame: self._record("->", frame))
        ws.on("framereceived", lambda frame: self._record("<-", frame))

    def _record(self, direction: str, frame: str | bytes) -> None:
        try:
            channel, msg_type, content = decode_frame(frame)
        except (ValueError, KeyError, IndexError, struct.error) as exc:
            self.lines.append(f"{direction} <undecodable frame: {exc!r}>")
            return
        detail = describe(msg_type, content)
        self.lines.append(f"{direction} {channel} {msg_type} {detail}".rstrip())
        if direction == "<-" and msg_type == "error":
            self.errors.append(detail)
        if direction == "<-" and msg_type == "kernel_info_reply":
            self.kernel_info = content

    def tail(self, count: int = 60) -> str:
        return "\n".join(self.lines[-count:]) or "<no kernel websocket traffic>"


def decode_frame(frame: str | bytes) -> tuple[str, str, dict[str, Any]]:
    """Channel, msg_type and content of one kernel websocket frame."""
    if isinstance(frame, str):  # the legacy JSON protocol
        msg = json.loads(frame)
        return str(msg.get("channel")), msg["header"]["msg_type"], msg["content"]
    # v1.kernel.websocket.jupyter.org: a count, that many offsets, then the parts
    # (channel, header, parent_header, metadata, content, buffers...).
    (count,) = struct.unpack_from("<Q", frame)
    offsets = [*struct.unpack_from(f"<{count}Q", frame, 8), len(frame)]
    parts = [frame[offsets[i] : offsets[i + 1]] for i in range(count)]
    return parts[0].decode(), json.loads(parts[1])["msg_type"], json.loads(parts[4])


def describe(msg_type: str, content: dict[str, Any]) -> str:
    """What matters of a message's content, in a few words."""
    if msg_type == "status":
        return str(content.get("execution_state", ""))
    if msg_type == "stream":
        return f"{content.get('name')}: {content.get('text', '')[:80]!r}"
    if msg_type in {"execute_result", "display_data"}:
        return ", ".join(sorted(content.get("data", {})))
    if msg_type == "error":
        return f"{content.get('ename')}: {content.get('evalue', '')[:200]}"
    if msg_type == "execute_request":
        return repr(content.get("code", "")[:80])
    if msg_type == "debug_request":
        return str(content.get("command", ""))
    if msg_type == "debug_reply":
        ok = "ok" if content.get("success") else f"failed: {str(content.get('message'))[:120]}"
        return f"{content.get('command', '')} {ok}"
    if msg_type == "debug_event":
        body = content.get("body") or {}
        return f"{content.get('event', '')} {body.get('reason', '')}".rstrip()
    if msg_type.endswith("_reply"):
        return str(content.get("status", ""))
    return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_kernelspec(prefix: Path, *options: str) -> Path:
    """Register the kernelspec the way users do, logos included; return its data dir.

    ``options`` go to ``python -m sandbox_kernel install`` (``--spares``: a --prefix
    install names no kernel provisioner unless asked to)."""
    subprocess.run(
        [sys.executable, "-m", "sandbox_kernel", "install", "--prefix", str(prefix), *options],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return prefix / "share" / "jupyter"


def wait_until_ready(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(
                f"jupyter lab exited with {server.proc.returncode} while starting:\n"
                f"{server.log_tail()}"
            )
        with contextlib.suppress(OSError, ValueError):
            if "started" in server.api("/api/status"):
                return
        time.sleep(0.25)
    pytest.fail(f"jupyter lab did not answer /api/status in {timeout:.0f} s:\n{server.log_tail()}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the server shuts its kernels down), then SIGKILL whatever is left."""
    try:
        spawned = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        spawned = []
    try:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=SERVER_STOP_TIMEOUT)
    finally:
        # The server's process group, then its kernels and their sandboxes: jupyter_client
        # starts each kernel in a session of its own, out of reach of the group kill.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=SERVER_STOP_TIMEOUT)
        for child in spawned:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(spawned, timeout=SERVER_STOP_TIMEOUT)


def require_browser_stack() -> None:
    """Skip unless Chromium, Playwright and JupyterLab are all installed."""
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip(f"playwright is not installed in {sys.prefix} (pip install playwright)")
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.skip(f"jupyterlab is not installed in {sys.prefix} (pip install jupyterlab)")


@contextlib.contextmanager
def start_lab(base: Path, jupyter_path: list[str]) -> Iterator[LabServer]:
    """``jupyter lab`` on a free loopback port, with a JupyterLab state of its own under
    ``base``; ``jupyter_path`` goes before tests/conftest.py's kernelspec directory."""
    require_browser_stack()
    root_dir = base / "notebooks"
    settings_dir = base / "lab-settings"
    for directory in (root_dir, settings_dir):
        directory.mkdir()
    for name, settings in LAB_SETTINGS.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = dict(os.environ)
    env.update(
        JUPYTER_PATH=os.pathsep.join([*jupyter_path, env.get("JUPYTER_PATH", "")]).rstrip(
            os.pathsep
        ),
        # A JupyterLab of its own: no user config, saved workspace or settings leak in.
        JUPYTER_CONFIG_DIR=str(base / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(base / "jupyter-runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings_dir),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "lab-workspaces"),
    )
    port, token = free_port(), secrets.token_hex(16)
    log_path = base / "jupyter-lab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.allow_root=True",  # CI runs as root
        # No requests to the internet for news or updates.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command,
            env=env,
            cwd=root_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to kill it whole
        )
    server = LabServer(f"http://127.0.0.1:{port}", token, root_dir, log_path, proc)
    try:
        wait_until_ready(server, SERVER_START_TIMEOUT)
        yield server
    finally:
        # SIGTERM, then SIGKILL for the group and every kernel (and sandbox) it spawned.
        stop_server(proc)


@pytest.fixture
def lab_server(tmp_path: Path) -> Iterator[LabServer]:
    # tests/conftest.py put this checkout's kernel.json first on JUPYTER_PATH, but
    # without the logos; the installer's copy (same argv, plus logos) goes before it.
    with start_lab(tmp_path, [str(install_kernelspec(tmp_path / "prefix"))]) as server:
        yield server


@pytest.fixture
def page(lab_server: LabServer) -> Iterator[Page]:
    """A page in Debian's headless Chromium (never a browser Playwright downloads)."""
    require_browser_stack()
    from playwright.sync_api import expect, sync_playwright

    # Assertions wait this long for the page to catch up (Playwright's default is 5 s).
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            yield context.new_page()
        finally:
            browser.close()


def handle_interruptions(page: Page) -> None:
    """Answer the toasts and dialogs JupyterLab may put in front of the notebook."""
    # The user settings written for the server already turn this question off.
    news = page.locator(".jp-Notification-Toast-default").filter(has_text="Jupyter news")

    def decline_news(toast: Locator) -> None:
        # A click event, not a mouse click: a modal dialog may be covering the toast.
        toast.get_by_role("button", name="No", exact=True).dispatch_event("click")

    page.add_locator_handler(news, decline_news)

    kernel_dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")

    def choose_kernel(dialog: Locator) -> None:
        dialog.locator("select").select_option(label=DISPLAY_NAME)
        dialog.locator("button.jp-mod-accept").click()

    page.add_locator_handler(kernel_dialog, choose_kernel)


def expect(actual: Any, message: str | None = None) -> Any:
    """Playwright's ``expect``, imported late: the module must load without Playwright."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(actual, message)


def expect_kernel_idle(page: Page, timeout_ms: float) -> None:
    status = page.locator(".jp-StatusBar-Widget").get_by_text(f"{DISPLAY_NAME} | Idle")
    expect(status, "the kernel is idle").to_be_visible(timeout=timeout_ms)


def expect_image_loaded(page: Page, image: Locator) -> None:
    """Wait until the browser has decoded ``image`` (a broken one never gets a width)."""
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=image.element_handle(),
        timeout=EXPECT_TIMEOUT_MS,
    )


LAUNCHER_CARD_HINT = (
    "the Launcher's notebook card for the kernel (JupyterLab hides a kernelspec whose "
    "kernel provisioner it cannot load: in an environment installed before the spare "
    "provisioner, run pip install -e . and python -m sandbox_kernel install --sys-prefix)"
)


def open_new_notebook(page: Page, server: LabServer) -> Locator:
    """Open JupyterLab, start a notebook on the sandboxed kernel from the Launcher's card
    as a user does, and wait until the kernel is idle; the notebook's panel."""
    page.goto(f"{server.url}/lab?token={server.token}")
    card = page.locator(f'.jp-LauncherCard[data-category="Notebook"][title="{DISPLAY_NAME}"]')
    expect(card, LAUNCHER_CARD_HINT).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    card.click()
    notebook = page.locator(".jp-NotebookPanel").first
    expect(notebook).to_be_visible()
    expect_kernel_idle(page, KERNEL_TIMEOUT_MS)
    return notebook


def type_code(page: Page, notebook: Locator, index: int, code: str) -> Locator:
    """Type ``code`` into cell ``index`` (its editor keeps the focus); return the cell."""
    cell = notebook.locator(".jp-Notebook-cell").nth(index)
    editor = cell.locator(".jp-InputArea-editor .cm-content")
    editor.click()
    # insert_text, not type(): CodeMirror would auto-close the brackets and quotes, and
    # indent new lines itself.
    page.keyboard.insert_text(code)
    # CodeMirror lays out one element per line: their texts, in order, are the code's lines.
    expect(editor.locator(".cm-line"), f"cell {index} holds the typed code").to_have_text(
        code.split("\n")
    )
    return cell


def run_cell(
    page: Page, notebook: Locator, traffic: KernelTraffic, index: int, code: str
) -> Locator:
    """Type ``code`` into cell ``index``, run it with Shift+Enter; return its output area."""
    errors_before = len(traffic.errors)
    cell = type_code(page, notebook, index, code)
    page.keyboard.press("Shift+Enter")
    expect(cell.locator(".jp-InputPrompt"), f"cell {index} finished: {code!r}").to_have_text(
        re.compile(r"\[\d+\]:"), timeout=CELL_TIMEOUT_MS
    )
    # "Idle" comes on IOPub after the cell's last output, so the outputs are all in.
    expect_kernel_idle(page, CELL_TIMEOUT_MS)
    # JupyterLab renders a traceback like stderr, so the kernel's messages tell errors apart.
    raised = traffic.errors[errors_before:]
    assert not raised, f"cell {index} ({code!r}) raised {raised}"
    return cell.locator(".jp-OutputArea")


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_notebook_in_jupyterlab(lab_server: LabServer, page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import Error as PlaywrightError

    from sandbox_kernel.install import template_dir

    screenshot = tmp_path / "jupyterlab.png"
    traffic = KernelTraffic()
    page.on("websocket", traffic.attach)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    handle_interruptions(page)
    try:
        page.goto(f"{lab_server.url}/lab?token={lab_server.token}")

        # The Launcher offers the kernel under its display name, with its own logo.
        card = page.locator(f'.jp-LauncherCard[data-category="Notebook"][title="{DISPLAY_NAME}"]')
        expect(card, LAUNCHER_CARD_HINT).to_be_visible(timeout=PAGE_TIMEOUT_MS)
        expect(card).to_have_text(DISPLAY_NAME)
        icon = card.get_by_role("img", name=DISPLAY_NAME)
        expect(icon, "the card's icon is the kernelspec logo").to_have_attribute(
            "src", re.compile(rf"/kernelspecs/{KERNEL_NAME}/logo-(svg\.svg|64x64\.png|32x32\.png)$")
        )
        expect_image_loaded(page, icon)
        logo_url = icon.evaluate("img => img.src")
        served = page.request.get(logo_url)
        assert served.ok, f"GET {logo_url}: {served.status}"
        logo_name = logo_url.rsplit("/", 1)[-1]
        assert served.body() == (template_dir() / logo_name).read_bytes(), (
            f"{logo_url} is not kernelspec/{logo_name}"
        )

        # A new notebook with that kernel, started and idle.
        card.click()
        notebook = page.locator(".jp-NotebookPanel").first
        expect(notebook).to_be_visible()
        expect_kernel_idle(page, KERNEL_TIMEOUT_MS)
        expect(
            notebook.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
        ).to_be_visible()
        sessions = lab_server.api("/api/sessions")
        assert [s["kernel"]["name"] for s in sessions] == [KERNEL_NAME], sessions

        # 1. stdout
        output = run_cell(page, notebook, traffic, 0, 'print("hello from the sandbox")')
        expect(
            output.locator('[data-mime-type="application/vnd.jupyter.stdout"]'),
            "print() reached the output area",
        ).to_have_text(re.compile(r"^\s*hello from the sandbox\s*$"))

        # 2. a pandas DataFrame, rendered from its text/html repr
        output = run_cell(
            page,
            notebook,
            traffic,
            1,
            'import pandas as pd; pd.DataFrame({"a": [1, 2], "b": [3, 4]})',
        )
        table = output.locator(".jp-RenderedHTMLCommon table")
        expect(table, "the DataFrame is rendered as an HTML table").to_be_visible()
        expect(table.locator("thead th")).to_have_text(["", "a", "b"])
        expect(table.locator("tbody th")).to_have_text(["0", "1"])
        expect(table.locator("tbody td")).to_have_text(["1", "3", "2", "4"])

        # 3. a matplotlib figure, shown inline as a PNG
        output = run_cell(
            page,
            notebook,
            traffic,
            2,
            "import matplotlib.pyplot as plt; plt.plot([1, 3, 2]); plt.show()",
        )
        image = output.locator(".jp-RenderedImage img")
        expect(image, "the figure is shown as an image").to_be_visible()
        expect(image).to_have_attribute("src", re.compile(r"^(data:image/png;base64,|blob:)"))
        expect_image_loaded(page, image)
        width = image.evaluate("img => img.naturalWidth")
        assert width > 100, f"the figure is {width} px wide"
    except (AssertionError, PlaywrightError) as exc:
        exc.add_note(f"screenshot: {screenshot}")
        exc.add_note(f"jupyter lab log ({lab_server.log_path}):\n{lab_server.log_tail()}")
        exc.add_note(f"kernel websocket traffic (last messages):\n{traffic.tail()}")
        raise
    finally:
        with contextlib.suppress(PlaywrightError):
            page.screenshot(path=screenshot)
