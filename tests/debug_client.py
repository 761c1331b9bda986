"""A DAP client over a kernel's control channel, as JupyterLab's debugger is."""

from __future__ import annotations

import queue
import time
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient

from tests.utils import TIMEOUT


class Debug:
    """A DAP client over a kernel's control channel, as JupyterLab's debugger is."""

    def __init__(self, kc: BlockingKernelClient) -> None:
        self.kc = kc
        self.seq = 0
        self.events: list[dict[str, Any]] = []

    def request(self, command: str, timeout: float = TIMEOUT, **arguments: Any) -> dict[str, Any]:
        self.seq += 1
        content = {"type": "request", "seq": self.seq, "command": command, "arguments": arguments}
        return self.send(content, timeout)

    def send(self, content: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
        msg = self.kc.session.msg("debug_request", content)
        self.kc.control_channel.send(msg)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.kc.control_channel.get_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                assert reply["msg_type"] == "debug_reply"
                return dict(reply["content"])

    def event(self, name: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next debug_event of this name on IOPub (others are kept)."""
        for seen in self.events:
            if seen["event"] == name:
                self.events.remove(seen)
                return seen
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            if msg["msg_type"] != "debug_event":
                continue
            if msg["content"]["event"] == name:
                return dict(msg["content"])
            self.events.append(msg["content"])
        raise AssertionError(f"no {name!r} debug_event within {timeout} s")

    def start(self) -> dict[str, Any]:
        """initialize and attach, as JupyterLab does; the debugger's capabilities."""
        reply = self.request(
            "initialize",
            clientID="test",
            clientName="test",
            adapterID="python",
            pathFormat="path",
            linesStartAt1=True,
            columnsStartAt1=True,
            supportsVariableType=True,
            supportsVariablePaging=True,
            supportsRunInTerminalRequest=True,
            locale="en",
        )
        assert reply["success"], reply
        assert reply["body"]["supportsConfigurationDoneRequest"]
        capabilities = dict(reply["body"])
        reply = self.request("attach")
        assert reply["success"], reply
        return capabilities

    def pause_at(self, code: str, line: int) -> tuple[str, int, str]:
        """Dump ``code``, break at ``line``, run it: (execute msg_id, thread id, cell path)."""
        path = self.request("dumpCell", code=code)["body"]["sourcePath"]
        reply = self.request("setBreakpoints", source={"path": path}, breakpoints=[{"line": line}])
        assert reply["success"], reply
        msg_id = self.kc.execute(code)
        return msg_id, self.event("stopped")["body"]["threadId"], path

    def top_frame(self, thread: int) -> int:
        return int(self.request("stackTrace", threadId=thread)["body"]["stackFrames"][0]["id"])

    def finish(self, msg_id: str) -> dict[str, Any]:
        """The execute_reply of a cell run with ``kc.execute``."""
        while True:
            reply = self.kc.get_shell_msg(timeout=TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg_id:
                return dict(reply["content"])
