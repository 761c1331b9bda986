"""The kernel's part of network by allow-list: the proxy it owns, what the sandbox is given.

One ``KernelNetwork`` per kernel. With ``Isolation.allowed_hosts`` set (and
``allow_network`` off) it runs the egress proxy on a unix socket in a directory
of its own, and tells the launcher what to bind into the sandbox: that
directory (read-only), pip's configuration files (read-only), and the package
directory (writable). It never imports anything from the package directory:
it only lists the names of what was installed there, for ``%sandbox``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import sysconfig
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import Isolation
from .hosts import AllowList, pip_config_files, pip_index_hosts

if TYPE_CHECKING:
    from .proxy import EgressProxy

__all__ = ["PIP_ENV_NAMES", "PROXY_PORT", "KernelNetwork", "network_off_message"]

# Where the sandbox's clients find the egress proxy: 127.0.0.1 inside the sandbox's
# network namespace (pid 1's forwarder, launcher/forward.py), or the address the
# shim carries over the dialer (launcher/dialer.py). The launcher gets it in the spec.
PROXY_PORT = 3128

# pip's own settings that describe a site's index and its TLS, passed to cells as the
# kernel has them; names that look like secrets are dropped by the environment
# scrubber even here.
PIP_ENV_NAMES = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_TRUSTED_HOST",
    "PIP_CERT",
    "PIP_CLIENT_CERT",
    "PIP_DEFAULT_TIMEOUT",
    "PIP_TIMEOUT",
    "PIP_RETRIES",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_CONSTRAINT",
    "PIP_ONLY_BINARY",
    "PIP_NO_BINARY",
    "PIP_PREFER_BINARY",
    "PIP_PROGRESS_BAR",
    "PIP_NO_CACHE_DIR",
    "PIP_CONFIG_FILE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)
_DIST_INFO = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._]*)-([A-Za-z0-9._+!]+)\.dist-info$")


def network_off_message() -> str:
    return (
        "the network is off in this sandbox (Isolation.allowed_hosts is empty), so pip "
        "cannot download; to get packages in, an administrator can allow the index "
        "(Isolation.allowed_hosts = ['pypi']) or install them into the kernel's "
        "environment, or you can put wheel files in the workspace and run "
        "%pip install ./name.whl"
    )


# pip settings naming local files, and those naming local directories or file:// URLs
# (a site's wheelhouse, a local index).
_PIP_FILE_KEYS = ("constraint", "cert", "client-cert", "requirement")
_PIP_LOCATION_KEYS = ("find-links", "index-url", "extra-index-url")


def _local_path(value: str, *, directories: bool) -> str | None:
    if directories and value.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        value = unquote(urlsplit(value).path)
    if not value.startswith("/"):
        return None
    if os.path.isfile(value) or (directories and os.path.isdir(value)):
        return os.path.realpath(value)
    return None


def _pip_referenced_files(config_files: list[str]) -> list[str]:
    """Files and directories pip's configuration names (a CA bundle, a wheelhouse): visible too.

    At the namespaces level most are in view anyway; at the landlock level nothing
    outside the code and the workspace is readable unless it is listed here.
    """
    import configparser

    out: list[str] = []
    for path in config_files:
        parser = configparser.RawConfigParser()
        with contextlib.suppress(Exception):
            parser.read(path)
        for section in parser.sections():
            for key in (*_PIP_FILE_KEYS, *_PIP_LOCATION_KEYS):
                for value in (parser.get(section, key, fallback="") or "").split():
                    local = _local_path(value, directories=key in _PIP_LOCATION_KEYS)
                    if local is not None:
                        out.append(local)
    for name in ("PIP_CONSTRAINT", "PIP_CERT", "PIP_FIND_LINKS", "PIP_INDEX_URL"):
        for value in os.environ.get(name, "").split():
            local = _local_path(value, directories=name in ("PIP_FIND_LINKS", "PIP_INDEX_URL"))
            if local is not None:
                out.append(local)
    for value in os.environ.get("PIP_EXTRA_INDEX_URL", "").split():
        local = _local_path(value, directories=True)
        if local is not None:
            out.append(local)
    return list(dict.fromkeys(out))


def _has_credentials(value: str) -> bool:
    """Whether a URL list carries user:password@ (an index token must not reach cells)."""
    from urllib.parse import urlsplit

    return any("@" in (urlsplit(part).netloc or "") for part in value.split())


def site_dirs(prefix: str) -> list[str]:
    """Where ``pip install --prefix PREFIX`` puts modules, for this interpreter."""
    paths = sysconfig.get_paths(scheme="posix_prefix", vars={"base": prefix, "platbase": prefix})
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


class KernelNetwork:
    """The proxy (when hosts are allowed) and the package directory of one kernel."""

    def __init__(
        self, isolation: Isolation, *, private_dir: str, audit: Callable[[dict[str, Any]], None]
    ) -> None:
        self.isolation = isolation
        self.allow = AllowList([] if isolation.allow_network else isolation.allowed_hosts)
        self.audit = audit
        self.proxy: EgressProxy | None = None
        self.socket_dir: str | None = None
        self.socket_path: str | None = None
        self.persistent = bool(isolation.package_dir)
        self.prefix = os.path.realpath(
            isolation.package_dir or os.path.join(private_dir, "packages")
        )
        self.index_hosts = pip_index_hosts()
        self.pip_files = pip_config_files()
        # The user's own pip.conf (under HOME, which the sandbox sees empty, often below
        # a protected ~/.config) goes in as a copy in a directory of the kernel's.
        home = os.path.realpath(os.path.expanduser("~")) + "/"
        self.user_pip_files = [p for p in self.pip_files if p.startswith(home)]
        self.pip_files = [p for p in self.pip_files if not p.startswith(home)]
        self.conf_dir: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.allow)

    def start(self) -> None:
        for path in site_dirs(self.prefix):
            os.makedirs(path, mode=0o755, exist_ok=True)
        if self.user_pip_files and self.conf_dir is None:
            self.conf_dir = tempfile.mkdtemp(prefix="sandbox-pipconf-")
            os.chmod(self.conf_dir, 0o755)
            copy = os.path.join(self.conf_dir, "pip.conf")
            # The highest-precedence one, as PIP_CONFIG_FILE would be read.
            shutil.copyfile(self.user_pip_files[-1], copy)
            os.chmod(copy, 0o644)
        if not self.enabled or self.proxy is not None:
            return
        # Its own directory, traversable (a root kernel's cells run as another uid)
        # but not listable, holding a socket of an unguessable name: host users who
        # cannot list it cannot find it; sandboxes other than ours never see it.
        self.socket_dir = tempfile.mkdtemp(prefix="sandbox-proxy-")
        os.chmod(self.socket_dir, 0o711)
        self.socket_path = os.path.join(self.socket_dir, secrets.token_hex(16) + ".sock")
        # Imported only when hosts are allowed (h11 and the proxy cost a kernel without
        # network nothing).
        from .proxy import EgressProxy

        self.proxy = EgressProxy(
            self.allow,
            audit=self.audit,
            max_connections=self.isolation.network_max_connections,
            max_bytes_per_cell=self.isolation.network_max_mb_per_cell * 1024 * 1024,
        )
        self.proxy.start_in_thread(self.socket_path)

    def begin_cell(self) -> None:
        if self.proxy is not None:
            self.proxy.begin_cell()

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None
        if self.conf_dir is not None:
            shutil.rmtree(self.conf_dir, ignore_errors=True)
            self.conf_dir = None

    # -- what the sandbox gets ---------------------------------------------------

    def mounts(self) -> list[list[str]]:
        """Extra mounts for the spec: [path, "ro"|"rw"]."""
        out = [[self.prefix, "rw"]]
        if self.socket_dir is not None:
            out.append([self.socket_dir, "ro"])
        if self.conf_dir is not None:
            out.append([self.conf_dir, "ro"])
        everything = [*self.pip_files, *self.user_pip_files]
        for path in [*self.pip_files, *_pip_referenced_files(everything)]:
            out.append([path, "ro"])
        return out

    def spec(self) -> dict[str, Any]:
        env = {
            name: os.environ[name]
            for name in PIP_ENV_NAMES
            if name in os.environ and not _has_credentials(os.environ[name])
        }
        dirs = site_dirs(self.prefix)
        env.update(PIP_PREFIX=self.prefix, PYTHONPATH=os.pathsep.join(dirs))
        if self.conf_dir is not None and "PIP_CONFIG_FILE" not in env:
            # HOME and XDG_CONFIG_HOME point elsewhere inside: name the user's file.
            env["PIP_CONFIG_FILE"] = os.path.join(self.conf_dir, "pip.conf")
        if self.socket_path is not None:
            url = f"http://127.0.0.1:{PROXY_PORT}"
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                env[name] = url
            env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
        elif not self.isolation.allow_network:
            # No index is reachable: fail at once rather than after pip's retries.
            env["PIP_RETRIES"] = "0"
        return {
            "proxy_socket": self.socket_path,
            "proxy_port": PROXY_PORT,
            "allowed": self.allow.describe() if self.enabled else "",
            "index_hosts": self.index_hosts,
            "index_allowed": self.index_hosts
            if self.isolation.allow_network
            else [h for h in self.index_hosts if self._allows_pattern(h)],
            "package_prefix": self.prefix,
            "site_dirs": dirs,
            "env": env,
            "off_message": ""
            if self.enabled or self.isolation.allow_network
            else network_off_message(),
        }

    def _allows_pattern(self, pattern: str) -> bool:
        host, _, port = pattern.rpartition(":") if pattern.count(":") == 1 else (pattern, "", "")
        ports = [int(port)] if port.isdigit() else [443]
        return all(self.allow.allows(host or pattern, p) for p in ports)

    def installed(self) -> list[str]:
        """'name version' of each distribution in the package directory (names only read)."""
        found: list[str] = []
        for path in site_dirs(self.prefix):
            with contextlib.suppress(OSError):
                for entry in sorted(os.listdir(path)):
                    match = _DIST_INFO.match(entry)
                    if match:
                        found.append(f"{match.group(1)} {match.group(2)}")
        return found[:200]
