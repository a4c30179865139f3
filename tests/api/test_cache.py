"""Hot-read cache: tags, TTL, the invalidation race, bus events, Redis between
instances, and the HTTP side (ETag/304, stale answers while the database is down)."""

from __future__ import annotations

from typing import Any

import coredis
import msgspec
import trio
import trio.testing

from tests.api.conftest import live_api, make_config
from zmartd.api.cache import (
    MARKETS,
    CacheEntry,
    Flight,
    HotCache,
    RedisInvalidation,
    etag_for,
    etag_matches,
    market_tag,
    run_invalidator,
    tags_for_event,
    wallet_tag,
)
from zmartd.api.routing import Call, Router
from zmartd.bus import Bus, DiscussionChanged, MarketStateChanged, TradeExecuted
from zmartd.model.services import DATABASE
from zmartd.storage.database import Database

AT = "2025-01-01T00:00:00Z"


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_entries_expire_and_are_dropped_by_tag() -> None:
    clock = Clock()
    cache = HotCache(max_entries=3, ttl=10, clock=clock)
    cache.put("/m/1", b"one", tags=[market_tag("1")], since=cache.epoch)
    cache.put("/m?page=1", b"list", tags=[MARKETS], since=cache.epoch)
    found = cache.get("/m/1")
    assert found is not None and found[1] and found[0].etag == etag_for(b"one")
    clock.t = 11
    found = cache.get("/m/1")
    assert found is not None and not found[1]  # stale, kept for outages
    assert cache.invalidate([market_tag("1")]) == 1
    assert cache.get("/m/1") is None and cache.get("/m?page=1") is not None
    for i in range(5):
        cache.put(f"/k{i}", b"x", tags=["t"], since=cache.epoch)
    assert len(cache) == 3  # bounded, LRU


def test_an_answer_read_before_an_invalidation_is_not_stored() -> None:
    cache = HotCache(max_entries=10, ttl=10)
    since = cache.epoch  # request starts, reads the database...
    cache.invalidate([market_tag("1")])  # ...an event arrives meanwhile
    assert cache.put("/m/1", b"old", tags=[market_tag("1")], since=since) is None
    assert cache.put("/m/2", b"ok", tags=[market_tag("2")], since=since) is not None
    assert HotCache(max_entries=1, ttl=0).put("/x", b"", tags=[], since=0) is None


def test_event_tags_and_etags() -> None:
    trade = TradeExecuted(market_id="M", wallet="W", at=AT, data={})
    assert tags_for_event(trade) == {market_tag("M"), wallet_tag("W"), MARKETS}
    post = DiscussionChanged(market_id="M", at=AT, data={})
    assert tags_for_event(post) == {market_tag("M")}
    e = etag_for(b"x")
    assert etag_matches(e, e) and etag_matches(f'"zzz", W/{e}', e) and etag_matches("*", e)
    assert not etag_matches('"other"', e) and not etag_matches(None, e)


async def test_bus_events_invalidate() -> None:
    bus = Bus()
    cache = HotCache(max_entries=10, ttl=60)
    cache.put("/m/1", b"x", tags=[market_tag("1")], since=0)
    cache.put("/m", b"x", tags=[MARKETS], since=0)
    events = bus.topic("events").subscribe("http.cache")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_invalidator, cache, events, None)
        await bus.publish("events", MarketStateChanged(market_id="1", at=AT, data={}))
        await trio.testing.wait_all_tasks_blocked()
        assert len(cache) == 0
        nursery.cancel_scope.cancel()


async def test_redis_carries_invalidations_between_instances(
    redis_url: str, redis_prefix: str
) -> None:
    async with coredis.Redis.from_url(redis_url) as client:
        a_cache, b_cache = HotCache(10, 60), HotCache(10, 60)
        a = RedisInvalidation(client, redis_prefix, a_cache)
        b = RedisInvalidation(client, redis_prefix, b_cache)
        for c in (a_cache, b_cache):
            c.put("/m/1", b"x", tags=[market_tag("1")], since=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(b.listen)
            await nursery.start(a.listen)
            await trio.sleep(0.05)
            await a.publish(frozenset({market_tag("1")}))
            with trio.fail_after(5):
                while len(b_cache):
                    await trio.sleep(0.01)
            assert len(a_cache) == 1  # its own message is ignored (it invalidated locally)
            assert b.receive(b"not json") == 0
            nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ over HTTP

cached = Router("test", prefix="/v1/test", tags=["test"])
reads: list[str] = []


class Thing(msgspec.Struct, frozen=True):
    id: str
    n: int


@cached.get(
    "/things/<thing_id>", response=Thing, cache=lambda call: [market_tag(call.path["thing_id"])]
)
async def get_thing(call: Call[None, None]) -> Thing:
    """A cached read that touches the database."""
    call.database()  # ServiceUnavailable while the storage actor is down
    reads.append(call.path["thing_id"])
    return Thing(id=call.path["thing_id"], n=len(reads))


async def test_http_cache_etag_and_stale_answers(db: Database) -> None:
    reads.clear()
    cfg = make_config(http={"cache_ttl": 0.3, "cors_origins": ["https://app.example.com"]})
    async with live_api(cfg, db, routers=[cached]) as api:
        c = api.client
        r1 = await c.get("/v1/test/things/a")
        assert r1.status_code == 200 and r1.headers["X-Cache"] == "miss"
        etag = r1.headers["ETag"]
        r2 = await c.get("/v1/test/things/a")
        assert r2.headers["X-Cache"] == "hit" and r2.json() == r1.json() and reads == ["a"]
        r3 = await c.get("/v1/test/things/a", headers={"If-None-Match": etag})
        assert r3.status_code == 304 and r3.content == b"" and r3.headers["ETag"] == etag
        # an event drops the entry at once
        await api.ctx.bus.publish("events", TradeExecuted(market_id="a", at=AT, data={}))
        api.state.cache.invalidate(tags_for_event(TradeExecuted(market_id="a", at=AT, data={})))
        r4 = await c.get("/v1/test/things/a", headers={"If-None-Match": etag})
        assert r4.status_code == 200 and r4.json()["n"] == 2 and r4.headers["ETag"] != etag
        # database down: a stale entry is served, an uncached one is 503
        await trio.sleep(0.35)
        api.ctx.services.withdraw(DATABASE)
        r5 = await c.get("/v1/test/things/a")
        assert r5.status_code == 200 and r5.headers["X-Cache"] == "stale"
        assert r5.json() == r4.json()
        r6 = await c.get("/v1/test/things/b")
        assert r6.status_code == 503 and r6.headers["Retry-After"] == "5"
        api.ctx.services.provide(DATABASE, db)
        assert (await c.get("/v1/test/things/b")).status_code == 200
        # security and CORS headers on every answer
        r7 = await c.get("/v1/test/things/b", headers={"Origin": "https://app.example.com"})
        assert r7.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert r7.headers["X-Content-Type-Options"] == "nosniff"
        assert r7.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "Origin" in r7.headers["Vary"]
        assert (
            "Access-Control-Allow-Origin"
            not in (
                await c.get("/v1/test/things/b", headers={"Origin": "https://evil.example"})
            ).headers
        )
        pre = await c.options(
            "/v1/test/things/b",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert (
            pre.status_code == 204
            and "Authorization" in pre.headers["Access-Control-Allow-Headers"]
        )


async def test_forwarded_for_from_a_trusted_proxy_picks_the_bucket(db: Database) -> None:
    cfg = make_config(
        http={"trusted_proxies": ["127.0.0.1"]},
        ratelimit={"reads_ip_burst": 1, "reads_ip_per_minute": 1},
    )
    async with live_api(cfg, db, routers=[cached]) as api:
        c = api.client

        async def get(xff: str) -> Any:
            return await c.get("/v1/test/things/z", headers={"X-Forwarded-For": xff})

        assert (await get("198.51.100.1")).status_code == 200
        assert (await get("198.51.100.1")).status_code == 429
        assert (await get("198.51.100.2")).status_code == 200  # another client, own bucket
    cfg = make_config(
        http={"trusted_proxies": []}, ratelimit={"reads_ip_burst": 1, "reads_ip_per_minute": 1}
    )
    async with live_api(cfg, db, routers=[cached]) as api:
        assert (
            await api.client.get("/v1/test/things/z", headers={"X-Forwarded-For": "1.1.1.1"})
        ).status_code == 200
        # untrusted peer: the header is ignored, so a forged address does not help
        r = await api.client.get("/v1/test/things/z", headers={"X-Forwarded-For": "2.2.2.2"})
        assert r.status_code == 429


# ------------------------------------------------------------------ single flight

gated = Router("gated", prefix="/v1/gated", tags=["test"])


class Gate:
    """Holds the gated handler until the test opens it; counts its calls."""

    def __init__(self) -> None:
        self.open = trio.Event()
        self.calls = 0
        self.fail_first = False


gate: dict[str, Gate] = {}


@gated.get(
    "/things/<thing_id>", response=Thing, cache=lambda call: [market_tag(call.path["thing_id"])]
)
async def get_gated(call: Call[None, None]) -> Thing:
    """A cached read whose database fetch the test holds open."""
    g = gate["current"]
    g.calls += 1
    n = g.calls
    await g.open.wait()
    if g.fail_first and n == 1:
        raise RuntimeError("the leader's fetch failed")
    return Thing(id=call.path["thing_id"], n=n)


async def _burst(api: Any, url: str, count: int) -> list[Any]:
    """``count`` concurrent GETs, returned once all have reached the cache."""
    answers: list[Any] = []
    misses = api.state.cache.misses

    async def one() -> None:
        answers.append(await api.client.get(url))

    # well under FLIGHT_WAIT: waiters must be woken by the leader, not time out
    with trio.fail_after(3):
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(one)
            while api.state.cache.misses < misses + count:  # every one missed...
                await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked()  # ...and is waiting
            gate["current"].open.set()
    return answers


def _cache_metric(api: Any, result: str) -> float:
    value = api.ctx.metrics.registry.get_sample_value("zmartd_http_cache_total", {"result": result})
    return float(value or 0)


async def test_concurrent_misses_make_one_fetch(db: Database) -> None:
    gate["current"] = Gate()
    async with live_api(make_config(), db, routers=[gated]) as api:
        answers = await _burst(api, "/v1/gated/things/a", 20)
        assert gate["current"].calls == 1
        assert {r.status_code for r in answers} == {200}
        assert {r.content for r in answers} == {answers[0].content}
        assert {r.headers["ETag"] for r in answers} == {answers[0].headers["ETag"]}
        assert sorted(r.headers["X-Cache"] for r in answers) == ["hit"] * 19 + ["miss"]
        assert _cache_metric(api, "hit") == 19 and _cache_metric(api, "miss") == 1


async def test_a_failing_leader_does_not_wedge_the_waiters(db: Database) -> None:
    gate["current"] = Gate()
    gate["current"].fail_first = True
    async with live_api(make_config(), db, routers=[gated]) as api:
        answers = await _burst(api, "/v1/gated/things/a", 5)
        assert sorted(r.status_code for r in answers) == [200] * 4 + [500]
        # errors are not shared: each waiter fetched on its own, none hung
        assert gate["current"].calls == 5
        assert api.state.cache.get("/v1/gated/things/a") is not None


async def test_an_invalidation_during_the_fetch_elects_a_new_leader(db: Database) -> None:
    gate["current"] = Gate()
    async with live_api(make_config(), db, routers=[gated]) as api:
        answers: list[Any] = []

        async def one() -> None:
            answers.append(await api.client.get("/v1/gated/things/a"))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(one)
                while api.state.cache.misses < 10:
                    await trio.sleep(0.01)
                await trio.testing.wait_all_tasks_blocked()
                api.state.cache.invalidate([market_tag("a")])  # a trade, mid-fetch
                gate["current"].open.set()
        # the leader's answer (read before the trade) was not stored; one
        # waiter fetched again and the others got that newer answer
        assert gate["current"].calls == 2
        ns = sorted(r.json()["n"] for r in answers)
        assert ns == [1] + [2] * 9
        found = api.state.cache.get("/v1/gated/things/a")
        assert found is not None and msgspec.json.decode(found[0].body)["n"] == 2


async def test_join_waits_for_the_leader_and_is_bounded() -> None:
    cache = HotCache(max_entries=10, ttl=60)
    first = await cache.join("/k")
    assert first is not None and not isinstance(first, CacheEntry)
    outcomes: list[object] = []

    async def waiter() -> None:
        outcomes.append(await cache.join("/k"))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        first.finish(None, retry=True)  # e.g. the leader was cancelled
        await trio.testing.wait_all_tasks_blocked()
        # exactly one waiter leads now; the others wait for it
        leaders = [o for o in outcomes if isinstance(o, Flight)]
        assert len(outcomes) == 1 and len(leaders) == 1
        entry = cache.put("/k", b"v", tags=["t"], since=cache.epoch)
        leaders[0].finish(entry, retry=False)
    assert outcomes[1:] == [entry, entry]
    # a slow leader: waiters give up after `wait` and compute on their own
    slow = await cache.join("/slow")
    assert isinstance(slow, Flight)
    with trio.fail_after(1):
        assert await cache.join("/slow", wait=0.05) is None
    # a failed leader (no retry): waiters compute on their own at once
    async with trio.open_nursery() as nursery:
        got: list[object] = []

        async def wait_slow() -> None:
            got.append(await cache.join("/slow"))

        nursery.start_soon(wait_slow)
        await trio.testing.wait_all_tasks_blocked()
        slow.finish(None, retry=False)
    assert got == [None]
    # finished flights are gone: the next miss leads again
    assert isinstance(await cache.join("/slow"), Flight)
