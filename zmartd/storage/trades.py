"""Trades (SharesBought / SharesSold events) and the price points they create.

Reads page through a market's or a wallet's trades newest first, keyset on
``(block_time, id)``.  The indexer's write inserts a batch of trades and their
price points in one statement; an event already stored (same signature,
instruction index, event index) is skipped, so replays are harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from zmartd.storage.bulk import recordset, rows_json
from zmartd.storage.cursors import BIGINT, TIME
from zmartd.storage.database import Database
from zmartd.storage.records import (
    Page,
    TradeEvent,
    TradeRecord,
    check_limit,
    from_row,
    rejected,
    sql_columns,
)

__all__ = [
    "MAX_PAGE",
    "TradeEvent",
    "TradeFee",
    "insert_trades",
    "list_market_trades",
    "list_user_trades",
    "write_trades",
]

MAX_PAGE = 200

_COLUMNS = ", ".join(TradeRecord.__struct_fields__)


class TradeFee(msgspec.Struct, frozen=True, kw_only=True):
    """Fee split of the trade with this event key."""

    signature: str
    instruction_index: int
    event_index: int
    base_amount: int
    protocol_fee: int
    resolver_fee: int
    lp_fee: int


def _trade(row: asyncpg.Record) -> TradeRecord:
    return from_row(TradeRecord, row)


async def _list(
    db: Database, column: str, value: str, kind: str, limit: int, cursor: str | None
) -> Page[TradeRecord]:
    check_limit(limit, MAX_PAGE)
    args: list[Any] = [value]
    where = f"{column} = $1::text"
    if cursor is not None:
        at, last_id = db.cursors.decode(cursor, kind, (TIME, BIGINT))
        args += [at, last_id]
        where += " AND (block_time, id) < ($2::timestamptz, $3::bigint)"
    args.append(limit + 1)
    sql = (
        f"SELECT {_COLUMNS} FROM trades WHERE {where} "
        f"ORDER BY block_time DESC, id DESC LIMIT ${len(args)}"
    )

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(sql, *args)
        return rows

    rows = await db.run(f"trades.by_{column}", _run, transaction=False)
    items = tuple(_trade(r) for r in rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        next_cursor = db.cursors.encode(kind, (items[-1].block_time, items[-1].id))
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


#: TradeEvent fields in the column order of the trades INSERT, with their SQL types
_TRADE_COLUMNS = sql_columns(TradeEvent)
_TRADE_FIELDS = ", ".join(_TRADE_COLUMNS)
_FEE_COLUMNS = {
    "signature": "text",
    "instruction_index": "smallint",
    "event_index": "smallint",
    "base_amount": "numeric",
    "protocol_fee": "numeric",
    "resolver_fee": "numeric",
    "lp_fee": "numeric",
}

_INSERT = f"""
WITH x AS (
    SELECT * FROM {recordset(1, _TRADE_COLUMNS, ordinality=True)}
), ins AS (
    INSERT INTO trades ({_TRADE_FIELDS})
    SELECT {_TRADE_FIELDS} FROM x ORDER BY ord
    ON CONFLICT (signature, instruction_index, event_index) DO NOTHING
    RETURNING id, market_id, block_time, price_yes, amount, slot, signature, instruction_index,
              event_index
), points AS (
    INSERT INTO price_points (market_id, at, price_yes, volume, source, trade_id, slot)
    SELECT market_id, block_time, price_yes, amount, 'trade', id, slot FROM ins
    RETURNING 1
), before AS (
    SELECT x.*, lag(x.price_yes) OVER (PARTITION BY x.market_id ORDER BY x.ord) AS prev
    FROM x
), fees AS (
    INSERT INTO trade_fees (trade_id, price_before, base_amount, protocol_fee, resolver_fee,
                            lp_fee)
    SELECT ins.id,
           coalesce(b.prev, (SELECT p.price_yes FROM trades p
                             WHERE p.market_id = b.market_id AND p.block_time <= b.block_time
                             ORDER BY p.block_time DESC, p.id DESC LIMIT 1), 500000000),
           f.base_amount, f.protocol_fee, f.resolver_fee, f.lp_fee
    FROM ins JOIN before b USING (signature, instruction_index, event_index)
             JOIN {recordset(2, _FEE_COLUMNS, alias="f")}
                  USING (signature, instruction_index, event_index)
    ON CONFLICT (trade_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM points), (SELECT count(*) FROM fees)
"""


async def write_trades(
    con: asyncpg.Connection,
    trades: Sequence[TradeEvent],
    fees: Sequence[TradeFee] = (),
) -> int:
    """Insert trades (in chain order), their price points and, for the trades
    ``fees`` names, their fee splits, in one statement (asyncio side);
    returns how many trades were new.

    The indexer passes *every* trade of a unit, replays included: inserting a
    replay is a no-op, but it still counts as the previous trade of its
    market.  ``price_before`` is the YES price of the market's previous trade:
    the one before it in ``trades``, or for a market's first trade here the
    newest stored trade at or before its block time (one index probe of
    ``trades_market_time`` per market, not per trade), or 0.5.  Carrying it
    along the unit avoids re-reading each inserted trade, whose cost grew
    with the table during a large backfill.  Rows travel as JSON
    (:mod:`zmartd.storage.bulk`).
    """
    if not trades:
        return 0
    row = await con.fetchrow(_INSERT, rows_json(trades), rows_json(fees))
    assert row is not None
    inserted: int = row[0]
    return inserted


async def insert_trades(db: Database, trades: Sequence[TradeEvent]) -> int:
    """:func:`write_trades` as its own transaction."""

    async def _run(con: asyncpg.Connection) -> int:
        return await write_trades(con, trades)

    try:
        return await db.run("trades.insert_trades", _run)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc
