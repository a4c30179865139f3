"""Trades (SharesBought / SharesSold events) and the price points they create.

Reads page through a market's or a wallet's trades newest first, keyset on
``(block_time, id)``.  The indexer's write inserts a batch of trades and their
price points in one statement; an event already stored (same signature,
instruction index, event index) is skipped, so replays are harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from zmartd.storage.database import Database
from zmartd.storage.records import (
    Outcome,
    Page,
    Side,
    TradeRecord,
    check_limit,
    decode_cursor,
    encode_cursor,
    rejected,
    u64,
)

__all__ = ["FIELDS", "MAX_PAGE", "TradeEvent", "insert_trades", "list_market_trades",
           "list_user_trades", "write_trades"]

MAX_PAGE = 200

_COLUMNS = (
    "id, market_id, wallet, side, outcome, shares, amount, price_yes, block_time, slot, "
    "signature, instruction_index, event_index, finalized"
)


class TradeEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded SharesBought/SharesSold, as the indexer writes it."""

    market_id: str
    wallet: str
    side: Side
    outcome: Outcome
    shares: int
    #: buy: ``cost`` (incl. fees); sell: ``proceeds`` (net)
    amount: int
    #: ``new_price_yes`` (scaled 1e9)
    price_yes: int
    block_time: datetime
    slot: int
    signature: str
    instruction_index: int
    event_index: int = 0
    finalized: bool = False


def _trade(row: asyncpg.Record) -> TradeRecord:
    data: dict[str, Any] = dict(row)
    data["shares"] = u64(data["shares"])
    data["amount"] = u64(data["amount"])
    return TradeRecord(**data)


async def _list(
    db: Database, column: str, value: str, kind: str, limit: int, cursor: str | None
) -> Page[TradeRecord]:
    check_limit(limit, MAX_PAGE)
    args: list[Any] = [value]
    where = f"{column} = $1::text"
    if cursor is not None:
        at, last_id = decode_cursor(cursor, kind, (datetime, int))
        args += [at, last_id]
        where += " AND (block_time, id) < ($2::timestamptz, $3::bigint)"
    args.append(limit + 1)
    sql = (f"SELECT {_COLUMNS} FROM trades WHERE {where} "
           f"ORDER BY block_time DESC, id DESC LIMIT ${len(args)}")

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(sql, *args)
        return rows

    rows = await db.run(_run, transaction=False)
    items = tuple(_trade(r) for r in rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(kind, (items[-1].block_time, items[-1].id))
    return Page(items=items, next_cursor=next_cursor)


async def list_market_trades(
    db: Database, market_id: str, *, limit: int = 50, cursor: str | None = None
) -> Page[TradeRecord]:
    """A market's trades, newest first."""
    return await _list(db, "market_id", market_id, "trades:market", limit, cursor)


async def list_user_trades(
    db: Database, wallet: str, *, limit: int = 50, cursor: str | None = None
) -> Page[TradeRecord]:
    """A wallet's trades across markets, newest first."""
    return await _list(db, "wallet", wallet, "trades:wallet", limit, cursor)


_INSERT = """
WITH ins AS (
    INSERT INTO trades (market_id, wallet, side, outcome, shares, amount, price_yes, block_time,
                        slot, signature, instruction_index, event_index, finalized)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                         $6::numeric[], $7::bigint[], $8::timestamptz[], $9::bigint[],
                         $10::text[], $11::smallint[], $12::smallint[], $13::boolean[])
    ON CONFLICT (signature, instruction_index, event_index) DO NOTHING
    RETURNING id, market_id, block_time, price_yes, amount, slot
), points AS (
    INSERT INTO price_points (market_id, at, price_yes, volume, source, trade_id, slot)
    SELECT market_id, block_time, price_yes, amount, 'trade', id, slot FROM ins
    RETURNING 1
)
SELECT count(*) FROM points
"""

#: TradeEvent fields in the column order of the trades INSERTs
FIELDS = ("market_id", "wallet", "side", "outcome", "shares", "amount", "price_yes",
           "block_time", "slot", "signature", "instruction_index", "event_index", "finalized")


async def write_trades(con: asyncpg.Connection, trades: Sequence[TradeEvent]) -> int:
    """Insert trades and their price points (asyncio side); returns how many were new."""
    if not trades:
        return 0
    columns = [[getattr(t, f) for t in trades] for f in FIELDS]
    inserted: int = await con.fetchval(_INSERT, *columns)
    return inserted


async def insert_trades(db: Database, trades: Sequence[TradeEvent]) -> int:
    """:func:`write_trades` as its own transaction."""

    async def _run(con: asyncpg.Connection) -> int:
        return await write_trades(con, trades)

    try:
        return await db.run(_run)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc
