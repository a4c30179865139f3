"""The ``http`` actor: the Quart-Trio application served by hypercorn.

Graceful stop: hypercorn stops accepting when the actor's ``stopping`` event
is set and lets in-flight requests finish for up to ``http.graceful_timeout``
seconds.  Idle keep-alive connections (Prometheus, nginx) make hypercorn
wait that whole time (measured: SIGTERM→exit took exactly
``graceful_timeout`` with one idle keep-alive client, ``keep_alive_timeout``
does not shorten it), so the default is kept short.

Beside the server the actor runs the hot-read cache's invalidation: a
subscriber on the bus ``events`` topic and, with ``[redis] url``, the Redis
channel shared with other instances (which also hold the rate-limit
buckets).  See ``zmartd/api/routing.py`` for how routes are declared.

Accepting connections: :func:`serve` is hypercorn's trio worker with one
change, :class:`DrainingListener`.  trio's listener yields to the scheduler
after every accepted connection, so under load hypercorn took one new
connection per pass over all runnable tasks: 1,000 clients connecting at
once (or reconnecting after a timeout) waited seconds in the listen queue
before their request was even read -- the bare hello-world behind it timed
out hundreds of requests at 1,000 connections.  Taking every waiting
connection at once removes that queue.

Connection cap (``http.max_connections``, :class:`ConnectionCap`): trio
runs every connection with a request in turn, so N busy connections make
*every* answer wait about N times the cost of one, and 1,000 of them on
a 2-core machine took 1.2-2 s per answer -- timeouts.  Shedding inside
the app cannot help: by the time a request reaches it, hypercorn has done
most of the work, and a 503 costs as much as a cached answer.  Past the
cap a new connection gets the load-shedding 503 as canned bytes and is
closed: no HTTP parsing, no ASGI, a fraction of a request.  The 503 is sent
:data:`REFUSAL_HOLD` after the connection came: clients that retry at once
(wrk, naive scripts) would otherwise spend the CPU on refusals -- at 1,000
connections, 2,400 refusals/s halved the served answers (868/s uncapped,
448/s capped at 512); held, 777/s and no timeouts.

Slow clients: each connection is a :class:`~zmartd.api.connection.Connection`,
which closes it when a request head takes longer than ``http.header_timeout``
or a body stalls for ``http.body_timeout``; idle keep-alive connections are
closed after ``http.keep_alive_timeout`` (and so stop counting against the
cap).  Early answers that leave a body unread are handled in the application
(:mod:`zmartd.api.bodydrain`), which serves under plain hypercorn too.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any, Final

import coredis
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState, LifespanState
from hypercorn.utils import ShutdownError, raise_shutdown, repr_socket_addr, wrap_app
from prometheus_client import Gauge
from quart import Response, g, request
from quart_trio import QuartTrio

from zmartd.api import compat
from zmartd.api.cache import HotCache, RedisInvalidation, run_invalidator
from zmartd.api.chainlink import ChainLink
from zmartd.api.connection import Connection
from zmartd.api.middleware import observe_request, overloaded_http11
from zmartd.api.mount import mount
from zmartd.api.ratelimit import RateLimiter, RedisBuckets
from zmartd.api.rest import (
    admin,
    auth,
    discussions,
    gateway,
    markets,
    ops,
    snapshots,
    stats,
    tx,
    users,
    votes,
    webhooks,
)
from zmartd.api.routing import Router
from zmartd.context import ActorContext
from zmartd.model.services import HTTP_URLS

#: Every router of the REST API, in the order their routes are registered.
ROUTERS: tuple[Router, ...] = (
    auth.router,
    markets.router,
    votes.router,
    discussions.router,
    users.router,
    stats.router,
    webhooks.router,
    snapshots.router,
    tx.router,
    admin.router,
    *compat.ROUTERS,
)

__all__ = [
    "LISTEN_BACKLOG",
    "ConnectionCap",
    "DrainingListener",
    "create_app",
    "hypercorn_config",
    "run",
    "serve",
]

#: The listen queue.  hypercorn's default of 100 overflows when many clients
#: connect at once (a browser fleet reconnecting, nginx opening its upstream
#: pool): each dropped SYN costs the client a 1 s, then 3 s retransmit.  The
#: kernel caps it at ``net.core.somaxconn`` (4096 on current Linux).
LISTEN_BACKLOG: Final = 1024
#: How long a refused connection may take to send its request (read before
#: answering, so that closing does not reset the connection under the 503).
REFUSAL_READ_TIMEOUT: Final = 1.0
#: How long after it came a refused connection gets its 503 (half the
#: ``Retry-After`` the answer gives).
REFUSAL_HOLD: Final = 0.5


class DrainingListener(trio.abc.Listener[trio.SocketStream]):
    """A listener whose :meth:`accept` takes every connection already
    waiting in the listen queue, and hands them out without a scheduler
    pass each (trio's :class:`~trio.SocketListener`, which it wraps,
    checkpoints after every accept)."""

    def __init__(self, sock: socket.socket, batch: int = LISTEN_BACKLOG) -> None:
        sock.setblocking(False)
        self._listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        self._sock = sock
        self._batch = batch
        self._ready: deque[trio.SocketStream] = deque()

    async def accept(self) -> trio.SocketStream:
        if self._ready:
            return self._ready.popleft()
        stream = await self._listener.accept()  # waits for the first one
        while len(self._ready) < self._batch:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # none left (EAGAIN), or an error the next accept() handles
                break
            self._ready.append(trio.SocketStream(trio.socket.from_stdlib_socket(conn)))
        return stream

    async def aclose(self) -> None:
        while self._ready:
            await self._ready.popleft().aclose()
        await self._listener.aclose()


Handler = Callable[[trio.SocketStream], Awaitable[None]]


class ConnectionCap:
    """Serve at most ``limit`` connections at once with ``handler`` (0: no
    limit); answer the others' first request with ``refusal`` (a whole HTTP
    answer), :data:`REFUSAL_HOLD` after they came, and close them.  ``gauge``
    follows the number served."""

    def __init__(
        self,
        handler: Handler,
        limit: int,
        refusal: bytes,
        on_refused: Callable[[], None] | None = None,
        gauge: Gauge | None = None,
    ) -> None:
        self.handler = handler
        self.limit = limit
        self.refusal = refusal
        self.on_refused = on_refused
        self.gauge = gauge
        self.open = 0
        self.refused = 0

    async def __call__(self, stream: trio.SocketStream) -> None:
        if self.limit and self.open >= self.limit:
            self.refused += 1
            if self.on_refused is not None:
                self.on_refused()
            hold = trio.current_time() + REFUSAL_HOLD
            try:
                with trio.move_on_after(REFUSAL_READ_TIMEOUT):
                    await stream.receive_some(65536)
                    await trio.sleep_until(hold)
                    await stream.send_all(self.refusal)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                await stream.aclose()
            return
        self.open += 1
        if self.gauge is not None:
            self.gauge.inc()
        try:
            await self.handler(stream)
        finally:
            self.open -= 1
            if self.gauge is not None:
                self.gauge.dec()


async def serve(
    app: Any,
    config: HypercornConfig,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    max_connections: int = 0,
    on_refused: Callable[[], None] | None = None,
    header_timeout: float = math.inf,
    body_timeout: float = math.inf,
    connections: Gauge | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``hypercorn.trio.serve`` (0.18's ``worker_serve``, plain HTTP only:
    zmartd leaves TLS to its proxy) on :class:`DrainingListener` s, with at
    most ``max_connections`` served at once (0: no cap; the others get the
    load-shedding 503 and ``on_refused`` is called; ``connections`` counts
    those served), each a :class:`~zmartd.api.connection.Connection` with the
    head and body deadlines given.  Started with ``nursery.start``, it reports the bound
    URLs."""
    if config.ssl_enabled:
        raise ValueError("zmartd serves plain HTTP; terminate TLS in the proxy")
    config.set_statsd_logger_class(StatsdLogger)
    wrapped = wrap_app(app, config.wsgi_max_body_size, None)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            listeners: list[DrainingListener] = []
            binds: list[str] = []
            for sock in config.create_sockets().insecure_sockets:
                sock.listen(config.backlog)
                listeners.append(DrainingListener(sock))
                binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")
            task_status.started(binds)
            open_connections: set[Connection] = set()
            handler: Handler = partial(
                Connection,
                wrapped,
                config,
                context,
                ConnectionState(lifespan_state.copy()),
                header_timeout=header_timeout,
                body_timeout=body_timeout,
                registry=open_connections,
            )
            handler = ConnectionCap(
                handler, max_connections, overloaded_http11(), on_refused, connections
            )
            try:
                async with trio.open_nursery(strict_exception_groups=True) as nursery:
                    nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(raise_shutdown, context.terminate.wait)
                    nursery.start_soon(
                        partial(
                            trio.serve_listeners, handler, listeners, handler_nursery=server_nursery
                        )
                    )
                    await trio.sleep_forever()
            except BaseExceptionGroup as error:
                _, others = error.split((ShutdownError, KeyboardInterrupt))
                if others is not None:
                    raise others from None
            finally:
                await context.terminated.set()
                for connection in list(open_connections):
                    connection.close_if_idle()  # nothing to wait for
                server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


class App(QuartTrio):
    """The Quart-Trio app, with ``OPTIONS`` telling the truth in ``Allow``."""

    async def make_default_options_response(self) -> Response:
        """``Allow`` lists the methods of the path that matched (its rules,
        one per method), not of every rule whose pattern fits the URL:
        ``OPTIONS /v1/users/me`` named ``GET`` because a wallet pattern
        fitted ``me`` too, yet ``GET /v1/users/me`` is no operation."""
        rule = request.url_rule
        if rule is None:
            return await super().make_default_options_response()
        methods = {
            m for r in self.url_map.iter_rules() if r.rule == rule.rule for m in (r.methods or ())
        }
        return self.response_class("", headers={"Allow": ", ".join(sorted(methods))})


def create_app(
    ctx: ActorContext,
    *,
    limiter: RateLimiter | None = None,
    cache: HotCache | None = None,
    routers: Iterable[Router] = ROUTERS,
) -> QuartTrio:
    app = App("zmartd")
    app.extensions["zmartd"] = ctx
    # the /v1/tx routes' RPC client and relay, for the app's lifetime
    link = app.extensions["zmartd.chain"] = ChainLink(ctx)
    app.config["MAX_CONTENT_LENGTH"] = ctx.config.http.max_body_bytes
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(gateway.blueprint)
    mount(
        app,
        ctx,
        routers,
        limiter=limiter or RateLimiter.from_config(ctx.config),
        cache=cache or HotCache(ctx.config.http.cache_max_entries, ctx.config.http.cache_ttl),
        resolve_session=auth.session_resolver,
    )
    compat.install(app)
    if ctx.config.metrics.enabled:
        app.add_url_rule(ctx.config.metrics.path, "metrics", ops.metrics, methods=["GET"])

    @app.after_serving
    async def _close_chain() -> None:
        await link.aclose()

    @app.before_request
    async def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    async def _count(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        started: float = g.get("started", time.perf_counter())
        observe_request(
            ctx.metrics, rule, request.method, response.status_code, time.perf_counter() - started
        )
        return response

    return app


def hypercorn_config(ctx: ActorContext) -> HypercornConfig:
    cfg = ctx.config.http
    hc = HypercornConfig()
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    hc.bind = [f"{host}:{cfg.port}"]
    hc.graceful_timeout = cfg.graceful_timeout
    hc.keep_alive_timeout = cfg.keep_alive_timeout
    hc.backlog = LISTEN_BACKLOG
    # No access log (it would carry client IPs and duplicate our metrics);
    # hypercorn's errors go through our logging setup.
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    # No "Server: hypercorn-h11": naming the server and its version only helps a scanner.
    hc.include_server_header = False
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
                coredis.Redis.from_url(cfg.redis.url.reveal(), verify_version=False)
            )
        limiter = RateLimiter.from_config(
            cfg, RedisBuckets(redis, cfg.redis.key_prefix) if redis is not None else None
        )
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
                    partial(
                        serve,
                        app,
                        config,
                        shutdown_trigger=stopping.wait,
                        max_connections=cfg.http.max_connections,
                        header_timeout=cfg.http.header_timeout,
                        body_timeout=cfg.http.body_timeout,
                        on_refused=ctx.metrics.http_shed.inc,
                        connections=ctx.metrics.http_connections,
                    )
                )
                ctx.services.provide(HTTP_URLS, urls)
                ctx.log.info("http listening", urls=urls)
                task_status.started()
            background.cancel_scope.cancel()
    ctx.services.withdraw(HTTP_URLS)
