"""Platform-wide feeds: trending markets, recent activity, related markets, the
price-point series and market counts.

The original ZMART web frontend's sidebars read these (served by the legacy
``/api`` surface, ``zmartd/api/compat``); each is one query in one crossing.
Everything is computed from the indexed chain mirror (trades, price points,
market timestamps): no value is estimated or random.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from zmartd.storage.database import Database
from zmartd.storage.records import InvalidArgument, check_limit, u64

__all__ = [
    "MAX_FEED",
    "ActivityRecord",
    "MarketBrief",
    "PricePoint",
    "TrendingRecord",
    "activity",
    "category_growth",
    "count_markets",
    "price_points",
    "related",
    "trending",
]

MAX_FEED = 100


class MarketBrief(msgspec.Struct, frozen=True, kw_only=True):
    """What a sidebar shows of a market."""

    market_id: str
    title: str | None
    category: str | None
    state: int
    price_yes: int


class TrendingRecord(MarketBrief, frozen=True, kw_only=True):
    #: lamports traded since ``since``
    volume: int
    #: distinct wallets that traded since ``since``
    traders: int
    #: the YES price at ``since`` (the last point at or before it; for a younger
    #: market its first point, i.e. the creation price)
    price_before: int


class ActivityRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One item of the activity feed: a trade, a market's creation or its final
    resolution (``finalized_at``)."""

    kind: Literal["trade", "creation", "resolution"]
    at: datetime
    market_id: str
    title: str | None
    #: trader, creator, or resolver (the creator when the market has no resolver)
    wallet: str
    trade_id: int | None
    side: str | None
    outcome: str | None
    shares: int | None
    amount: int | None
    #: resolution only: the final outcome (None = INVALID)
    final_outcome: bool | None


class PricePoint(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    price_yes: int


async def _fetch(db: Database, unit: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(sql, *args)
        return rows

    return await db.run(unit, _run, transaction=False)


async def count_markets(
    db: Database, *, state: int | None = None, category: str | None = None
) -> int:
    """How many markets match the filters of the market list."""
    if state is not None and state not in range(7):
        raise InvalidArgument(f"state must be an integer 0..6, got {state!r}")
    rows = await _fetch(
        db,
        "feeds.count_markets",
        "SELECT count(*) AS n FROM markets m LEFT JOIN market_metadata md "
        "ON md.market_id = m.market_id WHERE ($1::smallint IS NULL OR m.state = $1::smallint) "
        "AND ($2::text IS NULL OR md.category = $2::text)",
        state,
        category,
    )
    n: int = rows[0]["n"]
    return n


_TRENDING = """
SELECT m.market_id, md.title, md.category, m.state, m.price_yes,
       coalesce(v.volume, 0) AS volume, coalesce(v.traders, 0) AS traders,
       coalesce(
           (SELECT p.price_yes FROM price_points p
             WHERE p.market_id = m.market_id AND p.at <= $1::timestamptz
             ORDER BY p.at DESC, p.id DESC LIMIT 1),
           (SELECT p.price_yes FROM price_points p
             WHERE p.market_id = m.market_id ORDER BY p.at, p.id LIMIT 1),
           m.price_yes) AS price_before
FROM markets m
LEFT JOIN market_metadata md ON md.market_id = m.market_id
LEFT JOIN LATERAL (
    SELECT sum(t.amount) AS volume, count(DISTINCT t.wallet) AS traders FROM trades t
     WHERE t.market_id = m.market_id AND t.block_time > $1::timestamptz
) v ON true
WHERE m.state = 2
ORDER BY volume DESC, m.total_volume DESC, m.created_at DESC, m.market_id
LIMIT $2
"""


async def trending(db: Database, *, since: datetime, limit: int) -> tuple[TrendingRecord, ...]:
    """ACTIVE markets by volume traded since ``since`` (then total volume, then newest)."""
    check_limit(limit, MAX_FEED)
    rows = await _fetch(db, "feeds.trending", _TRENDING, since, limit)
    return tuple(
        TrendingRecord(
            market_id=r["market_id"],
            title=r["title"],
            category=r["category"],
            state=r["state"],
            price_yes=r["price_yes"],
            volume=u64(r["volume"]),
            traders=r["traders"],
            price_before=r["price_before"],
        )
        for r in rows
    )


_ACTIVITY = """
SELECT a.*, md.title FROM (
    (SELECT 'trade' AS kind, t.block_time AS at, t.market_id, t.wallet, t.id AS trade_id,
            t.side, t.outcome, t.shares, t.amount, NULL::boolean AS final_outcome
       FROM trades t ORDER BY t.block_time DESC, t.id DESC LIMIT $1)
    UNION ALL
    (SELECT 'creation', m.created_at, m.market_id, m.creator, NULL, NULL, NULL, NULL, NULL, NULL
       FROM markets m ORDER BY m.created_at DESC LIMIT $1)
    UNION ALL
    (SELECT 'resolution', m.finalized_at, m.market_id, coalesce(m.resolver, m.creator), NULL,
            NULL, NULL, NULL, NULL, m.final_outcome
       FROM markets m WHERE m.finalized_at IS NOT NULL ORDER BY m.finalized_at DESC LIMIT $1)
) a
LEFT JOIN market_metadata md ON md.market_id = a.market_id
ORDER BY a.at DESC, a.kind, a.trade_id DESC NULLS LAST, a.market_id
LIMIT $1
"""


async def activity(db: Database, *, limit: int) -> tuple[ActivityRecord, ...]:
    """The newest ``limit`` trades, market creations and final resolutions, newest first."""
    check_limit(limit, MAX_FEED)
    rows = await _fetch(db, "feeds.activity", _ACTIVITY, limit)
    return tuple(
        ActivityRecord(
            kind=r["kind"],
            at=r["at"],
            market_id=r["market_id"],
            title=r["title"],
            wallet=r["wallet"],
            trade_id=r["trade_id"],
            side=r["side"],
            outcome=r["outcome"],
            shares=None if r["shares"] is None else u64(r["shares"]),
            amount=None if r["amount"] is None else u64(r["amount"]),
            final_outcome=r["final_outcome"],
        )
        for r in rows
    )


async def related(
    db: Database, *, market_id: str, category: str | None, limit: int
) -> tuple[MarketBrief, ...]:
    """Other ACTIVE markets: those of ``category`` first, then by volume, newest."""
    check_limit(limit, MAX_FEED)
    rows = await _fetch(
        db,
        "feeds.related",
        "SELECT m.market_id, md.title, md.category, m.state, m.price_yes FROM markets m "
        "LEFT JOIN market_metadata md ON md.market_id = m.market_id "
        "WHERE m.state = 2 AND m.market_id <> $1::text "
        "ORDER BY (md.category IS NOT DISTINCT FROM $2::text AND $2::text IS NOT NULL) DESC, "
        "m.total_volume DESC, m.created_at DESC, m.market_id LIMIT $3",
        market_id,
        category,
        limit,
    )
    return tuple(
        MarketBrief(
            market_id=r["market_id"],
            title=r["title"],
            category=r["category"],
            state=r["state"],
            price_yes=r["price_yes"],
        )
        for r in rows
    )


async def price_points(db: Database, market_id: str, *, limit: int) -> tuple[PricePoint, ...]:
    """The market's newest ``limit`` price points (creation, trades, snapshots), oldest
    first."""
    check_limit(limit, 1000)
    rows = await _fetch(
        db,
        "feeds.price_points",
        "SELECT at, price_yes FROM (SELECT at, id, price_yes FROM price_points "
        "WHERE market_id = $1::text ORDER BY at DESC, id DESC LIMIT $2) p ORDER BY at, id",
        market_id,
        limit,
    )
    return tuple(PricePoint(at=r["at"], price_yes=r["price_yes"]) for r in rows)


async def category_growth(
    db: Database, categories: Sequence[str], since: datetime
) -> dict[str, tuple[int, int]]:
    """Per category: (markets on chain created before ``since``, created since)."""
    rows = await _fetch(
        db,
        "feeds.category_growth",
        "SELECT md.category, count(*) FILTER (WHERE m.created_at <= $2::timestamptz) AS before, "
        "count(*) FILTER (WHERE m.created_at > $2::timestamptz) AS recent "
        "FROM market_metadata md JOIN markets m ON m.market_id = md.market_id "
        "WHERE md.category = ANY($1::text[]) GROUP BY md.category",
        list(categories),
        since,
    )
    return {r["category"]: (r["before"], r["recent"]) for r in rows}
