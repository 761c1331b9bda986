"""``%sandbox``: what isolation is in force, the limits, and the last cell's figures."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

__all__ = ["SandboxMagics", "render_report"]

MIB = 1024 * 1024


def _fmt_limit(name: str, value: Any) -> str:
    if name == "memory_bytes":
        return f"memory: {int(value) // MIB} MiB"
    if name.endswith("_s"):
        label = name[:-2].replace("_", " ")
        return f"{label}: {'none' if not value else f'{value:g} s'}"
    return f"{name.replace('_', ' ')}: {value}"


def render_report(info: dict[str, Any]) -> str:
    report = info.get("isolation", {})
    lines = [f"Sandbox level: {report.get('level', 'unknown')}"]
    if report.get("level") == "none":
        lines.append("  WARNING: files, processes and the network of the host are NOT isolated.")
    lines.append("Layers:")
    for name, layer in report.get("layers", {}).items():
        mark = "on " if layer.get("on") else "off"
        lines.append(f"  [{mark}] {name:<13} {layer.get('detail', '')}")
    unavailable = report.get("unavailable") or {}
    if unavailable:
        lines.append("Stronger levels not available here:")
        lines.extend(f"  {level}: {why}" for level, why in unavailable.items())
    notes = report.get("notes") or []
    if notes:
        lines.append("Notes:")
        lines.extend(f"  - {note}" for note in notes)
    limits = info.get("limits") or {}
    if limits:
        lines.append("Limits:")
        lines.extend(f"  {_fmt_limit(k, v)}" for k, v in limits.items())
    locked = info.get("locked") or {}
    if locked:
        lines.append("Locked by the administrator:")
        lines.extend(f"  {name} = {value!r} ({source})" for name, (value, source) in locked.items())
    last = info.get("last_cell")
    if last:
        lines.append("Last cell:")
        lines.extend(f"  {k.replace('_', ' ')}: {v}" for k, v in last.items())
    if info.get("setup_ms") is not None:
        lines.append(f"Sandbox set-up took {info['setup_ms']} ms.")
    return "\n".join(lines)


@magics_class
class SandboxMagics(Magics):
    @line_magic
    def sandbox(self, line: str = "") -> None:
        """Show the isolation in force, the limits and the last cell's resource use."""
        print(render_report(getattr(self.shell, "sandbox_info", {})))
