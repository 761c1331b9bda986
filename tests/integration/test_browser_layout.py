"""What the sandbox says in JupyterLab stays readable: ``%sandbox`` and a refusal, on screen.

JupyterLab from this virtualenv and Debian's Chromium, as in test_browser.py (whose
fixtures and helpers this reuses). Each output is checked by its layout, at a wide
and a narrow window: every line is there (the box is as tall as its lines), nothing
runs out sideways (no horizontal overflow, no box wider than the notebook), and the
refusal names its rule in its first lines. Screenshots of both outputs are saved under
the test's tmp dir (``sandbox-report-*.png``, ``refusal-*.png``).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.test_browser import (
    CELL_TIMEOUT_MS,
    PAGE_TIMEOUT_MS,
    KernelTraffic,
    LabServer,
    expect,
    expect_kernel_idle,
    handle_interruptions,
    lab_server,  # noqa: F401  (fixture)
    open_new_notebook,
    page,  # noqa: F401  (fixture)
)

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

REFUSED = "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'Popen']"
WIDTHS = (1400, 760)  # a desktop window, and half of one


def run(tab: Page, notebook: Locator, index: int, code: str) -> Locator:
    """Type ``code`` into cell ``index`` and run it (errors expected); return its outputs."""
    cell = notebook.locator(".jp-Notebook-cell").nth(index)
    editor = cell.locator(".jp-InputArea-editor .cm-content")
    editor.click()
    tab.keyboard.insert_text(code)
    expect(editor).to_have_text(code)
    tab.keyboard.press("Shift+Enter")
    expect(cell.locator(".jp-InputPrompt")).to_have_text(
        re.compile(r"\[\d+\]:"), timeout=CELL_TIMEOUT_MS
    )
    expect_kernel_idle(tab, CELL_TIMEOUT_MS)
    return cell.locator(".jp-OutputArea")


def layout(output: Locator) -> dict[str, Any]:
    """Sizes of an output area and its rendered text, as the browser laid them out."""
    return dict(
        output.evaluate(
            """area => {
            const text = area.querySelector('.jp-RenderedText pre');
            const panel = area.closest('.jp-NotebookPanel').getBoundingClientRect();
            const box = area.getBoundingClientRect();
            const style = getComputedStyle(text);
            const overflowing = [...area.querySelectorAll('*')].filter(
                e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible'
            ).map(e => e.className);
            return {
                lines: text.textContent.replace(/\\n$/, '').split('\\n').length,
                line_height: parseFloat(style.lineHeight),
                font_px: parseFloat(style.fontSize),
                text_height: text.getBoundingClientRect().height,
                text_width: text.getBoundingClientRect().width,
                text_scroll_width: text.scrollWidth,
                text_client_width: text.clientWidth,
                area_right: box.right,
                panel_right: panel.right,
                overflowing: overflowing,
                scrolled: area.closest('.jp-Cell').classList.contains('jp-mod-outputsScrolled'),
            };
        }"""
        )
    )


def assert_readable(sizes: dict[str, Any], what: str) -> None:
    assert sizes["font_px"] >= 11, f"{what}: text of {sizes['font_px']} px"
    # Every line is laid out at full height: nothing is clipped or collapsed.
    assert sizes["text_height"] >= sizes["lines"] * sizes["line_height"] * 0.95, (what, sizes)
    # Nothing runs out sideways: long lines wrap inside the notebook.
    assert sizes["text_scroll_width"] <= sizes["text_client_width"] + 1, (what, sizes)
    assert sizes["overflowing"] == [], (what, sizes)
    assert sizes["area_right"] <= sizes["panel_right"] + 1, (what, sizes)
    assert not sizes["scrolled"], f"{what}: the output is collapsed into a scroll box"


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_sandbox_report_and_a_refusal_are_readable(
    lab_server: LabServer,  # noqa: F811
    page: Page,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import Error as PlaywrightError

    traffic = KernelTraffic()
    page.on("websocket", traffic.attach)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    handle_interruptions(page)
    try:
        notebook = open_new_notebook(page, lab_server)

        report = run(page, notebook, 0, "%sandbox")
        stdout = report.locator('[data-mime-type="application/vnd.jupyter.stdout"]')
        expect(stdout).to_contain_text("Sandbox level:")
        expect(stdout).to_contain_text("Layers:")
        expect(stdout).to_contain_text("Limits:")

        refusal = run(page, notebook, 1, REFUSED)
        stderr = refusal.locator('[data-mime-type="application/vnd.jupyter.stderr"]')
        expect(stderr).to_contain_text("SandboxPolicyError")
        expect(stderr).to_contain_text("SKP220")
        assert traffic.errors, "the refusal came as an error message"

        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 1000})
            page.wait_for_timeout(300)  # JupyterLab lays the panel out again
            for name, output in (("sandbox-report", report), ("refusal", refusal)):
                output.scroll_into_view_if_needed()
                output.screenshot(path=tmp_path / f"{name}-{width}.png")
                assert_readable(layout(output), f"{name} at {width} px")
            # The refusal says what and why at once: the rule id is in its first lines.
            first_lines = stderr.inner_text().strip().splitlines()[:4]
            assert any("SKP220" in line for line in first_lines), first_lines
    except (AssertionError, PlaywrightError) as exc:
        exc.add_note(f"screenshots: {tmp_path}")
        exc.add_note(f"jupyter lab log ({lab_server.log_path}):\n{lab_server.log_tail()}")
        exc.add_note(f"kernel websocket traffic (last messages):\n{traffic.tail()}")
        raise
    finally:
        with contextlib.suppress(PlaywrightError):
            page.screenshot(path=tmp_path / "jupyterlab.png")
