"""Mounting the API on a Quart app: the one place that wires routes, hooks and the
ASGI layers in front of Quart together.

It lives apart from :mod:`zmartd.api.routing` because it is the composition point: it
needs the route declarations (routing), the document generator (openapi) and the fast
path (fastpath), all of which read :class:`~zmartd.api.routing.Route` -- kept in one
module, routing would have to import its own readers.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from zmartd import clientip
from zmartd.api import cache as hot
from zmartd.api import middleware, openapi, problems
from zmartd.api.bodydrain import BodyDrain
from zmartd.api.fastpath import FastPath
from zmartd.api.problems import Problem
from zmartd.api.ratelimit import RateLimiter
from zmartd.api.routing import (
    OPS_PATHS,
    ApiState,
    PubkeyConverter,
    Router,
    SessionResolver,
    SignatureConverter,
    problem_response,
    view_function,
)
from zmartd.context import ActorContext

__all__ = ["mount"]

log = structlog.get_logger("zmartd.api")


def mount(
    app: QuartTrio,
    ctx: ActorContext,
    routers: Iterable[Router],
    *,
    limiter: RateLimiter,
    cache: hot.HotCache,
    resolve_session: SessionResolver,
    docs: bool = True,
) -> ApiState:
    """Install the API on ``app``: routes, error handlers, client IP, CORS,
    security headers, the fast path for fresh cache hits, load shedding (in
    front of both), the handling of bodies early answers leave unread (in front
    of everything, :mod:`zmartd.api.bodydrain`), and (with ``docs``)
    ``/openapi.json`` and ``/docs``."""
    cfg = ctx.config
    state = ApiState(
        ctx=ctx,
        limiter=limiter,
        cache=cache,
        resolve_session=resolve_session,
        https=cfg.http.public_url.startswith("https://"),
        max_json_depth=cfg.http.max_json_depth,
    )
    app.extensions["zmartd.api"] = state
    app.config["MAX_CONTENT_LENGTH"] = cfg.http.max_body_bytes
    app.url_map.converters["pubkey"] = PubkeyConverter
    app.url_map.converters["signature"] = SignatureConverter
    for router in routers:
        for route in router.routes:
            state.routes.append(route)
            app.add_url_rule(
                route.path, route.operation_id, view_function(route), methods=[route.method]
            )
    if docs:
        openapi.install(app, state)

    trusted = cfg.http.trusted_proxies
    origins = cfg.http.cors_origins
    policy = middleware.HeaderPolicy(tuple(origins), https=state.https)

    @app.before_request
    async def _client_and_preflight() -> Response | None:
        peer = request.scope.get("client")
        g.client_ip = clientip.resolve(
            peer[0] if peer else None, request.headers.getlist("X-Forwarded-For"), trusted
        )
        origin = request.headers.get("Origin")
        wanted = request.headers.get("Access-Control-Request-Method")
        if request.method == "OPTIONS" and origin and wanted:
            headers = middleware.preflight_headers(origin, wanted, origins)
            response = Response(b"", status=204)
            for name, value in (headers or {}).items():
                response.headers[name] = value
            response.headers["Vary"] = "Origin"
            return response
        return None

    @app.after_request
    async def _headers(response: Response) -> Response:
        docs_page = request.path == openapi.DOCS_PATH or request.path.startswith(
            openapi.ASSETS_PATH
        )
        policy.finish(
            response.headers, g.get("ratelimit"), request.headers.get("Origin"), docs=docs_page
        )
        return response

    @app.errorhandler(Problem)
    async def _problem(exc: Problem) -> Response:
        return problem_response(exc, request.path)

    @app.errorhandler(HTTPException)
    async def _http(exc: HTTPException) -> Response:
        slug = {
            400: "malformed",
            401: "unauthorized",
            403: "forbidden",
            404: "not-found",
            405: "method-not-allowed",
            409: "conflict",
            413: "payload-too-large",
            415: "unsupported-media-type",
            429: "rate-limited",
        }.get(exc.code or 500)
        if slug is None:
            slug = "malformed" if (exc.code or 500) < 500 else "internal"
        detail = (
            exc.description
            if slug != "payload-too-large"
            else (f"the body is larger than {cfg.http.max_body_bytes} bytes")
        )
        response = problem_response(Problem(slug, detail), request.path)
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    async def _any(exc: Exception) -> Response:
        # Only a real 5xx (a bug) gets a traceback: anything a client can cause is
        # at most one line, or any client could flood the logs.
        problem = problems.from_exception(exc)
        if problem is None:
            log.exception("unhandled error in a request", path=request.path, method=request.method)
            problem = Problem("internal", "an internal error occurred; it has been logged")
        elif problems.is_refused_parameter(exc):  # validation missed it: worth one line
            log.warning(
                "the database refused a request parameter",
                path=request.path,
                method=request.method,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
        return problem_response(problem, request.path)

    shedder = middleware.LoadShedder(
        FastPath(app.asgi_app, state, policy),  # type: ignore[arg-type]
        cfg.http.max_in_flight,
        exempt=OPS_PATHS | {cfg.metrics.path},
        on_shed=ctx.metrics.http_shed.inc,  # its 503s never reach Quart's after_request
    )
    # Outermost: every answer above may come before the body was read.
    app.asgi_app = BodyDrain(  # type: ignore[method-assign,assignment]
        shedder, cfg.http.body_timeout
    )
    return state
