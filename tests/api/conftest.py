"""Fixtures for the API tests: a real PostgreSQL database (migrated once per
run), and the zmartd HTTP app served by hypercorn on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio_asyncio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart_trio import QuartTrio

from zmartd.api.cache import HotCache
from zmartd.api.ratelimit import RateLimiter, RedisBuckets
from zmartd.api.routing import ApiState, Router
from zmartd.api.server import ROUTERS, create_app
from zmartd.bus import Bus
from zmartd.config import Config, parse_config
from zmartd.context import ActorContext, Health
from zmartd.model.services import DATABASE
from zmartd.observability import Metrics
from zmartd.services import Services
from zmartd.storage.database import Database
from zmartd.storage.migrate import migrate

_MIGRATED: set[str] = set()


def make_config(**sections: dict[str, Any]) -> Config:
    raw: dict[str, Any] = {"http": {"port": 0, "public_url": "http://zmart.test:8080"}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_config(raw, base_dir=Path("/tmp"), env={})


def make_ctx(cfg: Config) -> ActorContext:
    return ActorContext(
        name="http",
        config=cfg,
        bus=Bus(),
        metrics=Metrics(),
        services=Services(),
        health=Health(),
        statuses=lambda: [],
        facts=lambda: {},
    )


@pytest.fixture
async def db(pg_dsn: str) -> AsyncIterator[Database]:
    async with trio_asyncio.open_loop():
        database = await Database.connect(pg_dsn, min_size=1, max_size=4, statement_timeout=10)
        try:
            if pg_dsn not in _MIGRATED:
                await migrate(database)
                _MIGRATED.add(pg_dsn)
            yield database
        finally:
            await database.close()


@dataclass
class LiveApi:
    url: str
    app: QuartTrio
    ctx: ActorContext
    client: httpx.AsyncClient

    @property
    def state(self) -> ApiState:
        state: ApiState = self.app.extensions["zmartd.api"]
        return state


@asynccontextmanager
async def live_api(
    cfg: Config,
    database: Database | None,
    *,
    routers: Iterable[Router] = ROUTERS,
    redis: Any = None,
) -> AsyncIterator[LiveApi]:
    """The app on hypercorn (127.0.0.1, free port) with an httpx client."""
    ctx = make_ctx(cfg)
    if database is not None:
        ctx.services.provide(DATABASE, database)
    limiter = RateLimiter.from_config(cfg, RedisBuckets(redis, "t:") if redis is not None else None)
    cache = HotCache(cfg.http.cache_max_entries, cfg.http.cache_ttl)
    app = create_app(ctx, limiter=limiter, cache=cache, routers=routers)
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.graceful_timeout = 0.1
    hc.accesslog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(partial(serve, app, hc, shutdown_trigger=stop.wait))
        async with httpx.AsyncClient(base_url=urls[0], timeout=10) as client:
            try:
                yield LiveApi(urls[0], app, ctx, client)
            finally:
                stop.set()


def register_schemathesis_formats() -> None:
    """Teach schemathesis the ``format``s zmartd's schema uses for rules a
    regex cannot state (a base58 string that decodes to exactly 32/64 bytes):
    positive cases then use real keys and signatures."""
    import schemathesis
    from hypothesis import strategies as st
    from solders.pubkey import Pubkey
    from solders.signature import Signature

    schemathesis.openapi.format(
        "solana-pubkey",
        st.binary(min_size=32, max_size=32).map(lambda b: str(Pubkey.from_bytes(b))),
    )
    schemathesis.openapi.format(
        "solana-signature",
        st.binary(min_size=64, max_size=64).map(lambda b: str(Signature.from_bytes(b))),
    )
