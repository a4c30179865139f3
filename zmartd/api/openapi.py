"""The OpenAPI 3.1 document, generated from the route declarations, and ``/docs``.

Nothing here is written by hand per endpoint: each :class:`Route` already
says its method, path, parameters, body and response types, auth mode, rate
class, cache and extra errors, and msgspec turns the types into JSON Schema
2020-12 (the dialect of OpenAPI 3.1) with
:func:`msgspec.json.schema_components`.  Every operation documents every
response the machinery can produce -- success, 304, and the problem+json
answers 400/401/403/404/409/413/415/422/429/503 where they apply -- with
their headers, so that a schema-driven fuzzer (schemathesis) can check
each answer against the document.

``/docs`` is Swagger UI from the ``swagger-ui-py`` package's bundled assets
(Swagger UI 5: the 4.x of ``swagger-ui-bundle`` cannot render OpenAPI 3.1),
served by zmartd itself, so it works on a host that cannot reach any CDN.
The page has no inline script, which lets its CSP forbid everything but
``'self'``.
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import msgspec
from quart import Response
from quart_trio import QuartTrio

from zmartd import __version__
from zmartd.api.problems import (
    CONTENT_TYPE,
    KINDS,
    OVERLOADED_RETRY_AFTER,
    ProblemDoc,
    not_found,
)
from zmartd.api.validation import schema_hook

if TYPE_CHECKING:
    from zmartd.api.routing import ApiState, Route

__all__ = ["ASSETS_PATH", "DOCS_PATH", "OPENAPI_PATH", "build_document", "install"]

OPENAPI_PATH: Final = "/openapi.json"
DOCS_PATH: Final = "/docs"
ASSETS_PATH: Final = "/docs/assets/"
_REF: Final = "#/components/schemas/{name}"
_SWAGGER_FILES: Final = frozenset(
    {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "favicon-32x32.png",
        "favicon-16x16.png",
    }
)

# Problem responses shared by operations: (status, component name, description, kinds).
_PROBLEMS: Final = {
    400: ("Malformed", "The body is not JSON, is nested too deeply, or is empty.", ["malformed"]),
    401: (
        "Unauthorized",
        "Missing, malformed, unknown, expired or revoked session token, or a "
        "sign-in proof that does not verify.",
        ["unauthorized"],
    ),
    403: ("Forbidden", "Signed in, but not allowed.", ["forbidden"]),
    404: ("NotFound", "No such resource.", ["not-found"]),
    409: ("Conflict", "The request conflicts with the current state.", ["conflict"]),
    413: ("PayloadTooLarge", "The body exceeds the size limit.", ["payload-too-large"]),
    415: (
        "UnsupportedMediaType",
        "The body is not sent as application/json.",
        ["unsupported-media-type"],
    ),
    422: (
        "ValidationFailed",
        "Invalid parameters or body; `errors` lists `{field, message}`.",
        ["validation"],
    ),
    429: (
        "RateLimited",
        "A rate-limit bucket is empty; retry after `Retry-After` seconds.",
        ["rate-limited"],
    ),
    503: (
        "Unavailable",
        "The database is unreachable, or the server sheds load; retry after `Retry-After` seconds.",
        ["unavailable", "overloaded"],
    ),
}

_INT_HEADER: Final = {"schema": {"type": "integer", "minimum": 0}}
_HEADERS: Final[dict[str, Any]] = {
    "Retry-After": {"description": "Seconds to wait before retrying.", **_INT_HEADER},
    "RateLimit-Limit": {"description": "Size of the bucket this request drew from.", **_INT_HEADER},
    "RateLimit-Remaining": {"description": "Tokens left in that bucket.", **_INT_HEADER},
    "RateLimit-Reset": {"description": "Seconds until the bucket is full again.", **_INT_HEADER},
    "RateLimit-Policy": {
        "description": "`<burst>;w=<seconds to refill>`.",
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "Validator of the body; send it back in If-None-Match.",
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {"description": "The scheme to use: Bearer.", "schema": {"type": "string"}},
}
_RATE_HEADERS: Final = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
)


def _header_refs(names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {n: {"$ref": f"#/components/headers/{n}"} for n in names}


def _problem_schema(components: dict[str, Any]) -> dict[str, Any]:
    (ref,), comps = msgspec.json.schema_components([ProblemDoc], ref_template=_REF)
    components.update(comps)
    schema = components["ProblemDoc"]
    schema["properties"]["type"] = {
        "type": "string",
        "enum": sorted(k.type for k in KINDS.values()),
        "description": "Stable identifier of the kind of problem; branch on this.",
    }
    schema["description"] = "RFC 9457 problem details."
    return dict(ref)


#: Query and path values may not carry control characters (C0, DEL, C1: the validator
#: answers 422, zmartd/api/validation.py); say so in their schemas, so a request that
#: follows the document is never refused for them.
_NO_CONTROLS: Final = r"^[^\x00-\x1f\x7f-\x9f]*$"
_ONLY_NO_NUL: Final = r"^[^\x00]*$"


def _without_controls(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema (a copy) that excludes control characters from free text."""
    schema = dict(schema)
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        schema["items"] = _without_controls(schema["items"])
    elif schema.get("type") == "string" and "enum" not in schema and "const" not in schema:
        if schema.get("pattern") in (None, _ONLY_NO_NUL):
            schema["pattern"] = _NO_CONTROLS
    elif "anyOf" in schema:
        schema["anyOf"] = [
            _without_controls(s) if isinstance(s, dict) else s for s in schema["anyOf"]
        ]
    return schema


def _params(route: Route, components: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if route.path_type is not None:
        schema = components[route.path_type.__name__]
        props = schema.get("properties", {})
        for name in route.path_params:
            out.append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": _without_controls(props.get(name, {"type": "string"})),
                }
            )
    else:
        for name in route.path_params:
            out.append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "pattern": _NO_CONTROLS},
                }
            )
    if route.query is not None:
        schema = components[route.query.__name__]
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": _without_controls(prop),
            }
            if prop.get("type") == "array":
                param.update(style="form", explode=True)
            if "description" in prop:
                param["description"] = prop["description"]
            out.append(param)
    return out


def _problem_statuses(route: Route) -> list[int]:
    statuses = {422, 503} | set(route.errors)
    if route.body is not None:
        statuses |= {400, 413, 415}
    if route.query is not None or route.path_type is not None:
        statuses.add(400)  # e.g. a cursor not issued here, base58 that is not a key
    if "<pubkey:" in route.path or "<signature:" in route.path:
        statuses.add(404)  # a segment that cannot be a key/signature matches no route
    if route.auth in ("session", "admin", "optional"):
        statuses.add(401)
    if route.auth == "admin":
        statuses.add(403)
    if route.rate is not None:
        statuses.add(429)
    return sorted(s for s in statuses if s in _PROBLEMS)


def _operation(
    route: Route, refs: dict[Any, dict[str, Any]], components: dict[str, Any]
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": list(route.tags),
    }
    if route.description:
        op["description"] = route.description
    if route.deprecated:
        op["deprecated"] = True
    params = _params(route, components)
    if params:
        op["parameters"] = params
    if route.auth in ("session", "admin"):
        op["security"] = [{"session": []}]
    elif route.auth == "optional":
        op["security"] = [{"session": []}, {}]
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[route.body]}},
        }
    rate_headers = list(_RATE_HEADERS) if route.rate is not None else []
    responses: dict[str, Any] = {}
    if route.response is None or route.status == 204:
        responses[str(route.status)] = {
            "description": "Done; no content.",
            "headers": _header_refs(rate_headers),
        }
    else:
        headers = rate_headers + (["ETag"] if route.method == "GET" else [])
        responses[str(route.status)] = {
            "description": "Success.",
            "headers": _header_refs(headers),
            "content": {"application/json": {"schema": refs[route.response]}},
        }
    if route.method == "GET" and route.status == 200 and route.response is not None:
        responses["304"] = {
            "description": "Not modified (If-None-Match matched the ETag).",
            "headers": _header_refs(["ETag", *rate_headers]),
        }
    links = LINKS.get((route.operation_id, route.status))
    if links:
        responses[str(route.status)]["links"] = links
    for status in _problem_statuses(route):
        responses[str(status)] = {"$ref": f"#/components/responses/{_PROBLEMS[status][0]}"}
    op["responses"] = responses
    return op


#: The operations a market's id leads to (its sub-resources and actions).
_MARKET_OPS: Final = (
    "markets_get_market",
    "markets_market_trades",
    "markets_market_prices",
    "markets_market_holders",
    "markets_market_quote",
    "votes_market_votes",
    "discussions_market_discussions",
    "discussions_post_discussion",
    "votes_vote_proposal",
    "votes_vote_dispute",
)


def _to(ops: tuple[str, ...], param: str, pointer: str) -> dict[str, Any]:
    return {
        op.split("_", 1)[1]: {"operationId": op, "parameters": {param: f"$response.body#{pointer}"}}
        for op in ops
    }


#: OpenAPI links: where an answer's ids lead (operation, status -> links).
#: Clients and schema-driven tools (schemathesis' stateful phase) follow
#: these instead of guessing from parameter names -- a guess that took the
#: ``market_id`` of ``POST /v1/markets`` (metadata, kept until the market
#: is on chain) for a market that ``GET /v1/markets/{market_id}`` serves.
LINKS: Final[dict[tuple[str, int], dict[str, Any]]] = {
    ("markets_list_markets", 200): _to(_MARKET_OPS, "market_id", "/items/0/market_id"),
    ("markets_get_market", 200): {
        **_to(_MARKET_OPS[1:], "market_id", "/market_id"),
        **_to(("users_get_user",), "wallet", "/creator"),
    },
    ("markets_register_metadata", 201): _to(
        ("markets_update_metadata",), "market_id", "/market_id"
    ),
    ("discussions_post_discussion", 201): _to(("discussions_delete_discussion",), "post_id", "/id"),
    ("auth_verify", 201): _to(
        ("users_get_user", "users_user_positions", "users_user_trades", "users_user_votes"),
        "wallet",
        "/wallet",
    ),
}


def build_document(
    routes: list[Route], *, title: str = "zmartd API", server_url: str | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    types: list[Any] = []
    for route in routes:
        for t in (route.body, route.query, route.path_type, route.response):
            if t is not None and t not in types:
                types.append(t)
    schemas, components = msgspec.json.schema_components(
        types, schema_hook=schema_hook, ref_template=_REF
    )
    refs = {t: dict(s) for t, s in zip(types, schemas, strict=True)}
    problem_ref = _problem_schema(components)

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = _operation(
            route, refs, components
        )
    # Path/query structs are flattened into parameters; drop their unused components.
    for route in routes:
        for t in (route.query, route.path_type):
            if (
                t is not None
                and t not in (r.body for r in routes)
                and t not in (r.response for r in routes)
            ):
                components.pop(t.__name__, None)

    responses: dict[str, Any] = {}
    for status, (name, description, kinds) in _PROBLEMS.items():
        headers: list[str] = []
        if status in (429, 503):
            headers.append("Retry-After")
        if status == 429:
            headers += list(_RATE_HEADERS)
        if status == 401:
            headers.append("WWW-Authenticate")
        description += " Problem types: " + ", ".join(f"`{KINDS[k].type}`" for k in kinds) + "."
        responses[name] = {
            "description": description,
            "headers": _header_refs(headers),
            "content": {CONTENT_TYPE: {"schema": problem_ref}},
        }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": title,
            "version": __version__,
            "description": (
                "REST API of zmartd, the ZMART backend. Errors are RFC 9457 problem details "
                "(`application/problem+json`) with a stable `type`. Sign in with Solana "
                "(`/v1/auth/nonce`, `/v1/auth/verify`) and send the session token as "
                "`Authorization: Bearer <token>`. Lists are cursor-paginated (`cursor`, "
                "`limit`, `next_cursor`). Under load the server answers 503 with "
                f"`Retry-After: {OVERLOADED_RETRY_AFTER}`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": responses,
            "headers": _HEADERS,
            "securitySchemes": {
                "session": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Session token from POST /v1/auth/verify.",
                }
            },
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


# ------------------------------------------------------------------ serving

_DOCS_HTML: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>zmartd API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
"""

_INIT_JS: Final = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
    validatorUrl: null
  });
};
"""


def _asset(name: str) -> bytes:
    """A file of swagger-ui-py's bundled Swagger UI (no network, no CDN)."""
    return resources.files("swagger_ui").joinpath("static", name).read_bytes()


def install(app: QuartTrio, state: ApiState) -> None:
    """Serve ``/openapi.json``, ``/docs`` and the docs' assets."""
    cfg = state.ctx.config
    document: dict[str, bytes] = {}

    async def openapi_json() -> Response:
        if "body" not in document:  # built on first use: all routes are registered by then
            document["body"] = msgspec.json.encode(
                build_document(state.routes, server_url=cfg.http.public_url)
            )
        return Response(document["body"], content_type="application/json")

    async def docs() -> Response:
        return Response(_DOCS_HTML, content_type="text/html; charset=utf-8")

    async def asset(name: str) -> Response:
        if name == "init.js":
            return Response(_INIT_JS, content_type="text/javascript; charset=utf-8")
        if name not in _SWAGGER_FILES:
            raise not_found(f"no docs asset {name!r}")
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        response = Response(_asset(name), content_type=ctype)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    app.add_url_rule(OPENAPI_PATH, "openapi_json", openapi_json, methods=["GET"])
    app.add_url_rule(DOCS_PATH, "docs", docs, methods=["GET"])
    app.add_url_rule(ASSETS_PATH + "<name>", "docs_asset", asset, methods=["GET"])
