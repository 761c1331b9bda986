"""The Jupyter debugger, on the trusted side: check each debug_request, relay it.

The debugger itself (debugpy's pydevd) runs in the executor, inside the sandbox,
with the cells it debugs (child/debugger.py). This side runs none of it: a
``debug_request`` is checked here and sent to the executor as one frame; what
comes back (``debug_reply``, ``debug_event``) is read by the one parser of child
bytes (relay/reader.py) with its size, depth and schema checks, and the reply
must carry the request's secret token like every other reply.

What is checked here, before anything reaches the executor:
- the request is a DAP request among the commands JupyterLab's debugger uses
  (``launch``, ``runInTerminal`` and the like never leave this side);
- its size (MAX_REQUEST_BYTES);
- code it carries (``evaluate``'s expression, ``setExpression``/``setVariable``'s
  values: the debug console) passes the same policy check as a cell would.

The debugger is offered only where its port cannot be reached from outside the
sandbox: the executor's own network namespace (the ``namespaces`` level). At the
``landlock`` level the seccomp filter refuses the socket it needs, and at ``none``
the port would be on the host's loopback, open to every local user.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ExecutorDied
from ..policy import PolicySettings, check_cell

if TYPE_CHECKING:
    from ..log import AuditLog
    from ..relay.gate import OutputGate
    from .sandbox import Sandbox

__all__ = [
    "DEBUG_COMMANDS",
    "MAX_REQUEST_BYTES",
    "DebugRelay",
    "DebugSession",
    "EventRate",
    "check_request",
    "debugger_unavailable",
    "refusal",
]

# What JupyterLab's debugger sends (and ipykernel answers): DAP's own requests and
# the Jupyter extensions (dumpCell, debugInfo, inspectVariables, richInspectVariables,
# copyToGlobals). Anything else is refused here.
DEBUG_COMMANDS = frozenset(
    {
        "initialize",
        "attach",
        "disconnect",
        "configurationDone",
        "setBreakpoints",
        "setExceptionBreakpoints",
        "dumpCell",
        "debugInfo",
        "inspectVariables",
        "richInspectVariables",
        "copyToGlobals",
        "modules",
        "source",
        "threads",
        "stackTrace",
        "scopes",
        "variables",
        "evaluate",
        "setExpression",
        "setVariable",
        "next",
        "stepIn",
        "stepOut",
        "continue",
        "pause",
        "exceptionInfo",
    }
)
# dumpCell carries a cell's code; nothing else is large.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Fields that hold code the debugger runs in the paused frame.
CODE_FIELDS = {
    "evaluate": ("expression",),
    "setExpression": ("expression", "value"),
    "setVariable": ("value",),
}
# The executor's debugger answers within its own 30 s wait for pydevd.
DEBUG_TIMEOUT_S = 40.0
# debug_events the frontend gets per second; a flood (a cell writing forged events
# to the relay, a loop over a breakpoint) is cut there.
EVENTS_PER_S = 200


def debugger_unavailable(report: dict[str, Any]) -> str | None:
    """Why the debugger is not offered in this sandbox (its isolation report), or None."""
    level = report.get("level")
    netns = (report.get("layers") or {}).get("netns") or {}
    if level == "namespaces" and netns.get("on"):
        return None
    if level == "landlock":
        return (
            "at the 'landlock' level the seccomp filter refuses the TCP socket on which "
            "the debugger talks to the code it debugs"
        )
    if level == "namespaces":
        return (
            "the sandbox shares the host's network (Isolation.allow_network), so the "
            "debugger's port would be open to the host"
        )
    return (
        f"at the {level!r} level the debugger's port would be on the host's loopback, "
        "open to every local user"
    )


def refusal(content: Any, message: str) -> dict[str, Any]:
    """A DAP error response, as the frontend expects one."""
    request = content if isinstance(content, dict) else {}
    seq = request.get("seq")
    command = request.get("command")
    return {
        "type": "response",
        "request_seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else 0,
        "success": False,
        "command": command if isinstance(command, str) else "",
        "message": message,
        "body": {},
    }


def check_request(content: Any, policy: PolicySettings) -> str | None:
    """Why this debug_request is refused, or None to relay it."""
    if not isinstance(content, dict):
        return "a debug request must be an object"
    if content.get("type") != "request":
        return "a debug request must be a DAP request"
    command = content.get("command")
    if command not in DEBUG_COMMANDS:
        return f"the debug command {str(command)[:60]!r} is not available in the sandbox"
    seq = content.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return "a debug request needs an integer seq"
    arguments = content.get("arguments", {})
    if not isinstance(arguments, dict):
        return "a debug request's arguments must be an object"
    try:
        size = len(json.dumps(content, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError):
        return "a debug request must be plain JSON"
    if size > MAX_REQUEST_BYTES:
        return f"a debug request of {size:,} bytes is over the {MAX_REQUEST_BYTES:,}-byte limit"
    for field in CODE_FIELDS.get(command, ()):
        code = arguments.get(field)
        if code is None:
            continue
        if not isinstance(code, str):
            return f"{command}'s {field} must be a string"
        # The debug console runs code in the paused frame: the policy a cell meets.
        verdict = check_cell(code, policy)
        if not verdict.allowed:
            ename, evalue, _ = verdict.as_error()
            return f"{ename}: {evalue}"
    return None


# Objects whose children are stack frames: the executor's own frames (the request
# token of the running cell among their locals) lie behind them. A cell cannot
# read them (SKP207, SKP222); the debugger's variable view must not show them either.
HIDDEN_TYPES = frozenset({"frame", "traceback"})
# Requests that let paused code run on.
RESUME_COMMANDS = frozenset({"continue", "next", "stepIn", "stepOut", "disconnect"})
# Requests that name a frame or a variable reference the debugger showed before.
FRAME_ARGUMENT = "frameId"
REFERENCE_ARGUMENT = "variablesReference"


class DebugSession:
    """What the frontend has been shown: only those frames and variables it may ask about.

    Kept here, out of the sandbox's reach. Frame ids and variable references are small
    integers pydevd hands out in order, to hidden frames too: a frontend (or a person
    typing requests) must not reach by guessing what it was never shown.
    """

    def __init__(self) -> None:
        self.frames: set[int] = set()
        self.references: set[int] = set()

    def resumed(self) -> None:
        """The paused code runs on: what was shown of it is gone (pydevd reuses ids)."""
        self.frames.clear()
        self.references.clear()

    def unknown(self, content: dict[str, Any]) -> str | None:
        """Why the request names a frame or a reference it was not shown, or None."""
        arguments = content.get("arguments") or {}
        frame = arguments.get(FRAME_ARGUMENT)
        if frame is not None and frame not in self.frames:
            return f"frame {str(frame)[:20]} was not shown by the debugger"
        reference = arguments.get(REFERENCE_ARGUMENT)
        if reference is not None and reference not in self.references:
            return f"variables reference {str(reference)[:20]} was not shown by the debugger"
        return None

    def shown(self, command: str, response: dict[str, Any]) -> dict[str, Any]:
        """Note what a response shows, with frames and tracebacks left out of variables."""
        body = response.get("body")
        if not isinstance(body, dict):
            return response
        if command == "stackTrace":
            for frame in body.get("stackFrames") or []:
                if isinstance(frame, dict) and isinstance(frame.get("id"), int):
                    self.frames.add(frame["id"])
        elif command == "scopes":
            for scope in body.get("scopes") or []:
                self._reference(scope)
        elif command in ("variables", "inspectVariables"):
            kept = [
                v
                for v in body.get("variables") or []
                if isinstance(v, dict) and v.get("type") not in HIDDEN_TYPES
            ]
            for variable in kept:
                self._reference(variable)
            response = {**response, "body": {**body, "variables": kept}}
        elif command in ("evaluate", "setExpression", "setVariable"):
            if body.get("type") in HIDDEN_TYPES:
                response = {**response, "body": {**body, "variablesReference": 0}}
            else:
                self._reference(body)
        return response

    def _reference(self, item: Any) -> None:
        if isinstance(item, dict):
            reference = item.get(REFERENCE_ARGUMENT)
            if isinstance(reference, int) and reference > 0:
                self.references.add(reference)


class EventRate:
    """At most EVENTS_PER_S debug events a second (a token bucket)."""

    def __init__(self, per_s: int = EVENTS_PER_S) -> None:
        self.per_s = per_s
        self.tokens = float(per_s)
        self.at = time.monotonic()
        self.dropped = 0

    def admit(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.per_s), self.tokens + (now - self.at) * self.per_s)
        self.at = now
        if self.tokens < 1:
            self.dropped += 1
            return False
        self.tokens -= 1
        return True


class DebugRelay:
    """The kernel's side of the debug protocol: check, relay, gate, publish events."""

    def __init__(
        self,
        sandbox: Sandbox,
        policy: PolicySettings,
        audit: AuditLog,
        gate: Callable[[], OutputGate],
        send_event: Callable[[dict[str, Any], dict[str, Any]], None],
    ) -> None:
        self.sandbox = sandbox
        self.policy = policy
        self.audit = audit
        self.gate = gate
        # send_event(content, parent): one debug_event on IOPub.
        self.send_event = send_event
        self.session = DebugSession()
        self.events = EventRate()
        # The last debug_request: the parent of the events that follow it.
        self.parent: dict[str, Any] = {}
        self._executor: object = None

    def unavailable(self) -> str | None:
        if self.sandbox.setup_failure:
            return self.sandbox.setup_failure
        return debugger_unavailable(self.sandbox.report)

    async def request(self, content: Any, parent: dict[str, Any]) -> dict[str, Any]:
        """Answer one debug_request (on the loop that owns the relay)."""
        unavailable = self.unavailable()
        if unavailable is not None:
            return refusal(
                content, f"The debugger is not available in this sandbox: {unavailable}."
            )
        executor = self.sandbox.executor
        if executor is not self._executor:
            # A new executor has a debugger of its own: nothing the old one showed stays.
            self._executor = executor
            self.session = DebugSession()
        why = check_request(content, self.policy)
        if why is None:
            why = self.session.unknown(content)
        if why is not None:
            self.audit.record_violation(
                {"event": "debug_refused", "rule": "DEBUG", "action": "deny", "detail": why[:500]},
                reported_by="kernel",
            )
            return refusal(content, f"[sandbox] {why}")
        if executor is None or not executor.alive:
            return refusal(content, "the executor is not running")
        self.parent = parent
        command = content["command"]
        if command in RESUME_COMMANDS:
            self.session.resumed()
        try:
            reply = await asyncio.wait_for(
                executor.request({"op": "debug", "request": content}), DEBUG_TIMEOUT_S
            )
        except (TimeoutError, ExecutorDied) as exc:
            return refusal(content, f"the debugger did not answer ({exc or 'timeout'})")
        answer = self.session.shown(command, reply["content"])
        if command == "richInspectVariables":
            answer = self._gated(answer)
        return answer

    def _gated(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The variable viewer renders this bundle: the same gate as every output."""
        body = answer.get("body")
        body = body if isinstance(body, dict) else {}
        data = body.get("data")
        try:
            data, _ = self.gate().bundle(data if isinstance(data, dict) else {})
        except Exception:
            data = {}
        meta = body.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        shown = {k: v for k, v in meta.items() if k in data}
        return {**answer, "body": {"data": data, "metadata": shown}}

    def event(self, content: dict[str, Any]) -> None:
        """A DAP event from the executor's debugger (validated by the reader): to IOPub."""
        if content.get("event") == "continued":
            self.session.resumed()
        if self.events.admit():
            self.send_event(content, self.parent)
