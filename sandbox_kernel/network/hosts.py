"""Host patterns for ``Isolation.allowed_hosts``: parsing, the ``pypi`` set, matching.

A pattern is ``example.org`` (that host), ``*.example.org`` (any name below it, not
``example.org`` itself), or an IP literal, each optionally with ``:port``; without
a port it allows 80 and 443. The named set ``pypi`` stands for the hosts of the
package index pip is configured to use here (a site mirror if there is one).

Runs in the trusted kernel only.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_PORTS",
    "AllowList",
    "HostPattern",
    "canonical_host",
    "parse_pattern",
    "pip_config_files",
    "pip_index_hosts",
]

DEFAULT_PORTS = (80, 443)
NAMED_SETS = ("pypi",)
PYPI_DEFAULT_INDEX = "https://pypi.org/simple"
# pypi.org's pages link the files on this host.
PYPI_FILES_HOST = "files.pythonhosted.org"
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def canonical_host(host: str) -> str:
    """Lower case, no trailing dot, IDNA for non-ASCII names; IPv6 without brackets.

    Raises ValueError for anything that is not a host name or an IP literal.
    """
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    host = host.rstrip(".").lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{host!r} is not a valid host name") from None
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{host!r} is not a valid host name")
    return host


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostPattern:
    host: str  # canonical; for a wildcard, the suffix without "*."
    wildcard: bool
    ports: tuple[int, ...]

    def matches(self, host: str, port: int) -> bool:
        if port not in self.ports:
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host

    def __str__(self) -> str:
        name = ("*." if self.wildcard else "") + (
            f"[{self.host}]" if ":" in self.host else self.host
        )
        return name if self.ports == DEFAULT_PORTS else f"{name}:{self.ports[0]}"


def _split_port(text: str) -> tuple[str, tuple[int, ...]]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected [IPv6]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""  # a bare IPv6 literal, or no port
    if not port_text:
        return host, DEFAULT_PORTS
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, (int(port_text),)


def parse_pattern(text: str) -> HostPattern:
    """One ``allowed_hosts`` entry (not a named set) as a pattern; ValueError if malformed."""
    if "/" in text or "@" in text or any(c.isspace() for c in text.strip()):
        raise ValueError(
            f"{text!r} is not a host pattern: give a host name such as 'example.org', "
            "'*.example.org' or 'example.org:8443', not a URL"
        )
    host, ports = _split_port(text.strip())
    wildcard = host.startswith("*.")
    if wildcard:
        host = host[2:]
    if "*" in host:
        raise ValueError(f"{text!r}: '*' is allowed only as the first label ('*.example.org')")
    host = canonical_host(host)
    if wildcard and (is_ip_literal(host) or "." not in host):
        raise ValueError(f"{text!r}: a wildcard needs a domain with a dot ('*.example.org')")
    return HostPattern(host, wildcard, ports)


def validate_entries(entries: Iterable[str]) -> list[str]:
    """Check every entry (named sets included); return them unchanged."""
    out = []
    for entry in entries:
        if entry.strip().lower() not in NAMED_SETS:
            parse_pattern(entry)
        out.append(entry)
    return out


def _url_host(url: str) -> str | None:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None  # file:// and paths need no network
    try:
        port = parts.port
    except ValueError:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}" if port else host


def pip_index_hosts(config: Mapping[str, str] | None = None) -> list[str]:
    """The hosts pip is configured to fetch packages from here, as patterns.

    ``config`` maps pip's option names (``index-url``, ``extra-index-url``,
    ``find-links``) to values as pip reads them (files, then ``PIP_*``); read
    from pip's own configuration loader when not given. pypi.org brings its
    file host along.
    """
    if config is None:
        config = _pip_configuration()
    urls = (config.get("index-url") or PYPI_DEFAULT_INDEX).split()
    urls += (config.get("extra-index-url") or "").split()
    urls += (config.get("find-links") or "").split()
    hosts: list[str] = []
    for url in urls:
        host = _url_host(url)
        if host is not None:
            hosts.append(host)
            if host == "pypi.org":
                hosts.append(PYPI_FILES_HOST)
    return list(dict.fromkeys(hosts))


def pip_config_files() -> list[str]:
    """pip's configuration files that exist, lowest precedence first (pip's documented order).

    Global (``$XDG_CONFIG_DIRS/pip/pip.conf``, ``/etc/pip.conf``), user
    (``~/.pip/pip.conf``, ``$XDG_CONFIG_HOME/pip/pip.conf``), site
    (``<sys.prefix>/pip.conf``), then ``PIP_CONFIG_FILE``. Found without importing
    pip, which costs the kernel's start 0.2-0.5 s.
    """
    import sys

    home = os.path.expanduser("~")
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    candidates = [os.path.join(d, "pip", "pip.conf") for d in xdg_dirs.split(os.pathsep) if d]
    candidates.append("/etc/pip.conf")
    candidates.append(os.path.join(home, ".pip", "pip.conf"))
    xdg_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    candidates.append(os.path.join(xdg_home, "pip", "pip.conf"))
    candidates.append(os.path.join(sys.prefix, "pip.conf"))
    env_file = os.environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []  # pip loads no file at all then
    if env_file:
        candidates.append(env_file)
    return list(dict.fromkeys(os.path.realpath(p) for p in candidates if os.path.isfile(p)))


def _pip_configuration() -> dict[str, str]:
    """pip's effective index options: its config files in order, then ``PIP_*`` variables."""
    import configparser

    values: dict[str, str] = {}
    for path in pip_config_files():
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeError):
            continue
        for section in ("global", "install"):  # install's own section wins for installs
            if parser.has_section(section):
                for key, value in parser.items(section):
                    values[key.replace("_", "-")] = value
    for name in ("index-url", "extra-index-url", "find-links"):
        from_env = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if from_env:
            values[name] = from_env
    return values


class AllowList:
    """The expanded ``allowed_hosts`` of one kernel."""

    def __init__(self, entries: Iterable[str], *, pip_hosts: Iterable[str] | None = None) -> None:
        self.entries = list(entries)
        patterns: list[HostPattern] = []
        for entry in self.entries:
            if entry.strip().lower() == "pypi":
                hosts = pip_index_hosts() if pip_hosts is None else list(pip_hosts)
                patterns.extend(parse_pattern(h) for h in hosts)
            else:
                patterns.append(parse_pattern(entry))
        self.patterns = list(dict.fromkeys(patterns))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def allows(self, host: str, port: int) -> bool:
        try:
            host = canonical_host(host)
        except ValueError:
            return False
        return any(p.matches(host, port) for p in self.patterns)

    def describe(self) -> str:
        return ", ".join(str(p) for p in self.patterns) or "none"
