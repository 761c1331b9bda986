"""The sandbox's own /etc/passwd and /etc/group: root, nobody and the cells' user.

The host's files list every account on the machine (each student on a shared
hub) with its home directory, and every group with its members. A cell needs
none of that: it needs its own uid to have a name and a home (``getpass``,
``pwd.getpwuid``, ``id``, ``ssh``, ``git`` and conda look it up), so the
launcher, which is trusted, writes these two files into the sandbox's root
instead of binding the host's.

The cells' user keeps the kernel user's name: ``USER`` and ``LOGNAME`` already
carry it (``getpass.getuser()`` reads them first), libraries build paths from it
(``/tmp/torchinductor_<user>``), and the notebook's owner learns nothing new
from their own name. Its home is the sandbox's HOME, never the host's.
"""

from __future__ import annotations

import contextlib
import grp
import pwd

from ..identity import user_name

__all__ = ["account_name", "etc_files"]

NOBODY = 65534
# A name that cannot break the file's format; anything else becomes this.
FALLBACK_NAME = "sandbox"
NOLOGIN = "/usr/sbin/nologin"


def _valid(name: str) -> bool:
    return bool(name) and not any(c in name for c in ":\n\0") and not name.startswith("uid ")


def account_name(uid: int, own_uid: int) -> str:
    """The name the cells' uid goes by inside.

    The kernel user's own name where the cells run as the kernel's uid (the same
    lookup ``getpass.getuser()`` does, so the two agree); for a root kernel whose
    cells run as the workspace's owner, that owner's name (the files' owner, as
    ``ls -l`` outside shows it); ``sandbox`` where the host knows no name.
    """
    if uid == 0:
        return "root"
    names = []
    if uid == own_uid:
        names.append(user_name())
    with contextlib.suppress(KeyError):
        names.append(pwd.getpwuid(uid).pw_name)
    return next((n for n in names if _valid(n)), FALLBACK_NAME)


def _group_name(gid: int, fallback: str) -> str:
    if gid == 0:
        return "root"
    try:
        name = grp.getgrgid(gid).gr_name
    except KeyError:
        return fallback
    return name if _valid(name) else fallback


def etc_files(uid: int, gid: int, name: str, home: str, shell: str = "/bin/sh") -> dict[str, str]:
    """The contents of /etc/passwd and /etc/group inside, by path.

    Groups list no members: on the host they name other users.
    """
    passwd = [f"root:x:0:0:root:{home if uid == 0 else '/root'}:{shell if uid == 0 else NOLOGIN}"]
    group = ["root:x:0:"]
    if uid not in (0, NOBODY):
        passwd.append(f"{name}:x:{uid}:{gid}:{name}:{home}:{shell}")
    if gid not in (0, NOBODY):
        group.append(f"{_group_name(gid, name)}:x:{gid}:")
    passwd.append(f"nobody:x:{NOBODY}:{NOBODY}:nobody:/nonexistent:{NOLOGIN}")
    group.append(f"nogroup:x:{NOBODY}:")
    return {"/etc/passwd": "\n".join(passwd) + "\n", "/etc/group": "\n".join(group) + "\n"}
