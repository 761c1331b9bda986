"""Tell passive markup from active content, and clean markup down to its passive part.

"Active" is whatever could run script, navigate, submit or drive JupyterLab in the
page that renders it: a tag or attribute outside the passive allow-list below (so
``<script>``, event handlers, ``<iframe>``, ``<form>``, ``<base>``, ``<meta>``,
``<svg>``/``<math>``, ``data-commandlinker-*`` and anything not known to be inert),
a link or image URL with a scheme other than http(s), mailto or data, and the
MathJax commands that make links or load extensions (JupyterLab typesets the math
in HTML and Markdown outputs).

The check is an allow-list decided by a real HTML5 parser: nh3 (html5ever, the
parser of the spec's algorithm) parses the markup twice, once keeping only the
passive allow-list and once keeping everything it contains; the markup is passive
exactly when the two agree. Passive markup is then relayed as the original bytes,
never re-serialized, so there is no serialize-and-reparse step for a mutation XSS
to hide in, and a pandas table looks exactly as under stock ipykernel.
"""

from __future__ import annotations

import html
import re

import nh3

__all__ = [
    "PASSIVE_ATTRIBUTES",
    "PASSIVE_TAGS",
    "SAFE_URL_SCHEMES",
    "has_active_latex",
    "is_passive_html",
    "is_passive_markdown",
    "is_passive_rst",
    "neutralize_latex",
    "sanitize_html",
]

# Elements that render text, tables and images and do nothing else. ``style`` is
# here because pandas puts a <style> block before every DataFrame; CSS cannot run
# script in a current browser (it can restyle the page: SECURITY.md says so).
PASSIVE_TAGS = frozenset(
    """a abbr address article aside b bdi bdo big blockquote br caption center cite code col
    colgroup dd del details dfn div dl dt em figcaption figure font footer h1 h2 h3 h4 h5 h6
    header hr i img ins kbd li main mark meter nav ol p pre progress q rp rt ruby s samp
    section small span strike strong style sub summary sup table tbody td tfoot th thead time
    tr tt u ul var wbr""".split()
)
_EVERYWHERE = {"class", "id", "title", "lang", "dir", "align", "valign", "style", "width", "height"}
PASSIVE_ATTRIBUTES: dict[str, set[str]] = {
    "*": _EVERYWHERE,
    "a": {"href", "name", "rel"},
    "img": {"src", "alt", "border"},
    "table": {"border", "cellpadding", "cellspacing", "summary", "bgcolor"},
    "td": {"colspan", "rowspan", "headers", "bgcolor", "nowrap"},
    "th": {"colspan", "rowspan", "headers", "scope", "bgcolor", "nowrap"},
    "tr": {"bgcolor"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value"},
    "style": {"type", "scoped", "media"},
    "details": {"open"},
    "font": {"color", "face", "size"},
    "time": {"datetime"},
    # IPython.display.ProgressBar draws a <progress>: a bar, no URL, no script.
    "progress": {"max", "value"},
    "meter": {"min", "max", "low", "high", "optimum", "value"},
    "q": {"cite"},
    "blockquote": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
}
SAFE_URL_SCHEMES = frozenset({"http", "https", "mailto", "data"})

# What the sanitize mode keeps: the passive set without <style> blocks, and inline
# styles limited to properties that cannot move the output over the page.
_SANITIZE_TAGS = PASSIVE_TAGS - {"style"}
_SANITIZE_DROPPED_WHOLE = {"script", "style", "iframe", "object", "embed", "noscript", "template"}
_SANITIZE_STYLE_PROPERTIES = {
    "color", "background-color", "background", "font-weight", "font-style", "font-size",
    "font-family", "text-align", "text-decoration", "vertical-align", "white-space", "border",
    "border-top", "border-bottom", "border-left", "border-right", "border-collapse",
    "border-color", "border-style", "border-width", "padding", "padding-left", "padding-right",
    "padding-top", "padding-bottom", "margin-left", "margin-right", "width", "max-width",
    "min-width", "height", "max-height", "display", "opacity",
}  # fmt: skip

# A start tag as the tokenizer sees it: '<', an ASCII letter, then the name up to
# whitespace, '/' or '>'. Found anywhere (comments, attribute values) this is a superset.
_TAG_NAME = re.compile(r"<([A-Za-z][^\t\n\f\r />]*)")
# A URL scheme as the URL parser reads it, in the text after character references are
# decoded and tabs/newlines removed (which the URL parser ignores inside a scheme).
#
# Linear in the text: a match may only begin where a run of scheme characters begins
# (the lookbehind), skips the run's leading digits and signs, and takes the rest of the
# run without backtracking. Without that, a run of n letters not followed by ':' was
# tried from each of its n positions, each to its end: a 1 MB display of letters held
# the trusted kernel's loop for an hour. It finds what the plain pattern
# r"[a-z][a-z0-9+.\-]*(?=:)" finds (one match per run followed by ':', from its first
# letter; tests/unit/test_output_gate.py compares them).
_SCHEME = re.compile(r"(?<![a-z0-9+.\-])[0-9+.\-]*+([a-z][a-z0-9+.\-]*+)(?=:)")
_MAX_SCHEME = 64
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
# MathJax (JupyterLab's typesetter) turns these into links, markup or loaded code.
_ACTIVE_LATEX = re.compile(r"\\(href|url|require|class|cssId|style|html|data|unicode)(?![A-Za-z])")
# Markdown that may hold raw HTML, an autolink or a comment: '<' before a tag-ish character.
_MARKDOWN_MARKUP = re.compile(r"<[A-Za-z!/?]")
# Link destinations: [text](url ...) and reference definitions [id]: url.
_MARKDOWN_LINK = re.compile(r"\]\(\s*<?([^)\s>]*)|^\s{0,3}\[[^\]]+\]:\s*<?(\S+)", re.M)


def _present_tags(markup: str) -> set[str]:
    return {name.lower().replace("\x00", "\ufffd") for name in _TAG_NAME.findall(markup)}


def _present_schemes(markup: str) -> set[str] | None:
    """Every scheme a URL in the markup could have (a superset); None if one is too long."""
    text = re.sub(r"[\t\n\r]", "", html.unescape(markup)).lower()
    schemes: set[str] = set()
    for run in _SCHEME.findall(text):
        if len(run) > _MAX_SCHEME:
            return None
        # Every suffix: the value may begin anywhere inside a run of scheme characters.
        schemes.update(run[i:] for i in range(len(run)) if run[i].isalpha())
    return schemes


# Markers that make markup active for certain (a false hit only costs isolation): found
# first, they spare the parse of a large document such as 5 MB of inline plotly.js.
_SURELY_ACTIVE = re.compile(r"<(script|iframe|object|embed|form|base|meta)\b", re.I)


def is_passive_html(markup: str) -> bool:
    """Whether ``markup`` holds only passive content (see the module's docstring)."""
    if not markup:
        return True
    if _SURELY_ACTIVE.search(markup):
        return False
    if has_active_latex(markup):
        return False
    schemes = _present_schemes(markup)
    if schemes is None:
        return False
    attributes_seen: list[tuple[str, str, str]] = []

    def record(tag: str, attribute: str, value: str) -> str:
        attributes_seen.append((tag, attribute, value))
        return value

    # Everything the markup contains, as the parser builds it: every tag named in it,
    # every attribute (the empty prefix matches all names), every URL scheme in it.
    everything = nh3.clean(
        markup,
        tags=set(PASSIVE_TAGS) | _present_tags(markup),
        clean_content_tags=set(),
        attributes={},
        generic_attribute_prefixes={""},
        attribute_filter=record,
        strip_comments=False,
        link_rel=None,
        url_schemes=set(SAFE_URL_SCHEMES) | schemes,
    )
    for tag, attribute, value in attributes_seen:
        if attribute not in PASSIVE_ATTRIBUTES["*"] and attribute not in PASSIVE_ATTRIBUTES.get(
            tag, ()
        ):
            return False
        if (tag, attribute) in {("a", "href"), ("img", "src")} and not _safe_url(value):
            return False
    passive = nh3.clean(
        markup,
        tags=set(PASSIVE_TAGS),
        clean_content_tags=set(),
        attributes=PASSIVE_ATTRIBUTES,
        strip_comments=False,
        link_rel=None,
        url_schemes=set(SAFE_URL_SCHEMES),
    )
    return passive == everything


def _safe_url(value: str) -> bool:
    # As the URL parser reads it: leading C0 controls and spaces go, tabs and newlines
    # vanish; a scheme is letters, digits, '+', '-', '.' before the first ':'.
    url = re.sub(r"[\t\n\r]", "", value).lstrip(_C0_AND_SPACE)
    match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", url)
    return match is None or match.group(1).lower() in SAFE_URL_SCHEMES


def has_active_latex(text: str) -> bool:
    """Whether MathJax would make a link, markup or load code from ``text``."""
    if "&" in text:
        text = html.unescape(text)
    return "\\" in text and bool(_ACTIVE_LATEX.search(text))


def neutralize_latex(text: str) -> str:
    """``text`` without the backslash of each active MathJax command (``\\href`` -> ``href``)."""
    return _ACTIVE_LATEX.sub(lambda m: m.group(1), text)


# The parts of _MARKDOWN_LINK, for markdown_links().
_INLINE_LINK = re.compile(r"\]\(\s*<?([^)\s>]*)")
_REFERENCE_START = re.compile(r"^\s{0,3}\[", re.M)
_REFERENCE_DESTINATION = re.compile(r"\s*<?(\S+)")


def markdown_links(text: str) -> list[tuple[str, str]]:
    """``_MARKDOWN_LINK.findall(text)``, the same list, in time linear in the text.

    The pattern's reference alternative scans from every line that starts with '[' to
    the next ']': with no ']' for a megabyte, each line scanned to the end (minutes of
    the trusted kernel's loop). Here the next ']' (and what follows it) is looked up
    once per ']', not once per line, and the matches are taken left to right as
    findall takes them: at each position the inline form first, then the reference.
    """
    out: list[tuple[str, str]] = []
    end = len(text)
    pos = 0
    inline_at = reference_at = close_at = -1
    # What follows each ']' that follows a reference's label: the match's end and group.
    after_close: dict[int, tuple[int, str] | None] = {}
    while pos < end:
        if inline_at < pos:
            inline_at = text.find("](", pos)
            if inline_at < 0:
                inline_at = end
        if reference_at < pos:
            found = _REFERENCE_START.search(text, pos)
            reference_at = found.start() if found else end
        if inline_at >= end and reference_at >= end:
            break
        if inline_at <= reference_at:
            link = _INLINE_LINK.match(text, inline_at)
            assert link is not None  # "](" is always a match
            out.append((link.group(1), ""))
            pos = link.end()
            continue
        start = _REFERENCE_START.match(text, reference_at)
        assert start is not None
        label = start.end()  # just after '['
        if close_at < label:
            close_at = text.find("]", label)
            if close_at < 0:
                close_at = end
        matched: tuple[int, str] | None = None
        # [^\]]+ takes at least one character; then "]:".
        if label < close_at < end - 1 and text[close_at + 1] == ":":
            if close_at not in after_close:
                dest = _REFERENCE_DESTINATION.match(text, close_at + 2)
                after_close[close_at] = (dest.end(), dest.group(1)) if dest else None
            matched = after_close[close_at]
        if matched is None:
            # No reference here: findall tries the next position.
            pos = reference_at + 1
            continue
        out.append(("", matched[1]))
        pos = matched[0]
    return out


def is_passive_markdown(text: str) -> bool:
    """Markdown with no raw HTML, no autolinks, safe link schemes and no active math."""
    if _MARKDOWN_MARKUP.search(text) or has_active_latex(text):
        return False
    for inline, reference in markdown_links(text):
        if not _safe_url(html.unescape(inline or reference)):
            return False
    return True


# reStructuredText (for nbconvert and Sphinx; no Jupyter frontend renders it): the
# directives that make admonitions, code, math and images, nothing that passes markup
# through (raw, meta, include ...).
PASSIVE_RST_DIRECTIVES = frozenset(
    """admonition attention caution danger error hint important note tip warning seealso
    versionadded versionchanged deprecated code code-block sourcecode math image figure
    rubric topic epigraph highlights pull-quote""".split()
)
# Found anywhere, not only at the start of a line: inside a table cell too (a superset).
_RST_DIRECTIVE = re.compile(r"\.\.[ \t]+([^\s:]+)[ \t]*::")
# Hyperlink targets (".. _name: url", "__ url") and substitution definitions.
_RST_TARGET = re.compile(r"\.\.[ \t]+(?:_|\|)|^[ \t]*__[ \t]", re.M)
# A scheme followed by something: where a renderer could see a URL ("note::" and
# "Result: 5" are not).
# Linear, as _SCHEME: the same matches as r"([A-Za-z][A-Za-z0-9+.\-]*):(?=[^\s:])".
_RST_URL_SCHEME = re.compile(
    r"(?<![A-Za-z0-9+.\-])[0-9+.\-]*+([A-Za-z][A-Za-z0-9+.\-]*+):(?=[^\s:])"
)
_RST_LINK_SCHEMES = frozenset({"http", "https", "mailto"})


def is_passive_rst(text: str) -> bool:
    """reStructuredText that would stay inert if a frontend extension rendered it.

    Conservative: allow-listed directives only, no '<' (embedded URIs, raw markup), no
    hyperlink targets or substitutions, every ``scheme:`` an http(s)/mailto one and
    no active math. Anything else is not passive (the gate then drops it: a false
    refusal costs only the text/x-rst copy of an output the frontend shows as text).
    """
    if "<" in text or has_active_latex(text) or _RST_TARGET.search(text):
        return False
    if any(name.lower() not in PASSIVE_RST_DIRECTIVES for name in _RST_DIRECTIVE.findall(text)):
        return False
    # As the URL parser reads it: tabs and carriage returns vanish inside a scheme.
    flat = re.sub(r"[\t\r\x00-\x08\x0b\x0c\x0e-\x1f]", "", text)
    return all(s.lower() in _RST_LINK_SCHEMES for s in _RST_URL_SCHEME.findall(flat))


def sanitize_html(markup: str) -> str:
    """The passive part of ``markup`` (no <style> blocks; inline styles that stay in place)."""
    return neutralize_latex(
        nh3.clean(
            markup,
            tags=set(_SANITIZE_TAGS),
            clean_content_tags=set(_SANITIZE_DROPPED_WHOLE),
            attributes={
                k: v - {"name", "rel"} for k, v in PASSIVE_ATTRIBUTES.items() if k != "style"
            },
            url_schemes=set(SAFE_URL_SCHEMES),
            filter_style_properties=set(_SANITIZE_STYLE_PROPERTIES),
            link_rel="noopener noreferrer nofollow",
        )
    )
