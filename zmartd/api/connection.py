"""One client connection: hypercorn's, with deadlines for slow clients.

hypercorn bounds only the time a connection sits idle between requests
(``keep_alive_timeout``, ``http.keep_alive_timeout`` here); a client that
trickles a request head, or starts a body and stops, holds its connection --
and a place under ``http.max_connections`` -- for as long as it likes, so a
few hundred such clients lock everyone else out.  :class:`Connection` is
hypercorn's ``TCPServer`` with two more deadlines, checked on each read:

* **head** (``http.header_timeout``): a request head must be complete this
  long after its first byte, or after the connection opened for its first
  request.  While a head is arriving hypercorn's idle timer is stopped: the
  head has its own deadline, and ``keep_alive_timeout`` is about silence.
* **body** (``http.body_timeout``): a started body must make progress --
  at least one byte -- within this long of the previous one.

A missed deadline closes the connection, as hypercorn's idle timer does: an
application still waiting for the body sees ``http.disconnect``.  The
deadlines read the state of hypercorn's HTTP/1.1 parser (h11); connections
in other protocols (a WebSocket upgrade, HTTP/2) have none.
"""

from __future__ import annotations

import math
from typing import Any

import h11
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, LifespanState

__all__ = ["Connection"]


class Connection(TCPServer):
    """hypercorn's connection handler with head and body deadlines."""

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
    ) -> None:
        super().__init__(app, config, context, state, stream)  # type: ignore[arg-type]
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        #: when the head being awaited started (the connection, for the first)
        self._head_since: float | None = trio.current_time()
        #: closed because a deadline passed (tests read it)
        self.timed_out = False

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
        if self._head_since is None:
            if not parser.trailing_data[0]:
                return math.inf  # idle between requests: hypercorn's keep-alive timer
            self._head_since = trio.current_time()  # the next head began
        if parser.trailing_data[0]:
            await self.idle_task.stop()  # the head's own deadline applies
        return self._head_since + self.header_timeout

    async def _read_data(self) -> None:
        while True:
            try:
                deadline = await self._deadline()
                if deadline == math.inf:  # most reads: no cancel scope to set up
                    data = await self.stream.receive_some(MAX_RECV)
                else:
                    with trio.fail_at(deadline):
                        data = await self.stream.receive_some(MAX_RECV)
            except trio.TooSlowError:
                self.timed_out = True
                break
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())
