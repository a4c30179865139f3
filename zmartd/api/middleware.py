"""Cross-cutting HTTP behaviour: CORS, security headers, load shedding.

The client's IP (which rate limits key on) is resolved by :mod:`zmartd.clientip`, the one
resolver HTTP, the fast path and the WebSocket hub share.

* **CORS.**  Only origins listed in ``http.cors_origins`` get CORS headers
  (``"*"`` allows any origin, without credentials -- bearer tokens travel
  in ``Authorization``, not cookies, so credentials mode is never needed).
  Preflights are answered here, before routing, with 204.
* **Security headers** on every response: ``nosniff``, ``DENY`` framing,
  ``no-referrer``, a CSP that allows nothing (responses are JSON; nothing
  should ever execute from them), HSTS when the public URL is https.  The
  ``/docs`` page gets its own CSP that allows only its bundled assets.
* **One policy for the headers every answer gets** (:class:`HeaderPolicy`):
  Quart's ``after_request`` hook and the fast path
  (:mod:`zmartd.api.fastpath`) both call :meth:`HeaderPolicy.finish`.
* **Load shedding.**  Past ``http.max_in_flight`` concurrent requests the
  API answers ``503`` + ``Retry-After`` at once, before Quart even parses
  the request: queueing would only turn overload into timeouts for
  everybody.  Ops endpoints are exempt, so that health checks and metrics
  still answer under load.  Earlier still, past ``http.max_connections``
  open connections, a new connection gets the same 503 as raw bytes
  (:func:`overloaded_http11`, see ``zmartd/api/server.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from zmartd.api.problems import CONTENT_TYPE, OVERLOADED_RETRY_AFTER, Problem
from zmartd.api.ratelimit import Decision
from zmartd.observability import Metrics

__all__ = [
    "API_CSP",
    "CORS_ALLOW_HEADERS",
    "CORS_EXPOSE_HEADERS",
    "DOCS_CSP",
    "HeaderPolicy",
    "LoadShedder",
    "cors_headers",
    "observe_request",
    "overloaded",
    "overloaded_http11",
    "preflight_headers",
    "security_headers",
]


#: JSON responses never need to load or run anything.
API_CSP: Final = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
#: The docs page: its bundled script/styles (Swagger UI sets inline styles), data: icons.
DOCS_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HSTS: Final = "max-age=31536000; includeSubDomains"
CORS_ALLOW_HEADERS: Final = "Authorization, Content-Type, If-None-Match"
CORS_EXPOSE_HEADERS: Final = (
    "ETag, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "
    "RateLimit-Policy, WWW-Authenticate"
)
CORS_MAX_AGE: Final = "600"


def _allowed(origin: str, allowed: Iterable[str]) -> str | None:
    """The Access-Control-Allow-Origin value for ``origin``, or None."""
    allowed = tuple(allowed)
    if origin in allowed:
        return origin
    if "*" in allowed:
        return "*"
    return None


def cors_headers(origin: str | None, allowed: Iterable[str]) -> dict[str, str]:
    """Headers for an actual (non-preflight) cross-origin response."""
    if not origin:
        return {}
    value = _allowed(origin, allowed)
    if value is None:
        return {}
    return {
        "Access-Control-Allow-Origin": value,
        "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS,
    }


def preflight_headers(origin: str, method: str, allowed: Iterable[str]) -> dict[str, str] | None:
    """Headers answering a preflight, or None when the origin is not allowed."""
    value = _allowed(origin, allowed)
    if value is None:
        return None
    return {
        "Access-Control-Allow-Origin": value,
        "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, PATCH, DELETE",
        "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
        "Access-Control-Max-Age": CORS_MAX_AGE,
    }


def security_headers(*, docs: bool, https: bool) -> dict[str, str]:
    headers = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": DOCS_CSP if docs else API_CSP,
        "Cross-Origin-Resource-Policy": "same-site",
    }
    if https:
        headers["Strict-Transport-Security"] = HSTS
    return headers


class Headers(Protocol):
    """What :meth:`HeaderPolicy.finish` needs of a header map (werkzeug's
    ``Headers``, or a ``dict`` with the names spelled as here)."""

    def get(self, key: str) -> str | None: ...

    def setdefault(self, key: str, default: str) -> str: ...

    def __setitem__(self, key: str, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class HeaderPolicy:
    """The headers every API answer gets last, whichever path made it."""

    origins: tuple[str, ...]
    https: bool

    def finish(
        self, headers: Headers, decision: Decision | None, origin: str | None, *, docs: bool = False
    ) -> None:
        """In this order: ``RateLimit-*`` (unless the answer set them), the
        security headers (unless set), CORS for an allowed ``Origin``, and
        ``Vary: Origin`` whenever CORS is configured (the answer differs by
        origin)."""
        if decision is not None:
            for name, value in decision.headers().items():
                headers.setdefault(name, value)
        for name, value in security_headers(docs=docs, https=self.https).items():
            headers.setdefault(name, value)
        for name, value in cors_headers(origin, self.origins).items():
            headers[name] = value
        if self.origins:
            vary = headers.get("Vary")
            if not vary:
                headers["Vary"] = "Origin"
            elif "origin" not in (v.strip().lower() for v in vary.split(",")):
                headers["Vary"] = f"{vary}, Origin"


def observe_request(metrics: Metrics, rule: str, method: str, status: int, seconds: float) -> None:
    """Count an answered request, labelled by route template (never the raw
    path: label values stay bounded)."""
    metrics.http_requests.labels(rule, method, str(status)).inc()
    metrics.http_latency.labels(rule).observe(seconds)


def overloaded() -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The load-shedding 503: its ASGI headers and its body."""
    body = Problem("overloaded", "too many requests in flight; retry shortly").body()
    headers = [
        (b"content-type", CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(OVERLOADED_RETRY_AFTER).encode()),
        *[
            (k.lower().encode(), v.encode())
            for k, v in security_headers(docs=False, https=False).items()
        ],
    ]
    return headers, body


def overloaded_http11() -> bytes:
    """The same 503 as a whole HTTP/1.1 answer that closes the connection."""
    headers, body = overloaded()
    head = b"".join(k + b": " + v + b"\r\n" for k, v in [*headers, (b"connection", b"close")])
    return b"HTTP/1.1 503 Service Unavailable\r\n" + head + b"\r\n" + body


ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class LoadShedder:
    """ASGI wrapper: refuse HTTP requests past ``limit`` in flight with 503."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        exempt: Iterable[str] = (),
        on_shed: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)
        self.in_flight = 0
        self.shed = 0
        self.on_shed = on_shed
        self._headers, self._body = overloaded()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.shed += 1
            if self.on_shed is not None:
                self.on_shed()
            await send({"type": "http.response.start", "status": 503, "headers": self._headers})
            await send({"type": "http.response.body", "body": self._body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
