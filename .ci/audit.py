#!/usr/bin/env python3
"""Dependency audit: known vulnerabilities in the environment the README installs.

1. A fresh virtualenv gets what `make tour` installs (this project and the tour's
   numpy, pandas, matplotlib, nbconvert) -- the runtime dependencies users get.
2. pip-audit (in a virtualenv of its own) audits that environment against PyPI's
   vulnerability data. Where PyPI's per-release JSON cannot be reached (it answers
   404 behind some proxies) the project's JSON is used instead when its latest
   release is the installed one (PyPI lists that release's vulnerabilities there).
3. Any known vulnerability fails, unless its id is in .ci/pip-audit-ignore.txt with a
   reason. A dependency that could be audited by neither way is listed; if none at
   all could be, the audit fails: a check that cannot see anything proves nothing.

Usage: .ci/audit.py [WORK_DIR]      (default /tmp/sandbox-kernel-audit)
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IGNORE_FILE = REPO / ".ci" / "pip-audit-ignore.txt"
TOUR_PACKAGES = ["numpy", "pandas", "matplotlib", "nbconvert"]


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def _ignored() -> dict[str, str]:
    """Vulnerability id -> reason; every entry must give one."""
    ignored = {}
    for number, raw in enumerate(IGNORE_FILE.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        vuln_id, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"{IGNORE_FILE}:{number}: {vuln_id} needs a reason after the id")
        ignored[vuln_id] = reason.strip()
    return ignored


def _venv(path: Path, *packages: str) -> Path:
    if not (path / "bin" / "python").exists():
        _run(sys.executable, "-m", "venv", str(path))
        # As the Makefile does: the venv's bundled pip is old.
        _run(str(path / "bin" / "pip"), "install", "--quiet", "--upgrade", "pip")
    _run(str(path / "bin" / "pip"), "install", "--quiet", *packages)
    return path / "bin" / "python"


def _project_vulns(name: str, version: str) -> list[dict] | None:
    """The vulnerabilities PyPI lists for ``name`` if its latest release is ``version``."""
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=30) as r:
            data = json.load(r)
    except OSError:
        return None
    if data["info"]["version"] != version:
        return None
    return [{"id": v["id"], "aliases": v.get("aliases", [])} for v in data["vulnerabilities"]]


def main() -> int:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/sandbox-kernel-audit")
    work.mkdir(parents=True, exist_ok=True)
    env_python = _venv(work / "env", str(REPO), *TOUR_PACKAGES)
    tool = _venv(work / "tool", "pip-audit")
    site = _run(str(env_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    report = subprocess.run(
        [
            str(tool.parent / "pip-audit"),
            "--path",
            site.strip(),
            "--format",
            "json",
            "--progress-spinner",
            "off",
            "--skip-editable",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if not report.stdout:
        print(report.stderr, file=sys.stderr)
        return 2
    deps = json.loads(report.stdout)["dependencies"]
    # pip-audit leaves the version out of a dependency it skipped.
    versions = json.loads(
        _run(
            str(env_python),
            "-c",
            "import json, importlib.metadata as m; print(json.dumps({"
            "d.metadata['Name'].lower().replace('_', '-'): d.version "
            "for d in m.distributions()}))",
        )
    )
    ignored = _ignored()
    found, unaudited, audited = [], [], 0
    for dep in deps:
        vulns = dep.get("vulns")
        if "skip_reason" in dep:
            if dep["name"] == "sandbox-kernel":
                continue  # this project itself, not on PyPI under this version
            dep["version"] = versions.get(dep["name"].lower(), "?")
            vulns = _project_vulns(dep["name"], dep["version"])
            if vulns is None:
                unaudited.append(f"{dep['name']} {dep['version']}")
                continue
        audited += 1
        for vuln in vulns or []:
            if vuln["id"] in ignored or any(a in ignored for a in vuln.get("aliases", [])):
                print(f"ignored: {dep['name']} {dep['version']} {vuln['id']}")
                continue
            found.append(f"{dep['name']} {dep['version']}: {vuln['id']}")
    print(f"audited {audited} dependencies; {len(found)} known vulnerabilities not ignored")
    if unaudited:
        print("could not be audited (no vulnerability data reachable):", ", ".join(unaudited))
    for line in found:
        print("VULNERABLE", line)
    if audited == 0:
        print("the audit saw nothing: neither PyPI's per-release nor its project JSON answered")
        return 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
