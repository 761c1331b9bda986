"""A kernel's websocket (/api/kernels/<id>/channels), driven as JupyterLab drives it.

Shared by the tests that run cells through a real Jupyter server or JupyterHub. The
client is websocket-client's, synchronous: closing it closes its socket at once, where
an asyncio client's close finishes only after its event loop has gone on.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.utils import strip_ansi

CELL_TIMEOUT = 90.0


@dataclass
class Cell:
    reply: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    @property
    def text(self) -> str:
        parts = []
        for msg in self.outputs:
            content = msg["content"]
            if msg["msg_type"] == "stream":
                parts.append(content["text"])
            elif msg["msg_type"] in {"execute_result", "display_data"}:
                parts.append(str(content["data"].get("text/plain", "")))
            elif msg["msg_type"] == "error":
                parts.append(f"{content['ename']}: {content['evalue']}")
        return strip_ansi("".join(parts))


class KernelSocket:
    """The kernel's websocket (/api/kernels/<id>/channels), as JupyterLab uses it."""

    def __init__(self, url: str, token: str) -> None:
        import websocket

        self.ws = websocket.create_connection(
            url, header=[f"Authorization: token {token}"], timeout=CELL_TIMEOUT
        )
        self.session = uuid.uuid4().hex
        self.sources: list[str] = []

    def execute(self, code: str, timeout: float = CELL_TIMEOUT) -> Cell:
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "student",
                        "session": self.session,
                        "date": datetime.datetime.now(datetime.UTC).isoformat(),
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": True,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": False,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        self.sources.append(code)
        reply: dict[str, Any] | None = None
        idle = False
        outputs: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while reply is None or not idle:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "execute_reply":
                reply = msg
            elif kind == "status":
                idle = msg["content"]["execution_state"] == "idle"
            elif kind != "execute_input":
                outputs.append(msg)
        return Cell(reply, outputs)

    def close(self) -> None:
        self.ws.close()
