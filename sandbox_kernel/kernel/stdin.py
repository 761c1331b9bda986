"""``input()`` in a cell: an input_request to the frontend, and its input_reply back.

The executor asks over the relay; the trusted kernel asks the frontend on the stdin
channel, with the parent header of the request that is running, and waits on the
socket's descriptor (no polling) so that the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import zmq
from jupyter_client.session import Session

from ..relay.publisher import Publisher

__all__ = ["RelaySink", "Stdin"]


class Stdin:
    """The kernel's stdin channel, as the executor's ``input()`` uses it."""

    def __init__(
        self,
        session: Session | None,
        socket: Any,
        parent_for: Callable[[str], dict[str, Any]],
        log: logging.Logger | logging.LoggerAdapter[Any],
    ) -> None:
        self.session = session
        self.socket = socket
        # The request a msg_id names (the cell's own, for the executor's input()).
        self.parent_for = parent_for
        self.log = log
        self._idents: dict[str, Any] = {}

    def allow(self, msg_id: str, ident: Any) -> None:
        """The running request allows stdin: remember its frontend's routing identity.

        Captured when the request comes in, because input() is asked from a task of
        the relay reader, outside that request's context.
        """
        self._idents = {msg_id: ident}

    async def request_input(self, prompt: str, password: bool, parent_msg_id: str) -> str:
        """Ask the frontend on the stdin channel, without blocking the event loop."""
        parent = self.parent_for(parent_msg_id)
        ident = self._idents.get(parent.get("header", {}).get("msg_id", ""), b"")
        assert self.session is not None
        # Answers to earlier requests that nobody waits for any more.
        while self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            self.socket.recv_multipart(zmq.NOBLOCK)
        self.session.send(
            self.socket,
            "input_request",
            {"prompt": prompt, "password": password},
            parent,
            ident=ident,
        )
        while True:
            frames = await self._message()
            try:
                _, parts = self.session.feed_identities(frames, copy=True)
                reply = self.session.deserialize(parts, content=True, copy=True)
            except Exception:
                self.log.warning("invalid input_reply", exc_info=True)
                continue
            value = reply.get("content", {}).get("value", "")
            return value if isinstance(value, str) else str(value)

    async def _message(self) -> list[bytes]:
        """The next message on the stdin socket, waited for on its descriptor (no polling)."""
        sock = self.socket
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        fd = sock.getsockopt(zmq.FD)
        loop.add_reader(fd, readable.set)
        try:
            while True:
                # ZMQ's descriptor signals edges, not levels: look at the socket's own
                # state after each wake-up, and before every wait.
                if sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    return list(sock.recv_multipart(zmq.NOBLOCK))
                readable.clear()
                if sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    continue
                await readable.wait()
        finally:
            loop.remove_reader(fd)


class RelaySink:
    """Where the runner hands what the executor sends: outputs to the publisher,
    input requests to the stdin channel (the runner's ``OutputSink``)."""

    def __init__(
        self,
        publisher: Publisher,
        request_input: Callable[[str, bool, str], Coroutine[Any, Any, str]],
        debug_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._publish = publisher.publish
        self._request_input = request_input
        # The executor's debugger's events (kernel/debug.py), not outputs.
        self._debug_event = debug_event

    def publish(self, message: dict[str, Any]) -> None:
        if message["type"] == "debug_event":
            if self._debug_event is not None:
                self._debug_event(message["content"])
            return
        self._publish(message)

    async def request_input(self, prompt: str, password: bool, parent: str) -> str:
        return await self._request_input(prompt, password, parent)
