"""Serve the CDN files rich-output libraries load, from local packages (no internet here).

folium loads Leaflet, altair's HTML renderer loads Vega, Vega-Lite and vega-embed, and
bokeh's ``output_notebook`` loads BokehJS, all from CDNs. The browser tests fulfil
those requests with Playwright's routing: Vega and Leaflet from their npm packages
(``npm pack`` from the npm registry, cached), BokehJS from the bokeh Python package,
which bundles it. Files a page merely styles itself with (Bootstrap, Font Awesome,
jQuery, MathJax) get an empty stand-in; anything else leaving the machine is aborted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Route

# npm packages (name@version) and the URL prefix their main file is fetched from.
NPM_PACKAGES = {
    "vega@6": "https://cdn.jsdelivr.net/npm/vega@6",
    "vega-lite@6.4.1": "https://cdn.jsdelivr.net/npm/vega-lite@6.4.1",
    "vega-embed@7": "https://cdn.jsdelivr.net/npm/vega-embed@7",
}
LEAFLET = "leaflet@1.9.3"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sandbox-kernel-tests"
STAND_INS = re.compile(
    r"bootstrap|fontawesome|font-awesome|jquery|awesome-markers|awesome\.rotate|glyphicons|"
    r"mathjax|tex-svg"
)
LOCAL = re.compile(r"^(https?://(127\.0\.0\.1|localhost)[:/]|data:|blob:|about:)")


def npm_missing() -> str:
    return "" if shutil.which("npm") else "npm (apt-get install -y npm)"


def npm_package(spec: str) -> Path:
    """The unpacked npm package ``spec`` (name@version), fetched once into the cache."""
    target = CACHE / "npm" / spec.replace("/", "_")
    if (target / "package" / "package.json").is_file():
        return target / "package"
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["npm", "pack", "--silent", "--pack-destination", str(target), spec],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    tarball = target / done.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(target, filter="data")
        else:
            # Python before 3.11.4 (Debian bookworm's 3.11.2) has no extraction filters:
            # regular files and directories inside the target only, as "data" allows.
            members = archive.getmembers()
            for member in members:
                path = (target / member.name).resolve()
                if not (member.isfile() or member.isdir()) or not path.is_relative_to(
                    target.resolve()
                ):
                    raise ValueError(f"unexpected entry in {tarball.name}: {member.name}")
            archive.extractall(target, members=members)
    return target / "package"


def main_file(package: Path) -> Path:
    meta = json.loads((package / "package.json").read_text())
    return package / (meta.get("jsdelivr") or meta.get("unpkg") or meta["main"])


@dataclass
class CdnFiles:
    """URL -> local file (exact), URL prefix -> local file, and what was asked for."""

    exact: dict[str, Path] = field(default_factory=dict)
    prefixes: dict[str, Path] = field(default_factory=dict)
    served: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)

    def lookup(self, url: str) -> Path | None:
        bare = url.split("?", 1)[0]
        if bare in self.exact:
            return self.exact[bare]
        for prefix, path in self.prefixes.items():
            if bare == prefix or bare.startswith(prefix + "/") or bare == prefix + ".js":
                return path
        return None

    def route(self, context: BrowserContext) -> None:
        context.route(re.compile(r"^https?://"), self._handler())

    def _handler(self) -> Callable[[Route], None]:
        def handle(route: Route) -> None:
            url = route.request.url
            if LOCAL.match(url):
                route.fallback()
                return
            path = self.lookup(url)
            if path is not None:
                self.served.append(url)
                kind = "text/css" if path.suffix == ".css" else "application/javascript"
                route.fulfill(status=200, body=path.read_bytes(), content_type=kind)
            elif STAND_INS.search(url):
                self.served.append(f"stand-in {url}")
                kind = "text/css" if ".css" in url else "application/javascript"
                route.fulfill(status=200, body=b"", content_type=kind)
            else:
                self.aborted.append(url)
                route.abort()

        return handle


def cdn_files() -> CdnFiles:
    """Everything the rich-output tests' libraries load from CDNs, as local files."""
    files = CdnFiles()
    if not npm_missing():
        for spec, prefix in NPM_PACKAGES.items():
            files.prefixes[prefix] = main_file(npm_package(spec))
        leaflet = npm_package(LEAFLET)
        base = "https://cdn.jsdelivr.net/npm/" + LEAFLET + "/dist/"
        files.exact[base + "leaflet.js"] = leaflet / "dist" / "leaflet.js"
        files.exact[base + "leaflet.css"] = leaflet / "dist" / "leaflet.css"
    spec = importlib.util.find_spec("bokeh")
    if spec is not None and spec.origin is not None:
        import bokeh

        static = Path(spec.origin).parent / "server" / "static" / "js"
        for path in static.glob("bokeh*.min.js"):
            name = path.name.replace(".min.js", f"-{bokeh.__version__}.min.js")
            files.exact[f"https://cdn.bokeh.org/bokeh/release/{name}"] = path
    return files
