"""Positions (UserPosition accounts): a wallet's portfolio and a market's holders.

Rows are the chain's account state, written by the indexer with a slot guard
(an older account state never overwrites a newer one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from zmartd.storage.bulk import recordset, write_newest
from zmartd.storage.cursors import TEXT, TIME, U64
from zmartd.storage.database import Database
from zmartd.storage.records import (
    HolderRecord,
    Page,
    PositionRecord,
    PositionState,
    check_limit,
    from_row,
    rejected,
    sql_columns,
    u64,
)

__all__ = [
    "MAX_PAGE",
    "PositionState",
    "get_position",
    "list_holders",
    "list_user_positions",
    "upsert_positions",
    "write_positions",
]

MAX_PAGE = 200

_COLUMNS = """
    p.market_id, p.wallet, p.address, p.shares_yes, p.shares_no, p.total_invested,
    p.trades_count, p.last_trade_at, p.has_claimed, p.claimed_amount, p.slot, p.finalized,
    m.state AS market_state, m.price_yes AS market_price_yes,
    m.final_outcome AS market_final_outcome, md.title AS market_title,
    m.creator AS market_creator, m.b_parameter AS market_b_parameter,
    m.shares_yes AS market_shares_yes, m.shares_no AS market_shares_no,
    m.current_liquidity AS market_current_liquidity,
    m.accumulated_resolver_fees AS market_accumulated_resolver_fees
"""
_FROM = """
    FROM positions p JOIN markets m ON m.market_id = p.market_id
    LEFT JOIN market_metadata md ON md.market_id = p.market_id
"""


def _position(row: asyncpg.Record) -> PositionRecord:
    return from_row(PositionRecord, row)


async def list_user_positions(
    db: Database,
    wallet: str,
    *,
    open_only: bool = False,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[PositionRecord]:
    """A wallet's positions, most recently traded first (``open_only``: holding shares)."""
    check_limit(limit, MAX_PAGE)
    kind = "positions:wallet"
    args: list[Any] = [wallet]
    where = "p.wallet = $1::text"
    if open_only:
        where += " AND (p.shares_yes > 0 OR p.shares_no > 0)"
    if cursor is not None:
        at, market_id = db.cursors.decode(cursor, kind, (TIME, TEXT))
        args += [at, market_id]
        where += " AND (p.last_trade_at, p.market_id) < ($2::timestamptz, $3::text)"
    args.append(limit + 1)
    sql = (
        f"SELECT {_COLUMNS} {_FROM} WHERE {where} "
        f"ORDER BY p.last_trade_at DESC, p.market_id DESC LIMIT ${len(args)}"
    )

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(sql, *args)
        return rows

    rows = await db.run("positions.list_user_positions", _run, transaction=False)
    items = tuple(_position(r) for r in rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        next_cursor = db.cursors.encode(kind, (items[-1].last_trade_at, items[-1].market_id))
    return Page(items=items, next_cursor=next_cursor)


async def get_position(db: Database, market_id: str, wallet: str) -> PositionRecord | None:
    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        return await con.fetchrow(
            f"SELECT {_COLUMNS} {_FROM} WHERE p.market_id = $1::text AND p.wallet = $2::text",
            market_id,
            wallet,
        )

    row = await db.run("positions.get_position", _run, transaction=False)
    return None if row is None else _position(row)


async def list_holders(
    db: Database, market_id: str, *, limit: int = 50, cursor: str | None = None
) -> Page[HolderRecord]:
    """Wallets holding shares of a market, largest holding (YES + NO shares) first."""
    check_limit(limit, MAX_PAGE)
    kind = "holders"
    args: list[Any] = [market_id]
    where = "market_id = $1::text AND (shares_yes > 0 OR shares_no > 0)"
    if cursor is not None:
        total, wallet = db.cursors.decode(cursor, kind, (U64, TEXT))
        args += [total, wallet]
        # descending total, then ascending wallet
        where += (
            " AND ((shares_yes + shares_no) < $2::numeric"
            " OR ((shares_yes + shares_no) = $2::numeric AND wallet > $3::text))"
        )
    args.append(limit + 1)
    sql = (
        "SELECT wallet, shares_yes, shares_no, total_invested, "
        "(shares_yes + shares_no) AS total FROM positions "
        f"WHERE {where} ORDER BY (shares_yes + shares_no) DESC, wallet LIMIT ${len(args)}"
    )

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(sql, *args)
        return rows

    rows = await db.run("positions.list_holders", _run, transaction=False)
    items = tuple(
        HolderRecord(
            wallet=r["wallet"],
            shares_yes=u64(r["shares_yes"]),
            shares_no=u64(r["shares_no"]),
            total_invested=u64(r["total_invested"]),
        )
        for r in rows[:limit]
    )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = db.cursors.encode(kind, (u64(last["total"]), last["wallet"]))
    return Page(items=items, next_cursor=next_cursor)


_FIELDS = tuple(PositionState.__struct_fields__)
_UPSERT = (
    f"INSERT INTO positions ({', '.join(_FIELDS)}) SELECT {', '.join(_FIELDS)} "
    f"FROM {recordset(1, sql_columns(PositionState))}"
    + " ON CONFLICT (market_id, wallet) DO UPDATE SET "
    + ", ".join(f"{f} = EXCLUDED.{f}" for f in _FIELDS if f not in ("market_id", "wallet"))
    + ", updated_at = now() WHERE positions.slot <= EXCLUDED.slot"
)


async def write_positions(con: asyncpg.Connection, states: Sequence[PositionState]) -> int:
    """Insert or update position accounts (asyncio side); stale slots are skipped
    (:func:`write_newest`)."""
    return await write_newest(con, _UPSERT, states, lambda s: (s.market_id, s.wallet))


async def upsert_positions(db: Database, states: Sequence[PositionState]) -> int:
    """:func:`write_positions` as its own transaction."""

    async def _run(con: asyncpg.Connection) -> int:
        return await write_positions(con, states)

    try:
        return await db.run("positions.upsert_positions", _run)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc
