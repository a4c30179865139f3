"""Early answers: the request body they left unread, and finishing the exchange.

Many answers are ready before the request's body has been read: a 401 or
403 decided from the head, a 404 or 405 from routing, a 429 from the rate
limiter, the load-shedding 503, a fast-path hit from the hot cache, a 413
from the declared length.  On an HTTP/1.1 connection the unread body still
sits between this request and the next, so the server must either read it
away or close the connection.

**Policy: drain a small body, close for a large one.**  When the answer is
complete and the body is not, :class:`BodyDrain` reads and discards what is
left -- at most :data:`DRAIN_LIMIT` bytes, within ``http.body_timeout`` --
and the connection stays open for the next request.  A declared body larger
than that gets ``Connection: close`` on the answer and the connection is
closed after it; a chunked body that turns out larger, or a client that
stops sending, is closed the same way (after a complete answer).  Why not
always close: browsers and SDKs reuse connections after error answers, and
closing after every 401, 404 or 429 would cost each of them a new TCP (and,
through the proxy, TLS) handshake and lose the requests pipelined behind
it; reading a few kilobytes away is cheaper than any of that.  Why not
always drain: reading a megabyte nobody wants (the typical 413) costs more
than a new connection, and would let any client make the server read.
The answer itself is not delayed: its bytes go out at once, and only the
end of the exchange waits for the drain.

**Finishing the exchange (the keep-alive hang).**  hypercorn completes a
request inside the application's last ``send``: it writes the answer, tells
the application ``http.disconnect``, then either readies the connection for
the next request (restarting its keep-alive timer) or closes it.
Quart-Trio cancels its own request nursery as soon as it receives that
``http.disconnect`` -- which is while hypercorn is still inside that
``send``, on the same task.  The next checkpoint of hypercorn's
bookkeeping raised ``Cancelled``: after an early answer the close was cut
short (the connection hung, with the client's next request unanswered and
the socket in CLOSE-WAIT forever after the client gave up); after a normal
answer the keep-alive timer was never restarted (idle connections stayed
open for good, holding places under ``http.max_connections``).  The last
``send`` is therefore shielded from the application's cancellation.
hypercorn's own socket writes are already shielded, so this adds no new
way to block.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from functools import partial
from typing import Any, Final

import trio

from zmartd.api.middleware import ASGIApp

__all__ = ["DRAIN_LIMIT", "BodyDrain"]

#: The most body bytes read away after an early answer to keep the
#: connection; a larger remainder closes it instead.  Every JSON body of the
#: API is far below this; a 413's body is far above.
DRAIN_LIMIT: Final = 64 * 1024


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The body length the head declares: ``Content-Length``, 0 when there
    is no body, None for ``Transfer-Encoding`` (chunked: unknown until read).
    hypercorn's parser (h11) has already rejected malformed values."""
    length = 0
    for name, value in headers:
        name = name.lower()
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            length = int(value)
    return length


class _Exchange:
    """One request: what was received of its body, and the sends that end it."""

    __slots__ = (
        "_receive",
        "_send",
        "declared",
        "drain_from",
        "limit",
        "received",
        "settled",
        "timeout",
    )

    def __init__(
        self, receive: Any, send: Any, declared: int | None, limit: int, timeout: float
    ) -> None:
        self._receive = receive
        self._send = send
        self.declared = declared
        self.limit = limit
        self.timeout = timeout
        self.received = 0
        #: set when the body is complete, the client is gone, or a drain gave up
        self.settled = trio.Event()
        self.drain_from: int | None = None

    @property
    def complete(self) -> bool:
        return self.settled.is_set()

    def drainable(self) -> bool:
        if self.declared is None:
            return True  # chunked: try, and give up past the limit
        return self.declared - self.received <= self.limit

    async def receive(self) -> Any:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.settled.set()
            elif self.drain_from is not None and self.received - self.drain_from > self.limit:
                self.settled.set()  # give up: the connection closes
        else:  # http.disconnect
            self.settled.set()
        return message

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self.complete and not self.drainable():
            headers = [*message.get("headers", ()), (b"connection", b"close")]
            message = {**message, "headers": headers}
        elif kind == "http.response.body" and not message.get("more_body", False):
            with trio.CancelScope(shield=True):
                await self._finish(message)
            return
        await self._send(message)

    async def _finish(self, message: Any) -> None:
        if not self.complete and self.drainable():
            if message.get("body"):
                await self._send({**message, "more_body": True})
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            self.drain_from = self.received
            with trio.move_on_after(self.timeout):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._discard)
                    await self.settled.wait()
                    nursery.cancel_scope.cancel()
        if self.complete:
            await self._send(message)
            return
        # Closing: hypercorn hands the application ``http.disconnect`` first,
        # which must not wait behind a full queue of unread body chunks.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._discard)
            await self._send(message)
            nursery.cancel_scope.cancel()

    async def _discard(self) -> None:
        """Read (and drop) body messages until told to stop.  Another reader
        (Quart's) may take the last one: then :attr:`settled` says so."""
        while True:
            await self.receive()


class BodyDrain:
    """ASGI wrapper, outermost: reads away a small body an early answer left
    unread, closes for a large one, and shields the last ``send`` (see the
    module docstring)."""

    def __init__(self, app: ASGIApp, body_timeout: float, limit: int = DRAIN_LIMIT) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope["headers"])
        if declared == 0:  # no body, nothing left unread: only the shield (most requests)
            await self.app(scope, receive, partial(_send_shielding_the_last, send))
            return
        exchange = _Exchange(receive, send, declared, self.limit, self.body_timeout)
        await self.app(scope, exchange.receive, exchange.send)


async def _send_shielding_the_last(send: Any, message: Any) -> None:
    if message["type"] == "http.response.body" and not message.get("more_body", False):
        with trio.CancelScope(shield=True):
            await send(message)
    else:
        await send(message)
