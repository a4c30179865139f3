"""Hot-read cache: whole encoded responses kept in memory, dropped by events.

The hottest reads (market detail, the first page of the market list, quote
inputs) are asked for by every browser many times a minute and change only
when a trade or a state change is indexed.  Serving them from memory keeps
them off the database; serving them *correctly* needs prompt invalidation,
so every cached response carries *tags* (``market:<id>``, ``markets``,
``wallet:<w>``) and every :class:`~zmartd.bus.DomainEvent` on the bus
``events`` topic drops the entries carrying the tags it touches
(:func:`tags_for_event`).  ``http.cache_ttl`` bounds staleness should an
event ever be missed.

Several zmartd sharing one database: only the leader indexes, so only its
bus sees the events.  With ``[redis] url`` set, each instance publishes the
tags it invalidated on ``<key_prefix>cache.invalidate`` and drops the tags
the others publish (:class:`RedisInvalidation`).  Redis failures are logged
and retried; meanwhile the TTL still bounds staleness.

Database outage: an entry past its TTL is kept (until evicted or
invalidated) and served when the database cannot answer, so the hot pages
stay up while PostgreSQL restarts (:meth:`HotCache.get` says whether an
entry is fresh).

A request that read the database *before* an invalidation must not store
its (now old) answer *after* it: :meth:`HotCache.put` takes the epoch read
at the start of the request and refuses entries whose tags were
invalidated since.

Single flight: when a cacheable key is missing or expired, concurrent
requests for it must not all query the database (100 concurrent requests
for one cold market made 100 fetches; each TTL expiry of a hot key under
100 connections made 22-68 misses in a row).  The first request *leads*
(:meth:`HotCache.join` returns a :class:`Flight`), the others wait for its
stored answer.  Waiting is bounded: when the leader's answer could not be
stored (invalidated meanwhile) or the leader was cancelled, one waiter
becomes the new leader; when the leader failed or its answer is not
cacheable (an error, a 404), or it takes longer than :data:`FLIGHT_WAIT`,
each waiter computes on its own, as without coalescing.

Every successful GET also gets an ``ETag`` (a hash of the body), and a
matching ``If-None-Match`` answers ``304`` without a body, cached or not.

Keys: :func:`cache_key` (path and sorted query parameters) is the one
definition, used by the routing layer when it stores and looks up, and by
the fast path (:mod:`zmartd.api.fastpath`), which answers fresh entries
before the request reaches Quart.  An entry remembers the route that
produced it, so the fast path knows its rate class and metrics label.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlencode

import msgspec
import structlog
import trio

from zmartd.bus import DomainEvent, MarketStateChanged, Subscription, TradeExecuted

if TYPE_CHECKING:
    from zmartd.api.routing import Route

__all__ = [
    "FLIGHT_WAIT",
    "MARKETS",
    "CacheEntry",
    "Flight",
    "HotCache",
    "RedisInvalidation",
    "cache_key",
    "etag_for",
    "etag_matches",
    "market_tag",
    "run_invalidator",
    "tags_for_event",
    "wallet_tag",
]

log = structlog.get_logger("zmartd.cache")

#: Tag of every market list page (any market change can reorder or alter it).
MARKETS: Final = "markets"
_MAX_TAG_EPOCHS: Final = 100_000
PUBLISH_TIMEOUT: Final = 0.25
PUBLISH_RETRY: Final = 5.0
#: How long a request waits for a concurrent one computing the same key
#: before computing on its own (the database's statement timeout is longer:
#: a stuck leader must not hold every reader of the key that long).
FLIGHT_WAIT: Final = 5.0
#: How many leaders in a row a request waits for (each was cancelled or had
#: its answer invalidated) before it computes on its own.
FLIGHT_ATTEMPTS: Final = 3


def market_tag(market_id: str) -> str:
    return f"market:{market_id}"


def wallet_tag(wallet: str) -> str:
    return f"wallet:{wallet}"


def tags_for_event(event: DomainEvent) -> frozenset[str]:
    """What an event makes stale: its market, its wallet, and the market
    lists when prices, volumes or states move."""
    tags: set[str] = set()
    if event.market_id is not None:
        tags.add(market_tag(event.market_id))
    if event.wallet is not None:
        tags.add(wallet_tag(event.wallet))
    if isinstance(event, MarketStateChanged | TradeExecuted):
        tags.add(MARKETS)
    return frozenset(tags)


def cache_key(path: str, query_string: bytes) -> str:
    """The key of a GET's answer: its path and its query parameters, sorted
    (their order does not change the answer).  Percent-escapes are decoded
    byte for byte (latin-1), so distinct queries never share a key."""
    if not query_string:
        return path
    pairs = sorted(
        parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    )
    return f"{path}?{urlencode(pairs)}" if pairs else path


def etag_for(body: bytes) -> str:
    """A strong validator: the same bytes always give the same ETag."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison, ``*`` matches any current entity."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(c.strip().removeprefix("W/") == bare for c in if_none_match.split(","))


@dataclass(frozen=True, slots=True)
class CacheEntry:
    body: bytes
    etag: str
    content_type: str
    tags: frozenset[str]
    stored_at: float
    #: the route whose answer this is (the fast path's rate class and metrics label)
    route: Route | None = None


@dataclass(eq=False, slots=True)
class Flight:
    """One request's computation of a key's answer, awaited by the others.

    The leader must call :meth:`finish` exactly once, in a ``finally``: a
    flight left unfinished would make every later request for the key wait
    :data:`FLIGHT_WAIT` first.
    """

    cache: HotCache
    key: str
    done: trio.Event = field(default_factory=trio.Event)
    #: the entry the leader stored, for the waiters
    entry: CacheEntry | None = None
    #: no stored entry, but the answer was cacheable (invalidated meanwhile, or
    #: the leader was cancelled): elect a new leader rather than all computing
    retry: bool = False

    def finish(self, entry: CacheEntry | None, *, retry: bool) -> None:
        """Wake the waiters with the stored ``entry`` (None: nothing stored)."""
        if self.done.is_set():
            return
        self.entry = entry
        self.retry = retry
        if self.cache._flights.get(self.key) is self:
            del self.cache._flights[self.key]
        self.done.set()


class HotCache:
    """Bounded LRU of encoded responses, keyed by method+path+query, tagged."""

    def __init__(
        self, max_entries: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._by_tag: dict[str, set[str]] = {}
        self._epoch = 0
        # tag -> epoch of its last invalidation (bounded; older ones fall to _floor)
        self._tag_epochs: OrderedDict[str, int] = OrderedDict()
        self._floor = 0
        self.hits = 0
        self.misses = 0
        self.invalidations = 0
        self._flights: dict[str, Flight] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    @property
    def epoch(self) -> int:
        """Read at the start of a request; pass it to :meth:`put`."""
        return self._epoch

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> tuple[CacheEntry, bool] | None:
        """``(entry, fresh)``, or None.  A stale entry is only for outages."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        fresh = self._clock() - entry.stored_at < self.ttl
        if fresh:
            self.hits += 1
        else:
            self.misses += 1
        return entry, fresh

    def fresh(self, key: str) -> CacheEntry | None:
        """The entry when it is fresh (counted as a hit), else None, counted
        as nothing: the caller passes the request on to :meth:`get`."""
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry.stored_at >= self.ttl:
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    async def join(
        self,
        key: str,
        *,
        wait: float = FLIGHT_WAIT,
        attempts: int = FLIGHT_ATTEMPTS,
    ) -> CacheEntry | Flight | None:
        """Single flight for a key that :meth:`get` found missing or stale.

        Returns the fresh entry a concurrent leader just stored; or a
        :class:`Flight` when the caller leads (compute, :meth:`put`, then
        :meth:`Flight.finish`); or None when the caller should compute on
        its own (the leader failed, gave an uncacheable answer, or is slow).
        Read :attr:`epoch` for :meth:`put` *after* this returns: the wait
        may have been long and the caller's database read starts after it.
        """
        for _ in range(attempts):
            flight = self._flights.get(key)
            if flight is None:
                entry = self._entries.get(key)  # a leader may have stored it meanwhile
                if entry is not None and self._clock() - entry.stored_at < self.ttl:
                    self._entries.move_to_end(key)
                    return entry
                flight = self._flights[key] = Flight(self, key)
                return flight
            with trio.move_on_after(wait):
                await flight.done.wait()
            if not flight.done.is_set():
                return None
            # Only hand out what is still stored: an invalidation between the
            # leader's put and this wake-up must not be overlooked.
            if flight.entry is not None and self._entries.get(key) is flight.entry:
                return flight.entry
            if flight.entry is None and not flight.retry:
                return None
        return None

    def put(
        self,
        key: str,
        body: bytes,
        *,
        tags: Iterable[str],
        since: int,
        content_type: str = "application/json",
        route: Route | None = None,
    ) -> CacheEntry | None:
        """Store unless a tag was invalidated after epoch ``since``."""
        tagset = frozenset(tags)
        if not self.enabled or any(self._invalidated_at(t) > since for t in tagset):
            return None
        self._remove(key)
        entry = CacheEntry(body, etag_for(body), content_type, tagset, self._clock(), route)
        self._entries[key] = entry
        for tag in tagset:
            self._by_tag.setdefault(tag, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._remove(next(iter(self._entries)))
        return entry

    def invalidate(self, tags: Iterable[str]) -> int:
        """Drop every entry carrying any of ``tags``; returns how many."""
        self._epoch += 1
        dropped = 0
        for tag in tags:
            self._tag_epochs.pop(tag, None)
            self._tag_epochs[tag] = self._epoch
            for key in tuple(self._by_tag.get(tag, ())):
                self._remove(key)
                dropped += 1
        while len(self._tag_epochs) > _MAX_TAG_EPOCHS:
            _, old = self._tag_epochs.popitem(last=False)
            self._floor = max(self._floor, old)
        self.invalidations += dropped
        return dropped

    def clear(self) -> None:
        self._epoch += 1
        self._floor = self._epoch
        self._entries.clear()
        self._by_tag.clear()
        self._tag_epochs.clear()

    def _invalidated_at(self, tag: str) -> int:
        return self._tag_epochs.get(tag, self._floor)

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]


# ------------------------------------------------------------------ invalidation sources


class _Invalidation(msgspec.Struct, frozen=True):
    origin: str
    tags: list[str]


class RedisInvalidation:
    """Share invalidations between zmartd instances over Redis pub/sub."""

    def __init__(self, client: Any, prefix: str, cache: HotCache) -> None:
        self.client = client
        self.channel = f"{prefix}cache.invalidate"
        self.cache = cache
        self.origin = f"{os.getpid()}-{os.urandom(6).hex()}"
        self._failing_since: float | None = None

    async def publish(self, tags: frozenset[str]) -> None:
        """Best effort, and fast: the caller holds up the bus ``events`` topic
        (a blocking topic), so while Redis fails we only retry every
        :data:`PUBLISH_RETRY` seconds and peers rely on their TTL."""
        if not tags:
            return
        now = time.monotonic()
        if self._failing_since is not None and now - self._failing_since < PUBLISH_RETRY:
            return
        payload = msgspec.json.encode(_Invalidation(self.origin, sorted(tags)))
        try:
            with trio.fail_after(PUBLISH_TIMEOUT):
                await self.client.publish(self.channel, payload)
        except Exception as exc:  # Redis down: peers fall back to their TTL
            if self._failing_since is None:
                log.warning(
                    "cannot publish cache invalidations to redis",
                    error=f"{type(exc).__name__}: {exc}",
                )
            self._failing_since = now
        else:
            if self._failing_since is not None:
                log.info("publishing cache invalidations to redis again")
            self._failing_since = None

    def receive(self, data: bytes | str) -> int:
        """Apply a message from the channel; ignores our own and garbage."""
        try:
            msg = msgspec.json.decode(data, type=_Invalidation)
        except msgspec.DecodeError:
            log.warning("ignoring a malformed cache invalidation message")
            return 0
        if msg.origin == self.origin:
            return 0
        return self.cache.invalidate(msg.tags)

    async def listen(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Subscribe until cancelled; reconnect with backoff; on every
        (re)subscription drop the whole cache, since messages may have been
        missed while disconnected."""
        delay = 0.5
        started = False
        while True:
            try:
                async with self.client.pubsub(
                    channels=[self.channel], ignore_subscribe_messages=True
                ) as ps:
                    if started:
                        self.cache.clear()
                        log.info("redis cache invalidation resubscribed; cache cleared")
                    else:
                        started = True
                        task_status.started()
                    delay = 0.5
                    async for message in ps:
                        if message.get("type") == "message":
                            self.receive(message["data"])
            except Exception as exc:
                log.warning(
                    "redis cache invalidation channel failed; retrying",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=delay,
                )
                if not started:
                    started = True
                    task_status.started()
                await trio.sleep(delay)
                delay = min(15.0, delay * 2)


async def run_invalidator(
    cache: HotCache,
    events: Subscription[Any],
    redis: RedisInvalidation | None = None,
) -> None:
    """Drop what each bus event makes stale, locally and (with Redis) everywhere."""
    async for event in events:
        if not isinstance(event, DomainEvent):
            continue
        tags = tags_for_event(event)
        cache.invalidate(tags)
        if redis is not None:
            await redis.publish(tags)
