"""Turn validated executor frames into Jupyter messages that the kernel signs and sends.

Only this side speaks Jupyter: the parent header comes from a request the
kernel itself received (the child may only point at one by msg_id), and the
session signs each message with a key the child never had.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

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
REMEMBERED_PARENTS = 256


class Publisher:
    """Publishes executor outputs on IOPub under the right parent header."""

    def __init__(self, kernel: SandboxKernel) -> None:
        self.kernel = kernel
        self.parents: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.current: dict[str, Any] = {}
        # comm_id -> target_name, for comm_info_request; kept from both directions.
        self.comms: dict[str, str] = {}

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

    def publish(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "relay_notice":
            self.notice(f"[sandbox] an output from the executor was dropped: {message['text']}")
            return
        if kind not in IOPUB_TYPES:
            return
        content = {k: v for k, v in message.items() if k not in {"type", "parent", "buffers"}}
        buffers = message.get("buffers") or None
        if kind == "comm_open":
            self.comms[content["comm_id"]] = content.get("target_name", "")
        elif kind == "comm_close":
            self.comms.pop(content["comm_id"], None)
        self.send(kind, content, self.parent_for(message), buffers)

    def send(self, kind: str, content: dict[str, Any], parent: dict[str, Any], buffers: list[bytes] | None = None) -> None:
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
        )

    def notice(self, text: str, parent: dict[str, Any] | None = None) -> None:
        """A message from the sandbox itself, shown as stderr in the cell's output."""
        self.send("stream", {"name": "stderr", "text": text.rstrip("\n") + "\n"}, parent or self.current)

    def error(self, ename: str, evalue: str, traceback: list[str], parent: dict[str, Any] | None = None) -> None:
        self.send("error", {"ename": ename, "evalue": evalue, "traceback": traceback}, parent or self.current)
