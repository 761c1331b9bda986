"""Isolated frames: active content rendered in an opaque origin instead of the server's.

JupyterLab and Notebook 7 render a live session's HTML in the Jupyter server's own
origin, where a script can read the page config and the XSRF cookie and call the
server's REST API as the user. Active content therefore never reaches the page as
is: the trusted side builds an ``<iframe sandbox="allow-scripts" srcdoc="...">``
around it. ``allow-scripts`` alone gives the frame an opaque origin: it has no
cookies, no storage and no access to the page, cannot navigate the top window,
open popups, submit forms or show dialogs, and frames nested in it inherit the same
sandbox whatever they ask for (``allow-same-origin`` included). Scripts run there,
so interactive plots keep working.

Sizing. A cross-origin frame cannot be measured from outside, and a fixed height
either crops plots or leaves gaps. So the wrapper carries a tiny, fixed listener
script (it runs in the page, and it is ours: nothing in it comes from the cell) that
accepts exactly one thing: a ``{"type": "sandbox-kernel-height", "height": N}``
message whose ``source`` is this iframe's own ``contentWindow``. The number is
clamped to [``MIN_HEIGHT``, ``MAX_HEIGHT``] and becomes the iframe's CSS height;
anything else is ignored. The frame's content (hostile or not) can therefore do one
thing to the page: choose its own height within the clamp, which is no more than
drawing in its frame. A small reporter inside the frame posts the document's height
on load and on every resize. The listener finds its iframe as the element right
before its own ``<script>`` (``document.currentScript``, which passive markup cannot
clobber: it may not carry ``name`` attributes), so it needs no id an output could
forge. Where scripts in outputs do not run (an untrusted notebook), JupyterLab's
sanitizer removes the iframe as well.

Libraries. A library emitted once and used by later outputs (bokeh's
``output_notebook``, plotly's ``init_notebook_mode``) would be missing in each
later frame, which is a separate document. The :class:`LibraryMemory` keeps the
scripts of outputs that load code and show nothing (JavaScript outputs, HTML made
only of scripts and styles) and prepends them to every later frame of the session,
up to a byte budget.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass, field

__all__ = [
    "FRAME_MARKER",
    "MAX_HEIGHT",
    "MIN_HEIGHT",
    "LibraryMemory",
    "build_frame",
    "javascript_document",
    "shows_nothing",
]

MIN_HEIGHT = 0
MAX_HEIGHT = 8000
INITIAL_HEIGHT = 150
# The class of every wrapper, so tests and tools can recognise the gate's frames.
FRAME_MARKER = "sandbox-kernel-frame"
MESSAGE_TYPE = "sandbox-kernel-height"

# The page side: fixed text, no value from the cell. See the module docstring.
_LISTENER = (
    "<script>(function(){"
    "var s=document.currentScript,f=s&&s.previousElementSibling;"
    'if(!f||f.tagName!=="IFRAME")return;'
    'window.addEventListener("message",function(e){'
    "if(!f.contentWindow||e.source!==f.contentWindow)return;"
    "var d=e.data;"
    f'if(!d||typeof d!=="object"||d.type!=="{MESSAGE_TYPE}")return;'
    'var h=Number(d.height);if(typeof d.height!=="number"||!isFinite(h))return;'
    f"h=Math.max({MIN_HEIGHT},Math.min({MAX_HEIGHT},Math.ceil(h)));"
    'f.style.height=h+"px";'
    "});"
    "})();</script>"
)

# The frame side: reports the document's height to the page (it could say anything
# else too; the page believes only a clamped number from this frame).
_REPORTER = (
    "<script>(function(){"
    # The content's height, never the viewport's: documentElement.scrollHeight is at
    # least the frame's current height, so a frame measured by it could never shrink.
    "function post(){var d=document.documentElement,b=document.body;"
    "var h=Math.max(d?d.offsetHeight:0,b?b.scrollHeight:0);"
    f'parent.postMessage({{type:"{MESSAGE_TYPE}",height:h}},"*");}}'
    'if(typeof ResizeObserver!=="undefined"){var o=new ResizeObserver(post);'
    'o.observe(document.documentElement);document.addEventListener("DOMContentLoaded",'
    "function(){if(document.body)o.observe(document.body);post();});}"
    'window.addEventListener("load",post);post();'
    "})();</script>"
)
# Close to JupyterLab's look for content that brings no styles of its own.
_BASE_STYLE = (
    "<style>html,body{margin:0;padding:0;background:transparent}"
    "body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;"
    "font-size:14px;line-height:1.4;overflow-y:hidden}</style>"
)


def build_frame(content: str, libraries: str = "") -> str:
    """The markup the page gets instead of ``content``: a sandboxed frame and its listener."""
    document = (
        f'<!DOCTYPE html><html><head><meta charset="utf-8">{_BASE_STYLE}{_REPORTER}'
        f"</head><body>{libraries}{content}</body></html>"
    )
    # quote=True: the document cannot end the attribute (" and ' become references).
    srcdoc = html.escape(document, quote=True)
    return (
        f'<iframe class="{FRAME_MARKER}" sandbox="allow-scripts" referrerpolicy="no-referrer" '
        f'style="display:block;width:100%;height:{INITIAL_HEIGHT}px;border:0" '
        f'srcdoc="{srcdoc}"></iframe>{_LISTENER}'
    )


def javascript_document(code: str, *, element: bool = True, after_load: bool = False) -> str:
    """Markup that runs ``code`` as JupyterLab runs application/javascript.

    JupyterLab evaluates the code with ``element`` bound to the output's node. The code
    travels base64-encoded, so no ``</script>`` in it can end the script element early;
    ``element=False`` gives it a detached node (a replayed library draws nowhere).
    ``after_load`` runs it at the frame's load event, once the scripts that replayed
    libraries inserted have loaded (in the page they had loaded long before: bokeh's
    show() gives BokehJS one second to appear).
    """
    encoded = base64.b64encode(code.encode("utf-8")).decode("ascii")
    target = (
        "document.currentScript.previousElementSibling"
        if element
        else 'document.createElement("div")'
    )
    holder = '<div class="sandbox-kernel-output"></div>' if element else ""
    run = (
        f'var b=atob("{encoded}"),a=new Uint8Array(b.length);'
        "for(var i=0;i<b.length;i++)a[i]=b.charCodeAt(i);"
        'window.element=element;(0,eval)(new TextDecoder("utf-8").decode(a));'
    )
    if after_load:
        run = f'window.addEventListener("load",function(){{{run}}});'
    return f"{holder}<script>(function(element){{{run}}})({target});</script>"


_SCRIPT_OR_STYLE = re.compile(
    r"<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?-->|<link\b[^>]*>", re.S | re.I
)


# Whitespace as str.strip() sees it (both use Python's Unicode whitespace).
_SPACE = re.compile(r"\s*")


def shows_nothing(markup: str) -> bool:
    """Whether ``markup`` holds only scripts, styles and comments (a library loader).

    A heuristic, used only to decide what to replay in later frames; it never decides
    what runs where.
    """
    # Left to right, each construct matched where the last one ended: what
    # ``not _SCRIPT_OR_STYLE.sub("", markup).strip()`` says, in time linear in the
    # markup. sub() tried an unclosed "<script>" at every occurrence, each to the end:
    # a megabyte of "<script>" held the trusted kernel's loop for minutes.
    pos, end = 0, len(markup)
    while True:
        pos = _SPACE.match(markup, pos).end()  # type: ignore[union-attr]
        if pos == end:
            return True
        construct = _SCRIPT_OR_STYLE.match(markup, pos)
        if construct is None:
            return False
        pos = construct.end()


@dataclass
class LibraryMemory:
    """Library code emitted in this session, replayed in later frames (bounded)."""

    max_bytes: int
    _parts: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    size: int = 0
    skipped_bytes: int = 0

    def remember(self, markup: str) -> bool:
        """Keep ``markup`` for later frames; False if it does not fit in the budget."""
        digest = hashlib.sha256(markup.encode("utf-8", "surrogatepass")).hexdigest()
        if digest in self._seen:
            return True
        if self.size + len(markup) > self.max_bytes:
            self.skipped_bytes += len(markup)
            return False
        self._seen.add(digest)
        self._parts.append(markup)
        self.size += len(markup)
        return True

    def markup(self) -> str:
        return "".join(self._parts)

    def clear(self) -> None:
        self._parts.clear()
        self._seen.clear()
        self.size = 0
