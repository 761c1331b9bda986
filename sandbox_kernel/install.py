"""Register or remove the kernelspec (``python -m sandbox_kernel install|uninstall``)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from . import __version__

__all__ = [
    "DEFAULT_DISPLAY_NAME",
    "DEFAULT_NAME",
    "display_name_for",
    "kernel_dict",
    "main",
    "template_dir",
]

DEFAULT_NAME = "sandbox-python"
DEFAULT_DISPLAY_NAME = "Python 3 (sandboxed)"


def template_dir() -> Path:
    """Where kernel.json and the logos are: in the wheel, or in the source checkout."""
    packaged = resources.files("sandbox_kernel").joinpath("_kernelspec")
    if packaged.is_dir():
        return Path(str(packaged))
    # An editable install runs from the checkout, where kernelspec/ is the source.
    source = Path(__file__).resolve().parent.parent / "kernelspec"
    if source.is_dir():
        return source
    raise FileNotFoundError("the kernelspec template is missing from this installation")


def display_name_for(preset: str | None) -> str:
    """The launcher's name for a kernel of ``preset``: two presets never look the same."""
    if not preset or preset == "standard":
        return DEFAULT_DISPLAY_NAME
    return f"Python 3 (sandboxed, {preset})"


# The kernel provisioner that keeps a pre-warmed spare (sandbox_kernel/provisioner.py).
PROVISIONER_NAME = "sandbox-kernel-provisioner"


def provisioner_registered() -> bool:
    """Whether jupyter_client here can load the spare provisioner (its entry point is
    registered when the package is installed; not when a checkout is only on sys.path)."""
    from jupyter_client.provisioning.factory import KernelProvisionerFactory

    return PROVISIONER_NAME in KernelProvisionerFactory.instance().provisioners


def kernel_dict(
    display_name: str = DEFAULT_DISPLAY_NAME,
    python: str | None = None,
    extra_args: list[str] | None = None,
    spares: bool | None = None,
) -> dict[str, Any]:
    """The kernelspec; ``spares`` None: name the provisioner if it is registered here."""
    with open(template_dir() / "kernel.json") as f:
        spec: dict[str, Any] = json.load(f)
    if spares is None:
        spares = provisioner_registered()
    if not spares:
        # Without the provisioner (sandbox_kernel/provisioner.py): a Jupyter server that
        # cannot load it (another environment, a checkout without the package's
        # metadata) would not list the kernel at all.
        spec["metadata"].pop("kernel_provisioner", None)
    spec["argv"] = [python or sys.executable if a == "{python}" else a for a in spec["argv"]]
    spec["argv"].extend(extra_args or [])
    spec["display_name"] = display_name
    spec["metadata"]["sandbox_kernel"] = {"version": __version__}
    return spec


def _location_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.user:
        return {"user": True, "prefix": None}
    if args.prefix:
        return {"user": False, "prefix": args.prefix}
    if args.sys_prefix or sys.prefix != sys.base_prefix:
        # In a virtualenv the kernel belongs with the environment it runs from.
        return {"user": False, "prefix": sys.prefix}
    return {"user": True, "prefix": None}


def names_provisioner(args: argparse.Namespace) -> bool:
    """Whether the kernelspec names the spare provisioner (sandbox_kernel/provisioner.py).

    jupyter_client hides a kernelspec whose provisioner it cannot load, so a Jupyter
    server (or nbconvert) running in another Python environment would not list the
    kernel at all. A spec installed into this environment is read by this
    environment's Jupyter, which can load it; one in the user's or another prefix's
    data directory may be read by any Python's Jupyter, so it names none unless asked.
    """
    if args.spares is not None:
        return bool(args.spares)
    return bool(_location_args(args)["prefix"] == sys.prefix)


def install(args: argparse.Namespace) -> str:
    extra = [f"--SandboxKernelApp.preset={args.preset}"] if args.preset else []
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        for logo in template_dir().glob("logo-*"):
            shutil.copy(logo, tmp)
        display_name = args.display_name or display_name_for(args.preset)
        with open(os.path.join(tmp, "kernel.json"), "w") as f:
            # None: named if jupyter_client here can load it (kernel_dict).
            spares = None if names_provisioner(args) else False
            json.dump(kernel_dict(display_name, extra_args=extra, spares=spares), f, indent=2)
        # install_kernel_spec replaces an existing spec of the same name.
        return KernelSpecManager().install_kernel_spec(tmp, args.name, **_location_args(args))


def uninstall(args: argparse.Namespace) -> str:
    manager = KernelSpecManager()
    try:
        return manager.remove_kernel_spec(args.name)
    except NoSuchKernel:
        raise SystemExit(f"no kernelspec named {args.name!r} is installed") from None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox_kernel")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("install", "uninstall"):
        p = sub.add_parser(name, help=f"{name} the kernelspec")
        where = p.add_mutually_exclusive_group()
        where.add_argument(
            "--user", action="store_true", help="in the user's Jupyter data directory"
        )
        where.add_argument(
            "--sys-prefix", action="store_true", help="in sys.prefix (default in a virtualenv)"
        )
        where.add_argument("--prefix", help="under PREFIX/share/jupyter/kernels")
        p.add_argument(
            "--name", default=DEFAULT_NAME, help=f"kernelspec name (default {DEFAULT_NAME})"
        )
        if name == "install":
            p.add_argument(
                "--display-name",
                help=f"name shown in the launcher (default {DEFAULT_DISPLAY_NAME!r}; "
                "with --preset P other than standard: 'Python 3 (sandboxed, P)')",
            )
            p.add_argument(
                "--preset",
                choices=["standard", "classroom", "permissive"],
                help="configuration preset",
            )
            spares = p.add_mutually_exclusive_group()
            spares.add_argument(
                "--spares",
                dest="spares",
                action="store_true",
                default=None,
                help="pre-warmed spare kernels for fast restarts: the kernelspec names this "
                "package's kernel provisioner (the default for an install into this "
                "environment, --sys-prefix or a virtualenv's)",
            )
            spares.add_argument(
                "--no-spares",
                dest="spares",
                action="store_false",
                help="no pre-warmed spare kernels (the kernelspec names no kernel "
                "provisioner): for a Jupyter server running in another Python environment, "
                "which could not load this package's provisioner and would hide the kernel "
                "(the default for --user and --prefix installs)",
            )
    args = parser.parse_args(argv)
    if args.command == "install":
        path = install(args)
        print(f"Installed kernelspec {args.name} in {path}")
        if names_provisioner(args) and not provisioner_registered():
            print(
                f"(without pre-warmed spares: the kernel provisioner {PROVISIONER_NAME} is "
                "not registered in this environment; install the package with pip to get it)"
            )
        elif names_provisioner(args):
            print(
                "Restarts use a pre-warmed spare kernel: a Jupyter server in another Python "
                "environment cannot load this package's provisioner and would not list the "
                "kernel; for that, install with --no-spares."
            )
        else:
            print(
                "No pre-warmed spares (the kernelspec names no provisioner, so a Jupyter "
                "in any Python environment lists it); --spares turns them on where the "
                "server runs in this environment."
            )
    else:
        path = uninstall(args)
        print(f"Removed kernelspec {args.name} from {path}")
    return 0
