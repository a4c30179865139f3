"""Cursor pagination: the query parameters and the response shape of every list.

Lists are keyset-paginated: the storage layer encodes the position after
the last returned row into an opaque ``cursor`` string, and the client
passes ``next_cursor`` back to get the following page.  Offsets are not
offered: they skip or repeat rows while trades are being indexed, and they
make deep pages cost O(offset).

A list route declares ``query=PageQuery`` (or a subclass that adds
filters) and ``response=Page[Item]``::

    @router.get("/v1/markets", query=MarketListQuery, response=Page[Market])
    async def list_markets(call: Call[None, MarketListQuery]) -> Page[Market]:
        return await handlers.markets.list(call.ctx, call.query)

The storage layer owns the cursor format and the page shape
(:class:`zmartd.storage.records.Page`, re-exported here).  A cursor it
cannot decode (tampered, from another list or sort, from an older format)
raises :class:`~zmartd.storage.records.InvalidCursor`; the route machinery
turns that into a 400 ``malformed`` problem saying to restart without a
cursor (:func:`invalid_cursor`), so list routes need no code for it.  400,
not 422: the schema can only say "a string of these characters"; that the
server issued it is beyond any schema, so a well-formed forged or stale
cursor is a malformed request rather than a schema violation.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from zmartd.api.problems import invalid_cursor
from zmartd.api.validation import Query
from zmartd.storage.records import InvalidCursor, Page

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "InvalidCursor",
    "Page",
    "PageQuery",
    "invalid_cursor",
]

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100

Cursor = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=512,
        pattern=r"^[A-Za-z0-9_\-=.~]+$",
        description="opaque position returned as next_cursor by the previous page",
    ),
]
Limit = Annotated[
    int,
    msgspec.Meta(
        ge=1,
        le=MAX_LIMIT,
        description=f"items per page (1..{MAX_LIMIT})",
    ),
]


class PageQuery(Query, frozen=True, kw_only=True):
    """``?cursor=...&limit=...``; subclass it to add a list's filters."""

    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT
