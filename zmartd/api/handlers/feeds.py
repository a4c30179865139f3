"""Platform-wide feeds (trending, activity, related markets, price points, category
growth, market counts) and a single position: what the legacy ``/api`` surface
serves beyond the ``/v1`` handlers it shares.  Markets are resolved by
:func:`zmartd.api.handlers.markets.resolve`, the one place an unknown market
becomes a 404."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from zmartd.api import problems
from zmartd.api.handlers.markets import now, resolve
from zmartd.model import views
from zmartd.storage import feeds as store
from zmartd.storage import markets as market_store
from zmartd.storage import positions as position_store
from zmartd.storage.database import Database
from zmartd.storage.feeds import ActivityRecord, MarketBrief, PricePoint, TrendingRecord
from zmartd.storage.records import CategoryCount

__all__ = [
    "DAY",
    "GROWTH_WINDOW",
    "activity",
    "categories",
    "count_markets",
    "position",
    "price_points",
    "related",
    "trending",
]

#: The window of "24 h" figures (trending volume and price change).
DAY: Final = timedelta(hours=24)
#: The window over which a category's growth is measured.
GROWTH_WINDOW: Final = timedelta(days=7)


async def trending(
    db: Database, *, limit: int, at: datetime | None = None
) -> tuple[TrendingRecord, ...]:
    return await store.trending(db, since=(at or now()) - DAY, limit=limit)


async def activity(db: Database, *, limit: int) -> tuple[ActivityRecord, ...]:
    return await store.activity(db, limit=limit)


async def related(
    db: Database, ref: str, *, limit: int
) -> tuple[str | None, tuple[MarketBrief, ...]]:
    """The category of ``ref`` and the markets related to it; none when ``ref`` names no
    market."""
    try:
        market = await resolve(db, ref)
    except problems.Problem:
        return None, ()
    rows = await store.related(
        db, market_id=market.market_id, category=market.category, limit=limit
    )
    return market.category, rows


async def price_points(
    db: Database, ref: str, *, limit: int
) -> tuple[views.Market, tuple[PricePoint, ...]]:
    """The market (404 when unknown) and its newest ``limit`` price points."""
    market = await resolve(db, ref)
    return views.market_view(market), await store.price_points(db, market.market_id, limit=limit)


async def categories(
    db: Database,
    *,
    limit: int,
    at: datetime | None = None,
) -> list[tuple[CategoryCount, int, int]]:
    """The most used categories with (markets before, markets since) the growth window."""
    counts = await market_store.category_counts(db, limit=limit)
    growth = await store.category_growth(
        db, [c.category for c in counts], (at or now()) - GROWTH_WINDOW
    )
    return [(c, *growth.get(c.category, (c.markets, 0))) for c in counts]


async def count_markets(db: Database, *, state: int | None, category: str | None) -> int:
    return await store.count_markets(db, state=state, category=category)


async def position(db: Database, wallet: str, ref: str) -> views.Position:
    """``wallet``'s position in the market ``ref``; 404 when either is unknown."""
    market = await resolve(db, ref)
    record = await position_store.get_position(db, market.market_id, wallet)
    if record is None:
        raise problems.not_found(f"{wallet} has no position in market {market.market_id}")
    return views.position_view(record)
