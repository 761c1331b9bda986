"""The short ``--help`` of ``python -m sandbox_kernel``: its commands, presets and main settings.

IPython's own help lists some 150 options of IPKernelApp, none of them this
project's; a newcomer wants the few that matter. The full list stays behind
``--help-all``, which traitlets renders from every configurable class.
"""

from __future__ import annotations

import textwrap
from typing import Any

from traitlets.config import Configurable

from . import __version__

__all__ = ["MAIN_SETTINGS", "PRESET_SUMMARY", "command_line_help", "version_line"]

# The settings a newcomer or an administrator reaches for first, in the order of README.md.
MAIN_SETTINGS = (
    "SandboxKernelApp.preset",
    "Isolation.required_isolation",
    "Isolation.workspace",
    "Isolation.hidden_paths",
    "Isolation.allow_network",
    "Limits.wall_time_limit_s",
    "Limits.memory_limit_mb",
    "Limits.max_processes",
    "Output.max_cell_output_bytes",
    "Output.active_content",
    "Policy.rules",
    "Policy.audit_log",
)

PRESET_SUMMARY = {
    "standard": "the default: ordinary notebooks run unchanged, escapes are refused",
    "classroom": "students and autograders: time, memory and output limits, no shell",
    "permissive": "trusted code: the policy only records; no OS sandbox is allowed",
}


def version_line() -> str:
    return f"sandbox-kernel {__version__}"


def _first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    end = flat.find(". ")
    return flat if end < 0 else flat[: end + 1]


def _setting_lines(classes: dict[str, type[Configurable]]) -> list[str]:
    lines = []
    for name in MAIN_SETTINGS:
        section, key = name.split(".", 1)
        trait: Any = classes[section].class_traits(config=True)[key]
        default = trait.default_value_repr()
        lines.append(f"  --{name}={default}")
        lines.extend(
            textwrap.wrap(
                _first_sentence(trait.help or ""),
                width=88,
                initial_indent="      ",
                subsequent_indent="      ",
            )
        )
    return lines


def command_line_help(classes: dict[str, type[Configurable]]) -> str:
    """The text of ``--help``; ``classes`` maps section names to their configurable classes."""
    lines = [
        f"{version_line()}: a Jupyter kernel for Python that runs every cell in a sandbox.",
        "",
        "Usage:",
        "  python -m sandbox_kernel install [--user | --sys-prefix | --prefix P]",
        "                                   [--name N] [--display-name D] [--preset P]",
        "  python -m sandbox_kernel uninstall [--name N]",
        "  python -m sandbox_kernel -f CONNECTION_FILE [--Class.setting=value ...]",
        "",
        "Commands:",
        "  install     register the kernelspec 'sandbox-python' ('install --help' for options)",
        "  uninstall   remove it",
        "  (none)      start the kernel; Jupyter does this from kernel.json",
        "",
        "Presets (--SandboxKernelApp.preset=NAME, or 'install --preset NAME'):",
        *(f"  {name:<11} {summary}" for name, summary in PRESET_SUMMARY.items()),
        "",
        "Main settings (also in sandbox_kernel_config.py as c.Class.setting = value;",
        "an administrator's sandbox_kernel_locks.json may pin any of them):",
        *_setting_lines(classes),
        "",
        "In a notebook: %sandbox shows the sandbox in force, %sandbox rules the policy rules.",
        "Every setting with its help text: python -m sandbox_kernel --help-all",
        "",
    ]
    return "\n".join(lines)
