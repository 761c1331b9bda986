"""The executor's environment: an allow-list, never a copy of the kernel's."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping

__all__ = ["is_secret_name", "scrubbed_environment"]

# Variables a cell may see from the kernel's environment. Everything else is
# dropped: the Jupyter server's and JupyterHub's variables carry API tokens and
# the connection file path.
ALLOWED_NAMES = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "TZ",
        "SHELL",
        "USER",
        "LOGNAME",
        # Hash seed and I/O encoding change what a cell prints (set ordering);
        # nbclient-based graders pin the seed, so it must reach the executor.
        "PYTHONHASHSEED",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "PYTHONDONTWRITEBYTECODE",
        "SOURCE_DATE_EPOCH",
    }
)
ALLOWED_PATTERNS = ("LC_*",)

_SECRET_RE = re.compile(
    r"TOKEN|SECRET|PASSW|PASSPHRASE|CREDENTIAL|API_?KEY|_KEY$|^KEY|PRIVATE|COOKIE|SESSION|AUTH",
    re.IGNORECASE,
)
_SECRET_PREFIXES = ("JUPYTERHUB_", "JPY_", "JUPYTER_", "AWS_", "GOOGLE_", "AZURE_", "KUBERNETES_")


def is_secret_name(name: str) -> bool:
    """Whether a variable name looks like it carries a credential or kernel wiring."""
    return bool(_SECRET_RE.search(name)) or name.upper().startswith(_SECRET_PREFIXES)


def scrubbed_environment(
    source: Mapping[str, str],
    *,
    passthrough: Iterable[str] = (),
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build the executor's environment from an allow-list.

    ``passthrough`` names extra variables an admin allowed; a name that looks
    like a secret is dropped even then. ``overrides`` are set last (HOME,
    TMPDIR, thread counts ...), since they describe the sandbox, not the host.
    """
    extra = set(passthrough)
    env: dict[str, str] = {}
    for name, value in source.items():
        wanted = (
            name in ALLOWED_NAMES
            or name in extra
            or any(fnmatch.fnmatchcase(name, p) for p in ALLOWED_PATTERNS)
        )
        if wanted and not is_secret_name(name) and "\0" not in value:
            env[name] = value
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if overrides:
        env.update(overrides)
    return env
