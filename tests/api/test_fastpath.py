"""The fast path (fresh hot-cache hits answered before Quart) against the
Quart path: the same bytes, 304s, rate limits, CORS, invalidation, metrics,
and what it leaves to Quart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from tests.api import factories as fx
from tests.api.conftest import LiveApi, live_api, make_config
from tests.asgi import Answer, call
from zmartd.api.bodydrain import BodyDrain
from zmartd.api.cache import cache_key, run_invalidator
from zmartd.api.fastpath import FastPath
from zmartd.api.middleware import LoadShedder
from zmartd.api.ratelimit import Decision, RateClass, RateLimiter, Scope
from zmartd.bus import TradeExecuted
from zmartd.storage.database import Database

ORIGIN = "https://app.example.com"
AT = "2025-01-01T00:00:00Z"
DETAIL = "/v1/markets/<market_id>"
LIST = "/v1/markets"


def fast_path(api: LiveApi) -> FastPath:
    drain = api.app.asgi_app
    assert isinstance(drain, BodyDrain)
    shedder = drain.app
    assert isinstance(shedder, LoadShedder)  # the fast path counts as in flight
    assert isinstance(shedder.app, FastPath)
    return shedder.app


def counted(api: LiveApi, route: str, status: int, method: str = "GET") -> float:
    value = api.ctx.metrics.registry.get_sample_value(
        "zmartd_http_requests_total", {"route": route, "method": method, "status": str(status)}
    )
    return float(value or 0)


def observed(api: LiveApi, route: str) -> float:
    value = api.ctx.metrics.registry.get_sample_value(
        "zmartd_http_request_duration_seconds_count", {"route": route}
    )
    return float(value or 0)


def cache_results(api: LiveApi, result: str) -> float:
    value = api.ctx.metrics.registry.get_sample_value("zmartd_http_cache_total", {"result": result})
    return float(value or 0)


@asynccontextmanager
async def served(db: Database, **http: Any) -> AsyncIterator[tuple[LiveApi, str]]:
    market = await fx.seed_market(db)
    cfg = make_config(
        http={"cors_origins": [ORIGIN], **http},
        ratelimit={"reads_ip_burst": 1000, "reads_ip_per_minute": 60},
    )
    async with live_api(cfg, db) as api:
        yield api, f"/v1/markets/{market.market_id}"


def test_the_cache_key_ignores_parameter_order_only() -> None:
    assert cache_key("/v1/markets", b"") == "/v1/markets"
    assert cache_key("/v1/markets", b"sort=volume&limit=5") == cache_key(
        "/v1/markets", b"limit=5&sort=volume"
    )
    assert cache_key("/v1/markets", b"tag=a&tag=b") == cache_key("/v1/markets", b"tag=b&tag=a")
    # percent-escapes decode byte for byte: distinct queries, distinct keys
    keys = {
        cache_key("/m", q)
        for q in (
            b"q=%C3%A9",
            b"q=%E9",
            b"q=%FF%FE",
            b"q=",
            b"q=a+b",
            b"q=a%2Bb",
            b"q=a%26b=c",
            b"r=",
        )
    }
    assert len(keys) == 8
    # ...and only what werkzeug parses alike shares one ("q" is "q=" in request.args)
    assert cache_key("/m", b"q") == cache_key("/m", b"q=") == cache_key("/m", b"q=&")


@pytest.mark.parametrize("target", ["detail", "list"])
async def test_fast_answers_equal_quarts_byte_for_byte(db: Database, target: str) -> None:
    async with served(db) as (api, detail):
        path, query, reordered = (
            (detail, "", "")
            if target == "detail"
            else (LIST, "limit=5&sort=volume", "sort=volume&limit=5")
        )
        route = DETAIL if target == "detail" else LIST
        fast = fast_path(api)
        quart = fast.app
        first = await api.client.get(path + (f"?{query}" if query else ""))
        assert first.status_code == 200 and first.headers["X-Cache"] == "miss"
        etag = first.headers["ETag"]
        variants: list[tuple[str, dict[str, str]]] = [
            ("GET", {}),
            ("HEAD", {}),
            ("GET", {"If-None-Match": etag}),
            ("GET", {"If-None-Match": f'"other", W/{etag}'}),
            ("GET", {"If-None-Match": '"other"'}),
            ("GET", {"Origin": ORIGIN}),
            ("GET", {"Origin": "https://evil.example"}),
            ("GET", {"Origin": ORIGIN, "If-None-Match": etag}),
            ("GET", {"Authorization": "Bearer whatever"}),  # cached routes ignore it
        ]
        for n, (method, headers) in enumerate(variants):
            before = fast.served
            # separate clients: each answer carries a fresh bucket's RateLimit-*
            mine = await call(
                fast, path, reordered, method=method, headers=headers, client=f"10.1.{n}.1"
            )
            assert fast.served == before + 1, (method, headers)
            theirs = await call(
                quart, path, query, method=method, headers=headers, client=f"10.2.{n}.1"
            )
            assert fast.served == before + 1
            assert mine == theirs, (method, headers)
            assert mine.header("x-cache") == "hit" and mine.header("etag") == etag
            assert mine.header("ratelimit-remaining") == "999"
            assert mine.header("vary") == "Origin"
            assert mine.header("x-content-type-options") == "nosniff"
        not_modified = await call(fast, path, query, headers={"If-None-Match": etag})
        assert not_modified.status == 304 and not_modified.body == b""
        assert not_modified.header("content-type") is None
        full = await call(fast, path, query)
        assert full.status == 200 and full.body == first.content
        assert full.header("content-type") == "application/json"
        allowed = await call(fast, path, query, headers={"Origin": ORIGIN})
        assert allowed.header("access-control-allow-origin") == ORIGIN
        assert "ETag" in (allowed.header("access-control-expose-headers") or "")
        refused = await call(fast, path, query, headers={"Origin": "https://evil.example"})
        assert refused.header("access-control-allow-origin") is None
        # over HTTP too: hypercorn in front, the fast path answering
        before = fast.served
        again = await api.client.get(path + (f"?{reordered}" if reordered else ""))
        assert again.status_code == 200 and again.headers["X-Cache"] == "hit"
        assert again.content == first.content and fast.served == before + 1
        assert counted(api, route, 200) >= 1


async def test_the_rate_limit_still_applies(db: Database) -> None:
    market = await fx.seed_market(db)
    path = f"/v1/markets/{market.market_id}"
    cfg = make_config(
        http={"cors_origins": [ORIGIN], "trusted_proxies": ["127.0.0.1"]},
        ratelimit={"reads_ip_burst": 3, "reads_ip_per_minute": 1},
    )
    async with live_api(cfg, db) as api:
        fast = fast_path(api)
        statuses = [(await api.client.get(path)).status_code for _ in range(3)]
        assert statuses == [200, 200, 200] and fast.served == 2  # one miss, then hits
        refused = await api.client.get(path, headers={"Origin": ORIGIN})
        assert refused.status_code == 429 and fast.served == 2
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert refused.json()["type"] == "urn:zmart:problem:rate-limited"
        assert counted(api, DETAIL, 429) == 1
        # the same 429 as Quart's, byte for byte (each client drained the same way)
        for app, client in ((fast, "10.3.0.1"), (fast.app, "10.3.0.2")):
            for _ in range(3):
                assert (await call(app, path, client=client)).status == 200
        mine = await call(fast, path, client="10.3.0.1", headers={"Origin": ORIGIN})
        theirs = await call(fast.app, path, client="10.3.0.2", headers={"Origin": ORIGIN})
        assert mine.status == 429 and mine == theirs
        # behind a trusted proxy the bucket is X-Forwarded-For's, as in Quart
        proxy = "127.0.0.1"
        for _ in range(3):
            ok = await call(fast, path, client=proxy, headers={"X-Forwarded-For": "203.0.113.7"})
            assert ok.status == 200
        other = await call(
            fast, path, client=proxy, headers={"X-Forwarded-For": "203.0.113.8, 127.0.0.1"}
        )
        assert other.status == 200 and other.header("x-cache") == "hit"
        drained = await call(fast, path, client=proxy, headers={"X-Forwarded-For": "203.0.113.7"})
        assert drained.status == 429
        # an untrusted peer's header is ignored: its own IP's bucket is used
        for n in range(3):
            forged = await call(
                fast, path, client="10.4.0.1", headers={"X-Forwarded-For": f"203.0.113.{50 + n}"}
            )
            assert forged.status == 200
        forged = await call(
            fast, path, client="10.4.0.1", headers={"X-Forwarded-For": "203.0.113.99"}
        )
        assert forged.status == 429


async def test_a_bus_event_sends_the_next_request_to_quart(db: Database) -> None:
    async with served(db) as (api, path):
        fast = fast_path(api)
        market_id = path.rsplit("/", 1)[1]
        events = api.ctx.bus.topic("events").subscribe("test.cache")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_invalidator, api.state.cache, events)
            for _ in range(2):
                assert (await api.client.get(path)).status_code == 200
                assert (await api.client.get(LIST)).status_code == 200
            assert fast.served == 2
            hits, misses = cache_results(api, "hit"), cache_results(api, "miss")
            await api.ctx.bus.publish("events", TradeExecuted(market_id=market_id, at=AT, data={}))
            with trio.fail_after(5):
                while len(api.state.cache):
                    await trio.sleep(0.01)
            answers = [await api.client.get(p) for p in (path, LIST, path, LIST)]
            assert [r.headers["X-Cache"] for r in answers] == ["miss", "miss", "hit", "hit"]
            assert fast.served == 4
            assert cache_results(api, "miss") == misses + 2
            assert cache_results(api, "hit") == hits + 2
            nursery.cancel_scope.cancel()


async def test_metrics_count_fast_answers_like_quarts(db: Database) -> None:
    async with served(db) as (api, path):
        fast = fast_path(api)
        first = await api.client.get(path)
        assert counted(api, DETAIL, 200) == 1 and observed(api, DETAIL) == 1
        for _ in range(3):
            await api.client.get(path)
        await api.client.get(path, headers={"If-None-Match": first.headers["ETag"]})
        await api.client.head(path)
        assert fast.served == 5
        assert counted(api, DETAIL, 200) == 4
        assert counted(api, DETAIL, 304) == 1
        assert counted(api, DETAIL, 200, method="HEAD") == 1
        assert observed(api, DETAIL) == 6
        assert cache_results(api, "hit") == 5 and cache_results(api, "miss") == 1
        assert api.state.cache.hits == 5


class HeldLimiter(RateLimiter):
    """Holds each take until the test lets it go (a slow Redis)."""

    def __init__(self) -> None:
        super().__init__({})
        self.release = trio.Event()
        self.waiting = 0

    async def take(self, rate_class: RateClass, scope: Scope, ident: str) -> Decision | None:
        self.waiting += 1
        await self.release.wait()
        return None


async def test_fast_answers_count_as_in_flight(db: Database) -> None:
    async with served(db) as (api, path):
        drain = api.app.asgi_app
        assert isinstance(drain, BodyDrain)
        shedder = drain.app
        assert isinstance(shedder, LoadShedder)
        assert (await api.client.get(path)).status_code == 200
        limiter = api.state.limiter = HeldLimiter()
        answers: list[Answer] = []

        async def one() -> None:
            answers.append(await call(shedder, path))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one)
            await trio.testing.wait_all_tasks_blocked()
            assert limiter.waiting == 1 and shedder.in_flight == 1
            limiter.release.set()
        assert shedder.in_flight == 0 and answers[0].status == 200
        assert answers[0].header("x-cache") == "hit"
        assert answers[0].header("ratelimit-limit") is None  # no decision, no headers


async def test_everything_else_goes_to_quart(db: Database) -> None:
    async with served(db, cache_ttl=0.3) as (api, path):
        fast = fast_path(api)
        assert (await api.client.get(path)).headers["X-Cache"] == "miss"
        assert (await api.client.get(path)).headers["X-Cache"] == "hit"
        assert fast.served == 1
        # other methods, preflights, other query strings, unknown and ops paths
        assert (await api.client.post(path, json={})).status_code == 405
        pre = await api.client.options(
            path, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
        )
        assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == ORIGIN
        other = await api.client.get(path, params={"x": "1"})
        assert other.status_code == 422  # the detail takes no query: Quart says so
        assert (await api.client.get(path + "/nope")).status_code == 404
        assert (await api.client.get("/health")).status_code == 200
        assert fast.served == 1
        # a stale entry is Quart's to refresh (or to serve while the database is down)
        await trio.sleep(0.35)
        assert (await api.client.get(path)).headers["X-Cache"] == "miss"
        assert fast.served == 1
        assert (await api.client.get(path)).headers["X-Cache"] == "hit"
        assert fast.served == 2
