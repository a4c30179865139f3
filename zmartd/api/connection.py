"""One client connection: hypercorn's, with deadlines for slow clients.

hypercorn bounds only the time a connection sits idle between requests
(``keep_alive_timeout``, ``http.keep_alive_timeout`` here); a client that
trickles a request head, or starts a body and stops, holds its connection --
and a place under ``http.max_connections`` -- for as long as it likes, so a
few hundred such clients lock everyone else out.  :class:`Connection` is
hypercorn's ``TCPServer`` with every deadline checked on its reads:

* **keep-alive** (``http.keep_alive_timeout``): between requests, the next
  one must begin within this long.
* **head** (``http.header_timeout``): a request head must be complete this
  long after its first byte, or after the connection opened for its first
  request (a silent new connection still closes at the keep-alive timeout).
* **body** (``http.body_timeout``): a started body must make progress --
  at least one byte -- within this long of the previous one.

A missed deadline closes the connection; an application still waiting for
the body sees ``http.disconnect``.  The deadlines read the state of
hypercorn's HTTP/1.1 parser (h11); connections in other protocols (a
WebSocket upgrade, HTTP/2) have none.

Why the keep-alive deadline is kept here, not in hypercorn's timer:
hypercorn starts a timer task after every answer and cancels it at the next
request -- about 50-100 us per request on this machine, a fifth of a
fast-path answer.  Here it is the deadline of the read already waiting for
the next request, moved when the connection turns idle.  Idle connections
are closed as a graceful stop begins (:meth:`close_if_idle`, called by
``serve``), as hypercorn's timer did.
"""

from __future__ import annotations

import math
from collections.abc import MutableSet
from typing import Any

import h11
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, LifespanState

__all__ = ["Connection"]


class Connection(TCPServer):
    """hypercorn's connection handler with keep-alive, head and body
    deadlines; it is in ``registry`` while it runs."""

    def __init__(
        self,
        app: AppWrapper,
        config: HypercornConfig,
        context: WorkerContext,
        state: LifespanState,
        stream: trio.SocketStream,
        *,
        header_timeout: float,
        body_timeout: float,
        registry: MutableSet[Connection] | None = None,
    ) -> None:
        super().__init__(app, config, context, state, stream)  # type: ignore[arg-type]
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.registry = registry
        #: when the head being awaited started (the connection, for the first)
        self._head_since: float | None = trio.current_time()
        #: when the last answer finished, while no next request has begun
        self._idle_since: float | None = None
        #: hypercorn's timer for a new connection's silence still runs
        self._first_timer = True
        #: the read waiting now, whose deadline moves when the state does
        self._read: trio.CancelScope | None = None
        #: closed because a deadline passed (tests read it)
        self.timed_out = False

    async def run(self) -> None:
        if self.registry is not None:
            self.registry.add(self)
        try:
            await super().run()
        finally:
            if self.registry is not None:
                self.registry.discard(self)

    def close_if_idle(self) -> None:
        """Close the connection if it waits for a next request (a stop began)."""
        if self._idle_since is not None and self._read is not None:
            self._read.cancel()

    async def protocol_send(self, event: Event) -> None:
        if not isinstance(event, Updated):
            await super().protocol_send(event)
        elif event.idle:  # an answer is done: the keep-alive deadline
            self._idle_since = trio.current_time()
            if self.context.terminated.is_set():
                self.close_if_idle()
            elif self._read is not None:
                self._read.deadline = self._idle_since + self.config.keep_alive_timeout
        else:  # a request began
            self._idle_since = None
            await self._stop_first_timer()

    async def _stop_first_timer(self) -> None:
        if self._first_timer:
            self._first_timer = False
            await self.idle_task.stop()

    def _parser(self) -> h11.Connection | None:
        protocol: Any = getattr(self.protocol, "protocol", None)
        if isinstance(protocol, H11Protocol) and isinstance(protocol.connection, h11.Connection):
            return protocol.connection
        return None

    async def _deadline(self) -> float:
        """The deadline for the next read, after the bytes read so far."""
        parser = self._parser()
        if parser is None:
            return math.inf
        if parser.their_state is h11.SEND_BODY:
            return trio.current_time() + self.body_timeout
        if parser.their_state is not h11.IDLE:
            self._head_since = None  # a request is being answered
            return math.inf
        if parser.trailing_data[0]:  # a head is arriving: its own deadline
            if self._head_since is None:
                self._head_since = trio.current_time()
            self._idle_since = None
            await self._stop_first_timer()
            return self._head_since + self.header_timeout
        if self._idle_since is not None:
            return self._idle_since + self.config.keep_alive_timeout
        if self._head_since is not None:  # a new connection, silent so far
            return self._head_since + self.header_timeout
        return math.inf

    async def _read_data(self) -> None:
        while True:
            read = self._read = trio.CancelScope(deadline=await self._deadline())
            try:
                with read:
                    data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            finally:
                self._read = None
            if read.cancelled_caught:  # a deadline passed, or close_if_idle
                self.timed_out = read.deadline <= trio.current_time()
                break
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())
