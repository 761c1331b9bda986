"""A fuzz harness for the trusted side of the relay: the frame reader, the runner's
dispatch and the publisher, driven with hostile byte streams.

Shared by ``tests/unit/test_relay_protocol.py`` (a fixed-seed slice that CI runs)
and ``bench/fuzz_relay.py`` (the long run: 100,000 frames and more). Each example
is a stream of frames (valid, boundary and adversarial ones, cut at random
points, sometimes ending in half a frame) fed through the same objects the kernel
uses, with a fake Jupyter session that records what would be sent. The
invariants, checked after every stream:

- nothing raises out of the reader but a fatal ``RelayError`` (then the reader is
  replaced, as the runner does), and nothing raises out of dispatch;
- what reaches the frontend stays within the output budgets (per message, per
  cell, comm, plus the notices' small allowance);
- the trusted process does not grow: memory held after a stream is bounded;
- the kernel keeps serving: a valid frame sent after the stream comes through.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from jupyter_client.session import Session

from sandbox_kernel.config import Output
from sandbox_kernel.errors import RelayError
from sandbox_kernel.framing import (
    ATTACH_MIN_BYTES,
    ATTACHED,
    HEADER,
    encode_frame_parts,
    frame_limit,
)
from sandbox_kernel.kernel.runner import ExecutorProcess
from sandbox_kernel.relay.budget import NOTICE_ALLOWANCE_BYTES, OutputLimits
from sandbox_kernel.relay.gate import GateSettings
from sandbox_kernel.relay.publisher import IOPub, Publisher
from sandbox_kernel.relay.reader import MAX_VALUES

# Small caps, so that the budgets are reached within a stream.
LIMITS = OutputLimits(
    max_message_bytes=256 * 1024,
    max_cell_bytes=1024 * 1024,
    max_messages_per_s=200.0,
    max_comm_bytes=512 * 1024,
    max_comm_messages_per_s=200.0,
)
MAX_FRAME_BYTES = frame_limit(LIMITS.max_message_bytes)
SENTINEL = {"type": "stream", "name": "stdout", "text": "still serving\n"}


class RecordingSocket:
    """Stands in for IOPub: records each message's parts as the session sends them."""

    def __init__(self) -> None:
        self.messages: list[list[bytes]] = []

    def send_multipart(self, parts: list[Any], *args: Any, **kwargs: Any) -> None:
        self.messages.append([bytes(p) for p in parts])

    def sizes(self) -> list[int]:
        # [ident, DELIM, HMAC, header, parent, metadata, content, buffers...]
        return [sum(len(p) for p in parts[5:]) for parts in self.messages]

    def contents(self) -> list[dict[str, Any]]:
        return [json.loads(parts[6]) for parts in self.messages]


@dataclass
class FakeKernel:
    session: Session = field(default_factory=lambda: Session(key=b"fuzz"))
    iopub_socket: RecordingSocket = field(default_factory=RecordingSocket)
    ident: str = "fuzz"


def gate_settings() -> GateSettings:
    output = Output()
    return GateSettings(
        active_content=output.effective_active_content(),
        renderer_mime_types=frozenset(output.renderer_mime_types),
        comm_targets=frozenset(output.comm_targets),
        widget_modules=frozenset(output.widget_modules),
        drop_frontend_payloads=output.drop_frontend_payloads,
        library_bytes=output.isolated_library_bytes,
    )


@dataclass
class Stats:
    streams: int = 0
    frames: int = 0
    bytes_in: int = 0
    fatal: int = 0
    sent_messages: int = 0
    sent_bytes: int = 0


# -- strategies ----------------------------------------------------------------------

text = st.text(st.characters(codec=None), max_size=300)
mime = st.sampled_from(
    ["text/plain", "text/html", "image/png", "application/json", "text/markdown", "x/y+json"]
)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), text
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
    max_leaves=40,
)
parent = st.one_of(st.none(), st.just("cell-1"), text)


def _with_parent(message: dict[str, Any], who: str | None) -> dict[str, Any]:
    if who is not None:
        message["parent"] = who
    return message


valid_messages = st.one_of(
    st.builds(
        lambda name, t, p: _with_parent({"type": "stream", "name": name, "text": t}, p),
        st.sampled_from(["stdout", "stderr"]),
        text | st.integers(0, 300_000).map(lambda n: "x" * n),
        parent,
    ),
    st.builds(
        lambda kind, data, meta, did: {
            "type": kind,
            "data": data,
            "metadata": meta,
            "transient": {"display_id": did},
        },
        st.sampled_from(["display_data", "update_display_data"]),
        st.dictionaries(mime, text, max_size=4),
        st.dictionaries(text, json_value, max_size=3),
        st.sampled_from(["d1", "d2", "d3"]),
    ),
    st.builds(
        lambda kind, cid, data, bufs: {
            "type": kind,
            "comm_id": cid,
            "target_name": "jupyter.widget",
            "data": data,
            "buffers": [base64.b64encode(b).decode() for b in bufs],
        },
        st.sampled_from(["comm_open", "comm_msg", "comm_close"]),
        st.sampled_from(["c1", "c2"]),
        st.dictionaries(st.sampled_from(["state", "method", "x"]), json_value, max_size=3),
        st.lists(st.binary(max_size=2000), max_size=2),
    ),
    # Raw buffers, as the executor sends them: attached after the head.
    st.builds(
        lambda kind, cid, bufs: {
            "type": kind,
            "comm_id": cid,
            "target_name": "jupyter.widget",
            "data": {},
            "buffers": bufs,
        },
        st.sampled_from(["comm_open", "comm_msg", "comm_close"]),
        st.sampled_from(["c1", "c2"]),
        st.lists(st.binary(max_size=3000), min_size=1, max_size=3),
    ),
    st.builds(lambda w: {"type": "clear_output", "wait": w}, st.booleans()),
    st.builds(
        lambda e, v, tb: {"type": "error", "ename": e, "evalue": v, "traceback": tb},
        text,
        text,
        st.lists(text, max_size=4),
    ),
    st.builds(
        lambda lvl, m: {"type": "log", "level": lvl, "message": m},
        st.sampled_from(["debug", "info", "warning", "error"]),
        text,
    ),
    st.builds(
        lambda ev, rule: {"type": "audit", "event": ev, "rule": rule, "action": "deny"},
        st.sampled_from(["open", "seccomp", "lock", "import"]),
        st.sampled_from(["SKP240", "SECCOMP", "LOCK", ""]),
    ),
    st.builds(lambda p: {"type": "input_request", "prompt": p}, text),
    st.builds(lambda pid: {"type": "snapshot", "pid": pid}, st.integers(0, 2**31)),
    st.builds(lambda n: {"type": "oversized", "kind": "display_data", "bytes": n}, st.integers(0)),
    st.builds(
        lambda i, status: {"type": "execute_reply", "id": i, "status": status},
        st.integers(-5, 5),
        st.sampled_from(["ok", "error"]),
    ),
)


def _frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


adversarial_bodies = st.one_of(
    st.binary(max_size=400),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(1, 60_000).map(lambda n: b"[" + b"1.5," * n + b"1]"),
    st.just(b"[" + b"0," * MAX_VALUES + b"0]"),
    st.integers(1, 20_000).map(lambda n: b"{" + b",".join(b'"%x":0' % i for i in range(n)) + b"}"),
    st.sampled_from(
        [
            b'{"type":"done","id":NaN}',
            b'{"type":"stream","name":"stdout","text":"\\ud800\\udfff\\ud800"}',
            b'{"type":"stream","name":"stdout","text":"\xff\xfe"}',
            b'{"type":"done","id":' + b"9" * 5000 + b"}",
            b'{"type":"display_data","data":{"application/json":1e999}}',
            b'{"type":"relay_notice","text":"forged"}',
            b"",
        ]
    ),
    json_value.map(lambda v: json.dumps(v).encode()),
)

# Bundles with values large enough to travel attached (sandbox_kernel/framing.py).
large_bundles = st.builds(
    lambda kind, data, big, did: {
        "type": kind,
        "data": {**data, **big},
        "metadata": {},
        "transient": {"display_id": did},
    },
    st.sampled_from(["display_data", "update_display_data", "execute_result"]),
    st.dictionaries(mime, text, max_size=2),
    st.dictionaries(
        st.sampled_from(["image/png", "text/html", "text/plain", "x/y"]),
        # Just over the attaching size: larger values would only slow the fuzzer down.
        st.tuples(
            st.integers(ATTACH_MIN_BYTES, ATTACH_MIN_BYTES + 4096), st.sampled_from('Aé<\\"\n')
        ).map(lambda nc: nc[1] * (nc[0] // len(nc[1].encode()))),
        min_size=1,
        max_size=2,
    ),
    st.sampled_from(["d1", "d2"]),
)


def _encoded(message: dict[str, Any]) -> bytes:
    return b"".join(encode_frame_parts(message)[0])


@st.composite
def hostile_attached(draw: st.DrawFn) -> bytes:
    """An attached body with one thing wrong, or several: lying lengths, a head that
    overruns, a missing or real placeholder, a JSON MIME type, bytes that are not UTF-8."""
    kind = draw(
        st.sampled_from(["display_data", "execute_result", "stream", "execute_reply", "comm_msg"])
    )
    key = draw(mime | st.just("<b>"))
    blob = draw(st.binary(max_size=300) | st.integers(0, 70_000).map(lambda n: b"A" * n))
    placeholder = draw(st.sampled_from([None, "text", 1]))
    length = draw(st.sampled_from([len(blob), len(blob) + 1, len(blob) - 1, -1, 2**40, True]))
    head: dict[str, Any] = {"type": kind, "data": {key: placeholder}, "transient": {}}
    if kind == "comm_msg":
        head.update(comm_id="c1", buffers=draw(st.sampled_from([[], ["YQ=="]])))
        head["attached_buffers"] = [length] if draw(st.booleans()) else draw(json_value)
    elif draw(st.booleans()):
        head["attached"] = {key: length}
    else:
        head["attached"] = draw(json_value)
    raw = json.dumps(head).encode()
    head_length = draw(st.sampled_from([len(raw), len(raw) + 1, len(raw) - 1, 0, 2**32 - 1]))
    body = ATTACHED + HEADER.pack(head_length) + raw + blob
    return body[: draw(st.integers(0, len(body)))] if draw(st.booleans()) else body


frames = st.one_of(
    valid_messages.map(_encoded),
    large_bundles.map(_encoded),
    adversarial_bodies.map(_frame),
    hostile_attached().map(_frame),
)
tails = st.one_of(
    st.just(b""),
    st.binary(min_size=1, max_size=3),  # half a header
    st.integers(5, 100).map(lambda n: HEADER.pack(n) + b'{"type":'),  # half a body
    st.sampled_from([struct.pack(">I", 0xFFFFFFFF), struct.pack(">I", MAX_FRAME_BYTES + 1)]),
)


@st.composite
def frame_streams(draw: st.DrawFn) -> tuple[bytes, list[int], int]:
    """Frames, the points at which the stream is cut into reads, and how many frames."""
    chosen = draw(st.lists(frames, min_size=1, max_size=12))
    data = b"".join(chosen) + draw(tails)
    # Fractions of the length, not integers bounded by it: hypothesis caches a
    # strategy per distinct bound, which a long run would pile up.
    fractions = draw(st.lists(st.floats(0.0, 1.0), max_size=12))
    cuts = {int(f * len(data)) for f in fractions}
    return data, sorted(cuts), len(chosen)


# -- running a stream -------------------------------------------------------------------


class Harness:
    """The kernel's relay objects, wired as in the kernel, with a recording session."""

    def __init__(self) -> None:
        self.kernel = FakeKernel()
        self.publisher = Publisher(
            IOPub(self.kernel.session, self.kernel.iopub_socket, self.kernel.ident),
            LIMITS,
            gate_settings(),
            pack=self.kernel.session.pack,
        )
        # Counted, not kept: a long run must not grow by what it records.
        self.logs = 0
        self.audits = 0
        self.executor = ExecutorProcess(
            {},
            sink=self.publisher,  # type: ignore[arg-type]
            env={},
            cwd="/",
            max_frame_bytes=MAX_FRAME_BYTES,
            frame_deadline_s=10.0,
            on_log=self._log,
            on_audit=self._audit,
        )

    def _log(self, level: str, message: str) -> None:
        self.logs += 1

    def _audit(self, record: dict[str, Any]) -> None:
        self.audits += 1

    def begin_cell(self) -> None:
        self.publisher.begin_cell({"header": {"msg_id": "cell-1"}})
        self.publisher.remember({"header": {"msg_id": "cell-1"}}, current=True)
        self.kernel.iopub_socket.messages.clear()
        # As the runner does when a cell starts: the per-cell log and audit quotas.
        self.executor._log_quota.reset()
        self.executor._audit_quota.reset()

    def feed(self, data: bytes, cuts: list[int], stats: Stats) -> None:
        reader = self.executor._reader
        points = [0, *cuts, len(data)]
        for start, end in itertools.pairwise(points):
            try:
                items = reader.feed(data[start:end])
            except RelayError as exc:
                items = getattr(exc, "items", [])
                stats.fatal += 1
                reader = self.executor._reader = self.executor._new_reader(MAX_FRAME_BYTES)
            for item in items:
                self.executor._handle(item)
        # End of stream: a half frame is dropped, as the runner does on its deadline.
        if reader.has_partial_frame:
            self.executor._reader = self.executor._new_reader(MAX_FRAME_BYTES)

    def check(self, stats: Stats) -> None:
        """The invariants, after one stream (and the cell's end)."""
        socket = self.kernel.iopub_socket
        before = len(socket.messages)
        self.executor._handle(dict(SENTINEL))
        assert len(socket.messages) == before + 1, "a valid frame after the stream was lost"
        assert socket.contents()[-1]["text"] == SENTINEL["text"]
        self.publisher.end_cell()
        self.executor._summarise_reports()
        assert self.executor._log_quota.records <= 100
        assert self.executor._audit_quota.records <= 100
        sizes = socket.sizes()
        assert max(sizes, default=0) <= LIMITS.max_message_bytes + 4096
        total_allowed = (
            LIMITS.max_cell_bytes + LIMITS.max_comm_bytes + NOTICE_ALLOWANCE_BYTES + 64 * 1024
        )
        assert sum(sizes) <= total_allowed, f"{sum(sizes)} bytes went out"
        # Bounded state: held updates and remembered parents do not pile up.
        assert len(self.publisher._held_updates) == 0
        assert len(self.publisher.parents) <= 256
        stats.sent_messages += len(sizes)
        stats.sent_bytes += sum(sizes)


def run_stream(harness: Harness, stream: tuple[bytes, list[int], int], stats: Stats) -> None:
    data, cuts, count = stream

    async def go() -> None:
        harness.begin_cell()
        harness.executor._stdin_allowed = False
        harness.feed(data, cuts, stats)
        harness.check(stats)
        for task in list(harness.executor._input_tasks):
            task.cancel()

    asyncio.run(go())
    stats.streams += 1
    stats.frames += count + 1
    stats.bytes_in += len(data)
