"""Who the kernel runs as, and where its home is, where the system may not know.

OpenShift and restricted Kubernetes pods run containers as an arbitrary uid
with no passwd entry, and batch jobs may run with ``HOME`` unset: there
``getpass.getuser()`` raises KeyError and ``os.path.expanduser("~")`` returns
``"~"`` unchanged (a relative path). Neither may stop the kernel.
"""

from __future__ import annotations

import getpass
import os
import pwd

__all__ = ["home_dir", "user_name"]


def user_name() -> str:
    """The login name, or ``uid N`` where neither the environment nor passwd knows one."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def home_dir() -> str:
    """The absolute, resolved home directory; ``/`` where there is none.

    ``HOME`` wins when it is absolute (as for ``expanduser``); then passwd.
    ``/`` means "no home of its own": the sandbox then mounts no private home
    over it and protects nothing below it by name.
    """
    home = os.environ.get("HOME", "")
    if not os.path.isabs(home):
        try:
            home = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            home = "/"
    return os.path.realpath(home or "/")
