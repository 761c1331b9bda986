"""Turn validated executor frames into Jupyter messages that the kernel signs and sends.

Only this side speaks Jupyter: the parent header comes from a request the
kernel itself received (the child may only point at one by msg_id), and the
session signs each message with a key the child never had. On the way, the
output budget caps what a cell may send and the sanitizer cleans what the
browser will render.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .budget import CellBudget, OutputLimits
from .sanitize import OutputSanitizer, SanitizePolicy

if TYPE_CHECKING:
    from ..kernel import SandboxKernel

__all__ = ["Publisher"]

IOPUB_TYPES = frozenset(
    {
        "stream",
        "display_data",
        "update_display_data",
        "execute_result",
        "clear_output",
        "error",
        "comm_open",
        "comm_msg",
        "comm_close",
    }
)
BUNDLE_TYPES = frozenset({"display_data", "update_display_data", "execute_result"})
REMEMBERED_PARENTS = 256
MIB = 1 << 20


class Publisher:
    """Publishes executor outputs on IOPub under the right parent header."""

    def __init__(
        self,
        kernel: SandboxKernel,
        limits: OutputLimits,
        sanitize: SanitizePolicy,
        *,
        on_cap: Callable[[], None] | None = None,
    ) -> None:
        self.kernel = kernel
        self.limits = limits
        self.sanitizer = OutputSanitizer(sanitize)
        self.on_cap = on_cap
        self.parents: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.current: dict[str, Any] = {}
        self.budget = CellBudget(limits)
        # update_display_data held back by the rate limit: the latest per display_id
        # is sent when the cell ends, so displays end up showing their final state.
        self._held_updates: dict[str, dict[str, Any]] = {}
        # comm_id -> target_name, for comm_info_request; kept from both directions.
        self.comms: dict[str, str] = {}

    # -- parents -------------------------------------------------------------------

    def remember(self, parent: dict[str, Any], *, current: bool = False) -> None:
        """Record a request so that outputs naming its msg_id get it as parent."""
        msg_id = parent.get("header", {}).get("msg_id")
        if isinstance(msg_id, str):
            self.parents[msg_id] = parent
            self.parents.move_to_end(msg_id)
            while len(self.parents) > REMEMBERED_PARENTS:
                self.parents.popitem(last=False)
        if current:
            self.current = parent

    def parent_for(self, message: dict[str, Any]) -> dict[str, Any]:
        named = message.get("parent")
        if named is not None and named in self.parents:
            return self.parents[named]
        return self.current

    # -- cells ---------------------------------------------------------------------

    def begin_cell(self, parent: dict[str, Any]) -> None:
        self.remember(parent, current=True)
        self.budget = CellBudget(self.limits)
        self._held_updates.clear()

    def end_cell(self) -> dict[str, Any]:
        """Send held display updates and a summary of what was not shown; return the figures."""
        held = list(self._held_updates.values())
        self._held_updates.clear()
        for message in held:
            if not self.budget.capped:
                self._send_output(message)
        budget = self.budget
        if budget.dropped_messages:
            self.notice(
                f"[sandbox] {budget.dropped_messages} output message(s), "
                f"{budget.dropped_bytes / MIB:.1f} MiB, of this cell were not shown "
                "(see the notices above for the limits)."
            )
        return {"output_bytes": budget.sent_bytes, "output_dropped_bytes": budget.dropped_bytes}

    # -- publishing ------------------------------------------------------------------

    def publish(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "relay_notice":
            self.notice(f"[sandbox] an output from the executor was dropped: {message['text']}")
            return
        if kind == "oversized":
            # The executor did not send an output too large for its frame.
            self.budget.dropped_bytes += message["bytes"]
            self.budget.dropped_messages += 1
            self._dropped("size", message)
            return
        if kind not in IOPUB_TYPES:
            return
        if kind in BUNDLE_TYPES:
            data, notes = self.sanitizer.bundle(message["data"])
            message = {**message, "data": data}
            for note in notes:
                self.notice(f"[sandbox] {note}.", self.parent_for(message))
        elif kind in {"comm_open", "comm_msg"}:
            message = {**message, "data": self.sanitizer.comm_data(message["data"])}
        reason = self.budget.admit(message)
        if reason is None:
            self._send_output(message)
            return
        if reason == "rate" and kind == "update_display_data":
            self._held_updates[message["transient"]["display_id"]] = message
        self._dropped(reason, message)

    def _dropped(self, reason: str, message: dict[str, Any]) -> None:
        if reason == "cell" and self.on_cap is not None and self.budget.first_time("mute"):
            # Ask the executor to stop sending this cell's output at all.
            self.on_cap()
        if not self.budget.first_time(reason):
            return
        limits = self.limits
        text = {
            "size": f"an output of {_size(message)} is larger than the limit of "
            f"{limits.max_message_bytes / MIB:g} MiB per message (Output.max_message_bytes) "
            "and was not shown",
            "cell": "this cell's output reached the limit of "
            f"{limits.max_cell_bytes / MIB:g} MiB (Output.max_cell_output_bytes); the cell "
            "goes on, but the rest of its output is not shown",
            "rate": "this cell sends output faster than "
            f"{limits.max_messages_per_s:g} messages per second (Output.max_messages_per_s); "
            "some of it is not shown",
        }[reason]
        self.notice(f"[sandbox] {text}.", self.parent_for(message))

    def _send_output(self, message: dict[str, Any]) -> None:
        content = {k: v for k, v in message.items() if k not in {"type", "parent", "buffers"}}
        kind = message["type"]
        if kind == "comm_open":
            self.comms[content["comm_id"]] = content.get("target_name", "")
        elif kind == "comm_close":
            self.comms.pop(content["comm_id"], None)
        metadata = None
        if kind.startswith("comm_"):
            # As ipykernel sends them: a comm's metadata (the widget protocol version)
            # belongs in the message's metadata, not in its content.
            metadata = content.pop("metadata", None)
        self.send(kind, content, self.parent_for(message), message.get("buffers") or None, metadata)

    def send(
        self,
        kind: str,
        content: dict[str, Any],
        parent: dict[str, Any],
        buffers: list[Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        kernel = self.kernel
        if kernel.session is None:
            return
        kernel.session.send(
            kernel.iopub_socket,
            kind,
            content,
            parent,
            ident=f"kernel.{kernel.ident}.{kind}".encode(),
            buffers=buffers,
            metadata=metadata,
        )

    def notice(self, text: str, parent: dict[str, Any] | None = None) -> None:
        """A message from the sandbox itself, shown as stderr in the cell's output."""
        self.send(
            "stream", {"name": "stderr", "text": text.rstrip("\n") + "\n"}, parent or self.current
        )

    def error(
        self, ename: str, evalue: str, traceback: list[str], parent: dict[str, Any] | None = None
    ) -> None:
        self.send(
            "error",
            {"ename": ename, "evalue": evalue, "traceback": traceback},
            parent or self.current,
        )


def _size(message: dict[str, Any]) -> str:
    from .budget import message_size

    size = message["bytes"] if message["type"] == "oversized" else message_size(message)
    return f"{size / MIB:.1f} MiB"
