"""The ``http`` actor: the Quart-Trio application served by hypercorn.

Graceful stop: hypercorn stops accepting when the actor's ``stopping`` event
is set and lets in-flight requests finish for up to ``http.graceful_timeout``
seconds.  Idle keep-alive connections (Prometheus, nginx) make hypercorn
wait that whole time (STACK.md §a), so the default is kept short.
"""

from __future__ import annotations

import logging
import time
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart import Response, g, request
from quart_trio import QuartTrio

from zmartd.api.rest import ops
from zmartd.context import ActorContext

__all__ = ["create_app", "run"]


def create_app(ctx: ActorContext) -> QuartTrio:
    app = QuartTrio("zmartd")
    app.extensions["zmartd"] = ctx
    app.config["MAX_CONTENT_LENGTH"] = ctx.config.http.max_body_bytes
    app.register_blueprint(ops.blueprint)
    if ctx.config.metrics.enabled:
        app.add_url_rule(ctx.config.metrics.path, "metrics", ops.metrics, methods=["GET"])

    @app.before_request
    async def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    async def _count(response: Response) -> Response:
        # Label by route template, never by raw path: label values stay bounded.
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        started: float = g.get("started", time.perf_counter())
        ctx.metrics.http_requests.labels(rule, request.method, str(response.status_code)).inc()
        ctx.metrics.http_latency.labels(rule).observe(time.perf_counter() - started)
        return response

    return app


def hypercorn_config(ctx: ActorContext) -> HypercornConfig:
    cfg = ctx.config.http
    hc = HypercornConfig()
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    hc.bind = [f"{host}:{cfg.port}"]
    hc.graceful_timeout = cfg.graceful_timeout
    # No access log (it would carry client IPs and duplicate our metrics);
    # hypercorn's errors go through our logging setup.
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    return hc


async def run(
    ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
) -> None:
    app = create_app(ctx)
    config = hypercorn_config(ctx)
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(
            partial(serve, app, config, shutdown_trigger=stopping.wait)
        )
        ctx.services.provide("http.urls", urls)
        ctx.log.info("http listening", urls=urls)
        task_status.started()
    ctx.services.withdraw("http.urls")
