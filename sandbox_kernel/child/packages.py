"""``%pip`` in the sandbox: installs into the sandbox's package directory, says why it cannot.

Runs in the executor. ``pip install`` goes to ``PIP_PREFIX`` (the package
directory the kernel binds in writable), whose site directory is on
``sys.path`` from the start, so what was installed imports at once and is
still there after a rollback (files are not rolled back) or, with
``Isolation.package_dir``, after a restart. Before pip runs, the magic checks
what the kernel told it about the network, so a download that cannot work
fails at once with the reason instead of after pip's retries.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import site
import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

__all__ = ["PackageMagics", "add_package_dirs", "install_proxy_shim", "pip_magic_installs"]

_PIP_MAGIC = re.compile(r"^[ \t]*%pip[ \t]+(?:install|download)\b", re.MULTILINE)


def pip_magic_installs(cell: str) -> bool:
    """Whether the cell runs ``%pip install`` (which explains a missing network itself)."""
    return bool(_PIP_MAGIC.search(cell))


# pip options that take a value (so the value is not taken for a requirement).
_VALUE_OPTIONS = frozenset(
    "-r --requirement -c --constraint -e --editable -t --target --prefix --root -i --index-url "
    "--extra-index-url -f --find-links --platform --python-version --implementation --abi "
    "--src --upgrade-strategy --progress-bar --trusted-host --cert --client-cert --proxy "
    "--retries --timeout --log --cache-dir --config-settings --global-option".split()
)


def add_package_dirs(network: dict[str, Any]) -> None:
    """Put the package directory's site dirs on sys.path (with their .pth files)."""
    for path in network.get("site_dirs") or []:
        if isinstance(path, str) and path not in sys.path:
            site.addsitedir(path)


def install_proxy_shim() -> bool:
    """In the executor itself, what ``sitecustomize`` does in the sandbox's other interpreters.

    Only where the launcher set up the dialer (``landlock`` and ``none`` levels with
    hosts allowed); elsewhere it is not even loaded.
    """
    # The name the launcher sets with the dialer (launcher/dialer.py FD_ENV; not imported:
    # the executor needs nothing else of the launcher's side).
    if not os.environ.get("SANDBOX_PROXY_FD"):
        return False
    path = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "sandbox_site", "sitecustomize.py"
    )
    spec = importlib.util.spec_from_file_location("sandbox_kernel_proxy_site", path)
    if spec is None or spec.loader is None:
        return False
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return bool(module.install())


class NetworkUnavailable(UsageError):
    """pip cannot download here; the message says why and what would change it.

    A UsageError, so IPython shows it as one line, with no traceback: nothing ran.
    """


def _needs_index(args: list[str]) -> bool:
    """Whether ``pip install ARGS`` would download (anything not a local file or --no-index)."""
    if "--no-index" in args:
        return False
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in _VALUE_OPTIONS:
            skip = arg not in ("-r", "--requirement", "-e", "--editable")
            continue
        if arg.startswith("-"):
            continue
        local = arg.startswith(("./", "/", "../", "~")) or arg.endswith((".whl", ".tar.gz", ".zip"))
        if not local:
            return True
    return False


@magics_class
class PackageMagics(Magics):
    shell: Any

    @line_magic
    def pip(self, line: str) -> None:
        """Run pip in the sandbox; ``install`` puts packages in the sandbox's package directory.

        Usage: ``%pip install PACKAGE``. Packages import at once, survive a rollback,
        and survive a restart when the administrator set ``Isolation.package_dir``.
        """
        network = (getattr(self.shell, "sandbox_info", None) or {}).get("network") or {}
        try:
            args = shlex.split(line)
        except ValueError:
            args = line.split()
        if args and args[0] in ("install", "download") and _needs_index(args[1:]):
            problem = self._index_problem(network)
            if problem:
                self.shell.user_ns["_exit_code"] = 1
                raise NetworkUnavailable(f"[sandbox] %pip {args[0]}: {problem}")
        python = shlex.quote(sys.executable)
        self.shell.system(f"{python} -m pip {line}")
        if args and args[0] in ("install", "uninstall"):
            importlib.invalidate_caches()
            add_package_dirs(network)

    @staticmethod
    def _index_problem(network: dict[str, Any]) -> str | None:
        if network.get("off_message"):
            return str(network["off_message"])
        hosts = [h for h in network.get("index_hosts") or [] if isinstance(h, str)]
        allowed = set(network.get("index_allowed") or [])
        missing = [h for h in hosts if h not in allowed]
        if hosts and missing:
            return (
                f"network access to {missing[0]} is not allowed in this sandbox "
                f"(allowed: {network.get('allowed') or 'none'}); an administrator can add it "
                "to Isolation.allowed_hosts ('pypi' allows the package index pip uses here)"
            )
        return None
