"""Message types and the in-process broker that carries them between actors.

Every message that crosses an actor boundary is declared here, as a frozen
``msgspec.Struct``, so that a newcomer can read the whole vocabulary of the
daemon in one file and so that messages can be serialised unchanged to Redis
when several instances share one.

Topics are declared as data (:data:`TOPICS`): each names its message type,
the capacity of every subscriber's queue and what happens when a subscriber
falls behind.  There are exactly two policies:

``block``
    The publisher waits until every subscriber has room.  Used where losing a
    message would lose data (chain logs going to the indexer): a slow indexer
    slows the listener, which is what we want -- the listener's own gap
    detection and backfill take over if it falls too far behind.

``drop_oldest``
    The oldest queued message of *that* subscriber is discarded, a counter is
    bumped (``zmartd_bus_dropped_total{topic,subscriber}``) and the publisher
    never waits.  Used for fan-out to consumers that can recover by other
    means (the WebSocket hub has sequence numbers and a REST snapshot; caches
    simply expire), so that one slow consumer cannot stall the others.
"""

from __future__ import annotations

import enum
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
import trio

__all__ = [
    "TOPICS",
    "ActorStatus",
    "Bus",
    "ChainGap",
    "ConfigReloaded",
    "DiscussionChanged",
    "DomainEvent",
    "MarketStateChanged",
    "Message",
    "Policy",
    "PositionChanged",
    "ProgramLogs",
    "SessionEnded",
    "Subscription",
    "Topic",
    "TopicSpec",
    "TradeExecuted",
    "VoteChanged",
]


class Message(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base of every bus message.  ``tag=True`` puts the class name in the
    encoded form so that a Redis bridge can decode any message generically."""


# --------------------------------------------------------------------------- chain


class ProgramLogs(Message, frozen=True, kw_only=True):
    """A ``logsNotification`` for a transaction that mentions the program.

    ``err`` is the transaction error object exactly as the RPC node sent it
    (``None`` for success), kept raw because only the indexer interprets it.
    """

    signature: str
    slot: int
    err: Any = None
    logs: tuple[str, ...] = ()


class ChainGap(Message, frozen=True, kw_only=True):
    """A stretch of slots during which a live feed may have missed messages.

    The PubSub client emits one per live subscription (``subscription`` names
    it) for every disconnect or detected stall.  ``from_slot`` is the highest
    slot it is sure it has fully seen: the later of the last delivered
    notification's slot and the last *finalized root* (slots just below the
    processed tip can still be confirmed after a disconnect, so the gap
    deliberately overlaps the live feed by up to ~32 slots).  ``None`` when
    it never saw one.  ``to_slot`` is the first processed slot after it
    resubscribed (``None`` when not known).  The indexer backfills this
    range; the overlap is harmless because indexing is idempotent.
    """

    from_slot: int | None
    to_slot: int | None
    reason: str
    subscription: str = "logs"


# --------------------------------------------------------------------------- domain events


class DomainEvent(Message, frozen=True, kw_only=True):
    """A change that clients see: produced by the indexer (chain effects) or
    by API handlers (off-chain writes), consumed by the WebSocket hub (which
    assigns per-channel sequence numbers) and by caches (invalidation).

    ``data`` is the changed object in exactly the shape the REST API returns
    for it, so that a WebSocket client can apply it without a refetch.
    """

    market_id: str | None = None
    wallet: str | None = None
    slot: int | None = None
    #: ISO-8601 UTC time at which the change happened (chain block time or server time)
    at: str
    data: dict[str, Any]


class MarketStateChanged(DomainEvent, frozen=True, kw_only=True):
    """A market was created or its state/fields changed (``data`` = market)."""


class TradeExecuted(DomainEvent, frozen=True, kw_only=True):
    """A buy or sell was indexed (``data`` = trade, with the new YES price)."""


class PositionChanged(DomainEvent, frozen=True, kw_only=True):
    """A user's position in a market changed (``data`` = position)."""


class VoteChanged(DomainEvent, frozen=True, kw_only=True):
    """A proposal/dispute vote or tally changed (``data`` = vote or tallies)."""

    kind: str  # "proposal" | "dispute"


class DiscussionChanged(DomainEvent, frozen=True, kw_only=True):
    """A discussion post was created or deleted (``data`` = post)."""


class SessionEnded(Message, frozen=True, kw_only=True):
    """A sign-in session was revoked (logout): live ``user:<wallet>`` WebSocket
    subscriptions opened with it must end now, not when the socket closes."""

    wallet: str


# --------------------------------------------------------------------------- daemon


class ConfigReloaded(Message, frozen=True, kw_only=True):
    """Published after a successful SIGHUP reload."""

    changed_sections: tuple[str, ...]
    generation: int


class ActorStatus(Message, frozen=True, kw_only=True):
    """Published by the supervisor whenever a child changes state."""

    name: str
    state: str
    restarts: int
    last_error: str | None = None


# --------------------------------------------------------------------------- broker


class Policy(enum.Enum):
    """What a topic does when one subscriber's queue is full (see module doc)."""

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    message_type: type[Message]
    capacity: int
    policy: Policy
    why: str


#: Every topic of the daemon, with its backpressure policy and the reason for it.
TOPICS: dict[str, TopicSpec] = {
    spec.name: spec
    for spec in (
        TopicSpec(
            "chain.logs",
            ProgramLogs,
            capacity=4096,
            policy=Policy.BLOCK,
            why="the indexer must see every program transaction; a slow indexer "
            "slows the listener rather than losing data",
        ),
        TopicSpec(
            "chain.gaps",
            ChainGap,
            capacity=256,
            policy=Policy.BLOCK,
            why="every gap must be backfilled; gaps are rare and tiny",
        ),
        TopicSpec(
            "events",
            DomainEvent,
            capacity=1024,
            policy=Policy.BLOCK,
            why="caches and the WebSocket hub must see every change (the hub numbers "
            "events per channel, so a silently dropped one would be a hole); neither "
            "waits on clients, slow WebSocket clients are disconnected instead",
        ),
        TopicSpec(
            "auth.sessions",
            SessionEnded,
            capacity=256,
            policy=Policy.DROP_OLDEST,
            why="a lost notice only delays the end of a subscription: the hub also "
            "re-checks every session token it holds each heartbeat interval",
        ),
        TopicSpec(
            "daemon.config",
            ConfigReloaded,
            capacity=16,
            policy=Policy.DROP_OLDEST,
            why="only the latest configuration matters",
        ),
        TopicSpec(
            "daemon.actors",
            ActorStatus,
            capacity=256,
            policy=Policy.DROP_OLDEST,
            why="status observers (logs, dashboards) can re-read the current "
            "status from the supervisor at any time",
        ),
    )
}

M = TypeVar("M", bound=Message)


class Subscription(Generic[M]):
    """One subscriber's bounded queue on a topic.

    Iterate it (``async for msg in sub``) or call :meth:`receive`.  It owns
    both ends of a trio memory channel so that ``drop_oldest`` can discard the
    oldest queued message itself without a second buffer.
    """

    def __init__(self, topic: Topic[M], name: str, capacity: int, policy: Policy) -> None:
        self.topic = topic
        self.name = name
        self.policy = policy
        self.dropped = 0
        self._send, self._recv = trio.open_memory_channel[M](capacity)

    async def _deliver(self, message: M) -> None:
        if self.policy is Policy.BLOCK:
            await self._send.send(message)
            return
        self._deliver_nowait(message)

    def _deliver_nowait(self, message: M) -> None:
        if self.policy is Policy.BLOCK:
            self._send.send_nowait(message)  # raises trio.WouldBlock when full
            return
        while True:
            try:
                self._send.send_nowait(message)
                return
            except trio.WouldBlock:
                try:
                    self._recv.receive_nowait()
                except trio.WouldBlock:  # pragma: no cover - raced with a receiver
                    continue
                self.dropped += 1
                self.topic._on_drop(self)

    async def receive(self) -> M:
        return await self._recv.receive()

    def receive_nowait(self) -> M:
        return self._recv.receive_nowait()

    def __aiter__(self) -> Subscription[M]:
        return self

    async def __anext__(self) -> M:
        try:
            return await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None

    @property
    def queued(self) -> int:
        return self._recv.statistics().current_buffer_used

    def close(self) -> None:
        self._send.close()
        self._recv.close()


@dataclass
class Topic(Generic[M]):
    """Fan-out of one message type to any number of subscribers."""

    spec: TopicSpec
    on_drop: Callable[[str, str], None] | None = None
    on_publish: Callable[[str], None] | None = None
    published: int = 0
    _subs: list[Subscription[M]] = field(default_factory=list)

    def _on_drop(self, sub: Subscription[M]) -> None:
        if self.on_drop is not None:
            self.on_drop(self.spec.name, sub.name)

    def subscribe(
        self, name: str, *, capacity: int | None = None, policy: Policy | None = None
    ) -> Subscription[M]:
        """Add a subscriber.  ``capacity``/``policy`` override the topic's
        declared defaults (for instance a test that wants ``inf``)."""
        cap = self.spec.capacity if capacity is None else capacity
        if cap != math.inf and cap < 1:
            raise ValueError("capacity must be >= 1")
        sub = Subscription(self, name, cap, policy or self.spec.policy)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription[M]) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        sub.close()

    @asynccontextmanager
    async def subscription(
        self, name: str, *, capacity: int | None = None, policy: Policy | None = None
    ) -> AsyncIterator[Subscription[M]]:
        sub = self.subscribe(name, capacity=capacity, policy=policy)
        try:
            yield sub
        finally:
            self.unsubscribe(sub)

    @property
    def subscribers(self) -> tuple[Subscription[M], ...]:
        return tuple(self._subs)

    async def publish(self, message: M) -> None:
        """Deliver to every current subscriber, honouring the topic policy.

        With ``block`` this waits for the slowest subscriber; subscribers are
        served in subscription order so that delivery order is the same for
        everyone.
        """
        self._check(message)
        for sub in tuple(self._subs):
            try:
                await sub._deliver(message)
            except trio.ClosedResourceError:
                self.unsubscribe(sub)

    def publish_nowait(self, message: M) -> None:
        """Publish from synchronous code (e.g. a status callback).

        Never waits: ``drop_oldest`` subscribers drop as usual; a full
        ``block`` subscriber raises :class:`trio.WouldBlock` (after earlier
        subscribers already received the message), so use this only on
        ``drop_oldest`` topics.
        """
        self._check(message)
        for sub in tuple(self._subs):
            try:
                sub._deliver_nowait(message)
            except trio.ClosedResourceError:
                self.unsubscribe(sub)

    def _check(self, message: M) -> None:
        if not isinstance(message, self.spec.message_type):
            raise TypeError(
                f"topic {self.spec.name!r} carries {self.spec.message_type.__name__}, "
                f"got {type(message).__name__}"
            )
        self.published += 1
        if self.on_publish is not None:
            self.on_publish(self.spec.name)


class Bus:
    """All topics of one daemon instance, created from :data:`TOPICS`."""

    def __init__(
        self,
        specs: dict[str, TopicSpec] | None = None,
        on_drop: Callable[[str, str], None] | None = None,
        on_publish: Callable[[str], None] | None = None,
    ) -> None:
        self.topics: dict[str, Topic[Any]] = {
            name: Topic(spec, on_drop, on_publish) for name, spec in (specs or TOPICS).items()
        }

    def topic(self, name: str) -> Topic[Any]:
        try:
            return self.topics[name]
        except KeyError:
            raise KeyError(f"unknown bus topic {name!r}; declare it in zmartd.bus.TOPICS") from None

    async def publish(self, name: str, message: Message) -> None:
        await self.topic(name).publish(message)
