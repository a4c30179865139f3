"""Declaring routes: one decorator says everything about an endpoint.

A route declares its request and response types once; parsing, validation,
authentication, rate limiting, caching, ETags, error shapes and the OpenAPI
document all follow from that declaration::

    router = Router("markets", prefix="/v1/markets", tags=["markets"])

    class MarketPath(Query, frozen=True):
        market_id: Pubkey

    @router.get("/<market_id>", path_type=MarketPath, response=Market, errors=[404],
                cache=lambda call: [market_tag(str(call.path.market_id))])
    async def get_market(call: Call[None, None]) -> Market:
        \"\"\"One market with its prices.\"\"\"            # -> OpenAPI description
        return await handlers.markets.get(call.database(), call.path.market_id)

    @router.post("/<market_id>/votes", path_type=MarketPath, body=VoteBody, response=Vote,
                 status=201, auth="session", errors=[404, 409])
    async def vote(call: Call[VoteBody, None]) -> Vote: ...

What the machinery does for every request, in order (see :func:`_dispatch`):

1. take a token from the caller's IP bucket of the route's rate class
   (``reads`` for GET, ``writes`` otherwise, unless ``rate=`` says so);
2. authenticate (``auth="session"``/``"admin"``/``"optional"``) from
   ``Authorization: Bearer``, then take a token from the wallet's bucket;
3. parse path, query and body into the declared types (422/400/413/415);
4. for ``cache=`` routes, answer from the hot-read cache when fresh, else
   wait for a concurrent request already fetching the same key (single
   flight, :meth:`~zmartd.api.cache.HotCache.join`) -- fresh hits rarely get
   this far: :mod:`zmartd.api.fastpath` answers them before Quart, with the
   same bytes (it calls :func:`answer_headers`, :func:`rate_limited` and
   :class:`~zmartd.api.middleware.HeaderPolicy` like this module does);
5. call the handler, which returns the response value (or a :class:`Reply`
   to choose status/headers, or None for 204);
6. encode it, add ``ETag`` to GET answers and honour ``If-None-Match``
   (304), store cacheable answers, add ``RateLimit-*`` headers.

Any :class:`~zmartd.api.problems.Problem` raised on the way, a storage
error or a database outage becomes ``application/problem+json``; when the
database is down a cached route serves its last answer instead.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, TypeVar

import structlog
from quart import Response, current_app, g, request
from werkzeug.routing import BaseConverter

from zmartd.api import cache as hot
from zmartd.api import problems
from zmartd.api.auth import bearer_token
from zmartd.api.problems import CONTENT_TYPE, Problem
from zmartd.api.ratelimit import GLOBAL, Decision, RateClass, RateLimiter
from zmartd.api.validation import decode_body, decode_path, decode_query, encode
from zmartd.context import ActorContext
from zmartd.model.services import DATABASE
from zmartd.model.sessions import Session
from zmartd.storage.database import Database

__all__ = [
    "JSON",
    "ApiState",
    "AuthMode",
    "Call",
    "Reply",
    "Route",
    "Router",
    "answer_headers",
    "api_state",
    "problem_response",
    "rate_limited",
    "view_function",
]

B = TypeVar("B")
Q = TypeVar("Q")
T = TypeVar("T")

AuthMode = Literal["none", "optional", "session", "admin"]
Handler = Callable[["Call[Any, Any]"], Awaitable[Any]]
Tags = Callable[["Call[Any, Any]"], Iterable[str]]

log = structlog.get_logger("zmartd.api")

#: The content type of every encoded answer.
JSON: Final = "application/json"

_PARAM = re.compile(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>")
#: Cache-Control of public hot-cached answers: browsers revalidate, shared caches may
#: keep them one second (see :func:`answer_headers`).
SHARED_CACHE_CONTROL: Final = "public, max-age=0, s-maxage=1"
#: Paths served without the API machinery and exempt from load shedding.
OPS_PATHS: Final = frozenset({"/health", "/ready"})


class PubkeyConverter(BaseConverter):
    """``<pubkey:name>``: a path segment that can be a base58 public key.
    Anything else is not this route's URL at all: ``/v1/users/me`` is the
    profile route (PATCH only), so ``GET /v1/users/me`` is 405, not a GET of
    the user "me" that fails validation."""

    regex = "[1-9A-HJ-NP-Za-km-z]{32,44}"


class SignatureConverter(BaseConverter):
    """``<signature:name>``: a path segment that can be a base58 transaction
    signature (64 bytes: 64 to 88 characters).  ``/v1/tx/buy`` is the build
    route (POST only), so ``GET /v1/tx/buy`` is 405, not a status query for
    the signature "buy" that fails validation."""

    regex = "[1-9A-HJ-NP-Za-km-z]{64,88}"


@dataclass(frozen=True, slots=True)
class Route:
    """Everything about one endpoint (built by :meth:`Router.route`)."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    description: str
    tags: tuple[str, ...]
    body: type | None
    query: type | None
    path_type: type | None
    response: Any
    status: int
    auth: AuthMode
    rate: RateClass | None
    cache: Tags | None
    errors: frozenset[int]
    deprecated: bool = False

    @property
    def path_params(self) -> list[str]:
        return _PARAM.findall(self.path)

    @property
    def openapi_path(self) -> str:
        return _PARAM.sub(r"{\1}", self.path)


class Router:
    """A group of routes sharing a prefix and OpenAPI tags."""

    def __init__(self, name: str, *, prefix: str = "", tags: Sequence[str] = ()) -> None:
        self.name = name
        self.prefix = prefix.rstrip("/")
        self.tags = tuple(tags)
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        response: Any = None,
        body: type | None = None,
        query: type | None = None,
        path_type: type | None = None,
        status: int | None = None,
        auth: AuthMode = "none",
        rate: RateClass | Literal["default"] | None = "default",
        cache: Tags | Iterable[str] | None = None,
        errors: Iterable[int] = (),
        summary: str | None = None,
        tags: Sequence[str] | None = None,
        operation_id: str | None = None,
        deprecated: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Declare an endpoint.

        ``response`` is the success body type (None: 204 No Content);
        ``errors`` lists the extra problem statuses the handler itself can
        raise (404, 409, ...) -- the machinery documents its own (400, 401,
        403, 413, 415, 422, 429, 503).  ``cache`` (GET, unauthenticated
        only) gives the invalidation tags, as a list or as a function of the
        parsed call.  ``rate=None`` exempts the route from rate limits.
        """
        method = method.upper()
        if cache is not None and (method != "GET" or auth != "none"):
            raise ValueError("only unauthenticated GET routes can be cached")
        if isinstance(cache, str):
            raise TypeError("cache= takes a list of tags, not a string")
        tag_fn: Tags | None
        if cache is None or callable(cache):
            tag_fn = cache
        else:
            static = tuple(cache)
            tag_fn = lambda call: static  # noqa: E731
        resolved_rate: RateClass | None = (
            ("reads" if method == "GET" else "writes") if rate == "default" else rate
        )
        full = self.prefix + path if path != "/" or not self.prefix else self.prefix

        def decorator(fn: Handler) -> Handler:
            doc = (fn.__doc__ or "").strip()
            first, _, rest = doc.partition("\n")
            self.routes.append(
                Route(
                    method=method,
                    path=full,
                    handler=fn,
                    operation_id=operation_id or f"{self.name}_{fn.__name__}",
                    summary=summary or first.strip() or fn.__name__.replace("_", " "),
                    description=rest.strip(),
                    tags=tuple(tags) if tags is not None else self.tags,
                    body=body,
                    query=query,
                    path_type=path_type,
                    response=response,
                    status=status if status is not None else (200 if response is not None else 204),
                    auth=auth,
                    rate=resolved_rate,
                    cache=tag_fn,
                    errors=frozenset(errors),
                    deprecated=deprecated,
                )
            )
            return fn

        return decorator

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)


@dataclass(frozen=True, slots=True)
class Reply(Generic[T]):
    """Return this instead of the bare value to choose status or headers."""

    value: T
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


# Resolves a bearer token into a Session (None: unknown, expired or revoked).
SessionResolver = Callable[["ApiState", str], Awaitable[Session | None]]


@dataclass
class ApiState:
    """What the routes of one app share (``app.extensions["zmartd.api"]``)."""

    ctx: ActorContext
    limiter: RateLimiter
    cache: hot.HotCache
    resolve_session: SessionResolver
    routes: list[Route] = field(default_factory=list)
    https: bool = False
    max_json_depth: int = 32

    def database(self) -> Database:
        """The pool, or ServiceUnavailable (-> 503) while the storage actor is down."""
        return self.ctx.services.get_nowait(DATABASE)


def api_state() -> ApiState:
    state: ApiState = current_app.extensions["zmartd.api"]
    return state


@dataclass
class Call(Generic[B, Q]):
    """One parsed request, as a handler sees it."""

    api: ApiState
    route: Route
    body: B
    query: Q
    #: the ``path_type`` instance, or the raw parameters (``dict[str, str]``)
    path: Any
    session: Session | None
    client_ip: str
    user_agent: str | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ctx(self) -> ActorContext:
        return self.api.ctx

    def database(self) -> Database:
        return self.api.database()

    def require_session(self) -> Session:
        if self.session is None:
            raise problems.unauthorized("sign in first (Authorization: Bearer <token>)")
        return self.session

    async def limit_wallet(self, wallet: str) -> None:
        """Take a token from ``wallet``'s bucket of this route's class (sign-in, where
        the wallet is known before there is a session).  Call it only once the caller
        proved they hold the wallet's key: a bucket that a request merely *naming*
        the wallet can spend lets anyone lock that wallet out."""
        if self.route.rate is not None:
            _add_decision(await self.api.limiter.take(self.route.rate, "wallet", wallet))

    async def limit_global(self) -> None:
        """Take a token from the one bucket of this route's class shared by all
        clients (a ceiling on what unauthenticated requests can make the server do)."""
        if self.route.rate is not None:
            _add_decision(await self.api.limiter.take(self.route.rate, "global", GLOBAL))


# ------------------------------------------------------------------ dispatch


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    response = Response(problem.body(instance), status=problem.status, content_type=CONTENT_TYPE)
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def rate_limited(decision: Decision) -> Problem:
    """The 429 of a refused decision."""
    headers = decision.headers()
    return Problem(
        "rate-limited", f"rate limit exceeded; retry in {headers['Retry-After']} s", headers=headers
    )


def _add_decision(decision: Decision | None) -> None:
    """Keep the most restrictive decision for the response headers; raise 429."""
    if decision is None:
        return
    current: Decision | None = g.get("ratelimit")
    if current is None or not decision.allowed or decision.remaining < current.remaining:
        g.ratelimit = decision
    if not decision.allowed:
        raise rate_limited(decision)


async def _authenticate(state: ApiState, route: Route) -> Session | None:
    header = request.headers.get("Authorization")
    if route.auth == "none":
        return None
    try:
        token = bearer_token(header)
    except ValueError as exc:
        raise problems.unauthorized(str(exc)) from None
    if token is None:
        if route.auth == "optional":
            return None
        raise problems.unauthorized("sign in first (Authorization: Bearer <token>)")
    session = await state.resolve_session(state, token)
    if session is None:
        raise problems.unauthorized("the session token is unknown, expired or revoked")
    if route.auth == "admin" and not session.admin:
        raise problems.forbidden("this wallet is not an administrator")
    return session


async def _dispatch(state: ApiState, route: Route, params: dict[str, Any]) -> Response:
    ip: str = g.get("client_ip", "unknown")
    if route.rate is not None:
        _add_decision(await state.limiter.take(route.rate, "ip", ip))
    session = await _authenticate(state, route)
    if session is not None and route.rate is not None:
        _add_decision(await state.limiter.take(route.rate, "wallet", session.wallet))

    path_value: Any = decode_path(params, route.path_type) if route.path_type else params
    query: Any = None
    if route.query is not None:
        query = decode_query(request.args, route.query)
    elif request.args:
        name = next(iter(request.args))
        raise problems.validation(
            [problems.FieldError(field=name, message="unknown query parameter")]
        )
    body: Any = None
    if route.body is not None:
        raw: bytes = await request.get_data(cache=False, as_text=False)  # type: ignore[assignment]
        body = decode_body(
            raw,
            route.body,
            content_type=request.headers.get("Content-Type"),
            max_depth=state.max_json_depth,
        )
    call: Call[Any, Any] = Call(
        api=state,
        route=route,
        body=body,
        query=query,
        path=path_value,
        session=session,
        client_ip=ip,
        user_agent=request.headers.get("User-Agent"),
    )

    cache_key = tags = None
    stale: hot.CacheEntry | None = None
    flight: hot.Flight | None = None
    if route.cache is not None and state.cache.enabled:
        cache_key = hot.cache_key(request.path, request.query_string)
        tags = frozenset(route.cache(call))
        found = state.cache.get(cache_key)
        if found is not None:
            entry, fresh = found
            if fresh:
                return _respond(state, route, entry.body, entry.etag, 200, call.headers, "hit")
            stale = entry
        joined = await state.cache.join(cache_key)
        if isinstance(joined, hot.CacheEntry):  # a concurrent request just fetched it
            return _respond(state, route, joined.body, joined.etag, 200, call.headers, "hit")
        flight = joined
    stored: hot.CacheEntry | None = None
    retry = True  # cancelled before an answer: the next waiter leads
    try:
        response, stored, refused = await _compute(state, route, call, cache_key, tags, stale)
        retry = refused  # cacheable, but invalidated meanwhile: one waiter re-reads
        return response
    except Exception:
        retry = False  # errors are not shared: each waiter tries on its own
        raise
    finally:
        if flight is not None:
            flight.finish(stored, retry=retry)


async def _compute(
    state: ApiState,
    route: Route,
    call: Call[Any, Any],
    cache_key: str | None,
    tags: frozenset[str] | None,
    stale: hot.CacheEntry | None,
) -> tuple[Response, hot.CacheEntry | None, bool]:
    """Run the handler and encode its answer; store it when cacheable.

    Returns the response, the stored entry, and whether a cacheable answer
    was refused by :meth:`~zmartd.api.cache.HotCache.put` (its tags were
    invalidated while the handler ran)."""
    since = state.cache.epoch  # before the handler reads the database
    try:
        result = await route.handler(call)
    except Exception as exc:
        if stale is not None and problems.is_unavailable(exc):
            log.info("database unavailable; serving a stale cached answer", path=request.path)
            return (
                _respond(state, route, stale.body, stale.etag, 200, call.headers, "stale"),
                None,
                False,
            )
        raise

    status = route.status
    if isinstance(result, Reply):
        status = result.status or status
        call.headers.update(result.headers)
        result = result.value
    if route.response is None or status == 204:
        return (
            _respond(state, route, b"", None, 204 if status == 200 else status, call.headers, None),
            None,
            False,
        )
    payload = encode(result)
    is_get = request.method in ("GET", "HEAD")
    etag = hot.etag_for(payload) if is_get and status == 200 else None
    stored = None
    refused = False
    if cache_key is not None and tags is not None and status == 200:
        stored = state.cache.put(cache_key, payload, tags=tags, since=since, route=route)
        refused = stored is None
    return (
        _respond(state, route, payload, etag, status, call.headers, "miss" if cache_key else None),
        stored,
        refused,
    )


def answer_headers(etag: str | None, cache_state: str | None) -> dict[str, str]:
    """``ETag``, ``Cache-Control`` and ``X-Cache`` of an encoded answer (after
    its Content-Type and Content-Length; the fast path sends the same)."""
    headers = {}
    if etag is not None:
        headers["ETag"] = etag
        # A public, hot-cached answer may be kept for a second by a shared cache (the
        # nginx micro-cache of deploy/nginx/zmartd.conf, so a burst of identical reads
        # costs one request); browsers revalidate every time (ETag -> 304). Anything
        # else (authenticated answers) is revalidated by everyone.
        headers["Cache-Control"] = SHARED_CACHE_CONTROL if cache_state is not None else "no-cache"
    if cache_state is not None:
        headers["X-Cache"] = cache_state
    return headers


def _respond(
    state: ApiState,
    route: Route,
    payload: bytes,
    etag: str | None,
    status: int,
    extra: dict[str, str],
    cache_state: str | None,
) -> Response:
    if etag is not None and hot.etag_matches(request.headers.get("If-None-Match"), etag):
        status, payload = 304, b""
    if status in (204, 304) or not payload:
        response = Response(b"", status=status)
        response.headers.pop("Content-Type", None)  # no body, no type (Quart says text/html)
    else:
        response = Response(payload, status=status, content_type=JSON)
    for name, value in answer_headers(etag, cache_state).items():
        response.headers[name] = value
    if cache_state is not None:
        state.ctx.metrics.http_cache.labels(cache_state).inc()
    for name, value in extra.items():
        response.headers[name] = value
    return response


def view_function(route: Route) -> Callable[..., Awaitable[Response]]:
    """The Quart view that dispatches ``route`` (see :func:`_dispatch`)."""

    async def view(**params: Any) -> Response:
        return await _dispatch(api_state(), route, params)

    view.__name__ = route.operation_id
    return view
