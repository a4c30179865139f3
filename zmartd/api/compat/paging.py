"""Offset windows over zmartd's cursor pages, for the legacy ``?offset=&limit=``.

``/v1`` lists are keyset-paginated and offer no offsets (they skip or repeat
rows while trades are indexed).  The original frontend and its Postman
collection send ``offset``; the legacy routes walk the same handler's cursor
pages up to ``offset + limit`` rows, bounded by :data:`MAX_WINDOW`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from zmartd.storage.records import Page

__all__ = ["MAX_WINDOW", "window"]

T = TypeVar("T")

#: offset + limit of a legacy list (deeper pages: use the /v1 cursor).
MAX_WINDOW: Final = 1000

Fetch = Callable[[int, str | None], Awaitable[Page[T]]]


async def window(fetch: Fetch[T], *, offset: int, limit: int, page_size: int) -> list[T]:
    """Rows ``offset .. offset + limit`` of the list ``fetch(limit, cursor)`` pages through."""
    wanted = min(offset + limit, MAX_WINDOW)
    items: list[T] = []
    cursor: str | None = None
    while len(items) < wanted:
        page = await fetch(min(page_size, wanted - len(items)), cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return items[offset:wanted]
