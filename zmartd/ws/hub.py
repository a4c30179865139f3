"""The WebSocket hub: connections, subscriptions, sequencing and fan-out.

Flow of one event::

    bus "events" ─▶ Hub.publish ─▶ channels_for(event) ─▶ Sequencer.next(channel)
        ─▶ frame encoded once ─▶ Transport (in-process, or Redis pub/sub so that
        every instance delivers it) ─▶ Hub.deliver ─▶ replay buffer + the bounded
        send queue of every subscribed connection

Two properties matter and are kept by construction:

* **No silent loss.**  Each channel's events carry consecutive sequence
  numbers.  Subscribing with ``since`` replays from the buffer (or answers
  ``gap``), and the replay and the switch to live delivery happen without a
  checkpoint in between, so no event can fall between them.
* **Legacy connections get the firehose.**  A connection that has not
  subscribed yet receives every ``trade`` and ``market_state`` in the original
  frontend's shapes (given by the ``legacy`` adapter, :mod:`zmartd.ws.legacy`),
  through the same bounded queue; its first ``subscribe`` ends that.
* **A slow client never slows anyone else.**  Delivery only ever does a
  non-blocking put into a connection's bounded queue; a connection whose
  queue is full is closed with 1013 and told where to resume.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest

from zmartd import clientip
from zmartd.bus import (
    DiscussionChanged,
    DomainEvent,
    MarketStateChanged,
    PositionChanged,
    TradeExecuted,
    VoteChanged,
)
from zmartd.ws import protocol
from zmartd.ws.protocol import ProtocolError
from zmartd.ws.replay import Gap, ReplayBuffers, Sequenced

__all__ = [
    "Authenticator",
    "Hub",
    "HubLimits",
    "LocalSequencer",
    "channels_for",
]

log = structlog.get_logger("zmartd.ws")

#: token -> wallet of a valid session, or None
Authenticator = Callable[[str], Awaitable[str | None]]

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_HEARTBEAT = 1011
CLOSE_TRY_AGAIN = 1013
MAX_REASON_BYTES = 123  # RFC 6455: a close frame's reason must fit in 123 bytes


@dataclass(frozen=True, slots=True)
class HubLimits:
    max_subscriptions: int = 50
    max_connections_per_ip: int = 100
    send_queue: int = 256
    heartbeat_interval: float = 30.0
    heartbeat_misses: int = 2
    #: protocol errors tolerated within ``abuse_window`` before closing with 1008
    max_errors: int = 10
    abuse_window: float = 60.0


def channels_for(event: DomainEvent) -> list[tuple[str, str]]:
    """(channel, event type) pairs an event is delivered on."""
    market = f"market:{event.market_id}" if event.market_id else None
    user = f"user:{event.wallet}" if event.wallet else None
    out: list[tuple[str, str]] = []
    if isinstance(event, MarketStateChanged):
        out += [(c, "market_state") for c in (market, "markets") if c]
    elif isinstance(event, TradeExecuted):
        out += [(c, "trade") for c in (market, "trades", user) if c]
        if market and "price_yes" in event.data:
            out.append((market, "price"))
    elif isinstance(event, PositionChanged):
        out += [(user, "position")] if user else []
    elif isinstance(event, VoteChanged):
        out += [(market, "vote")] if market else []
    elif isinstance(event, DiscussionChanged):
        out += [(market, "discussion")] if market else []
    return out


def _price_payload(event: DomainEvent) -> dict[str, Any]:
    data = event.data
    yes = data["price_yes"]
    return {
        "market_id": event.market_id,
        "price_yes": yes,
        "price_no": data.get("price_no"),
        "slot": event.slot,
    }


class Sequencer(Protocol):
    async def next(self, channel: str) -> int: ...


class LocalSequencer:
    """Per-channel counters in this process (no Redis)."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}

    async def next(self, channel: str) -> int:
        seq = self._counters.get(channel, 0) + 1
        self._counters[channel] = seq
        return seq


class Transport(Protocol):
    """Carries sequenced frames to every instance's hub (including this one)."""

    async def send(self, item: Sequenced) -> None: ...


@dataclass(eq=False)
class Connection:
    ws: WebSocketConnection
    ip: str
    id: str
    #: channel -> seq of the last event on it written to the socket
    subs: dict[str, int] = field(default_factory=dict)
    errors: deque[float] = field(default_factory=deque)
    wallet: str | None = None
    #: user channel -> the session token that authorized it (re-checked, see
    #: :meth:`Hub.revalidate`)
    tokens: dict[str, str] = field(default_factory=dict)
    closed: bool = False
    send: trio.MemorySendChannel[list[tuple[str, int, str]]] | None = None
    alive: bool = True


class Hub:
    def __init__(
        self,
        limits: HubLimits,
        replay: ReplayBuffers,
        *,
        sequencer: Sequencer | None = None,
        authenticate: Authenticator | None = None,
        trusted_proxies: Iterable[clientip.IpNetwork] = (),
        on_close: Callable[[int], None] | None = None,
        legacy: Callable[[Sequenced], str | None] | None = None,
    ) -> None:
        self.limits = limits
        self.replay = replay
        self.sequencer: Sequencer = sequencer or LocalSequencer()
        self.transport: Transport = _LocalTransport(self)
        self.authenticate = authenticate
        self.trusted = tuple(trusted_proxies)
        self.on_close = on_close
        #: frame adapter for connections that never subscribed (None: they get nothing)
        self.legacy = legacy
        self._firehose: set[Connection] = set()
        self._ids = itertools.count(1)
        self._by_channel: dict[str, set[Connection]] = {}
        self._connections: set[Connection] = set()
        self._per_ip: dict[str, int] = {}
        self.delivered = 0
        self.accepting = True

    # ----------------------------------------------------------------- events in

    async def publish(self, event: DomainEvent) -> None:
        """Sequence an event on each of its channels and hand it to the transport."""
        for channel, type_ in channels_for(event):
            seq = await self.sequencer.next(channel)
            data = _price_payload(event) if type_ == "price" else event.data
            fields: dict[str, Any] = {"channel": channel, "seq": seq}
            if event.market_id:
                fields["market_id"] = event.market_id
            frame = protocol.encode(protocol.server_message(type_, data, **fields))
            await self.transport.send(Sequenced(channel, seq, trio.current_time(), frame))

    def deliver(self, item: Sequenced) -> None:
        """Buffer for resume and queue to subscribers.  Never blocks."""
        if item.seq <= self.replay.current(item.channel):
            return  # duplicate delivery
        self.replay.add(item)
        for conn in tuple(self._by_channel.get(item.channel, ())):
            self._enqueue(conn, [(item.channel, item.seq, item.frame)])
        if self._firehose and self.legacy is not None:
            frame = self.legacy(item)
            if frame is not None:
                for conn in tuple(self._firehose):
                    self._enqueue(conn, [("", 0, frame)])

    def _enqueue(self, conn: Connection, frames: list[tuple[str, int, str]]) -> None:
        if conn.closed or conn.send is None:
            return
        try:
            conn.send.send_nowait(frames)
        except trio.WouldBlock:
            self._slow_consumer(conn)
        except trio.ClosedResourceError:
            pass

    def _slow_consumer(self, conn: Connection) -> None:
        resume = " ".join(f"{ch}={seq}" for ch, seq in conn.subs.items())
        reason = _fit(f"slow consumer; resume_from {resume}")
        log.info("closing slow consumer", connection=conn.id, ip=conn.ip)
        self._close_soon(conn, CLOSE_TRY_AGAIN, reason)

    # ----------------------------------------------------------------- connections

    @property
    def connections(self) -> int:
        return len(self._connections)

    def client_ip(self, request: WebSocketRequest) -> str:
        """The client's address by the same rule as HTTP's rate limits
        (:mod:`zmartd.clientip`), so per-IP caps and rate limits agree."""
        remote = request.remote
        peer = remote.address if hasattr(remote, "address") else str(remote)
        return clientip.resolve_asgi(str(peer), request.headers, self.trusted)

    async def handle(self, request: WebSocketRequest) -> None:
        """trio-websocket handler: one call per client connection."""
        ip = self.client_ip(request)
        if not self.accepting:
            await request.reject(503, body=b"server shutting down")
            return
        if self._per_ip.get(ip, 0) >= self.limits.max_connections_per_ip:
            await request.reject(429, body=b"too many connections from this address")
            return
        ws = await request.accept()
        conn = Connection(ws=ws, ip=ip, id=f"c{next(self._ids)}")
        self._connections.add(conn)
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        send, recv = trio.open_memory_channel[list[tuple[str, int, str]]](self.limits.send_queue)
        conn.send = send
        try:
            self._enqueue(
                conn,
                [
                    (
                        "",
                        0,
                        protocol.encode(
                            protocol.server_message(
                                "welcome",
                                {
                                    "client_id": conn.id,
                                    "message": "Connected to ZMART WebSocket server",
                                    "channels": sorted(protocol.CHANNEL_KINDS),
                                },
                            )
                        ),
                    )
                ],
            )
            if self.legacy is not None:
                self._firehose.add(conn)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._sender, conn, recv)
                nursery.start_soon(self._heartbeat, conn, nursery.cancel_scope)
                await self._receiver(conn)
                nursery.cancel_scope.cancel()
        finally:
            conn.closed = True
            self._forget(conn)

    def _forget(self, conn: Connection) -> None:
        self._connections.discard(conn)
        self._firehose.discard(conn)
        for channel in conn.subs:
            subs = self._by_channel.get(channel)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self._by_channel[channel]
        conn.subs.clear()
        left = self._per_ip.get(conn.ip, 1) - 1
        if left:
            self._per_ip[conn.ip] = left
        else:
            self._per_ip.pop(conn.ip, None)

    async def _sender(
        self, conn: Connection, recv: trio.MemoryReceiveChannel[list[tuple[str, int, str]]]
    ) -> None:
        try:
            async for frames in recv:
                for channel, seq, frame in frames:
                    if channel and channel not in conn.subs:
                        continue  # unsubscribed while queued
                    await conn.ws.send_message(frame)
                    if channel:
                        conn.subs[channel] = max(conn.subs[channel], seq)
                        self.delivered += 1
        except ConnectionClosed:
            # The receiver sees the close too and ends the connection; cancelling
            # here could cut short a close handshake that it is performing.
            return

    async def _receiver(self, conn: Connection) -> None:
        while True:
            try:
                raw = await conn.ws.get_message()
            except ConnectionClosed as exc:
                if self.on_close is not None:
                    self.on_close(exc.reason.code if exc.reason else 1006)
                return
            conn.alive = True
            try:
                await self._handle_message(conn, raw)
            except ProtocolError as exc:
                self._reply(conn, "error", {"code": exc.code, "error": exc.message})
                if self._abusive(conn):
                    await self._close(conn, CLOSE_POLICY, "too many invalid messages")
                    return

    def _abusive(self, conn: Connection) -> bool:
        now = trio.current_time()
        conn.errors.append(now)
        while conn.errors and now - conn.errors[0] > self.limits.abuse_window:
            conn.errors.popleft()
        return len(conn.errors) > self.limits.max_errors

    def _reply(self, conn: Connection, type_: str, data: Any, **fields: Any) -> None:
        self._enqueue(
            conn, [("", 0, protocol.encode(protocol.server_message(type_, data, **fields)))]
        )

    async def _handle_message(self, conn: Connection, raw: str | bytes) -> None:
        msg = protocol.parse_client_message(raw)
        if msg.action == "ping":
            self._reply(conn, "pong", {})
            return
        if msg.action == "pong":
            return  # the legacy client's keep-alive: noted by conn.alive above
        channel = protocol.channel_of(msg)
        if msg.action == "unsubscribe":
            self._unsubscribe(conn, channel)
            self._reply(conn, "unsubscribed", {"channel": channel}, channel=channel)
            return
        # subscribe
        if channel.startswith("user:"):
            await self._authorize(conn, channel, msg.token)
        if channel not in conn.subs and len(conn.subs) >= self.limits.max_subscriptions:
            raise ProtocolError(
                "too_many_subscriptions",
                f"at most {self.limits.max_subscriptions} subscriptions per connection",
            )
        self._firehose.discard(conn)  # from now on, the channel protocol
        self._subscribe(conn, channel, msg.since)

    async def _authorize(self, conn: Connection, channel: str, token: str | None) -> None:
        wallet = channel.partition(":")[2]
        if token is None:
            raise ProtocolError(
                "unauthorized", f"{channel} needs a session token (POST /v1/auth/verify)"
            )
        if self.authenticate is None:
            raise ProtocolError("unavailable", "authentication is not available right now")
        try:
            owner = await self.authenticate(token)
        except Exception as exc:  # storage down and the like: say so, keep the connection
            log.warning("session check failed", error=str(exc))
            raise ProtocolError(
                "unavailable", "authentication is not available right now"
            ) from None
        if owner is None:
            raise ProtocolError("unauthorized", "invalid or expired session token")
        if owner != wallet:
            raise ProtocolError("forbidden", "a session may only subscribe to its own wallet")
        conn.wallet = owner
        conn.tokens[channel] = token

    def _unsubscribe(self, conn: Connection, channel: str) -> None:
        conn.tokens.pop(channel, None)
        if channel in conn.subs:
            del conn.subs[channel]
            subs = self._by_channel.get(channel)
            if subs:
                subs.discard(conn)
                if not subs:
                    del self._by_channel[channel]

    async def revalidate(self, wallet: str | None = None) -> int:
        """Re-check the session token behind every ``user:`` subscription (of ``wallet``
        only, when given) and end those whose session was revoked or expired: the
        client gets ``unsubscribed`` with ``reason: "session ended"``. Called when this
        instance sees a logout (:class:`~zmartd.bus.SessionEnded`) and every heartbeat
        interval, which covers logouts on other instances and expiry. A failed check
        (storage down) ends nothing. Returns how many subscriptions ended."""
        if self.authenticate is None:
            return 0
        held = [
            (conn, channel, token)
            for conn in tuple(self._connections)
            for channel, token in tuple(conn.tokens.items())
            if wallet is None or channel == f"user:{wallet}"
        ]
        verdicts: dict[str, str | None] = {}
        ended = 0
        for conn, channel, token in held:
            if token not in verdicts:
                try:
                    verdicts[token] = await self.authenticate(token)
                except Exception as exc:
                    log.warning("session re-check failed", error=str(exc))
                    return ended
            if verdicts[token] is None and conn.tokens.get(channel) == token:
                self._unsubscribe(conn, channel)
                self._reply(
                    conn,
                    "unsubscribed",
                    {"channel": channel, "reason": "session ended"},
                    channel=channel,
                )
                ended += 1
        return ended

    def _subscribe(self, conn: Connection, channel: str, since: int | None) -> None:
        """Ack, replay and switch to live delivery, with no checkpoint in between."""
        current = self.replay.current(channel)
        frames: list[tuple[str, int, str]] = []
        start = current
        backlog: list[Sequenced] | Gap = []
        if since is not None:
            backlog = self.replay.since(channel, since)
            if isinstance(backlog, Gap):
                frames.append(
                    (
                        "",
                        0,
                        protocol.encode(
                            protocol.server_message(
                                "gap",
                                {
                                    "channel": channel,
                                    "since": since,
                                    "seq": backlog.current,
                                    "message": "events after `since` are no longer buffered; "
                                    "refetch a REST snapshot",
                                },
                                channel=channel,
                                seq=backlog.current,
                            )
                        ),
                    )
                )
            else:
                start = since
        frames.insert(
            0,
            (
                "",
                0,
                protocol.encode(
                    protocol.server_message(
                        "subscribed",
                        {"channel": channel, "seq": current},
                        channel=channel,
                        seq=current,
                    )
                ),
            ),
        )
        if not isinstance(backlog, Gap):
            frames += [(e.channel, e.seq, e.frame) for e in backlog]
        conn.subs[channel] = start
        self._by_channel.setdefault(channel, set()).add(conn)
        self._enqueue(conn, frames)

    async def _heartbeat(self, conn: Connection, scope: trio.CancelScope) -> None:
        misses = 0
        while True:
            conn.alive = False
            answered = False
            with trio.move_on_after(self.limits.heartbeat_interval):
                try:
                    await conn.ws.ping()
                    answered = True
                except ConnectionClosed:
                    return
                await trio.sleep_forever()
            if answered or conn.alive:
                misses = 0
                continue
            misses += 1
            if misses >= self.limits.heartbeat_misses:
                log.info("closing silent connection", connection=conn.id, misses=misses)
                await self._close(conn, CLOSE_HEARTBEAT, "heartbeat timeout")
                scope.cancel()
                return

    # ----------------------------------------------------------------- closing

    async def _close(self, conn: Connection, code: int, reason: str) -> None:
        """Close with a proper close handshake (bounded to 2 s, not cut short
        by the connection's own teardown)."""
        conn.closed = True
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await conn.ws.aclose(code, _fit(reason))

    def _close_soon(self, conn: Connection, code: int, reason: str) -> None:
        conn.closed = True
        if self._nursery is not None:
            self._nursery.start_soon(self._close, conn, code, reason)

    _nursery: trio.Nursery | None = None

    def attach(self, nursery: trio.Nursery) -> None:
        """Give the hub a nursery for the closes it starts from non-async code."""
        self._nursery = nursery

    async def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "going away") -> None:
        self.accepting = False
        async with trio.open_nursery() as n:
            for conn in tuple(self._connections):
                n.start_soon(self._close, conn, code, reason)


class _LocalTransport:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def send(self, item: Sequenced) -> None:
        self.hub.deliver(item)


def _fit(reason: str) -> str:
    raw = reason.encode()
    if len(raw) <= MAX_REASON_BYTES:
        return reason
    return raw[: MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."
