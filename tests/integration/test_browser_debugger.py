"""JupyterLab's visual debugger on a sandboxed cell, driven in headless Chromium.

JupyterLab from this virtualenv and Debian's Chromium, as in test_browser.py (whose
fixtures and helpers this reuses). A person's session: the bug icon in the notebook's
toolbar turns the debugger on, a click in the cell's gutter sets a breakpoint, the cell
runs and stops there (the line highlighted, the cell's frames in the Callstack panel,
the arguments in the Variables panel), "Next" steps over a line (a new local appears),
"Continue" lets the cell finish with its output. The debugger runs inside the sandbox
(child/debugger.py); every request the page sends goes through the kernel's checks
(kernel/debug.py), so a request the sandbox refused would show here as a panel that
never fills. The kernel websocket's debug messages are in the failure message.
A screenshot of the stopped state is saved as ``debugger-stopped.png`` in the test's
tmp dir. Skipped, with the reason, where the sandbox does not offer the debugger.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.test_browser import (
    CELL_TIMEOUT_MS,
    EXPECT_TIMEOUT_MS,
    PAGE_TIMEOUT_MS,
    KernelTraffic,
    LabServer,
    expect,
    expect_kernel_idle,
    handle_interruptions,
    lab_server,  # noqa: F401  (fixture)
    open_new_notebook,
    page,  # noqa: F401  (fixture)
    type_code,
)

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

CELL = "def add(a, b):\n    total = a + b\n    return total\n\nresult = add(40, 2)\nprint(result)"
BREAK_LINE = 2  # total = a + b
# A paused cell's requests go to the executor's pydevd and back through the relay.
DEBUG_TIMEOUT_MS = 60_000


def kernel_info(tab: Page, traffic: KernelTraffic) -> dict[str, Any]:
    """The kernel_info_reply the page received (Playwright delivers websocket frames
    while the page is waited on)."""
    deadline = time.monotonic() + EXPECT_TIMEOUT_MS / 1000
    while not traffic.kernel_info and time.monotonic() < deadline:
        tab.wait_for_timeout(100)
    return traffic.kernel_info


def variable(panel: Locator, name: str) -> Locator:
    """The Variables tree's entry for ``name`` (its name and value are separate spans)."""
    return panel.locator(".jp-DebuggerVariables-body [role=treeitem]").filter(
        has=panel.page.locator(".jp-DebuggerVariables-name", has_text=re.compile(rf"^{name}$"))
    )


def expect_variable(panel: Locator, name: str, value: str) -> None:
    entry = variable(panel, name)
    expect(entry, f"the Variables panel shows {name}").to_be_visible(timeout=DEBUG_TIMEOUT_MS)
    expect(entry.locator(".jp-DebuggerVariables-detail"), f"{name}'s value").to_have_text(value)


def expect_stopped_at(tab: Page, cell: Locator, line: int) -> Locator:
    """Wait for the stop at ``line`` of ``cell``: its frame on top of the call stack, the
    line highlighted in the cell's editor. Returns the call stack's frames."""
    frames = tab.locator(".jp-DebuggerCallstack-body .jp-DebuggerCallstackFrame")
    expect(frames.first, "the debugger stopped: the call stack shows a frame").to_be_visible(
        timeout=DEBUG_TIMEOUT_MS
    )
    expect(frames.first.locator(".jp-DebuggerCallstackFrame-name")).to_have_text("add")
    # The location names the cell (JupyterLab's "Cell [n]" once it ran, else its file).
    expect(frames.first.locator(".jp-DebuggerCallstackFrame-location")).to_contain_text(f":{line}")
    highlighted = cell.locator(".cm-line.jp-DebuggerEditor-highlight")
    expect(highlighted, f"line {line} of the cell is highlighted").to_have_count(1)
    lines = CELL.split("\n")
    expect(highlighted).to_have_text(lines[line - 1])
    return frames


@pytest.mark.browser
@pytest.mark.timeout(420)
def test_breakpoint_step_and_continue_in_jupyterlab(
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

        # The bug icon is enabled only for a kernel whose kernel_info offers the debugger.
        info = kernel_info(page, traffic)
        assert info, f"no kernel_info_reply on the page's websocket:\n{traffic.tail()}"
        if not info.get("debugger"):
            pytest.skip(
                "the sandbox offers the debugger only at the namespaces level with its own "
                f"network namespace; this host gives {info.get('sandbox', {}).get('level')!r}"
            )
        bug = notebook.locator(".jp-Toolbar .jp-DebuggerBugButton")
        expect(bug, "the bug icon is enabled").to_have_attribute("aria-disabled", "false")
        cell = type_code(page, notebook, 0, CELL)

        bug.click()
        expect(bug, "the debugger is on").to_have_attribute("aria-pressed", "true")
        sidebar = page.locator(".jp-DebuggerSidebar")
        expect(sidebar, "the debugger's sidebar opened").to_be_visible()
        variables = sidebar.locator(".jp-DebuggerVariables")
        breakpoints = sidebar.locator(".jp-DebuggerBreakpoints .jp-DebuggerBreakpoint")

        # A click in the breakpoint gutter at line 2. CodeMirror's first gutter element
        # is a spacer, so line n is element n.
        gutter = cell.locator(".cm-gutter.cm-breakpoint-gutter .cm-gutterElement")
        expect(gutter, "the cell has a breakpoint gutter").to_have_count(
            len(CELL.split("\n")) + 1, timeout=EXPECT_TIMEOUT_MS
        )
        gutter.nth(BREAK_LINE).click()
        expect(
            gutter.nth(BREAK_LINE).locator(".cm-breakpoint-icon"), "the gutter shows the breakpoint"
        ).to_be_visible()
        # The Breakpoints panel lists what the kernel's debugger verified.
        expect(breakpoints, "the kernel's debugger took the breakpoint").to_have_count(
            1, timeout=DEBUG_TIMEOUT_MS
        )
        expect(breakpoints.locator(".jp-DebuggerBreakpoint-line")).to_have_text(str(BREAK_LINE))

        # Run it; it does not finish: it stops at the breakpoint.
        cell.locator(".jp-InputArea-editor .cm-content").click()
        page.keyboard.press("Control+Enter")
        frames = expect_stopped_at(page, cell, BREAK_LINE)
        # The cell's frames only (the executor's own are never shown): add, then the cell.
        expect(frames.locator(".jp-DebuggerCallstackFrame-name")).to_have_text(["add", "<module>"])
        expect(page.locator(".jp-DebuggerCallstack-body")).not_to_contain_text("sandbox_kernel")
        # The Variables panel's scope switcher (in its header) shows the frame's locals.
        expect(sidebar.locator('select[aria-label="Scope"]')).to_have_value("Locals")
        expect_variable(variables, "a", "40")
        expect_variable(variables, "b", "2")
        expect(variable(variables, "total"), "total is not assigned yet").to_have_count(0)
        expect(cell.locator(".jp-InputPrompt"), "the cell is still running").to_have_text(
            re.compile(r"\[\*\]:")
        )
        page.screenshot(path=tmp_path / "debugger-stopped.png")
        kernels = lab_server.api("/api/kernels")
        assert [k["execution_state"] for k in kernels] == ["busy"], kernels

        # Next: over line 2 to line 3; the new local appears with its value.
        sidebar.locator('jp-button[title^="Next"]').click()
        expect_stopped_at(page, cell, BREAK_LINE + 1)
        expect_variable(variables, "total", "42")
        expect_variable(variables, "a", "40")
        page.screenshot(path=tmp_path / "debugger-stepped.png")

        # Continue: the cell runs to its end and prints its result.
        sidebar.locator('jp-button[title^="Continue"]').click()
        expect(cell.locator(".jp-InputPrompt"), "the cell finished").to_have_text(
            re.compile(r"\[\d+\]:"), timeout=CELL_TIMEOUT_MS
        )
        expect_kernel_idle(page, CELL_TIMEOUT_MS)
        expect(
            cell.locator('.jp-OutputArea [data-mime-type="application/vnd.jupyter.stdout"]'),
            "the cell's output arrived",
        ).to_have_text(re.compile(r"^\s*42\s*$"))
        expect(
            page.locator(".jp-DebuggerCallstack-body .jp-DebuggerCallstackFrame"),
            "nothing is paused any more",
        ).to_have_count(0)
        assert not traffic.errors, traffic.errors
        # The server's side: the same kernel, alive and idle; the debugger still on.
        kernels = lab_server.api("/api/kernels")
        assert [(k["name"], k["execution_state"]) for k in kernels] == [
            ("sandbox-python", "idle")
        ], kernels
        assert "<- iopub stream stdout: '42\\n'" in traffic.lines, traffic.tail()
        refused = [line for line in traffic.lines if "debug_reply" in line and "failed" in line]
        assert not refused, refused
    except (AssertionError, PlaywrightError) as exc:
        exc.add_note(f"screenshots: {tmp_path}")
        exc.add_note(f"jupyter lab log ({lab_server.log_path}):\n{lab_server.log_tail()}")
        exc.add_note(f"kernel websocket traffic (last messages):\n{traffic.tail(120)}")
        raise
    finally:
        with contextlib.suppress(PlaywrightError):
            page.screenshot(path=tmp_path / "jupyterlab.png")
