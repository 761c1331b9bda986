"""Isolation.allowed_hosts: patterns, the pypi set, matching (the proxy's first check)."""

from __future__ import annotations

import os

import pytest
from traitlets import TraitError

from sandbox_kernel.config import PRESETS, Isolation
from sandbox_kernel.network.hosts import (
    AllowList,
    parse_pattern,
    pip_config_files,
    pip_index_hosts,
)


@pytest.mark.parametrize(
    ("pattern", "host", "port", "allowed"),
    [
        ("example.org", "example.org", 443, True),
        ("example.org", "example.org", 80, True),
        ("example.org", "EXAMPLE.org.", 443, True),  # case and the root dot do not matter
        ("example.org", "example.org", 8443, False),  # default ports are 80 and 443 only
        ("example.org", "www.example.org", 443, False),
        ("example.org", "example.org.evil.com", 443, False),
        ("example.org", "evilexample.org", 443, False),
        ("*.example.org", "a.example.org", 443, True),
        ("*.example.org", "a.b.example.org", 80, True),
        ("*.example.org", "example.org", 443, False),  # the wildcard is below the name
        ("*.example.org", "aexample.org", 443, False),
        ("*.example.org", "example.org.evil.com", 443, False),
        ("example.org:8443", "example.org", 8443, True),
        ("example.org:8443", "example.org", 443, False),
        ("93.184.215.14", "93.184.215.14", 443, True),
        ("93.184.215.14", "93.184.215.15", 443, False),
        ("[2001:db8::1]:443", "2001:db8::1", 443, True),
        ("[2001:db8::1]:443", "[2001:DB8:0::1]", 443, True),
        ("bücher.example", "xn--bcher-kva.example", 443, True),
    ],
)
def test_matching(pattern: str, host: str, port: int, allowed: bool) -> None:
    assert AllowList([pattern]).allows(host, port) is allowed


@pytest.mark.parametrize(
    "host", ["", "exa mple.org", "a..b", "-a.org", "a\x00.org", "example.org/x", "a@b.org"]
)
def test_garbage_hosts_never_match(host: str) -> None:
    assert not AllowList(["*.example.org", "example.org"]).allows(host, 443)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("https://example.org/", "not a URL"),
        ("example.org/path", "not a URL"),
        ("user@example.org", "not a URL"),
        ("example.org:0", "port must be a number"),
        ("example.org:99999", "port must be a number"),
        ("example.org:http", "port must be a number"),
        ("a.*.example.org", "only as the first label"),
        ("*", "only as the first label"),
        ("*.org.*", "only as the first label"),
        ("*.10.0.0.1", "wildcard needs a domain"),
        ("exa mple.org", "not a URL"),
    ],
)
def test_bad_patterns_are_refused_with_the_reason(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pattern(entry)
    with pytest.raises(TraitError, match=r"Isolation\.allowed_hosts"):
        Isolation(allowed_hosts=[entry])


def test_pypi_means_the_index_pip_is_configured_with() -> None:
    assert pip_index_hosts({}) == ["pypi.org", "files.pythonhosted.org"]
    mirror = {
        "index-url": "https://mirror.example.edu:8443/pypi/simple",
        "extra-index-url": "https://extra.example.com/simple file:///opt/pypi/simple",
        "find-links": "/opt/wheels https://wheels.example.com/",
    }
    hosts = pip_index_hosts(mirror)
    assert hosts == ["mirror.example.edu:8443", "extra.example.com", "wheels.example.com"]
    allow = AllowList(["pypi"], pip_hosts=hosts)
    assert allow.allows("mirror.example.edu", 8443)
    assert not allow.allows("mirror.example.edu", 443)
    assert not allow.allows("pypi.org", 443)  # a site mirror replaces pypi.org


def test_pypi_here_follows_pip_config() -> None:
    # This machine's pip has no index-url of its own: pypi.org and its file host.
    hosts = AllowList(["pypi"])
    assert hosts.allows("pypi.org", 443)
    assert hosts.allows("files.pythonhosted.org", 443)
    assert not hosts.allows("example.com", 443)


def test_pip_config_is_read_as_pip_reads_it() -> None:
    """Our reader (no pip import in the kernel) agrees with pip's own loader here."""
    from pip._internal.configuration import Configuration, get_configuration_files

    conf = Configuration(isolated=False)
    conf.load()
    values = {}
    for key, value in conf.items():
        section, _, name = key.partition(".")
        if section in ("global", "install", ":env:"):
            values[name] = str(value)
    assert pip_index_hosts(values) == pip_index_hosts()
    theirs = [os.path.realpath(p) for ps in get_configuration_files().values() for p in ps]
    assert set(pip_config_files()) == {p for p in theirs if os.path.isfile(p)}


def test_defaults_allow_nothing() -> None:
    assert Isolation().allowed_hosts == []
    assert not AllowList(Isolation().allowed_hosts)
    assert PRESETS["classroom"]["Isolation"]["allowed_hosts"] == []


def test_describe_names_every_pattern() -> None:
    allow = AllowList(["*.example.org", "example.com:8080"], pip_hosts=[])
    assert allow.describe() == "*.example.org, example.com:8080"
    assert AllowList([]).describe() == "none"


def test_package_dir_must_be_absolute() -> None:
    with pytest.raises(TraitError, match="must be an absolute path"):
        Isolation(package_dir="pkgs")
