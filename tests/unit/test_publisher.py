"""The publisher (relay/publisher.py) fed crafted executor messages: what it sends, under
which parent, what it drops and what it tells the cell, checked exactly."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jupyter_client.session import json_packer

from sandbox_kernel.relay.budget import NOTICE_ALLOWANCE_BYTES, OutputLimits
from sandbox_kernel.relay.gate import REMOVED, GateSettings
from sandbox_kernel.relay.publisher import (
    IOPUB_TYPES,
    REMEMBERED_PARENTS,
    Publisher,
    pack_bundle,
)
from sandbox_kernel.relay.widgets import WIDGET_TARGETS
from tests.unit.conftest import Clock

MIB = 1 << 20
LIMITS = OutputLimits(
    max_message_bytes=MIB,
    max_cell_bytes=4 * MIB,
    max_messages_per_s=1000,
    max_comm_bytes=2 * MIB,
    max_comm_messages_per_s=1000,
)
HOSTILE_HTML = "<img src=x onerror=\"fetch('/api/kernels',{method:'POST'})\">"


@dataclass
class Sent:
    kind: str
    content: dict[str, Any]
    parent: dict[str, Any]
    buffers: list[Any] | None
    metadata: dict[str, Any] | None


class Wire:
    """Stands in for the kernel's signed IOPub send; keeps what was sent, decoded."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def __call__(
        self,
        kind: str,
        content: dict[str, Any] | bytes,
        parent: dict[str, Any],
        buffers: list[Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        decoded = json.loads(content) if isinstance(content, bytes) else content
        self.sent.append(Sent(kind, decoded, parent, buffers, metadata))

    def of(self, kind: str) -> list[Sent]:
        return [s for s in self.sent if s.kind == kind]

    def notices(self) -> list[str]:
        return [s.content["text"] for s in self.of("stream") if s.content["text"].startswith("[")]


def parent(msg_id: str) -> dict[str, Any]:
    return {"header": {"msg_id": msg_id, "msg_type": "execute_request"}}


def publisher(
    limits: OutputLimits = LIMITS, mode: str = "isolate", **kw: Any
) -> tuple[Publisher, Wire]:
    gate = GateSettings(active_content=mode, comm_targets=frozenset(WIDGET_TARGETS))
    wire = Wire()
    # Packed with jupyter_client's json_packer (the default), as the session would.
    pub = Publisher(wire, limits, gate, **kw)
    pub.begin_cell(parent("cell-1"))
    return pub, wire


def stream(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "stream", "name": "stdout", "text": text, **extra}


# -- parents ---------------------------------------------------------------------------


def test_outputs_get_the_parent_they_name_if_the_kernel_received_it(clock: Clock) -> None:
    pub, wire = publisher()
    pub.remember(parent("earlier"))
    pub.publish(stream("a", parent="earlier"))
    pub.publish(stream("b", parent="never-sent"))  # the child may not invent one
    pub.publish(stream("c"))
    assert [(s.content["text"], s.parent["header"]["msg_id"]) for s in wire.sent] == [
        ("a", "earlier"),
        ("b", "cell-1"),
        ("c", "cell-1"),
    ]


def test_only_the_latest_parents_are_remembered(clock: Clock) -> None:
    pub, wire = publisher()
    for i in range(REMEMBERED_PARENTS + 1):
        pub.remember(parent(f"p{i}"))
    pub.publish(stream("old", parent="p0"))
    pub.publish(stream("kept", parent="p1"))
    assert [s.parent["header"]["msg_id"] for s in wire.sent] == ["cell-1", "p1"]


# -- what is relayed, and how ------------------------------------------------------------


def test_stream_error_and_clear_output_are_relayed_as_they_are(clock: Clock) -> None:
    """gate.py's table: stream text and error fields are rendered as text; clear_output
    has no content. Nothing is changed, not even hostile-looking markup."""
    pub, wire = publisher()
    error = {"ename": HOSTILE_HTML, "evalue": "<script>x</script>", "traceback": ["\x1b[31mt"]}
    pub.publish(stream(HOSTILE_HTML))
    pub.publish({"type": "error", **error})
    pub.publish({"type": "clear_output", "wait": True})
    assert [(s.kind, s.content) for s in wire.sent] == [
        ("stream", {"name": "stdout", "text": HOSTILE_HTML}),
        ("error", error),
        ("clear_output", {"wait": True}),
    ]
    assert pub.end_cell()["output_dropped_bytes"] == 0


@pytest.mark.parametrize(
    "kind",
    ["status", "execute_reply", "execute_input", "kernel_info_reply", "input_request", "x"],
)
def test_types_outside_iopub_outputs_are_never_sent(kind: str, clock: Clock) -> None:
    assert kind not in IOPUB_TYPES
    pub, wire = publisher()
    pub.publish({"type": kind, "execution_state": "idle", "status": "ok"})
    assert wire.sent == []
    assert pub.end_cell() == {"output_bytes": 0, "output_dropped_bytes": 0, "comms_refused": 0}


@pytest.mark.parametrize("kind", ["display_data", "execute_result", "update_display_data"])
def test_bundles_go_through_the_gate(kind: str, clock: Clock) -> None:
    pub, wire = publisher(mode="drop")
    message = {
        "type": kind,
        "data": {"text/html": HOSTILE_HTML, "text/plain": "p"},
        "metadata": {},
        "transient": {"display_id": "d"},
    }
    pub.publish(message)
    [sent] = wire.of(kind)
    assert sent.content["data"] == {"text/plain": "p"}
    assert wire.notices() == ["[sandbox] an HTML output with active content was dropped.\n"]
    # Emptied entirely: the bundle says so instead of arriving empty.
    pub.publish({**message, "data": {"text/html": HOSTILE_HTML}})
    assert wire.of(kind)[1].content["data"] == {"text/plain": REMOVED}


def test_isolated_html_arrives_in_a_sandboxed_frame(clock: Clock) -> None:
    pub, wire = publisher(mode="isolate")
    pub.publish({"type": "display_data", "data": {"text/html": HOSTILE_HTML}, "metadata": {}})
    [sent] = wire.of("display_data")
    assert sent.content["data"]["text/html"].startswith("<iframe ")
    assert 'sandbox="allow-scripts"' in sent.content["data"]["text/html"]


# -- the budget, as the cell sees it ---------------------------------------------------


def test_an_oversized_message_is_dropped_and_said_once(clock: Clock) -> None:
    pub, wire = publisher()
    big = "x" * (MIB + 1)
    for _ in range(3):
        pub.publish(stream(big))
    pub.publish(stream("small"))
    texts = [s.content["text"] for s in wire.sent]
    assert big not in texts
    assert "small" in texts
    [notice] = [t for t in wire.notices() if "Output.max_message_bytes" in t]
    assert notice == (
        "[sandbox] an output of 1.0 MiB is larger than the limit of 1 MiB per message "
        "(Output.max_message_bytes) and was not shown.\n"
    )
    figures = pub.end_cell()
    assert wire.notices()[-1] == (
        "[sandbox] 3 output message(s), 3.0 MiB, of this cell were not shown "
        "(see the notices above for the limits).\n"
    )
    assert figures["output_dropped_bytes"] > 3 * MIB
    assert figures["output_dropped_bytes"] < 3 * MIB + 3 * 100  # the JSON around each text


def test_the_cell_cap_holds_and_asks_the_executor_to_stop_once(clock: Clock) -> None:
    limits = OutputLimits(1000, 2000, 1000, 1000, 1000)
    muted: list[int] = []
    pub, wire = publisher(limits, on_cap=lambda: muted.append(1))
    for i in range(50):
        pub.publish(stream(f"{i:02d}" * 100))  # 200 characters of text each
    relayed = [
        s.content["text"] for s in wire.of("stream") if not s.content["text"].startswith("[")
    ]
    # Each message is the text plus its JSON: at most 2000 bytes of them, so 8 fit.
    assert relayed == [f"{i:02d}" * 100 for i in range(8)]
    assert muted == [1]
    assert [t for t in wire.notices() if "max_cell_output_bytes" in t] == [
        "[sandbox] this cell's output reached the limit of 0.00190735 MiB "
        "(Output.max_cell_output_bytes); the cell goes on, but the rest of its output is "
        "not shown.\n"
    ]
    figures = pub.end_cell()
    assert figures["output_bytes"] <= 2000 + NOTICE_ALLOWANCE_BYTES
    assert "42 output message(s)" in wire.notices()[-1]


def test_updates_held_by_the_rate_end_on_their_last_state(clock: Clock) -> None:
    limits = OutputLimits(MIB, 4 * MIB, 2, MIB, 2)
    pub, wire = publisher(limits)
    for i in range(10):
        pub.publish(
            {
                "type": "update_display_data",
                "data": {"text/plain": str(i)},
                "metadata": {},
                "transient": {"display_id": "bar"},
            }
        )
    shown = [s.content["data"]["text/plain"] for s in wire.of("update_display_data")]
    assert shown == ["0", "1"]
    pub.end_cell()
    shown = [s.content["data"]["text/plain"] for s in wire.of("update_display_data")]
    assert shown == ["0", "1", "9"]


def test_a_budget_is_per_cell(clock: Clock) -> None:
    limits = OutputLimits(1000, 1000, 1000, 1000, 1000)
    pub, wire = publisher(limits)
    for _ in range(10):
        pub.publish(stream("y" * 400))
    assert len([s for s in wire.of("stream") if s.content["text"] == "y" * 400]) == 2
    pub.end_cell()
    pub.begin_cell(parent("cell-2"))
    pub.publish(stream("next"))
    assert wire.sent[-1].content["text"] == "next"
    assert wire.sent[-1].parent["header"]["msg_id"] == "cell-2"


def test_the_oversized_report_of_the_executor_counts_as_dropped(clock: Clock) -> None:
    pub, wire = publisher()
    pub.publish({"type": "oversized", "bytes": 5 * MIB, "kind": "display_data"})
    assert wire.notices() == [
        "[sandbox] an output of 5.0 MiB is larger than the limit of 1 MiB per message "
        "(Output.max_message_bytes) and was not shown.\n"
    ]
    assert pub.end_cell()["output_dropped_bytes"] == 5 * MIB


# -- the sandbox's own notices -------------------------------------------------------------


def test_notices_the_executor_can_provoke_are_few_then_summed_up(clock: Clock) -> None:
    pub, wire = publisher()
    for i in range(10):
        pub.publish({"type": "relay_notice", "text": f"bad frame {i}"})
    for i in range(5):
        pub.publish({"type": "protocol_violation", "text": f"a forged reply {i}"})
    pub.end_cell()
    assert wire.notices() == [
        "[sandbox] an output from the executor was dropped: bad frame 0\n",
        "[sandbox] an output from the executor was dropped: bad frame 1\n",
        "[sandbox] an output from the executor was dropped: bad frame 2\n",
        "[sandbox] dropped a forged reply 0 from the executor: the relay protocol does not "
        "allow it now\n",
        "[sandbox] 10 malformed frames from the executor were dropped in this cell "
        "(7 of them not shown one by one).\n",
        "[sandbox] 5 protocol violations by the executor were dropped in this cell "
        "(4 of them not shown one by one).\n",
    ]
    assert all(s.kind == "stream" and s.content["name"] == "stderr" for s in wire.sent)


# -- comms ---------------------------------------------------------------------------------


def slider_open(comm_id: str, **state: Any) -> dict[str, Any]:
    """A core widget's comm_open, as ipywidgets sends it."""
    controls = "@jupyter-widgets/controls"
    return {
        "type": "comm_open",
        "comm_id": comm_id,
        "target_name": "jupyter.widget",
        "data": {
            "state": {
                "_model_name": "IntSliderModel",
                "_model_module": controls,
                "_view_module": controls,
                **state,
            },
            "buffer_paths": [],
        },
    }


def test_a_comm_to_a_refused_target_sends_nothing_and_is_counted(clock: Clock) -> None:
    refused: list[str] = []
    pub, wire = publisher(on_comm_refused=refused.append)
    pub.publish({"type": "comm_open", "comm_id": "c", "target_name": "evil", "data": {}})
    pub.publish({"type": "comm_msg", "comm_id": "c", "data": {"x": HOSTILE_HTML}})
    pub.publish({"type": "comm_close", "comm_id": "c", "data": {}})
    assert [s.kind for s in wire.sent] == ["stream"]
    assert "'evil' was refused" in wire.notices()[0]
    assert refused == ["evil"]
    assert pub.comms == {}
    assert pub.end_cell()["comms_refused"] == 1


def test_an_allowed_comm_is_relayed_with_its_metadata_apart(clock: Clock) -> None:
    pub, wire = publisher()
    opened = {**slider_open("w", value=3), "metadata": {"version": "2.1.0"}}
    pub.publish(opened)
    assert pub.comms == {"w": "jupyter.widget"}
    pub.publish({"type": "comm_msg", "comm_id": "w", "data": {"method": "update"}})
    pub.publish({"type": "comm_close", "comm_id": "w", "data": {}})
    assert [s.kind for s in wire.sent] == ["comm_open", "comm_msg", "comm_close"]
    first = wire.sent[0]
    # As ipykernel sends it: the protocol version in the message's metadata.
    assert first.metadata == {"version": "2.1.0"}
    assert "metadata" not in first.content
    assert first.content["data"] == opened["data"]
    assert wire.sent[2].content == {"comm_id": "w", "data": {}}
    assert pub.comms == {}


def test_comm_traffic_has_its_own_cap_and_leaves_the_output_alone(clock: Clock) -> None:
    limits = OutputLimits(1000, 5000, 1000, 600, 1000)
    muted: list[int] = []
    pub, wire = publisher(limits, on_cap=lambda: muted.append(1))
    pub.publish(slider_open("w"))
    for i in range(20):
        pub.publish({"type": "comm_msg", "comm_id": "w", "data": {"n": "z" * 100, "i": i}})
    relayed = len(wire.of("comm_msg"))
    assert 0 < relayed < 20
    assert muted == [1]
    assert [t for t in wire.notices() if "Output.max_comm_bytes" in t]
    pub.publish(stream("still shown"))
    assert wire.sent[-1].content["text"] == "still shown"


def test_buffers_count_against_the_budget(clock: Clock) -> None:
    limits = OutputLimits(1000, 5000, 1000, 5000, 1000)
    pub, wire = publisher(limits)
    pub.publish(slider_open("b"))
    # A small message with a large buffer is a large message.
    pub.publish({"type": "comm_msg", "comm_id": "b", "data": {}, "buffers": [b"\0" * 2000]})
    assert wire.of("comm_msg") == []
    assert [t for t in wire.notices() if "Output.max_message_bytes" in t]
    pub.publish({"type": "comm_msg", "comm_id": "b", "data": {}, "buffers": [b"\0" * 100]})
    [sent] = wire.of("comm_msg")
    assert sent.buffers == [b"\0" * 100]


# -- large bundles: spliced, byte for byte as json_packer ------------------------------

BIG_B64 = base64.b64encode(bytes(range(256)) * 300).decode()  # 102,400 characters


@pytest.mark.parametrize(
    "data",
    [
        {"text/plain": "<Image>", "image/png": BIG_B64},
        {"image/png": BIG_B64, "image/jpeg": BIG_B64[::-1], "text/plain": 'x "q"'},
        {"text/html": "<p>" + "a" * 70_000 + "</p>", "text/plain": "t"},
        # Not verbatim: each needs an escape somewhere, so json.dumps packs it.
        {"text/plain": "a" * 70_000 + '"'},
        {"text/plain": "a" * 70_000 + "\\"},
        {"text/plain": "a" * 70_000 + "\n"},
        {"text/plain": "a" * 70_000 + "\x00\x1f"},
        {"text/plain": "a" * 70_000 + "é"},
        {"text/plain": "a" * 70_000 + "\x7f"},  # DEL: written as it is, like json.dumps
        {"text/plain": "small"},
        {},
    ],
)
def test_pack_bundle_is_json_packer_byte_for_byte(data: dict[str, Any]) -> None:
    for content in (
        {"data": data, "metadata": {"image/png": {"width": 3}}, "transient": {}},
        {"execution_count": 4, "data": data, "metadata": {}},
    ):
        packed = pack_bundle(content)
        assert packed is None or packed == json_packer(content)


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.dictionaries(
        st.text(max_size=20),
        st.one_of(
            st.text(max_size=50),
            st.tuples(st.text(max_size=3), st.integers(65_536, 70_000)).map(
                lambda t: "A" * t[1] + t[0]
            ),
            st.integers(),
        ),
        max_size=4,
    ),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
def test_pack_bundle_matches_json_packer_on_any_bundle(
    data: dict[str, Any], metadata: dict[str, Any]
) -> None:
    content = {"data": data, "metadata": metadata, "transient": {}}
    packed = pack_bundle(content)
    assert packed is None or packed == json_packer(content)


def test_a_large_image_is_published_as_json_packer_would_pack_it(clock: Clock) -> None:
    sent: list[bytes] = []
    pub = Publisher(
        lambda kind, content, *a: sent.append(content),
        LIMITS,
        GateSettings(),
    )
    pub.begin_cell(parent("cell-1"))
    bundle = {"text/plain": "<Image>", "image/png": BIG_B64}
    pub.publish({"type": "display_data", "data": bundle, "metadata": {}, "transient": {}})
    assert sent == [json_packer({"data": bundle, "metadata": {}, "transient": {}})]
    assert pub.budget.sent_bytes == len(sent[0]) + len(json_packer({}))
