"""Make executor outputs safe to render in the user's browser (when configured).

JupyterLab renders the outputs of a live session as trusted: HTML with
scripts or event handlers runs with the Jupyter server's credentials, and
elements carrying ``data-commandlinker-command`` run JupyterLab commands on a
click (opening a terminal outside the sandbox, for instance). Pager payloads
are rendered as trusted too. With sanitizing on, HTML goes through nh3 (the
Rust ``ammonia`` sanitizer) with an allow-list that keeps tables, text
formatting and images; JavaScript outputs and frontend-driving payloads are
dropped; ipywidgets' HTML models get the same treatment in their comm state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import nh3

__all__ = ["OutputSanitizer", "SanitizePolicy"]

TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
    "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp",
    "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "tt", "u", "ul", "var",
}  # fmt: skip
ATTRIBUTES = {
    "*": {"class", "title", "lang", "dir", "align", "style"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type"},
}
# Inline styles keep their look (pandas Styler) but may not move or cover the page.
STYLE_PROPERTIES = {
    "color", "background-color", "background", "font-weight", "font-style", "font-size",
    "font-family", "text-align", "text-decoration", "vertical-align", "white-space", "border",
    "border-top", "border-bottom", "border-left", "border-right", "border-collapse",
    "border-color", "border-style", "border-width", "padding", "padding-left", "padding-right",
    "padding-top", "padding-bottom", "margin-left", "margin-right", "width", "max-width",
    "min-width", "height", "max-height", "display", "opacity",
}  # fmt: skip
DROPPED_WHOLE = {"script", "style", "iframe", "object", "embed", "form", "noscript", "template"}
URL_SCHEMES = {"http", "https", "mailto", "data"}
UNSAFE_LATEX = re.compile(r"\\(href|url|unicode|require)\b")
WIDGET_HTML_MODELS = {"HTMLModel", "HTMLMathModel"}


def clean_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags=DROPPED_WHOLE,
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        filter_style_properties=STYLE_PROPERTIES,
        link_rel="noopener noreferrer nofollow",
    )


@dataclass(frozen=True)
class SanitizePolicy:
    sanitize_html: bool
    drop_javascript: bool
    drop_frontend_payloads: bool

    @property
    def active(self) -> bool:
        return self.sanitize_html or self.drop_javascript or self.drop_frontend_payloads


class OutputSanitizer:
    """Applies a SanitizePolicy to bundles, comm state and payloads; says what it removed."""

    def __init__(self, policy: SanitizePolicy) -> None:
        self.policy = policy

    def bundle(self, data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """A cleaned copy of a MIME bundle and notes on what was removed or changed."""
        if not self.policy.active:
            return data, []
        notes: list[str] = []
        clean = dict(data)
        if self.policy.drop_javascript:
            for mime in [m for m in clean if "javascript" in m or m == "application/x-javascript"]:
                del clean[mime]
                notes.append(f"a {mime} output was dropped (JavaScript outputs are turned off)")
        if self.policy.sanitize_html:
            html = clean.get("text/html")
            if isinstance(html, str):
                cleaned = clean_html(html)
                if cleaned != html:
                    clean["text/html"] = cleaned
                    notes.append(
                        "HTML output was sanitized "
                        "(scripts, event handlers and active elements removed)"
                    )
            markdown = clean.get("text/markdown")
            if isinstance(markdown, str) and ("<" in markdown or "javascript:" in markdown.lower()):
                # Markdown may embed raw HTML, which frontends render as is.
                del clean["text/markdown"]
                notes.append("a Markdown output with embedded HTML was dropped")
            latex = clean.get("text/latex")
            if isinstance(latex, str) and UNSAFE_LATEX.search(latex):
                del clean["text/latex"]
                notes.append("a LaTeX output with links or extensions was dropped")
        if not clean:
            clean = {"text/plain": "[output removed by the sandbox's output sanitizer]"}
        return clean, notes

    def comm_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """ipywidgets' HTML models set innerHTML from their ``value``: clean it."""
        if not self.policy.sanitize_html:
            return data
        state = data.get("state")
        if not isinstance(state, dict):
            return data
        model = state.get("_model_name")
        known_html = model in WIDGET_HTML_MODELS or state.get("description_allow_html")
        if not known_html and not any(isinstance(v, str) and "<" in v for v in state.values()):
            return data
        state = dict(state)
        for key, value in state.items():
            if isinstance(value, str) and ("<" in value or key in {"value", "description"}):
                state[key] = clean_html(value)
        return {**data, "state": state}

    def payloads(self, payloads: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        if not self.policy.drop_frontend_payloads:
            return payloads, []
        kept = [p for p in payloads if p.get("source") == "ask_exit"]
        dropped = [p["source"] for p in payloads if p.get("source") != "ask_exit"]
        notes = [
            f"a {source} payload was dropped (it could drive the frontend)" for source in dropped
        ]
        return kept, notes
