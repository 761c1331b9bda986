"""Run a command as if on a restricted host: Docker's default profile, or no Landlock either.

Usage: ``python restricted_host.py PROFILE -- COMMAND...``

The filter is installed on this process and inherited by everything it
execs, exactly as a container runtime's filter is: the kernel under test can
neither see nor remove it.

Profiles:

* ``docker``: what Docker's and Kubernetes' default seccomp profiles do to a
  non-privileged container: ``unshare``/``setns``/``mount``/``pivot_root``
  and ``clone`` with namespace flags fail with EPERM, ``clone3`` with ENOSYS.
  The kernel should fall back to the ``landlock`` level.
* ``no-landlock``: ``docker`` plus a kernel without Landlock (the Landlock
  calls answer ENOSYS, as on Linux < 5.13). Only the ``none`` level remains.
"""

from __future__ import annotations

import errno
import os
import sys

import pyseccomp as sc

# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
NAMESPACE_FLAGS = (0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000, 0x80)


def install(profile: str) -> None:
    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in ("unshare", "setns", "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsmount", "mount_setattr"):
        flt.add_rule(sc.ERRNO(errno.EPERM), name)
    for flag in NAMESPACE_FLAGS:
        flt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    if profile == "no-landlock":
        for name in ("landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"):
            flt.add_rule(sc.ERRNO(errno.ENOSYS), name)
    elif profile != "docker":
        raise SystemExit(f"unknown profile {profile!r}")
    flt.load()


def main() -> None:
    profile, sep, *command = sys.argv[1:]
    if sep != "--" or not command:
        raise SystemExit(__doc__)
    install(profile)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
