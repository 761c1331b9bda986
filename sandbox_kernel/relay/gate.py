"""The output gate: every piece of content a frontend may render passes through here.

A Jupyter frontend renders a live session's outputs in the Jupyter server's own
origin, as trusted. Whatever a cell says reaches the user's browser in one of the
messages and fields below, and each of them goes through this gate (on the trusted
side, after the relay's parser has checked its shape). Tests:
``tests/unit/test_output_gate.py`` (one per entry) and, in a real browser,
``tests/integration/test_browser_attacks.py``.

=====================================  ===================================================
message and field                      what the frontend does with it -> the gate
=====================================  ===================================================
display_data / execute_result          renders the preferred MIME type of the bundle ->
  / update_display_data ``data``       :meth:`OutputGate.bundle`
execute_reply ``user_expressions``     clients may render each ``data`` bundle ->
  ``[name].data``                      :meth:`OutputGate.bundle`
execute_reply ``payload``              ``page``: the pager renders ``data`` as trusted;
                                       ``set_next_input``: new or replaced cell source;
                                       ``edit_magic``: opens a file ->
                                       :meth:`OutputGate.payloads`
inspect_reply ``data``                 the inspector and tooltip render the bundle ->
                                       :meth:`OutputGate.inspect_data`
comm_open ``target_name``, ``data``    the frontend's handler for the target acts on it ->
  comm_msg ``data`` (and buffers)      :meth:`OutputGate.comm`; for ``jupyter.widget``:
                                       the model's module, HTML fields (``value`` of HTML
                                       and HTMLMath, ``description``), typeset fields,
                                       the Output widget's ``outputs`` (as display_data),
                                       and the ``update_states`` reply of
                                       ``jupyter.widget.control``
stream ``text``, error ``ename`` /     rendered as text (ANSI colours; http(s) URLs become
  ``evalue`` / ``traceback``           links) -> relayed as they are
clear_output, comm_close               no content -> relayed as they are
=====================================  ===================================================

Inside a bundle, by MIME type:

- passive types rendered by the frontend's own code as data, never as script:
  ``text/plain``, PNG/JPEG/GIF/WebP/BMP images, ``image/svg+xml`` (an ``<img>``, in
  which SVG script never runs), ``application/json``, ``application/pdf``, the widget
  view reference; relayed unchanged;
- ``text/html`` and ``text/markdown``: passive markup (relay/html.py) is relayed
  unchanged, byte for byte; active markup is isolated, sanitized or dropped
  (``Output.active_content``);
- ``application/javascript`` (and the other script types): isolated or dropped;
- ``text/latex`` with MathJax commands that make links or load code: dropped;
- ``text/x-rst`` (for nbconvert and Sphinx: no Jupyter frontend renders it, the page
  shows the bundle's other types): relayed unchanged while it would stay inert even if
  a frontend extension rendered it (relay/html.py ``is_passive_rst``), else dropped;
- types rendered by frontend extensions (Vega, plotly's JSON ...): relayed only when
  listed in ``Output.renderer_mime_types``, since their renderer runs in the page;
  any other type is dropped with a notice naming that setting.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from . import frame
from .html import (
    has_active_latex,
    is_passive_html,
    is_passive_markdown,
    is_passive_rst,
    neutralize_latex,
)
from .html import sanitize_html as clean_html
from .widgets import (
    CORE_WIDGET_MODULES,
    HTML_FIELDS,
    LATEX_FIELDS,
    OUTPUT_FIELDS,
    field_in,
)

__all__ = ["ACTIVE_CONTENT_MODES", "GateSettings", "OutputGate"]

ACTIVE_CONTENT_MODES = ("isolate", "sanitize", "drop")
PASSIVE_MIME_TYPES = frozenset(
    {
        "text/plain",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/svg+xml",
        "application/json",
        "application/pdf",
        "application/vnd.jupyter.widget-view+json",
    }
)
CHECKED_MIME_TYPES = frozenset({"text/html", "text/markdown", "text/latex"})
# Text that no Jupyter frontend renders (the page shows the bundle's text/plain): kept in
# the output, as in the saved notebook under stock ipykernel, while its check says it
# would stay inert under a renderer an extension might add.
INERT_TEXT_MIME_TYPES = {"text/x-rst": is_passive_rst}
SCRIPT_MIME_TYPES = frozenset(
    {
        "application/javascript",
        "text/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "text/ecmascript",
    }
)
# Code for frontend extensions (jupyter_bokeh, pyviz_comms) that libraries send next to
# an application/javascript fallback: dropped without a notice on every plot.
QUIET_CODE_MIME_TYPES = frozenset(
    {
        "application/vnd.bokehjs_load.v0+json",
        "application/vnd.bokehjs_exec.v0+json",
        "application/vnd.holoviews_load.v0+json",
        "application/vnd.holoviews_exec.v0+json",
    }
)
WIDGET_TARGET = "jupyter.widget"
CONTROL_TARGET = "jupyter.widget.control"
REMOVED = "[output removed by the sandbox's output gate]"
# Markup of this cell's earlier outputs that a script output may look up by id
# (bokeh's show() sends the target <div> and the script as two outputs).
ADOPTABLE_OUTPUTS = 16
ADOPTABLE_BYTES = 1 << 20
GUARDED_FIELDS = HTML_FIELDS | LATEX_FIELDS | OUTPUT_FIELDS
ANY_MODEL = "*"
_ID = re.compile(r"""\bid\s*=\s*["']?([^"'\s>]{4,})""")


@dataclass(frozen=True)
class GateSettings:
    active_content: str = "isolate"
    renderer_mime_types: frozenset[str] = frozenset()
    comm_targets: frozenset[str] = frozenset()
    widget_modules: frozenset[str] = frozenset(CORE_WIDGET_MODULES)
    drop_frontend_payloads: bool = False
    library_bytes: int = 16 << 20


@dataclass
class _Comm:
    target: str
    model: str = ""
    module: str = ""
    refused: bool = False


@dataclass
class OutputGate:
    """Applies :class:`GateSettings` to every renderable field; says what it changed."""

    settings: GateSettings
    libraries: frame.LibraryMemory = field(init=False)
    _comms: dict[str, _Comm] = field(default_factory=dict, init=False)
    # Comm targets refused since the last take_refused_comms(): the caller audits them.
    _refused_targets: list[str] = field(default_factory=list, init=False)
    _cell_markup: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.settings.active_content not in ACTIVE_CONTENT_MODES:
            raise ValueError(f"active_content must be one of {ACTIVE_CONTENT_MODES}")
        self.libraries = frame.LibraryMemory(self.settings.library_bytes)

    def begin_cell(self) -> None:
        self._cell_markup.clear()

    # -- MIME bundles ----------------------------------------------------------------

    def bundle(self, data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """A MIME bundle safe to render, and notes on what was changed or removed."""
        notes: list[str] = []
        clean: dict[str, Any] = {}
        mode = self.settings.active_content
        script = ""
        for mime, value in data.items():
            if mime in PASSIVE_MIME_TYPES or mime in self.settings.renderer_mime_types:
                clean[mime] = value
            elif mime in SCRIPT_MIME_TYPES:
                if isinstance(value, str) and not script:
                    script = value
                if mode != "isolate":
                    notes.append(
                        f"a {mime} output was dropped (JavaScript would run in the notebook "
                        f"page with your Jupyter session's authority; Output.active_content="
                        f"{mode!r})"
                    )
            elif mime in CHECKED_MIME_TYPES:
                if isinstance(value, str):
                    clean[mime] = value
            elif mime in INERT_TEXT_MIME_TYPES:
                if isinstance(value, str) and INERT_TEXT_MIME_TYPES[mime](value):
                    clean[mime] = value
                else:
                    notes.append(
                        f"a {mime} output was not shown: it holds markup, links or directives "
                        "that a frontend extension could render as active content"
                    )
            elif mime not in QUIET_CODE_MIME_TYPES:
                notes.append(
                    f"a {mime} output was not shown: its renderer would run in the notebook "
                    "page and it is not in Output.renderer_mime_types"
                )
        if isinstance(clean.get("text/latex"), str) and has_active_latex(clean["text/latex"]):
            del clean["text/latex"]
            notes.append("a LaTeX output with links or extensions (\\href, \\url ...) was dropped")
        markup = clean.get("text/html")
        markdown = clean.get("text/markdown")
        active_html = isinstance(markup, str) and not is_passive_html(markup)
        active_markdown = isinstance(markdown, str) and not is_passive_markdown(markdown)
        if isinstance(markup, str) and not active_html:
            self._adoptable(markup)
        if mode == "isolate":
            self._isolate(clean, script, active_html, active_markdown)
        else:
            if active_html:
                if mode == "sanitize":
                    clean["text/html"] = clean_html(markup)  # type: ignore[arg-type]
                    notes.append(
                        "HTML output was sanitized (scripts, event handlers and active "
                        "elements removed; Output.active_content='sanitize')"
                    )
                else:
                    del clean["text/html"]
                    notes.append("an HTML output with active content was dropped")
            if active_markdown:
                del clean["text/markdown"]
                notes.append("a Markdown output with embedded HTML was dropped")
        if not clean:
            clean = {"text/plain": REMOVED}
        return clean, notes

    def _isolate(
        self, clean: dict[str, Any], script: str, active_html: bool, active_markdown: bool
    ) -> None:
        libraries = self.libraries.markup()
        if script:
            # JupyterLab prefers a bundle's script to its HTML: the frame runs the script.
            content = self._adopted(script) + frame.javascript_document(
                script, after_load=bool(libraries)
            )
            clean["text/html"] = frame.build_frame(content, libraries)
            self.libraries.remember(frame.javascript_document(script, element=False))
        elif active_html:
            markup = clean["text/html"]
            clean["text/html"] = frame.build_frame(markup, libraries)
            self._adoptable(markup)
            if frame.shows_nothing(markup):
                self.libraries.remember(markup)
        if active_markdown:
            markdown = clean.pop("text/markdown")
            if "text/html" not in clean:
                clean["text/html"] = frame.build_frame(_render_markdown(markdown), libraries)

    def _adoptable(self, markup: str) -> None:
        if len(markup) <= ADOPTABLE_BYTES and _ID.search(markup):
            self._cell_markup.append(markup)
            del self._cell_markup[:-ADOPTABLE_OUTPUTS]

    def _adopted(self, script: str) -> str:
        """Earlier markup of this cell whose element ids the script names."""
        return "".join(
            markup
            for markup in self._cell_markup
            if any(ident in script for ident in _ID.findall(markup))
        )

    # -- replies -----------------------------------------------------------------------

    def user_expressions(self, expressions: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        notes: list[str] = []
        clean: dict[str, Any] = {}
        for name, result in expressions.items():
            if isinstance(result, dict) and isinstance(result.get("data"), dict):
                data, more = self.bundle(result["data"])
                notes += more
                clean[name] = {**result, "data": data}
            else:
                clean[name] = result
        return clean, notes

    def inspect_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """Help text is shown as text: the inspector renders its bundle as trusted."""
        return _text_only(data)

    def payloads(self, payloads: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        kept: list[dict[str, Any]] = []
        notes: list[str] = []
        strict = self.settings.drop_frontend_payloads
        for payload in payloads:
            source = payload.get("source")
            if source == "page":
                # The pager renders its bundle as trusted HTML: it gets text only.
                kept.append({**payload, "data": _text_only(payload.get("data") or {})})
            elif source == "set_next_input" and strict and payload.get("replace"):
                notes.append(
                    "a set_next_input payload that replaces the cell's code was dropped "
                    "(Output.drop_frontend_payloads)"
                )
            elif source == "edit_magic" and strict:
                notes.append("an edit payload was dropped (Output.drop_frontend_payloads)")
            else:
                kept.append(payload)
        return kept, notes

    # -- comms -------------------------------------------------------------------------

    def frontend_comm(self, comm_id: str, target: str) -> None:
        """A comm the frontend opened (its messages to the kernel are trusted).

        What the kernel later sends on it is not: a widget the frontend created is of a
        model the gate has not seen, so every guarded field of any core model applies.
        """
        comm = _Comm(target)
        if target == WIDGET_TARGET:
            comm.module, comm.model = CORE_WIDGET_MODULES[0], ANY_MODEL
        self._comms[comm_id] = comm

    def comm(self, kind: str, message: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
        """A comm message from the kernel side, or None if it must not reach the frontend."""
        comm_id = message["comm_id"]
        if kind == "comm_close":
            comm = self._comms.pop(comm_id, None)
            return (None if comm is not None and comm.refused else message), []
        if kind == "comm_open":
            return self._comm_open(comm_id, message)
        comm = self._comms.get(comm_id)
        if comm is None or comm.refused:
            return None, []
        data = message.get("data") or {}
        if comm.target == WIDGET_TARGET and isinstance(data.get("state"), dict):
            state, notes = self._widget_state(
                comm, data["state"], data.get("buffer_paths"), update=True
            )
            if state is None:
                return None, notes
            return {**message, "data": {**data, "state": state}}, notes
        if comm.target == CONTROL_TARGET and isinstance(data.get("states"), dict):
            return self._control_states(message, data)
        return message, []

    def _comm_open(
        self, comm_id: str, message: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, list[str]]:
        target = message.get("target_name", "")
        comm = self._comms[comm_id] = _Comm(target)
        if target not in self.settings.comm_targets:
            # A visible note (issue 9: a refusal is never silent), besides the audit
            # record and the count (take_refused_comms). Under stock a frontend without
            # a handler ignores such a comm, so the note is one of the corpus's listed
            # differences (tests/conformance/corpus_differences.py).
            comm.refused = True
            self._refused_targets.append(str(target))
            return None, [
                f"a comm to the frontend target {target!r} was refused: the frontend code "
                "behind it would act on what the cell sends, in the notebook page "
                "(an administrator can allow it with Output.comm_targets)"
            ]
        data = message.get("data") or {}
        if target != WIDGET_TARGET:
            return message, []
        state = data.get("state")
        if not isinstance(state, dict):
            state = {}
        clean, notes = self._widget_state(comm, state, data.get("buffer_paths"), update=False)
        if clean is None:
            comm.refused = True
            return None, notes
        return {**message, "data": {**data, "state": clean}}, notes

    def take_refused_comms(self) -> list[str]:
        """The targets of comms refused since the last call (each refused comm_open once)."""
        taken, self._refused_targets = self._refused_targets, []
        return taken

    def _control_states(
        self, message: dict[str, Any], data: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """The widget manager rebuilds every model from this reply (a page reload)."""
        notes: list[str] = []
        states: dict[str, Any] = {}
        buffer_paths = data.get("buffer_paths")
        if not isinstance(buffer_paths, dict):
            buffer_paths = {}
        for model_id, entry in data["states"].items():
            if not isinstance(entry, dict) or not isinstance(entry.get("state"), dict):
                continue
            known = self._comms.get(model_id)
            if known is not None and known.refused:
                continue
            comm = _Comm(WIDGET_TARGET)
            state = {
                "_model_module": entry.get("model_module"),
                "_model_name": entry.get("model_name"),
                **entry["state"],
            }
            clean, more = self._widget_state(comm, state, buffer_paths.get(model_id), update=False)
            notes += more
            if clean is not None:
                states[model_id] = {**entry, "state": clean}
        return {**message, "data": {**data, "states": states}}, notes

    def _widget_state(
        self, comm: _Comm, state: dict[str, Any], buffer_paths: Any, *, update: bool
    ) -> tuple[dict[str, Any] | None, list[str]]:
        allowed = self.settings.widget_modules
        for key in ("_model_module", "_view_module"):
            module = state.get(key)
            if module is None and (update or key == "_view_module"):
                continue
            if not isinstance(module, str) or module not in allowed:
                return None, [
                    f"the widget model {str(state.get('_model_name'))[:60]!r} from "
                    f"{str(module)[:60]!r} was refused: its JavaScript would run in the "
                    "notebook page with your Jupyter session's authority (an administrator "
                    "can allow the module with Output.widget_modules)"
                ]
        if not update:
            comm.module = str(state.get("_model_module"))
            comm.model = str(state.get("_model_name", ""))
        if comm.module not in CORE_WIDGET_MODULES:
            return state, []  # a module the administrator trusts with its own state
        model = comm.model
        guarded = {name for name in state if field_in(GUARDED_FIELDS, model, name)}
        for path in buffer_paths if isinstance(buffer_paths, list) else []:
            if isinstance(path, list) and path and field_in(GUARDED_FIELDS, model, str(path[0])):
                return None, [
                    f"a widget update of {model} was refused: binary data may not "
                    f"stand in for its {path[0]!r} field"
                ]
        notes: list[str] = []
        clean = dict(state)
        for name in guarded:
            value = clean[name]
            if field_in(OUTPUT_FIELDS, model, name):
                clean[name], more = self._outputs(value)
                notes += more
                continue
            if not isinstance(value, str):
                continue
            if field_in(HTML_FIELDS, model, name) and not is_passive_html(value):
                value = clean_html(value)
                notes.append(
                    f"the {name!r} of a {model} widget was sanitized (scripts, event "
                    "handlers and active elements removed)"
                )
            if field_in(LATEX_FIELDS, model, name):
                value = neutralize_latex(value)
            clean[name] = value
        return clean, notes

    def _outputs(self, outputs: Any) -> tuple[list[dict[str, Any]], list[str]]:
        """The Output widget's outputs get exactly what display_data gets."""
        notes: list[str] = []
        clean: list[dict[str, Any]] = []
        for output in outputs if isinstance(outputs, list) else []:
            if not isinstance(output, dict):
                continue
            kind = output.get("output_type")
            if kind in {"display_data", "execute_result", "update_display_data"}:
                data = output.get("data")
                bundle, more = self.bundle(data if isinstance(data, dict) else {})
                notes += more
                clean.append({**output, "data": bundle})
            elif kind == "stream":
                clean.append(
                    {
                        "output_type": "stream",
                        "name": "stderr" if output.get("name") == "stderr" else "stdout",
                        "text": str(output.get("text", "")),
                    }
                )
            elif kind == "error":
                clean.append(
                    {
                        "output_type": "error",
                        "ename": str(output.get("ename", "")),
                        "evalue": str(output.get("evalue", "")),
                        "traceback": [str(line) for line in output.get("traceback") or []],
                    }
                )
        return clean, notes


def _text_only(data: dict[str, Any]) -> dict[str, Any]:
    text = data.get("text/plain")
    if isinstance(text, str):
        return {"text/plain": text}
    markup = data.get("text/html")
    if isinstance(markup, str):
        return {"text/plain": html.unescape(re.sub(r"<[^>]*>", "", markup))}
    return {}


def _render_markdown(markdown: str) -> str:
    """Markdown with raw HTML, rendered for an isolated frame (CommonMark, as marked would)."""
    from markdown_it import MarkdownIt

    return str(MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown))
