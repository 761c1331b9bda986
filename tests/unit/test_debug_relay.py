"""The trusted side of the Jupyter debugger: what a debug_request may carry, what the
frontend may name, and what the one parser of child bytes accepts back."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox_kernel.child.cellnames import HASH_SEED, murmur2_x86
from sandbox_kernel.kernel.debug import (
    MAX_REQUEST_BYTES,
    DebugSession,
    EventRate,
    check_request,
    debugger_unavailable,
    refusal,
)
from sandbox_kernel.policy import PolicySettings
from sandbox_kernel.relay.reader import FrameRejected, validate_child_message

STANDARD = PolicySettings("standard")


def request(command: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "request", "seq": 7, "command": command, "arguments": arguments}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("initialize", "must be an object"),
        ({"type": "event", "seq": 1, "command": "next"}, "DAP request"),
        (request("launch", program="/bin/sh"), "'launch' is not available"),
        (request("runInTerminal", args=["sh"]), "not available"),
        (request("completions", text="os."), "not available"),
        ({"type": "request", "seq": True, "command": "threads"}, "integer seq"),
        ({"type": "request", "seq": 1, "command": "threads", "arguments": []}, "arguments"),
        (request("evaluate", expression=7), "must be a string"),
    ],
)
def test_malformed_or_unknown_requests_are_refused(content: Any, why: str) -> None:
    reason = check_request(content, STANDARD)
    assert reason is not None
    assert why in reason


def test_the_commands_jupyterlab_sends_pass() -> None:
    for command in ("initialize", "attach", "debugInfo", "stackTrace", "next", "continue"):
        assert check_request(request(command), STANDARD) is None
    assert check_request(request("dumpCell", code="x = 1\n"), STANDARD) is None


def test_debug_console_code_meets_the_cell_policy() -> None:
    """evaluate/setExpression/setVariable run code in the paused frame: a cell's check."""
    assert check_request(request("evaluate", expression="total + 1", frameId=3), STANDARD) is None
    for command, field in (
        ("evaluate", "expression"),
        ("setExpression", "value"),
        ("setVariable", "value"),
    ):
        reason = check_request(
            request(command, **{field: "().__class__.__bases__[0].__subclasses__()"}), STANDARD
        )
        assert reason is not None
        assert "SKP" in reason


def test_oversized_request_is_refused() -> None:
    big = request("dumpCell", code="x" * (MAX_REQUEST_BYTES + 1))
    reason = check_request(big, STANDARD)
    assert reason is not None
    assert "limit" in reason


def test_refusal_is_a_dap_error_response() -> None:
    assert refusal(request("launch"), "no") == {
        "type": "response",
        "request_seq": 7,
        "success": False,
        "command": "launch",
        "message": "no",
        "body": {},
    }
    assert refusal("garbage", "no")["request_seq"] == 0


def test_offered_only_in_the_sandboxs_own_network_namespace() -> None:
    own = {"level": "namespaces", "layers": {"netns": {"on": True}}}
    assert debugger_unavailable(own) is None
    shared = {"level": "namespaces", "layers": {"netns": {"on": False}}}
    assert "allow_network" in str(debugger_unavailable(shared))
    assert "seccomp" in str(debugger_unavailable({"level": "landlock", "layers": {}}))
    assert "every local user" in str(debugger_unavailable({"level": "none", "layers": {}}))


def test_only_frames_and_references_shown_may_be_named() -> None:
    session = DebugSession()
    assert "not shown" in str(session.unknown(request("scopes", frameId=1)))
    session.shown(
        "stackTrace",
        {"body": {"stackFrames": [{"id": 5, "name": "add"}, {"id": 6, "name": "<module>"}]}},
    )
    assert session.unknown(request("scopes", frameId=5)) is None
    # A frame pydevd numbered but never showed (the executor's own, in between).
    assert session.unknown(request("scopes", frameId=4)) is not None
    session.shown("scopes", {"body": {"scopes": [{"name": "Locals", "variablesReference": 9}]}})
    assert session.unknown(request("variables", variablesReference=9)) is None
    assert session.unknown(request("variables", variablesReference=10)) is not None


def test_frames_and_tracebacks_are_never_shown_as_variables() -> None:
    session = DebugSession()
    response = session.shown(
        "variables",
        {
            "body": {
                "variables": [
                    {"name": "x", "type": "int", "variablesReference": 0},
                    {"name": "tb_frame", "type": "frame", "variablesReference": 11},
                    {"name": "__traceback__", "type": "traceback", "variablesReference": 12},
                    {"name": "items", "type": "list", "variablesReference": 13},
                ]
            }
        },
    )
    assert [v["name"] for v in response["body"]["variables"]] == ["x", "items"]
    assert session.unknown(request("variables", variablesReference=13)) is None
    for hidden in (11, 12):
        assert session.unknown(request("variables", variablesReference=hidden)) is not None
    evaluated = session.shown(
        "evaluate", {"body": {"result": "<frame>", "type": "frame", "variablesReference": 14}}
    )
    assert evaluated["body"]["variablesReference"] == 0
    assert session.unknown(request("variables", variablesReference=14)) is not None


def test_event_rate_cuts_a_flood() -> None:
    rate = EventRate(per_s=10)
    admitted = sum(rate.admit() for _ in range(1000))
    assert 10 <= admitted < 1000
    assert rate.dropped == 1000 - admitted


def test_reader_accepts_debug_frames_of_the_right_dap_type() -> None:
    reply = validate_child_message(
        {
            "type": "debug_reply",
            "id": 3,
            "token": "t",
            "content": {"type": "response", "command": "next", "success": True},
            "extra": "dropped",
        }
    )
    assert reply == {
        "type": "debug_reply",
        "id": 3,
        "token": "t",
        "content": {"type": "response", "command": "next", "success": True},
    }
    event = validate_child_message(
        {"type": "debug_event", "content": {"type": "event", "event": "stopped", "body": {}}}
    )
    assert event["content"]["event"] == "stopped"


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "debug_reply", "id": 3, "content": {"type": "event", "event": "stopped"}},
        {"type": "debug_reply", "id": "3", "content": {"type": "response", "command": "x"}},
        {"type": "debug_reply", "id": 3, "content": {"type": "response", "command": ""}},
        {"type": "debug_reply", "id": 3, "content": "response"},
        {"type": "debug_event", "content": {"type": "response", "command": "next"}},
        {"type": "debug_event", "content": {"type": "event", "event": "e" * 101}},
        {"type": "debug_event"},
    ],
)
def test_reader_rejects_malformed_debug_frames(frame: dict[str, Any]) -> None:
    with pytest.raises(FrameRejected):
        validate_child_message(frame)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Reference values from ipykernel's murmur2_x86 (what JupyterLab computes).
        ("", 0xEDD39288),
        ("x = 1\n", 0x5F84BCEE),
        ("def add(a, b):\n    return a + b\n", 0xDE7A8B9B),
        ("é", 0x8175A2D0),
    ],
)
def test_cell_file_names_hash_as_ipykernel_does(text: str, expected: int) -> None:
    assert murmur2_x86(text, HASH_SEED) == expected


def test_cell_file_names_match_ipykernels_on_many_texts() -> None:
    from ipykernel.compiler import murmur2_x86 as reference

    texts = [chr(c) * n for c in (65, 233, 0x4E2D, 0x1F600) for n in range(9)]
    for text in texts:
        assert murmur2_x86(text, HASH_SEED) == reference(text, HASH_SEED), text
