"""Price history: OHLC candles of the YES price, computed in SQL from price points.

Points come from trades (written with them, see :mod:`.trades`), from market
creation and from optional snapshots.  Buckets are aligned to the Unix epoch
(``date_bin``), so the same candle has the same start in every query.  Only
buckets that contain points are returned; a chart carries the previous close
over empty buckets.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg

from zmartd.storage.database import Database
from zmartd.storage.records import CandleRecord, InvalidArgument, rejected, u64

__all__ = ["INTERVALS", "MAX_CANDLES", "CandleInterval", "add_price_point", "candles"]

CandleInterval = Literal["1m", "5m", "1h", "1d"]
INTERVALS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
MAX_CANDLES = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_CANDLES = """
SELECT date_bin($2::interval, at, $5::timestamptz) AS start,
       (array_agg(price_yes ORDER BY at, id))[1] AS open,
       max(price_yes) AS high,
       min(price_yes) AS low,
       (array_agg(price_yes ORDER BY at DESC, id DESC))[1] AS close,
       sum(volume) AS volume,
       count(*) AS points
FROM price_points
WHERE market_id = $1::text AND at >= $3::timestamptz AND at < $4::timestamptz
GROUP BY 1
ORDER BY 1
"""


async def candles(
    db: Database, market_id: str, *, interval: CandleInterval, start: datetime, end: datetime
) -> tuple[CandleRecord, ...]:
    """Candles over ``[start, end)``; at most :data:`MAX_CANDLES` buckets per request."""
    step = INTERVALS.get(interval)
    if step is None:
        raise InvalidArgument(f"interval must be one of {sorted(INTERVALS)}, got {interval!r}")
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidArgument("start and end must be timezone-aware")
    if end <= start:
        raise InvalidArgument("end must be after start")
    if (end - start) / step > MAX_CANDLES:
        raise InvalidArgument(f"more than {MAX_CANDLES} {interval} candles requested")

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(_CANDLES, market_id, step, start, end, _EPOCH)
        return rows

    rows = await db.run("prices.candles", _run, transaction=False)
    return tuple(
        CandleRecord(
            start=r["start"],
            open=r["open"],
            high=r["high"],
            low=r["low"],
            close=r["close"],
            volume=u64(r["volume"]),
            points=r["points"],
        )
        for r in rows
    )


async def add_price_point(
    db: Database,
    market_id: str,
    *,
    at: datetime,
    price_yes: int,
    slot: int,
    source: Literal["create", "snapshot"] = "snapshot",
) -> None:
    """Record a non-trade point (the 0.5 at creation, or a periodic snapshot)."""

    async def _run(con: asyncpg.Connection) -> None:
        await con.execute(
            "INSERT INTO price_points (market_id, at, price_yes, source, slot) "
            "VALUES ($1, $2, $3, $4, $5)",
            market_id,
            at,
            price_yes,
            source,
            slot,
        )

    try:
        await db.run("prices.add_price_point", _run)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc
