"""Fresh hot-cache hits answered before Quart.

A cached ``GET /v1/markets/{id}`` costs about twice the bare hypercorn+trio
stack when it goes through Quart-Trio (request context, hooks, routing,
response object); the answer itself is bytes already in memory.
:class:`FastPath` is an ASGI wrapper around the Quart app that answers a
``GET``/``HEAD`` whose path and query (:func:`~zmartd.api.cache.cache_key`)
name a *fresh* hot-cache entry straight from those bytes, and passes
everything else to Quart unchanged: misses, stale entries (they are only
served while the database is down, which Quart decides), other methods
(preflights included), the ops and docs paths, unknown paths.

The answer is the one the Quart path gives for the same request, byte for
byte (``tests/api/test_fastpath.py`` compares them), because both are built
by the same functions:

* the key (:func:`~zmartd.api.cache.cache_key`), and the route from the
  entry (only routing stores entries, so only routed, validated requests
  have one; cached routes are unauthenticated, so no request header but
  those below changes the answer);
* the client IP (:func:`zmartd.clientip.resolve`, honouring
  ``http.trusted_proxies``) and one token from its bucket of the route's
  rate class; a refused token answers the same 429
  (:func:`~zmartd.api.routing.rate_limited`);
* ``If-None-Match`` -> 304 (:func:`~zmartd.api.cache.etag_matches`),
  ``ETag``/``Cache-Control``/``X-Cache``
  (:func:`~zmartd.api.routing.answer_headers`), then ``RateLimit-*``,
  security, CORS and ``Vary`` (:meth:`~zmartd.api.middleware.HeaderPolicy.finish`);
* the metrics: ``zmartd_http_requests_total`` and the latency histogram
  under the route template (:func:`~zmartd.api.middleware.observe_request`),
  ``zmartd_http_cache_total{result="hit"}``.

It sits inside the load shedder, so its requests count as in flight.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any, Final

from zmartd import clientip
from zmartd.api import cache as hot
from zmartd.api.middleware import ASGIApp, HeaderPolicy, observe_request
from zmartd.api.problems import CONTENT_TYPE
from zmartd.api.ratelimit import Decision
from zmartd.api.routing import JSON, ApiState, answer_headers, rate_limited

__all__ = ["FastPath"]

_METHODS: Final = frozenset({"GET", "HEAD"})


class FastPath:
    """ASGI wrapper: fresh hot-cache hits from memory, the rest to ``app``."""

    def __init__(self, app: ASGIApp, state: ApiState, policy: HeaderPolicy) -> None:
        self.app = app
        self.state = state
        self.policy = policy
        self.trusted = tuple(state.ctx.config.http.trusted_proxies)
        #: answers given here (tests and the bench read it)
        self.served = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        cache = self.state.cache
        entry = cache.fresh(hot.cache_key(scope["path"], scope["query_string"]))
        if entry is None or entry.route is None:
            await self.app(scope, receive, send)
            return
        route = entry.route
        origin = if_none_match = None
        # Quart reads the first of repeated headers; so does this.
        for name, value in scope["headers"]:
            name = name.lower()
            if name == b"origin":
                origin = origin if origin is not None else value.decode("latin-1")
            elif name == b"if-none-match":
                if_none_match = (
                    if_none_match if if_none_match is not None else value.decode("latin-1")
                )
        decision: Decision | None = None
        if route.rate is not None:
            peer = scope.get("client")
            ip = clientip.resolve_asgi(peer[0] if peer else None, scope["headers"], self.trusted)
            # The entry was fresh when the request arrived; an invalidation
            # during a Redis round trip here does not withdraw it (as in Quart).
            decision = await self.state.limiter.take(route.rate, "ip", ip)
        headers: dict[str, str]
        if decision is not None and not decision.allowed:
            problem = rate_limited(decision)
            status, body = problem.status, problem.body(scope["path"])
            headers = {
                "Content-Type": CONTENT_TYPE,
                "Content-Length": str(len(body)),
                **problem.headers,
            }
        else:
            self.served += 1
            self.state.ctx.metrics.http_cache.labels("hit").inc()
            if hot.etag_matches(if_none_match, entry.etag):
                status, body = 304, b""
                headers = {"Content-Length": "0"}
            else:
                status, body = 200, entry.body
                headers = {"Content-Type": JSON, "Content-Length": str(len(body))}
            headers.update(answer_headers(entry.etag, "hit"))
        self.policy.finish(headers, decision, origin)
        observe_request(
            self.state.ctx.metrics,
            route.path,
            scope["method"],
            status,
            time.perf_counter() - started,
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": body})
