"""The trusted side's parser of executor bytes: bad input gets a clear error and loses nothing.

``sandbox_kernel.relay.reader`` is the only code that reads bytes from the
sandboxed executor. These tests feed it well-formed frames (which must come back
unchanged however the bytes are chunked), malformed frames (each must become one
:class:`FrameRejected` in its place, with its neighbours intact), and framing
errors (which must raise :class:`RelayError` at once, without allocating what
the header claims). The last section drives the runner's reader loop over a
socket pair, to pin down how a rejected frame or a dead channel reaches waiters.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import socket
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jupyter_client.session import json_packer

from sandbox_kernel import framing
from sandbox_kernel.errors import ExecutorDied, RelayError
from sandbox_kernel.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER,
    encode_frame,
    encode_frame_parts,
)
from sandbox_kernel.kernel.runner import ExecutorProcess
from sandbox_kernel.relay import reader
from sandbox_kernel.relay.reader import (
    CHILD_MESSAGE_TYPES,
    MAX_DEPTH,
    FrameReader,
    FrameRejected,
    decode_payload,
    validate_child_message,
)
from tests import relay_fuzz

Item = dict[str, Any] | FrameRejected

# No example database on disk, no wall-clock deadline: hangs are caught by
# pytest-timeout, and inputs are bounded so every example is fast.
FUZZ = settings(
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# For strategies that build nested JSON, which are slower to generate.
FUZZ_JSON = settings(FUZZ, max_examples=150)


def frame_of(body: bytes) -> bytes:
    """Length-prefix raw bytes, whatever they hold."""
    return HEADER.pack(len(body)) + body


def json_frame(value: Any) -> bytes:
    """A frame holding ``value`` as plain ASCII JSON (not through encode_frame)."""
    return frame_of(json.dumps(value).encode())


def feed_all(reader: FrameReader, chunks: Iterable[bytes]) -> list[Item]:
    items: list[Item] = []
    for chunk in chunks:
        items.extend(reader.feed(chunk))
    return items


def only(items: list[Item]) -> Item:
    assert len(items) == 1, items
    return items[0]


def rejected(value: Any) -> str:
    """Validate ``value``; it must be rejected. Return the reason."""
    with pytest.raises(FrameRejected) as info:
        validate_child_message(value)
    return str(info.value)


def stream(text: str, name: str = "stdout") -> dict[str, Any]:
    return {"type": "stream", "name": name, "text": text}


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------

ROUND_TRIP_TEXTS = [
    "",
    "plain ascii",
    "naïve café, 日本語, emoji 🐍, rtl עברית",
    "\x00\x01\x1f control characters \x7f",
    '"quotes" and \\backslashes\\ and \n newlines \t tabs',
    "\u2028\u2029 line separators",
    "x" * (3 * 1024 * 1024),  # several MB
    "é" * (1024 * 1024),  # non-ASCII, two bytes each
]


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS, ids=lambda t: repr(t[:20]) + f"-len{len(t)}")
def test_stream_round_trips(text: str) -> None:
    frame = encode_frame(stream(text))
    assert only(FrameReader().feed(frame)) == stream(text)


@pytest.mark.parametrize(
    ("text", "received"),
    [
        ("a\udc80b\ud800c", "a\ufffdb\ufffdc"),
        ("\udfff\udc00", "\ufffd\ufffd"),  # two low surrogates: not a pair
        ("before \ud800 lone high surrogate after", "before \ufffd lone high surrogate after"),
    ],
)
def test_lone_surrogates_travel_as_json_escapes_and_arrive_replaced(
    text: str, received: str
) -> None:
    frame = encode_frame(stream(text))
    body = frame[HEADER.size :]
    # The body is strict UTF-8 with the surrogates spelled as JSON escapes...
    assert "\\ud" in body.decode("utf-8", "strict")
    assert HEADER.unpack(frame[: HEADER.size]) == (len(body),)
    # ... and the reader turns each lone surrogate into U+FFFD: jupyter_client's
    # packer cannot encode most of them, and would fail on the kernel's side.
    assert only(FrameReader().feed(frame)) == stream(received)


def test_every_message_kind_round_trips() -> None:
    messages: list[dict[str, Any]] = [
        stream("out"),
        stream("err", "stderr"),
        {
            "type": "display_data",
            "data": {"text/plain": "x", "application/json": {"a": [1, 2.5, None, True]}},
            "metadata": {"isolated": True},
            "transient": {"display_id": "d1"},
        },
        {
            "type": "update_display_data",
            "data": {"text/html": "<b>y</b>"},
            "metadata": {},
            "transient": {"display_id": "d1"},
        },
        {
            "type": "execute_result",
            "execution_count": 3,
            "data": {"text/plain": "3"},
            "metadata": {},
        },
        {"type": "clear_output", "wait": True},
        {"type": "error", "ename": "ValueError", "evalue": "boom", "traceback": ["l1", "l2"]},
        {"type": "done", "id": 4},
        {
            "type": "comm_open",
            "comm_id": "c1",
            "target_name": "jupyter.widget",
            "data": {"state": {}},
            "metadata": {},
            "buffers": [base64.b64encode(b"\x00\xffbinary").decode()],
        },
        {"type": "log", "level": "warning", "message": "careful"},
    ]
    frames = b"".join(encode_frame(m) for m in messages)
    items = FrameReader().feed(frames)
    assert len(items) == len(messages)
    for sent, got in zip(messages, items, strict=True):
        assert isinstance(got, dict), got
        expected = dict(sent)
        if "buffers" in expected:
            expected["buffers"] = [base64.b64decode(b) for b in expected["buffers"]]
        assert got == expected


def test_execute_reply_keeps_only_its_schema() -> None:
    got = validate_child_message(
        {
            "type": "execute_reply",
            "id": 9,
            "status": "ok",
            "user_expressions": {"e": {"status": "ok", "data": {"text/plain": "1"}}},
            "payload": [{"source": "set_next_input", "text": "next"}],
        }
    )
    assert got == {
        "type": "execute_reply",
        "id": 9,
        "status": "ok",
        "user_expressions": {"e": {"status": "ok", "data": {"text/plain": "1"}, "metadata": {}}},
        "payload": [{"source": "set_next_input", "text": "next", "replace": False}],
        "stats": {},
    }


# Any text without surrogates: lone surrogates are replaced by U+FFFD on the
# way (tested on their own above), so they would not round-trip unchanged.
any_text = st.text(st.characters(codec=None, blacklist_categories=("Cs",)), max_size=200)
mime_types = st.sampled_from(["text/plain", "text/html", "image/svg+xml", "text/markdown"])
valid_messages = st.one_of(
    st.builds(stream, any_text, st.sampled_from(["stdout", "stderr"])),
    st.builds(
        lambda data: {"type": "display_data", "data": data, "metadata": {}, "transient": {}},
        st.dictionaries(mime_types, any_text, max_size=3),
    ),
    st.builds(lambda wait: {"type": "clear_output", "wait": wait}, st.booleans()),
    st.builds(lambda i: {"type": "done", "id": i}, st.integers(-(2**63), 2**63)),
)


@FUZZ
@given(messages=st.lists(valid_messages, max_size=8), cuts=st.lists(st.integers(0, 10**6)))
def test_any_chunking_yields_the_same_messages(
    messages: list[dict[str, Any]], cuts: list[int]
) -> None:
    data = b"".join(encode_frame(m) for m in messages)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    reader = FrameReader()
    assert feed_all(reader, chunks) == messages
    assert not reader.has_partial_frame
    assert reader.eof_error() is None


def test_one_byte_at_a_time() -> None:
    messages = [stream("héllo \u00e9"), {"type": "done", "id": 1}, stream("", "stderr")]
    frames = [encode_frame(m) for m in messages]
    ends = list(itertools.accumulate(len(f) for f in frames))
    data = b"".join(frames)
    reader = FrameReader()
    items: list[Item] = []
    seen_at: list[int] = []
    for i in range(len(data)):
        got = reader.feed(data[i : i + 1])
        items.extend(got)
        seen_at.extend([i + 1] * len(got))
        assert reader.has_partial_frame is (i + 1 not in ends)
    assert items == messages
    # Each message appears exactly when its last byte arrives, not before.
    assert seen_at == ends


def test_frames_of_exactly_the_limit_are_accepted() -> None:
    text = "y" * 2000
    frame = encode_frame(stream(text))
    reader = FrameReader(max_frame_bytes=len(frame) - HEADER.size)
    assert only(reader.feed(frame)) == stream(text)


# ---------------------------------------------------------------------------
# Framing errors: fatal, immediate, and without allocating the claimed size
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "length"),
    [
        (DEFAULT_MAX_FRAME_BYTES, 0xFFFFFFFF),
        (DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_FRAME_BYTES + 1),
        (1024 * 1024, 1024 * 1024 + 1),
    ],
    ids=["0xFFFFFFFF", "default-max+1", "configured-max+1"],
)
def test_oversized_header_is_fatal_at_once_and_allocates_nothing(limit: int, length: int) -> None:
    reader = FrameReader(max_frame_bytes=limit)
    # A valid frame before the bad header is still delivered.
    assert reader.feed(encode_frame(stream("kept"))) == [stream("kept")]
    tracemalloc.start()
    try:
        with pytest.raises(RelayError, match=rf"frame of {length} bytes exceeds") as info:
            reader.feed(HEADER.pack(length) + b"a few body bytes")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Fatal, not a skippable FrameRejected: the stream cannot be resynchronised.
    assert not isinstance(info.value, FrameRejected)
    assert peak < 256 * 1024, f"feeding a {length}-byte header allocated {peak} bytes"
    # The reader dropped what it held rather than keeping a growing buffer.
    assert not reader.has_partial_frame


def test_frames_before_an_oversized_header_in_the_same_feed_are_not_lost() -> None:
    reader = FrameReader()
    items: list[Item] = []
    error: RelayError | None = None
    try:
        items += reader.feed(encode_frame(stream("last words")) + HEADER.pack(0xFFFFFFFF))
        items += reader.feed(b"")
    except RelayError as exc:
        error = exc
        items += getattr(exc, "items", [])
    assert items == [stream("last words")]
    assert error is not None


def test_oversized_header_split_across_feeds_is_still_fatal() -> None:
    reader = FrameReader()
    header = HEADER.pack(0xFFFFFFFF)
    assert reader.feed(header[:3]) == []
    with pytest.raises(RelayError, match="exceeds"):
        reader.feed(header[3:])


@pytest.mark.parametrize(
    ("data", "partial"),
    [
        (b"", False),
        (b"\x00\x00", True),  # half a header
        (HEADER.pack(10), True),  # header, no body
        (HEADER.pack(10) + b'{"ty', True),  # header, half a body
        (encode_frame({"type": "done", "id": 1}), False),
    ],
    ids=["nothing", "half-header", "header-only", "half-body", "whole-frame"],
)
def test_eof_error_reports_a_partial_frame(data: bytes, partial: bool) -> None:
    reader = FrameReader()
    reader.feed(data)
    assert reader.has_partial_frame is partial
    error = reader.eof_error()
    if partial:
        assert isinstance(error, RelayError)
        assert "middle of a frame" in str(error)
    else:
        assert error is None


# ---------------------------------------------------------------------------
# Malformed bodies: each becomes one FrameRejected, in place
# ---------------------------------------------------------------------------

BAD_BODIES: dict[str, tuple[bytes, str]] = {
    "invalid-utf8": (b'{"type":"stream","name":"stdout","text":"\xff\xfe"}', "not valid UTF-8"),
    "overlong-utf8": (b'{"type":"done","id":1,"x":"\xc0\xaf"}', "not valid UTF-8"),
    "utf8-encoded-surrogate": (b'{"type":"done","id":1,"x":"\xed\xa0\x80"}', "not valid UTF-8"),
    "truncated-json": (b'{"type":"done","id":', "not valid JSON"),
    "trailing-garbage": (b'{"type":"done","id":1} {}', "not valid JSON"),
    "empty-body": (b"", "not valid JSON"),
    "NaN": (b'{"type":"done","id":NaN}', "non-standard JSON constant NaN"),
    "Infinity": (b'{"type":"done","id":Infinity}', "non-standard JSON constant Infinity"),
    "-Infinity": (b'{"type":"done","id":-Infinity}', "non-standard JSON constant -Infinity"),
    "50000-digit-int": (b'{"type":"done","id":' + b"7" * 50_000 + b"}", "not valid JSON"),
    "deep-100000-unclosed": (b"[" * 100_000, "nests too deeply"),
    "deep-100000-closed": (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
    "deep-100000-objects": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nests too deeply"),
    "not-an-object": (b"[1, 2, 3]", "not a JSON object"),
    "unknown-type": (b'{"type":"bogus"}', "unknown frame type 'bogus'"),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_body_is_rejected_between_intact_neighbours(name: str) -> None:
    body, reason = BAD_BODIES[name]
    before, after = stream("before"), stream("after", "stderr")
    data = encode_frame(before) + frame_of(body) + encode_frame(after)
    items = FrameReader().feed(data)
    assert len(items) == 3, items
    assert items[0] == before
    assert isinstance(items[1], FrameRejected)
    assert reason in str(items[1])
    assert items[2] == after


def test_many_rejections_in_one_batch_lose_nothing() -> None:
    sent: list[bytes] = []
    expected: list[Item | str] = []
    for i, (body, reason) in enumerate(BAD_BODIES.values()):
        sent += [encode_frame(stream(f"good {i}")), frame_of(body)]
        expected += [stream(f"good {i}"), reason]
    data = b"".join(sent)
    # Same result in one feed and in awkward 7-byte chunks.
    for chunks in ([data], [data[i : i + 7] for i in range(0, len(data), 7)]):
        items = feed_all(FrameReader(), chunks)
        assert len(items) == len(expected)
        for got, want in zip(items, expected, strict=True):
            if isinstance(want, str):
                assert isinstance(got, FrameRejected)
                assert want in str(got)
            else:
                assert got == want


def test_deep_nesting_is_a_frame_rejection_not_a_recursion_error() -> None:
    # Directly through decode_payload too: the caller must never see RecursionError.
    for body in (b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(FrameRejected, match="nests too deeply"):
            decode_payload(body)


def nested_list(levels: int, leaf: str = "") -> bytes:
    return (b"[" * levels) + leaf.encode() + (b"]" * levels)


def test_depth_limit_boundary() -> None:
    # Depth counts from 0 at the top level; nothing may sit deeper than MAX_DEPTH.
    assert decode_payload(nested_list(MAX_DEPTH + 1)) is not None  # deepest list at MAX_DEPTH
    with pytest.raises(FrameRejected, match=f"deeper than {MAX_DEPTH}"):
        decode_payload(nested_list(MAX_DEPTH + 2))
    assert decode_payload(nested_list(MAX_DEPTH, "1")) is not None  # the 1 sits at MAX_DEPTH
    with pytest.raises(FrameRejected, match=f"deeper than {MAX_DEPTH}"):
        decode_payload(nested_list(MAX_DEPTH + 1, "1"))


def test_depth_limit_inside_a_real_message() -> None:
    def display(levels: int) -> bytes:
        # frame (0) -> data (1) -> application/json value (2) -> nested lists
        inner = json.loads(nested_list(levels, "1"))
        return encode_frame({"type": "display_data", "data": {"application/json": inner}})

    ok = only(FrameReader().feed(display(MAX_DEPTH - 2)))
    assert isinstance(ok, dict)
    assert ok["type"] == "display_data"
    bad = only(FrameReader().feed(display(MAX_DEPTH - 1)))
    assert isinstance(bad, FrameRejected)
    assert f"deeper than {MAX_DEPTH}" in str(bad)


def test_too_many_values_are_rejected_before_decoding() -> None:
    body = b"[" + b",".join([b"0"] * reader.MAX_VALUES) + b"]"
    with pytest.raises(FrameRejected, match="JSON values"):
        decode_payload(body)
    # One fewer is fine.
    assert len(decode_payload(b"[" + b",".join([b"0"] * (reader.MAX_VALUES - 1)) + b"]")) == (
        reader.MAX_VALUES - 1
    )


def test_separators_inside_strings_are_not_values() -> None:
    # A CSV file printed whole: millions of commas, one string.
    text = "a,b:[c{" * 400_000
    frame = encode_frame(stream(text))
    assert reader.count_values(frame[HEADER.size :]) < 10
    assert only(FrameReader().feed(frame)) == stream(text)


def test_escaped_quotes_do_not_fool_the_string_count() -> None:
    body = json.dumps(stream('",' * 1_100_000 + "\\")).encode()
    assert reader.count_values(body) < 10
    assert decode_payload(body)["text"].startswith('",')


# The attacks of issue 10, each a body of ~8 MiB: (body, the worst cost per value).
COSTLY_BODIES = {
    "floats": b"[" + b"1.5," * 2_000_000 + b"1]",
    "distinct-keys": b"{" + b",".join(b'"%x":0' % i for i in range(1_000_000)) + b"}",
    "short-strings": b"[" + b'"ab",' * 1_600_000 + b'"a"]',
    "empty-lists": b"[" + b"[]," * 2_500_000 + b"[]]",
    "empty-objects": b"[" + b"{}," * 2_500_000 + b"{}]",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COSTLY_BODIES))
def test_each_frame_is_refused_before_it_costs_more_than_its_bound(name: str) -> None:
    body = COSTLY_BODIES[name]
    tracemalloc.start()
    try:
        with pytest.raises(FrameRejected, match="JSON values"):
            decode_payload(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Refused on the count: nothing the size of the document was built.
    assert peak < 1024 * 1024, f"{name}: refusing it took {peak} bytes"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COSTLY_BODIES))
def test_the_value_cost_bound_holds_for_the_worst_documents(name: str) -> None:
    """decoding_cost() is an upper bound on what decoding takes (the memory guard relies on it)."""
    body = COSTLY_BODIES[name]
    # A tenth of each: under MAX_VALUES, so it is decoded.
    cut = body[: len(body) // 10]
    cut = cut[: cut.rfind(b",")] + (b"}" if body.startswith(b"{") else b"]")
    tracemalloc.start()
    try:
        value = decode_payload(cut)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del value
    assert peak <= reader.decoding_cost(cut), (name, peak, reader.decoding_cost(cut))


def test_a_frame_that_would_cross_the_memory_limit_is_refused_with_the_setting() -> None:
    reader = FrameReader(headroom=lambda: 4 * 1024 * 1024)
    body = json.dumps(stream("x" * (2 * 1024 * 1024))).encode()
    [item, after] = reader.feed(frame_of(body) + encode_frame(stream("after")))
    assert isinstance(item, FrameRejected)
    assert "Limits.kernel_memory_mb" in str(item)
    assert after == stream("after")
    # With room enough, the same frame passes.
    assert only(FrameReader(headroom=lambda: 1 << 30).feed(frame_of(body)))["type"] == "stream"


def test_the_frame_limit_follows_the_message_cap() -> None:
    assert framing.frame_limit(framing.DEFAULT_MAX_MESSAGE_BYTES) == DEFAULT_MAX_FRAME_BYTES
    # A whole message of base64 buffers fits; so does the largest stream chunk.
    assert framing.frame_limit(9 * 1024 * 1024) > 12 * 1024 * 1024
    longest_chunk = encode_frame(stream("\x00" * framing.STREAM_FRAME_CHARS))
    assert len(longest_chunk) <= framing.frame_limit(1024)


def test_huge_integer_is_rejected_quickly_and_cleanly() -> None:
    items = FrameReader().feed(frame_of(b'{"type":"done","id":' + b"9" * 50_000 + b"}"))
    item = only(items)
    assert isinstance(item, FrameRejected)
    assert "integer" in str(item)


@pytest.mark.parametrize("number", [b"1e999", b"-1e999", b"9" * 50_000 + b".0"])
def test_overflowing_numbers_do_not_smuggle_infinity(number: bytes) -> None:
    body = b'{"type":"display_data","data":{"application/json":{"v":' + number + b"}}}"
    item = only(FrameReader().feed(frame_of(body)))
    if isinstance(item, dict):
        # Accepted: it must still be strict JSON, as NaN/Infinity rejection intends.
        json.dumps(item, allow_nan=False)


# ---------------------------------------------------------------------------
# Schema: types, fields, names
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        None,
        1,
        ["stream"],
        "",
        "bogus",
        "Stream",
        "relay_notice",
        "execute_request",
        "status",
        "shutdown_request",
        "input_reply",
        "comm_info_reply",
    ],
)
def test_unknown_or_trusted_only_types_are_rejected(kind: Any) -> None:
    value: dict[str, Any] = {"name": "stdout", "text": "x"}
    if kind is not None:
        value["type"] = kind
    assert "unknown frame type" in rejected(value)


def test_known_types_are_exactly_the_child_messages() -> None:
    # relay_notice is the trusted side's own kind: a child must never be able to send it.
    assert "relay_notice" not in CHILD_MESSAGE_TYPES
    assert {"stream", "execute_reply", "display_data", "done"} <= CHILD_MESSAGE_TYPES


@pytest.mark.parametrize(
    "value",
    [
        {"type": "done", "id": True},  # bool where int expected
        {"type": "done", "id": False},
        {"type": "done", "id": "1"},  # str where int expected
        {"type": "done", "id": 1.0},  # float where int expected
        {"type": "done"},  # missing
        {"type": "stream", "name": "stdout", "text": 5},  # int where str expected
        {"type": "stream", "name": "stdout", "text": None},
        {"type": "stream", "name": "stdout"},
        {"type": "execute_result", "execution_count": True, "data": {}},
        {"type": "clear_output", "wait": 1},  # int where bool expected
        {"type": "clear_output", "wait": "yes"},
        {"type": "error", "ename": 3, "evalue": "x"},
        {"type": "error", "ename": "E", "evalue": "x", "traceback": "not a list"},
        {"type": "error", "ename": "E", "evalue": "x", "traceback": ["ok", 2]},
        {"type": "error", "ename": "E" * 1001, "evalue": "x"},
        {"type": "execute_reply", "id": 1, "status": "maybe"},
        {"type": "execute_reply", "id": True, "status": "ok"},
        {"type": "execute_reply", "id": 1, "status": "ok", "payload": [{"source": "evil"}]},
        {"type": "execute_reply", "id": 1, "status": "ok", "user_expressions": {"e": 1}},
        {"type": "complete_reply", "id": 1, "matches": [1], "cursor_start": 0, "cursor_end": 0},
        {"type": "input_request", "prompt": "p", "password": "no"},
        {"type": "log", "level": "critical", "message": "x"},
        {"type": "exit", "code": True},
        {"type": "display_data", "data": "not a dict"},
        {"type": "display_data", "data": {}, "metadata": []},
        {"type": "display_data", "data": {}, "transient": "x"},
    ],
    ids=lambda v: repr(v)[:60],
)
def test_wrong_field_types_are_rejected(value: dict[str, Any]) -> None:
    rejected(value)


@pytest.mark.parametrize("name", ["iopub", "stdin", "shell", "STDOUT", "stdout ", "", "control"])
def test_stream_names_other_than_stdout_and_stderr_are_rejected(name: str) -> None:
    assert "not stdout or stderr" in rejected(stream("x", name))


def test_stream_name_must_be_a_string() -> None:
    rejected({"type": "stream", "name": ["stdout"], "text": "x"})


SPOOF = {
    "header": {"msg_id": "SPOOF-id", "session": "SPOOF-session", "msg_type": "execute_reply"},
    "parent_header": {"msg_id": "SPOOF-parent", "session": "SPOOF-session"},
    "signature": "SPOOF-signature",
    "msg_id": "SPOOF-msg-id",
    "msg_type": "execute_reply",
    "session": "SPOOF-session",
    "username": "SPOOF-user",
    "ident": "SPOOF-ident",
    "content": {"status": "ok"},
    "buffers": ["U1BPT0Y="],
    "channel": "shell",
}


@pytest.mark.parametrize(
    ("message", "allowed"),
    [
        (stream("visible"), {"type", "name", "text"}),
        ({"type": "display_data", "data": {}}, {"type", "data", "metadata", "transient"}),
        ({"type": "clear_output"}, {"type", "wait"}),
        ({"type": "done", "id": 1}, {"type", "id"}),
        (
            {"type": "execute_reply", "id": 1, "status": "ok"},
            {"type", "id", "status", "user_expressions", "payload", "stats"},
        ),
    ],
    ids=lambda v: v["type"] if isinstance(v, dict) else "",
)
def test_spoofed_jupyter_keys_are_dropped(message: dict[str, Any], allowed: set[str]) -> None:
    item = only(FrameReader().feed(encode_frame({**message, **SPOOF})))
    assert isinstance(item, dict)
    assert set(item) == allowed
    assert "SPOOF" not in json.dumps(item)


@pytest.mark.parametrize(
    "parent",
    [{"msg_id": "SPOOF"}, ["SPOOF"], 7, True, "", "S" * 129],
    ids=["dict", "list", "int", "bool", "empty", "129-chars"],
)
def test_parent_must_be_a_short_string(parent: Any) -> None:
    item = validate_child_message({**stream("x"), "parent": parent})
    assert "parent" not in item


def test_parent_msg_id_string_is_kept_for_the_kernel_to_look_up() -> None:
    # By design: the child may only name a request; the kernel maps it to a header it holds.
    item = validate_child_message({**stream("x"), "parent": "a" * 128})
    assert item["parent"] == "a" * 128


@pytest.mark.parametrize(
    "mime",
    [
        "not a mime",
        "text/html; charset=utf-8",
        "TEXT/HTML",
        "",
        "text/",
        "/html",
        "text",
        "text/html/extra",
        "a" * 128 + "/b",
        " text/html",
        "text/html ",
        "-text/html",
        "text\u00e9/html",
        "text/html\u0000",
    ],
    ids=repr,
)
def test_mime_keys_must_be_mime_types(mime: str) -> None:
    assert "is not a MIME type" in rejected({"type": "display_data", "data": {mime: "x"}})


def test_mime_key_with_trailing_newline_is_rejected() -> None:
    rejected({"type": "display_data", "data": {"text/html\n": "<b>x</b>"}})


@pytest.mark.parametrize(
    ("mime", "value"),
    [
        ("text/plain", 1),
        ("text/html", ["<b>", "</b>"]),
        ("image/png", None),
        ("text/plain", {"a": 1}),
        ("image/svg+xml", True),
        ("application/jsonx", {"a": 1}),  # not a JSON MIME type
        ("text/json", {"a": 1}),
    ],
    ids=repr,
)
def test_non_string_mime_values_are_rejected(mime: str, value: Any) -> None:
    assert "must be a string" in rejected({"type": "display_data", "data": {mime: value}})


@pytest.mark.parametrize(
    ("mime", "value"),
    [
        ("application/json", {"a": [1, {"b": None}]}),
        ("application/json", [1, 2]),
        ("application/json", 3),
        ("application/json", None),
        ("application/json", "a string"),
        ("application/vnd.plotly.v1+json", {"data": []}),
        ("application/vnd.jupyter.widget-view+json", {"model_id": "m"}),
    ],
    ids=repr,
)
def test_json_mime_types_take_any_json(mime: str, value: Any) -> None:
    item = validate_child_message({"type": "display_data", "data": {mime: value}})
    assert item["data"] == {mime: value}


def test_execute_result_and_page_payload_bundles_are_checked_too() -> None:
    rejected({"type": "execute_result", "execution_count": 1, "data": {"nope": "x"}})
    rejected(
        {
            "type": "execute_reply",
            "id": 1,
            "status": "ok",
            "payload": [{"source": "page", "data": {"text/plain": 5}}],
        }
    )


@pytest.mark.parametrize(
    "transient",
    [None, {}, {"display_id": ""}, {"display_id": 5}, {"display_id": "d" * 257}, {"other": "x"}],
    ids=repr,
)
def test_update_display_data_needs_a_display_id(transient: dict[str, Any] | None) -> None:
    value: dict[str, Any] = {"type": "update_display_data", "data": {"text/plain": "x"}}
    if transient is not None:
        value["transient"] = transient
    rejected(value)


def test_display_data_may_omit_display_id_but_not_misuse_it() -> None:
    item = validate_child_message({"type": "display_data", "data": {"text/plain": "x"}})
    assert item["transient"] == {}
    rejected({"type": "display_data", "data": {}, "transient": {"display_id": 1}})


@pytest.mark.parametrize(
    "buffers",
    [["not base64!"], ["aGVsbG8"], ["aGVs\nbG8="], ["é"], [5], "aGVsbG8=", [None]],
    ids=repr,
)
@pytest.mark.parametrize("kind", ["comm_open", "comm_msg", "comm_close"])
def test_comm_buffers_must_be_base64_strings(kind: str, buffers: Any) -> None:
    value = {"type": kind, "comm_id": "c", "target_name": "t", "data": {}, "buffers": buffers}
    rejected(value)


def test_comm_buffers_are_decoded() -> None:
    item = validate_child_message(
        {"type": "comm_msg", "comm_id": "c", "data": {}, "buffers": ["aGVsbG8=", ""]}
    )
    assert item["buffers"] == [b"hello", b""]


# ---------------------------------------------------------------------------
# Attached values (sandbox_kernel/framing.py): an output's large text after a JSON head
# ---------------------------------------------------------------------------

PNG_B64 = base64.b64encode(bytes(range(256)) * 400).decode()  # 136,536 characters
HTML = "<table>" + '<tr><td>é "q" \\ \n</td></tr>' * 4000 + "</table>"


def bundle(**data: Any) -> dict[str, Any]:
    return {
        "type": "display_data",
        "data": {"text/plain": "<Image>", **data},
        "metadata": {"image/png": {"width": 10}},
        "transient": {},
        "parent": "cell-1",
    }


def attached_frame(head: Any, *blobs: bytes, head_length: int | None = None) -> bytes:
    """An attached body built by hand: marker, head length, head, then the blobs."""
    raw = head if isinstance(head, bytes) else json.dumps(head).encode()
    length = len(raw) if head_length is None else head_length
    return frame_of(framing.ATTACHED + HEADER.pack(length) + raw + b"".join(blobs))


def png_head(**changes: Any) -> dict[str, Any]:
    head = bundle(**{"image/png": None})
    head["attached"] = {"image/png": len(PNG_B64)}
    head.update(changes)
    return head


@pytest.mark.parametrize(
    "message",
    [
        bundle(**{"image/png": PNG_B64}),
        bundle(**{"image/png": PNG_B64, "text/html": HTML, "image/jpeg": "small"}),
        {**bundle(**{"text/html": HTML}), "type": "execute_result", "execution_count": 3},
        {
            **bundle(**{"image/png": PNG_B64}),
            "type": "update_display_data",
            "transient": {"display_id": "d"},
        },
    ],
    ids=["png", "png+html+small", "execute_result", "update_display_data"],
)
def test_large_bundle_values_are_attached_and_arrive_as_the_same_message(
    message: dict[str, Any],
) -> None:
    parts, length = encode_frame_parts(message)
    frame = b"".join(parts)
    assert len(parts) > 1
    assert frame[HEADER.size : HEADER.size + 1] == framing.ATTACHED
    assert HEADER.unpack(frame[: HEADER.size]) == (length,) == (len(frame) - HEADER.size,)
    # The attached values are not in the JSON head, escaped or otherwise.
    assert PNG_B64[:1000].encode() not in parts[0]
    assert b"<table>" not in parts[0]
    plain = only(FrameReader().feed(encode_frame(message)))
    assert only(FrameReader().feed(frame)) == plain
    # Key order too (a frontend may care): the placeholders keep each value's place.
    assert list(only(FrameReader().feed(frame))["data"]) == list(message["data"])
    # Cut anywhere, one byte at a time across the boundaries, the same message.
    assert (
        only(feed_all(FrameReader(), [frame[i : i + 7777] for i in range(0, len(frame), 7777)]))
        == plain
    )


@pytest.mark.parametrize(
    "message",
    [
        bundle(**{"image/png": "A" * 1000}),  # small: stays in the JSON
        bundle(**{"application/json": "A" * 200_000}),  # JSON types are never attached
        bundle(**{"text/plain": "a\udc80" * 40_000}),  # a lone surrogate is no UTF-8
        {"type": "stream", "name": "stdout", "text": "x" * 200_000},
    ],
    ids=["small", "json-mime", "surrogates", "stream"],
)
def test_what_is_not_attached_travels_as_plain_json(message: dict[str, Any]) -> None:
    parts, length = encode_frame_parts(message)
    assert parts == [encode_frame(message)]
    assert length == len(parts[0]) - HEADER.size


def test_the_executor_writes_an_attached_frame_in_parts_that_arrive_whole() -> None:
    from sandbox_kernel.child.channel import Channel

    ours, theirs = socket.socketpair()
    try:
        # A small send buffer, so that sendmsg writes part of the frame at a time.
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        channel = Channel(theirs)
        message = bundle(**{"image/png": PNG_B64, "text/html": HTML})
        sender = threading.Thread(
            target=lambda: [channel.send(message), channel.send(stream("after"))]
        )
        sender.start()
        reader = FrameReader()
        items: list[Item] = []
        ours.settimeout(10)
        while len(items) < 2:
            items += reader.feed(ours.recv(1000))
        sender.join(10)
        assert items == [only(FrameReader().feed(encode_frame(message))), stream("after")]
    finally:
        ours.close()
        theirs.close()


HOSTILE_ATTACHED: list[tuple[str, bytes, str]] = [
    # (name, frame, what the reason names)
    ("truncated: no head length", frame_of(framing.ATTACHED + b"\x00\x00"), "too short"),
    ("head overruns the body", attached_frame(png_head(), head_length=10**6), "overruns"),
    (
        "lengths claim more than is there",
        attached_frame(png_head(attached={"image/png": len(PNG_B64) + 1}), PNG_B64.encode()),
        "add up",
    ),
    (
        "lengths claim less than is there",
        attached_frame(png_head(attached={"image/png": 5}), PNG_B64.encode()),
        "add up",
    ),
    (
        "a second value smuggled after the first",
        attached_frame(png_head(), PNG_B64.encode(), b'{"type":"done","id":1}'),
        "add up",
    ),
    (
        "negative length",
        attached_frame(png_head(attached={"image/png": -1, "text/plain": 1}), b""),
        "non-negative",
    ),
    ("bool length", attached_frame(png_head(attached={"image/png": True}), b"A"), "non-negative"),
    ("float length", attached_frame(png_head(attached={"image/png": 1.0}), b"A"), "non-negative"),
    ("no attached map", attached_frame(bundle(**{"image/png": None})), "lacks"),
    ("empty attached map", attached_frame(png_head(attached={})), "lacks"),
    ("attached is a list", attached_frame(png_head(attached=[["image/png", 1]]), b"A"), "lacks"),
    (
        "no placeholder: the value would replace real text",
        attached_frame(png_head(attached={"text/plain": 3}), b"abc"),
        "placeholder",
    ),
    (
        "not in data at all",
        attached_frame(png_head(attached={"text/html": 3}), b"abc"),
        "placeholder",
    ),
    (
        "a JSON MIME type",
        attached_frame(
            {**bundle(**{"application/json": None}), "attached": {"application/json": 2}}, b"{}"
        ),
        "JSON",
    ),
    (
        "wrong MIME type (not a MIME type)",
        attached_frame({**bundle(**{"<script>": None}), "attached": {"<script>": 1}}, b"A"),
        "MIME",
    ),
    (
        "a frame type that has no bundle",
        attached_frame({**stream("x"), "attached": {"text": 1}}, b"A"),
        "carry no attached",
    ),
    (
        "a reply may not attach (it could smuggle a token-less reply body)",
        attached_frame(
            {"type": "execute_reply", "id": 1, "status": "ok", "attached": {"x/y": 1}}, b"A"
        ),
        "carry no attached",
    ),
    ("head is not an object", attached_frame([1, 2]), "not a JSON object"),
    ("head is not JSON", attached_frame(b"{nope", b"A"), "not valid JSON"),
    (
        "invalid UTF-8 in the value",
        attached_frame(png_head(attached={"image/png": 3}), b"\xff\xfe\xfd"),
        "not valid UTF-8",
    ),
    (
        "an encoded surrogate in the value",
        attached_frame(
            png_head(attached={"image/png": 3}), "\ud800".encode("utf-8", "surrogatepass")
        ),
        "not valid UTF-8",
    ),
    (
        "a value cut in the middle of a character",
        attached_frame(png_head(attached={"image/png": 1}), "é".encode()[:1]),
        "not valid UTF-8",
    ),
]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [(f, r) for _, f, r in HOSTILE_ATTACHED],
    ids=[name for name, _, _ in HOSTILE_ATTACHED],
)
def test_hostile_attached_frames_are_rejected_between_intact_neighbours(
    frame: bytes, reason: str
) -> None:
    good = encode_frame(stream("before")), encode_frame(stream("after"))
    items = FrameReader().feed(good[0] + frame + good[1])
    assert len(items) == 3, items
    assert items[0] == stream("before")
    assert items[2] == stream("after")
    assert isinstance(items[1], FrameRejected), items[1]
    assert reason in str(items[1])


def comm(buffers: list[Any]) -> dict[str, Any]:
    return {
        "type": "comm_msg",
        "comm_id": "c1",
        "data": {"method": "update"},
        "metadata": {"version": "2.1.0"},
        "buffers": buffers,
    }


@pytest.mark.parametrize(
    "raw", [[b"\x00\x01binary"], [b"", bytes(range(256)) * 4000, b"\xff"]], ids=["one", "three"]
)
def test_comm_buffers_travel_attached_as_bytes_and_arrive_as_from_base64(raw: list[bytes]) -> None:
    parts, _ = encode_frame_parts(comm(raw))
    frame = b"".join(parts)
    assert frame[HEADER.size : HEADER.size + 1] == framing.ATTACHED
    # No base64 anywhere: the head holds the lengths, the bytes follow it as they are.
    assert base64.b64encode(raw[-1]) not in parts[0] or not raw[-1]
    as_base64 = comm([base64.b64encode(b).decode() for b in raw])
    expected = only(FrameReader().feed(encode_frame(as_base64)))
    assert only(FrameReader().feed(frame)) == expected
    assert expected["buffers"] == raw


def comm_frame(head: dict[str, Any], *blobs: bytes) -> bytes:
    return attached_frame({**comm([]), **head}, *blobs)


HOSTILE_COMM_ATTACHED: list[tuple[str, bytes, str]] = [
    ("lengths claim more", comm_frame({"attached_buffers": [4]}, b"abc"), "add up"),
    ("lengths claim less", comm_frame({"attached_buffers": [2]}, b"abc"), "add up"),
    ("no lengths", comm_frame({}, b"abc"), "lacks its buffer lengths"),
    ("empty lengths", comm_frame({"attached_buffers": []}, b""), "lacks its buffer lengths"),
    (
        "base64 buffers beside attached ones",
        comm_frame({"buffers": ["YQ=="], "attached_buffers": [1]}, b"a"),
        "has buffers",
    ),
    ("bool length", comm_frame({"attached_buffers": [True]}, b"a"), "non-negative"),
    ("negative length", comm_frame({"attached_buffers": [-1, 2]}, b"a"), "non-negative"),
    ("lengths not a list", comm_frame({"attached_buffers": {"0": 1}}, b"a"), "lacks"),
    (
        "attached buffers on a stream",
        attached_frame({**stream("x"), "attached_buffers": [1]}, b"a"),
        "carry no attached",
    ),
    (
        "a head that fails the comm schema",
        comm_frame({"comm_id": 5, "attached_buffers": [1]}, b"a"),
        "wrong type",
    ),
]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [(f, r) for _, f, r in HOSTILE_COMM_ATTACHED],
    ids=[name for name, _, _ in HOSTILE_COMM_ATTACHED],
)
def test_hostile_attached_comm_frames_are_rejected(frame: bytes, reason: str) -> None:
    items = FrameReader().feed(encode_frame(stream("a")) + frame + encode_frame(stream("b")))
    assert len(items) == 3, items
    assert isinstance(items[1], FrameRejected), items[1]
    assert reason in str(items[1])


def test_bytes_buffers_cannot_come_from_json() -> None:
    """decode_buffers() takes bytes as already decoded: only an attached frame makes
    them, never JSON, so a plain frame's buffers are always base64-checked."""
    item = only(FrameReader().feed(json_frame(comm(["not base64!"]))))
    assert isinstance(item, FrameRejected)
    assert "base64" in str(item)


def test_an_attached_frame_over_the_limit_is_fatal_before_anything_is_read() -> None:
    message = bundle(**{"image/png": PNG_B64})
    parts, length = encode_frame_parts(message)
    with pytest.raises(RelayError, match="exceeds"):
        FrameReader(max_frame_bytes=length - 1).feed(parts[0])
    assert only(FrameReader(max_frame_bytes=length).feed(b"".join(parts)))["type"] == "display_data"


def test_attached_bytes_count_in_the_decoding_bound() -> None:
    """The memory bound covers the attached bytes (9 per byte), and the values are
    counted in the head alone: the attached text is one value, whatever it holds."""
    csv = ",".join(["1"] * 1_500_000)
    message = bundle(**{"text/csv": csv})
    frame = b"".join(encode_frame_parts(message)[0])
    body = frame[HEADER.size :]
    assert reader.count_values(body) > 1_500_000
    assert reader.decoding_cost(body) >= len(body) * reader.BYTE_COST
    assert (
        reader.decoding_cost(body) < len(body) * reader.BYTE_COST + 1000 * reader.VALUE_COST_BYTES
    )
    assert only(FrameReader().feed(frame))["data"]["text/csv"] == csv
    # Under a memory limit it does not fit in, it is refused with the setting named.
    tight = FrameReader(headroom=lambda: len(body) * 2)
    assert "kernel_memory_mb" in str(only(tight.feed(frame)))


# ---------------------------------------------------------------------------
# Fuzzing: nothing but dicts, FrameRejected or RelayError ever comes out
# ---------------------------------------------------------------------------


def check_items(items: list[Item]) -> None:
    for item in items:
        assert isinstance(item, (dict, FrameRejected)), item
        if isinstance(item, dict):
            assert item["type"] in CHILD_MESSAGE_TYPES


@FUZZ
@given(data=st.binary(max_size=4096), cuts=st.lists(st.integers(0, 4096), max_size=20))
@pytest.mark.parametrize("limit", [DEFAULT_MAX_FRAME_BYTES, 1024 * 1024])
def test_random_bytes_never_raise_anything_else(data: bytes, cuts: list[int], limit: int) -> None:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    reader = FrameReader(max_frame_bytes=limit)
    try:
        for a, b in itertools.pairwise(points):
            check_items(reader.feed(data[a:b]))
    except FrameRejected:
        pytest.fail("feed raised FrameRejected instead of returning it")
    except RelayError:
        return
    error = reader.eof_error()
    assert error is None or isinstance(error, RelayError)


# JSON-ish documents aimed at the validators: known types, known field names,
# values of every JSON type.
FIELD_NAMES = [
    "type",
    "id",
    "name",
    "text",
    "data",
    "metadata",
    "transient",
    "display_id",
    "status",
    "execution_count",
    "wait",
    "ename",
    "evalue",
    "traceback",
    "user_expressions",
    "payload",
    "source",
    "start",
    "replace",
    "keepkernel",
    "filename",
    "line_number",
    "stats",
    "prompt",
    "password",
    "comm_id",
    "target_name",
    "target_module",
    "buffers",
    "matches",
    "cursor_start",
    "cursor_end",
    "found",
    "pid",
    "code",
    "signal",
    "oom",
    "level",
    "message",
    "mechanism",
    "error",
    "isolation",
    "event",
    "rule",
    "action",
    "detail",
    "parent",
    "text/plain",
    "application/json",
    "x+json",
]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from([*sorted(CHILD_MESSAGE_TYPES), "ok", "error", "stdout", "page", "aGk="]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=5), inner, max_size=6)
    ),
    max_leaves=30,
)
child_like = st.builds(
    lambda kind, fields: {**fields, "type": kind},
    st.sampled_from(sorted(CHILD_MESSAGE_TYPES)),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=10),
)


@FUZZ_JSON
@given(value=st.one_of(child_like, json_values))
def test_validators_only_accept_or_reject(value: Any) -> None:
    try:
        item = validate_child_message(value)
    except FrameRejected:
        return
    assert item["type"] in CHILD_MESSAGE_TYPES
    # What passes is re-serialisable for the Jupyter session.
    json.dumps(item, allow_nan=False, default=lambda b: base64.b64encode(b).decode())


@settings(FUZZ, max_examples=60)
@given(
    bodies=st.lists(
        st.one_of(st.binary(max_size=200), child_like.map(lambda v: json.dumps(v).encode())),
        min_size=1,
        max_size=10,
    )
)
def test_framed_arbitrary_bodies_give_one_item_each(bodies: list[bytes]) -> None:
    items = FrameReader().feed(b"".join(frame_of(b) for b in bodies))
    assert len(items) == len(bodies)
    check_items(items)


# ---------------------------------------------------------------------------
# The runner's reader loop over a socket pair: how items reach waiters
# ---------------------------------------------------------------------------


@dataclass
class RecordingSink:
    """Serialises each message as the Jupyter session would, then records it."""

    published: list[dict[str, Any]] = field(default_factory=list)

    def publish(self, message: dict[str, Any]) -> None:
        json_packer({k: v for k, v in message.items() if k != "buffers"})
        self.published.append(message)

    async def request_input(self, prompt: str, password: bool, parent: str) -> str:
        return ""


@dataclass
class Loop:
    executor: ExecutorProcess
    child: socket.socket
    sink: RecordingSink
    logs: list[tuple[str, str]]


@pytest.fixture
async def reader_loop() -> AsyncIterator[Loop]:
    """An ExecutorProcess whose relay is one end of a socket pair; the test is the child."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent.setblocking(False)
    sink = RecordingSink()
    logs: list[tuple[str, str]] = []
    executor = ExecutorProcess(
        {},
        sink=sink,
        env={},
        cwd="/",
        max_frame_bytes=1024 * 1024,
        frame_deadline_s=0.5,
        on_log=lambda level, message: logs.append((level, message)),
    )
    executor.relay = parent
    executor._exited.set()  # no supervisor here: do not wait for an exit status
    executor._tasks = [asyncio.ensure_future(executor._read_relay())]
    try:
        yield Loop(executor, child, sink, logs)
    finally:
        for task in executor._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        parent.close()
        child.close()


# The secret the kernel sent with a request; the executor's reply must carry it.
REQUEST_TOKEN = "0123456789abcdef0123456789abcdef"


async def pending(loop: Loop, request_id: int) -> asyncio.Future[dict[str, Any]]:
    future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    loop.executor._pending[request_id] = future
    loop.executor._expected[request_id] = ("execute_reply", REQUEST_TOKEN)
    loop.executor._next_id = max(loop.executor._next_id, request_id + 1)
    return future


async def test_reader_loop_publishes_a_notice_in_place_of_a_bad_frame(reader_loop: Loop) -> None:
    future = await pending(reader_loop, 7)
    reader_loop.child.sendall(
        encode_frame(stream("one"))
        + json_frame({"type": "bogus"})
        + frame_of(b"[" * 100_000)
        + encode_frame(stream("two"))
        + json_frame({"type": "execute_reply", "id": 7, "status": "ok", "token": REQUEST_TOKEN})
    )
    reply = await asyncio.wait_for(future, 5)
    assert reply["status"] == "ok"
    kinds = [(m["type"], m.get("text")) for m in reader_loop.sink.published]
    assert kinds[0] == ("stream", "one")
    assert kinds[1][0] == "relay_notice"
    assert "unknown frame type 'bogus'" in str(kinds[1][1])
    assert kinds[2][0] == "relay_notice"
    assert "nests too deeply" in str(kinds[2][1])
    assert kinds[3] == ("stream", "two")
    assert len(kinds) == 4
    assert reader_loop.executor.dead_reason is None
    assert sum(level == "warning" for level, _ in reader_loop.logs) == 2


async def test_reader_loop_fails_waiters_on_an_oversized_header(reader_loop: Loop) -> None:
    future = await pending(reader_loop, 1)
    reader_loop.child.sendall(HEADER.pack(0xFFFFFFFF))
    with pytest.raises(ExecutorDied, match="frame of 4294967295 bytes exceeds"):
        await asyncio.wait_for(future, 5)


async def test_reader_loop_fails_waiters_on_a_stalled_frame(reader_loop: Loop) -> None:
    future = await pending(reader_loop, 1)
    reader_loop.child.sendall(HEADER.pack(100) + b'{"type":')
    started = asyncio.get_running_loop().time()
    with pytest.raises(ExecutorDied, match="left a frame unfinished"):
        await asyncio.wait_for(future, 5)
    assert asyncio.get_running_loop().time() - started < 3


async def test_reader_loop_reports_eof_in_the_middle_of_a_frame(reader_loop: Loop) -> None:
    future = await pending(reader_loop, 1)
    reader_loop.child.sendall(HEADER.pack(100) + b"{")
    reader_loop.child.shutdown(socket.SHUT_WR)
    with pytest.raises(ExecutorDied, match="middle of a frame"):
        await asyncio.wait_for(future, 5)


async def test_reader_loop_ignores_fds_passed_with_scm_rights(reader_loop: Loop) -> None:
    future = await pending(reader_loop, 3)
    read_end, write_end = os.pipe()
    try:
        before = len(os.listdir("/proc/self/fd"))
        frame = json_frame(
            {"type": "execute_reply", "id": 3, "status": "ok", "token": REQUEST_TOKEN}
        )
        assert socket.send_fds(reader_loop.child, [frame], [read_end] * 100) == len(frame)
        reply = await asyncio.wait_for(future, 5)
        assert reply["status"] == "ok"
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(read_end)
        os.close(write_end)


async def test_reader_loop_survives_a_message_the_session_cannot_serialise(
    reader_loop: Loop,
) -> None:
    future = await pending(reader_loop, 5)
    reader_loop.child.sendall(
        encode_frame(stream("\ud800"))
        + json_frame({"type": "execute_reply", "id": 5, "status": "ok", "token": REQUEST_TOKEN})
    )
    # Either the reply still arrives, or the waiter is told the executor died: never a hang.
    with contextlib.suppress(ExecutorDied):
        await asyncio.wait_for(future, 3)


async def test_reply_of_the_wrong_kind_does_not_answer_a_request(reader_loop: Loop) -> None:
    executor = reader_loop.executor
    request = asyncio.ensure_future(executor.request({"op": "execute", "code": "1"}))
    await asyncio.sleep(0.05)
    assert not request.done()
    request_id = next(iter(executor._pending))
    token = executor._expected[request_id][1]
    reader_loop.child.sendall(
        json_frame({"type": "done", "id": request_id, "token": token})
        + json_frame(
            {
                "type": "complete_reply",
                "id": request_id,
                "matches": [],
                "cursor_start": 0,
                "cursor_end": 0,
            }
        )
        + json_frame({"type": "execute_reply", "id": request_id, "status": "ok", "token": token})
    )
    reply = await asyncio.wait_for(request, 5)
    assert reply["type"] == "execute_reply"


async def test_a_reply_without_the_requests_token_is_forged(reader_loop: Loop) -> None:
    """A cell can write frames to the relay; without the request's token they answer nothing."""
    executor = reader_loop.executor
    request = asyncio.ensure_future(executor.request({"op": "execute", "code": "1"}))
    await asyncio.sleep(0.05)
    request_id = next(iter(executor._pending))
    token = executor._expected[request_id][1]
    assert len(token) == 32
    reader_loop.child.sendall(
        json_frame({"type": "execute_reply", "id": request_id, "status": "ok"})
        + json_frame({"type": "execute_reply", "id": request_id, "status": "ok", "token": "0" * 32})
    )
    await asyncio.sleep(0.2)
    assert not request.done()
    assert executor.forged_replies == 2
    reader_loop.child.sendall(
        json_frame({"type": "execute_reply", "id": request_id, "status": "ok", "token": token})
    )
    assert (await asyncio.wait_for(request, 5))["status"] == "ok"


def test_the_executor_sends_a_stand_in_for_an_output_too_large_for_a_frame() -> None:
    from sandbox_kernel.child.channel import Channel

    ours, theirs = socket.socketpair()
    try:
        channel = Channel(theirs)
        channel.max_frame_bytes = 64 * 1024
        big = {"type": "display_data", "data": {"image/png": "A" * 100_000}, "parent": "p"}
        # The image is attached (sandbox_kernel/framing.py): 100,000 bytes after a small head.
        parts, length = encode_frame_parts(big)
        assert len(parts) == 2
        assert 100_000 < length < 100_100
        channel.send(big)
        channel.send(stream("after"))
        ours.settimeout(5)
        data = b""
        reader = FrameReader(max_frame_bytes=64 * 1024)
        items: list[Item] = []
        while len(items) < 2:
            data = ours.recv(65536)
            items += reader.feed(data)
        assert items[0] == {
            "type": "oversized",
            "kind": "display_data",
            "bytes": length + 4,
            "parent": "p",
        }
        assert items[1] == stream("after")
    finally:
        ours.close()
        theirs.close()


# ---------------------------------------------------------------------------
# The trusted side end to end: reader, dispatch and publisher (tests/relay_fuzz.py).
# A fixed-seed slice here; bench/fuzz_relay.py runs the long version.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def relay_harness() -> Any:
    from tests.relay_fuzz import Harness

    return Harness()


@settings(FUZZ, max_examples=150, derandomize=True)
@given(stream=relay_fuzz.frame_streams())
def test_fuzzed_frame_streams_never_crash_overflow_or_stop_the_relay(
    relay_harness: Any, stream: tuple[bytes, list[int], int]
) -> None:
    relay_fuzz.run_stream(relay_harness, stream, relay_fuzz.Stats())


async def test_one_input_request_at_a_time_and_only_when_stdin_is_allowed(
    reader_loop: Loop,
) -> None:
    executor, sink = reader_loop.executor, reader_loop.sink
    request = json_frame({"type": "input_request", "prompt": "? "})
    # No cell allowed stdin: dropped, as a protocol violation.
    reader_loop.child.sendall(request)
    await asyncio.sleep(0.1)
    assert not executor._input_tasks
    assert [m["type"] for m in sink.published] == ["protocol_violation"]
    # While one allowed: the first is asked, the second waits for nothing.
    executor._stdin_allowed = True
    reader_loop.child.sendall(request + request)
    await asyncio.sleep(0.1)
    assert [m["type"] for m in sink.published] == ["protocol_violation"] * 2
    # The one asked was answered (the test's sink answers at once).
    assert reader_loop.child.recv(4096).endswith(b'"op":"input_reply","value":""}')
    assert executor.protocol_violations == 2


async def test_only_the_snapshot_announcement_the_executor_owes_is_taken(
    reader_loop: Loop,
) -> None:
    executor = reader_loop.executor
    reader_loop.child.sendall(json_frame({"type": "snapshot", "pid": 41}))
    await asyncio.sleep(0.1)
    assert executor.snapshot_pid is None  # nothing owed yet: the cell's own
    reader_loop.child.sendall(
        json_frame({"type": "ready", "pid": 2})
        + json_frame({"type": "snapshot", "pid": 42})
        + json_frame({"type": "snapshot", "pid": 43})
    )
    await asyncio.sleep(0.1)
    assert executor.snapshot_pid == 42
    assert executor.protocol_violations == 2
