"""The ``http`` actor: the Quart-Trio application served by hypercorn.

Graceful stop: hypercorn stops accepting when the actor's ``stopping`` event
is set and lets in-flight requests finish for up to ``http.graceful_timeout``
seconds.  Idle keep-alive connections (Prometheus, nginx) make hypercorn
wait that whole time (STACK.md §a), so the default is kept short.

Beside the server the actor runs the hot-read cache's invalidation: a
subscriber on the bus ``events`` topic and, with ``[redis] url``, the Redis
channel shared with other instances (which also hold the rate-limit
buckets).  See ``zmartd/api/routing.py`` for how routes are declared.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any, Final

import coredis
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart import Response, g, request
from quart_trio import QuartTrio

from zmartd.api.cache import HotCache, RedisInvalidation, run_invalidator
from zmartd.api.middleware import observe_request
from zmartd.api.ratelimit import RateLimiter, RedisBuckets
from zmartd.api.rest import auth, discussions, markets, ops, stats, users, votes, webhooks
from zmartd.api.routing import Router, mount
from zmartd.context import ActorContext

#: Every router of the REST API, in the order their routes are registered.
ROUTERS: tuple[Router, ...] = (
    auth.router, markets.router, votes.router, discussions.router, users.router, stats.router,
    webhooks.router,
)

__all__ = ["LISTEN_BACKLOG", "create_app", "hypercorn_config", "run"]

#: The listen queue.  hypercorn's default of 100 overflows when many clients
#: connect at once (a browser fleet reconnecting, nginx opening its upstream
#: pool): each dropped SYN costs the client a 1 s, then 3 s retransmit.  The
#: kernel caps it at ``net.core.somaxconn`` (4096 on current Linux).
LISTEN_BACKLOG: Final = 1024


def create_app(
    ctx: ActorContext, *, limiter: RateLimiter | None = None, cache: HotCache | None = None,
    routers: Iterable[Router] = ROUTERS,
) -> QuartTrio:
    app = QuartTrio("zmartd")
    app.extensions["zmartd"] = ctx
    app.config["MAX_CONTENT_LENGTH"] = ctx.config.http.max_body_bytes
    app.register_blueprint(ops.blueprint)
    mount(
        app, ctx, routers,
        limiter=limiter or RateLimiter.from_config(ctx.config),
        cache=cache or HotCache(ctx.config.http.cache_max_entries, ctx.config.http.cache_ttl),
        resolve_session=auth.session_resolver,
    )
    if ctx.config.metrics.enabled:
        app.add_url_rule(ctx.config.metrics.path, "metrics", ops.metrics, methods=["GET"])

    @app.before_request
    async def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    async def _count(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        started: float = g.get("started", time.perf_counter())
        observe_request(ctx.metrics, rule, request.method, response.status_code,
                        time.perf_counter() - started)
        return response

    return app


def hypercorn_config(ctx: ActorContext) -> HypercornConfig:
    cfg = ctx.config.http
    hc = HypercornConfig()
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    hc.bind = [f"{host}:{cfg.port}"]
    hc.graceful_timeout = cfg.graceful_timeout
    hc.backlog = LISTEN_BACKLOG
    # No access log (it would carry client IPs and duplicate our metrics);
    # hypercorn's errors go through our logging setup.
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    return hc


async def run(
    ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
) -> None:
    cfg = ctx.config
    cache = HotCache(cfg.http.cache_max_entries, cfg.http.cache_ttl)
    async with AsyncExitStack() as stack:
        redis: Any = None
        if cfg.redis.url:
            # Connections are made lazily: a Redis that is down only degrades the
            # limiter (fail open) and the shared invalidation, never the start.
            redis = await stack.enter_async_context(
                coredis.Redis.from_url(cfg.redis.url.reveal(), verify_version=False))
        limiter = RateLimiter.from_config(
            cfg, RedisBuckets(redis, cfg.redis.key_prefix) if redis is not None else None)
        app = create_app(ctx, limiter=limiter, cache=cache)
        config = hypercorn_config(ctx)
        shared = RedisInvalidation(redis, cfg.redis.key_prefix, cache) if redis else None
        events = ctx.bus.topic("events").subscribe("http.cache")
        stack.callback(ctx.bus.topic("events").unsubscribe, events)
        async with trio.open_nursery() as background:
            background.start_soon(run_invalidator, cache, events, shared)
            if shared is not None:
                await background.start(shared.listen)
            async with trio.open_nursery() as nursery:
                urls: list[str] = await nursery.start(
                    partial(serve, app, config, shutdown_trigger=stopping.wait)
                )
                ctx.services.provide("http.urls", urls)
                ctx.log.info("http listening", urls=urls)
                task_status.started()
            background.cancel_scope.cancel()
    ctx.services.withdraw("http.urls")
