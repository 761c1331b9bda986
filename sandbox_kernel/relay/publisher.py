"""Turn validated executor frames into Jupyter messages that the kernel signs and sends.

Only this side speaks Jupyter: the parent header comes from a request the
kernel itself received (the child may only point at one by msg_id), and the
session signs each message with a key the child never had. On the way, the
output gate (relay/gate.py) decides what the browser may render and the output
budget caps what a cell may send.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jupyter_client.session import Session, json_packer

from ..units import MIB
from .budget import CellBudget, NoticeBudget, OutputLimits
from .gate import GateSettings, OutputGate

__all__ = ["IOPub", "Publisher", "pack_bundle"]


class IOPub:
    """Signs and sends one message on IOPub: the publisher's ``send`` in the kernel.

    Only this side holds the session's key; the publisher decides what is sent,
    under which parent, and never sees the kernel object.
    """

    def __init__(self, session: Session | None, socket: Any, ident: str) -> None:
        self.session = session
        self.socket = socket
        self.ident = ident

    def __call__(
        self,
        kind: str,
        content: dict[str, Any] | bytes,
        parent: dict[str, Any],
        buffers: list[Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if self.session is None:
            return
        self.session.send(
            self.socket,
            kind,
            # Session.serialize passes packed content through as it is.
            content,  # type: ignore[arg-type]
            parent,
            ident=f"kernel.{self.ident}.{kind}".encode(),
            buffers=buffers,
            metadata=metadata,
        )


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


# What the summary line at a cell's end says about notices that were not shown.
NOTICE_SUMMARIES = {
    "malformed": "malformed frames from the executor were dropped",
    "seccomp": "blocked system calls were reported",
    "forged": "forged replies from the cell were ignored",
    "violation": "protocol violations by the executor were dropped",
    "warning": "runtime policy warnings were raised",
    "gate": "outputs were changed by the output gate",
}


class Publisher:
    """Publishes executor outputs on IOPub under the right parent header."""

    def __init__(
        self,
        send: Callable[..., None],
        limits: OutputLimits,
        gate: GateSettings,
        *,
        pack: Callable[[Any], bytes] = json_packer,
        on_cap: Callable[[], None] | None = None,
        on_comm_refused: Callable[[str], None] | None = None,
    ) -> None:
        # send(kind, content, parent, buffers=None, metadata=None): an IOPub in the
        # kernel. ``content`` may be serialised already (as measured).
        self.send = send
        # How the session serialises content (measured before it is sent as it is).
        self._serialise = pack
        self.limits = limits
        self.gate = OutputGate(gate)
        self.on_cap = on_cap
        # Called with the target of each comm the gate refused (the kernel audits it).
        self.on_comm_refused = on_comm_refused
        self.comms_refused = 0
        self.parents: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.current: dict[str, Any] = {}
        self.budget = CellBudget(limits)
        self.notices = NoticeBudget()
        # update_display_data held back by the rate limit: the latest per display_id
        # is sent when the cell ends (if the budget still allows), so displays end
        # up showing their final state.
        self._held_updates: dict[str, _Packed] = {}
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
        self.notices = NoticeBudget()
        self._held_updates.clear()
        self.comms_refused = 0
        self.gate.begin_cell()

    def end_cell(self) -> dict[str, Any]:
        """Send held display updates and a summary of what was not shown; return the figures."""
        held = list(self._held_updates.values())
        self._held_updates.clear()
        for packed in held:
            # Held updates are output like any other: they count, and they stop at the cap.
            reason = self.budget.admit(packed.kind, packed.size, replay=True)
            if reason is None:
                self._send_packed(packed)
            else:
                self._dropped(reason, packed.kind, packed.size, packed.parent)
        budget = self.budget
        for kind, count in self.notices.suppressed.items():
            total = self.notices.total(kind)
            self.notice(
                f"[sandbox] {total:,} {NOTICE_SUMMARIES.get(kind, kind)} in this cell "
                f"({count:,} of them not shown one by one)."
            )
        self.notices.suppressed.clear()
        if budget.dropped_messages:
            self.notice(
                f"[sandbox] {budget.dropped_messages:,} output message(s), "
                f"{budget.dropped_bytes / MIB:.1f} MiB, of this cell were not shown "
                "(see the notices above for the limits)."
            )
        return {
            "output_bytes": budget.sent_bytes,
            "output_dropped_bytes": budget.dropped_bytes,
            "comms_refused": self.comms_refused,
        }

    # -- publishing ------------------------------------------------------------------

    def publish(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "relay_notice":
            self.notice(
                f"[sandbox] an output from the executor was dropped: {message['text']}",
                key="malformed",
            )
            return
        if kind == "protocol_violation":
            self.notice(
                f"[sandbox] dropped {message['text']} from the executor: the relay protocol "
                "does not allow it now",
                key="violation",
            )
            return
        if kind == "oversized":
            # The executor did not send an output too large for its frame.
            self.budget.dropped_bytes += message["bytes"]
            self.budget.dropped_messages += 1
            self._dropped("size", str(message["kind"]), message["bytes"], self.parent_for(message))
            return
        if kind not in IOPUB_TYPES:
            return
        if kind in BUNDLE_TYPES:
            data, notes = self.gate.bundle(message["data"])
            message = {**message, "data": data}
            self.notes(notes, self.parent_for(message))
        elif kind in COMM:
            gated, notes = self.gate.comm(kind, message)
            self.notes(notes, self.parent_for(message))
            for target in self.gate.take_refused_comms():
                self.comms_refused += 1
                if self.on_comm_refused is not None:
                    self.on_comm_refused(target)
            if gated is None:
                return
            message = gated
        packed = self._pack(message)
        reason = self.budget.admit(kind, packed.size)
        if reason is None:
            self._send_packed(packed)
            return
        if reason == "rate" and kind == "update_display_data":
            self._held_updates[message["transient"]["display_id"]] = packed
        self._dropped(reason, kind, packed.size, packed.parent)

    def _pack(self, message: dict[str, Any]) -> _Packed:
        """Serialise a message's parts as the session will send them, and measure them."""
        content = {k: v for k, v in message.items() if k not in {"type", "parent", "buffers"}}
        kind = message["type"]
        metadata = None
        if kind.startswith("comm_"):
            # As ipykernel sends them: a comm's metadata (the widget protocol version)
            # belongs in the message's metadata, not in its content.
            metadata = content.pop("metadata", None)
        pack = self._serialise
        packed_content = None
        if kind in BUNDLE_TYPES and pack is json_packer:
            packed_content = pack_bundle(content)
        if packed_content is None:
            packed_content = pack(content)
        size = len(packed_content) + len(pack(metadata or {}))
        buffers = list(message.get("buffers") or [])
        size += sum(len(b) for b in buffers)
        comm = (content.get("comm_id"), content.get("target_name", "")) if kind in COMM else None
        return _Packed(
            kind, packed_content, self.parent_for(message), buffers, metadata, size, comm
        )

    def _dropped(self, reason: str, kind: str, size: int, parent: dict[str, Any]) -> None:
        if (
            reason in {"cell", "comm"}
            and self.on_cap is not None
            and self.budget.first_time("mute")
        ):
            # Ask the executor to stop sending this cell's output at all.
            self.on_cap()
        if not self.budget.first_time(reason):
            return
        limits = self.limits
        text = {
            "size": f"an output of {size / MIB:.1f} MiB is larger than the limit of "
            f"{limits.max_message_bytes / MIB:g} MiB per message (Output.max_message_bytes) "
            "and was not shown",
            "cell": "this cell's output reached the limit of "
            f"{limits.max_cell_bytes / MIB:g} MiB (Output.max_cell_output_bytes); the cell "
            "goes on, but the rest of its output is not shown",
            "comm": "this cell's widget (comm) traffic reached the limit of "
            f"{limits.max_comm_bytes / MIB:g} MiB (Output.max_comm_bytes); widgets may stop "
            "updating",
            "rate": (
                "this cell sends widget (comm) messages faster than "
                f"{limits.max_comm_messages_per_s:g} per second "
                "(Output.max_comm_messages_per_s); some are not relayed"
            )
            if kind in COMM
            else "this cell sends output faster than "
            f"{limits.max_messages_per_s:g} messages per second (Output.max_messages_per_s); "
            "some of it is not shown",
        }[reason]
        self.notice(f"[sandbox] {text}.", parent)

    def _send_packed(self, packed: _Packed) -> None:
        if packed.comm is not None:
            comm_id, target = packed.comm
            if packed.kind == "comm_open":
                self.comms[str(comm_id)] = str(target or "")
            elif packed.kind == "comm_close":
                self.comms.pop(str(comm_id), None)
        self.send(
            packed.kind,
            packed.content,
            packed.parent,
            packed.buffers or None,
            packed.metadata,
        )

    def notes(self, notes: list[str], parent: dict[str, Any] | None = None) -> None:
        """The output gate's notes on what it changed (a few per cell, then a count)."""
        for note in dict.fromkeys(notes):
            self.notice(f"[sandbox] {note}.", parent, key="gate")

    def notice(
        self, text: str, parent: dict[str, Any] | None = None, *, key: str | None = None
    ) -> None:
        """A message from the sandbox itself, shown as stderr in the cell's output.

        ``key`` names a kind of notice the executor can provoke over and over (a
        malformed frame, a blocked call): only the first few of a kind are shown
        per cell, the rest are summed up at the cell's end. Every notice's bytes
        count against the cell's output.
        """
        if key is not None and not self.notices.admit(key):
            return
        packed = self._serialise({"name": "stderr", "text": text.rstrip("\n") + "\n"})
        # The kernel's own notices (no key) are few per cell and always shown.
        if not self.budget.charge(len(packed), essential=key is None):
            if key is not None:
                self.notices.suppressed[key] = self.notices.suppressed.get(key, 0) + 1
            return
        self.send("stream", packed, parent or self.current)

    def error(
        self, ename: str, evalue: str, traceback: list[str], parent: dict[str, Any] | None = None
    ) -> None:
        self.send(
            "error",
            {"ename": ename, "evalue": evalue, "traceback": traceback},
            parent or self.current,
        )


COMM = frozenset({"comm_open", "comm_msg", "comm_close"})

# A bundle's text values of this size or more are spliced into the packed content.
SPLICE_MIN_CHARS = 64 * 1024
# The ASCII bytes json.dumps(ensure_ascii=False) writes as they are; it escapes only
# '"', '\\' and the control characters below 0x20.
_JSON_VERBATIM = bytes(c for c in range(0x20, 0x80) if c not in b'"\\')


def pack_bundle(content: dict[str, Any]) -> bytes | None:
    """``json_packer(content)``, byte for byte, for a bundle's content whose ``data``
    holds large ASCII text that JSON writes verbatim (an image's base64): such a value
    is copied between quotes instead of going through ``json.dumps`` and ``encode``,
    about a third of the cost. None when there is no such value (pack as usual).

    Only the escaping is skipped, never a check: the value is a str the reader and the
    gate have passed, and whether JSON would write it verbatim is checked on its bytes.
    """
    data = content.get("data")
    if not isinstance(data, dict):
        return None
    verbatim: dict[str, bytes] = {}
    for mime, value in data.items():
        if type(value) is str and len(value) >= SPLICE_MIN_CHARS and value.isascii():
            raw = value.encode("ascii")
            if not raw.translate(None, _JSON_VERBATIM):
                verbatim[mime] = raw
    if not verbatim:
        return None
    parts: list[bytes] = []
    for key, value in content.items():
        parts.append(b", " if parts else b"{")
        parts.append(json_packer(key) + b": ")
        if key != "data":
            parts.append(json_packer(value))
            continue
        for index, (mime, text) in enumerate(data.items()):
            parts.append(b", " if index else b"{")
            parts.append(json_packer(mime) + b": ")
            spliced = verbatim.get(mime)
            parts.extend((b'"', spliced, b'"') if spliced is not None else (json_packer(text),))
        parts.append(b"}" if data else b"{}")
    parts.append(b"}")
    return b"".join(parts)


@dataclass
class _Packed:
    """An output ready to send: its serialised content, and its size as counted."""

    kind: str
    content: bytes
    parent: dict[str, Any]
    buffers: list[Any]
    metadata: dict[str, Any] | None
    size: int
    comm: tuple[Any, Any] | None = None
