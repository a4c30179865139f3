"""The legacy ``/api`` surface: the original ZMART web frontend's REST calls, served
unmodified next to ``/v1`` (docs/legacy-api.md).

Every route is an adapter: it parses the frontend's request, calls the same
handlers as ``/v1`` and reshapes their views (:mod:`.shapes`).  Errors keep the
``/v1`` problem document and add the two members the frontend reads, ``error``
and ``message`` (:func:`install`).
"""

from __future__ import annotations

from typing import Final

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from zmartd.api.compat import markets, users
from zmartd.api.problems import CONTENT_TYPE
from zmartd.api.routing import Router

__all__ = ["PREFIX", "ROUTERS", "install"]

#: Every legacy path starts with it (the frontend's base URL + "/api").
PREFIX: Final = "/api/"
ROUTERS: Final[tuple[Router, ...]] = (markets.router, users.router)


def legacy_error(body: bytes) -> bytes:
    """A problem document plus the original backend's ``error`` (the title) and
    ``message`` (the detail) members."""
    doc = msgspec.json.decode(body)
    if not isinstance(doc, dict):
        return body
    doc.setdefault("error", doc.get("title", "Error"))
    doc.setdefault("message", doc.get("detail", doc.get("title", "")))
    return msgspec.json.encode(doc)


def install(app: QuartTrio) -> None:
    """Serve ``/api/*`` without redirects, and give its error answers the legacy members.

    Werkzeug redirects (308) a path with a doubled slash to the merged one; the
    frontend's proxy mode forwards with ``redirect: manual``, so a redirect would reach
    the browser as an error.  Legacy rules therefore match a trailing slash as if it
    were absent (``/api/markets/`` is ``/api/markets``, as Express routed it) and never
    merge slashes (``/api//markets`` is a 404).  Call it before the first request
    (the rule map is compiled then).
    """
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX):
            rule.strict_slashes = False
            rule.merge_slashes = False

    @app.after_request
    async def _legacy_errors(response: Response) -> Response:
        if request.path.startswith(PREFIX) and response.mimetype == CONTENT_TYPE:
            response.set_data(legacy_error(await response.get_data(as_text=False)))
        return response
