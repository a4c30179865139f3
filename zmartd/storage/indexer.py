"""What the chain indexer needs beyond the domain modules' writes.

The indexer applies one chain transaction (live) or one batch of them
(backfill) in one database transaction: ``write_*`` functions here run on
the asyncio side inside that unit of work, next to
:func:`zmartd.storage.chain.write_claims`, the domain ``write_*`` functions
and the watermark.  The ``read_*_records`` functions read back, in the same
transaction, what the bus events must carry (the REST shapes).

Also here: the webhook inbox (durable before the HTTP 200), the finality
bookkeeping, reverting a transaction that disappeared, reconciliation reads,
and the key of the leader lock that keeps the indexer to one instance per database
(:mod:`zmartd.storage.leader`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from zmartd.storage import markets as _markets
from zmartd.storage import positions as _positions
from zmartd.storage import trades as _trades
from zmartd.storage import votes as _votes
from zmartd.storage.bulk import recordset, rows_json
from zmartd.storage.database import Database
from zmartd.storage.leader import LeaderLost, leader_lock, lock_key
from zmartd.storage.positions import PositionState
from zmartd.storage.records import (
    MarketChainState,
    MarketRecord,
    PositionRecord,
    TradeRecord,
    VoteRecord,
    from_row,
)

__all__ = [
    "BULK_TABLES",
    "LEADER_LOCK_KEY",
    "ChainEventRow",
    "FailedTransaction",
    "GlobalConfigState",
    "InboxItem",
    "LeaderLost",
    "PendingSignature",
    "chain_table_counts",
    "delete_inbox",
    "enqueue_inbox",
    "leader_lock",
    "mark_all_finalized",
    "pending_finality",
    "processed_signatures",
    "read_chain_markets",
    "read_chain_positions",
    "read_global_config",
    "read_market_records",
    "read_position_records",
    "read_trade_records",
    "read_vote_records",
    "refresh_statistics",
    "revert_signatures",
    "take_inbox",
    "write_chain_events",
    "write_creation_points",
    "write_failed_transactions",
    "write_global_config",
]

#: ``pg_try_advisory_lock`` key of the indexer leader (see :mod:`zmartd.storage.leader`).
LEADER_LOCK_KEY = lock_key("indexer")


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


# ---------------------------------------------------------------- rows the indexer writes


class ChainEventRow(msgspec.Struct, frozen=True, kw_only=True):
    """One zmart-core event of a successful transaction."""

    signature: str
    instruction_index: int
    event_index: int
    slot: int
    block_time: datetime | None
    name: str
    market_id: str | None
    wallet: str | None
    data: dict[str, Any]


class FailedTransaction(msgspec.Struct, frozen=True, kw_only=True):
    """A transaction that invoked zmart-core and failed: recorded, never applied."""

    signature: str
    slot: int
    block_time: datetime | None
    err: Any
    instructions: tuple[str, ...]
    failed_instruction_index: int | None
    error_code: int | None
    error_name: str | None
    signer: str | None


class GlobalConfigState(msgspec.Struct, frozen=True, kw_only=True):
    address: str
    admin: str
    backend_authority: str
    protocol_fee_wallet: str
    protocol_fee_bps: int
    resolver_reward_bps: int
    liquidity_provider_fee_bps: int
    proposal_approval_threshold: int
    dispute_success_threshold: int
    min_resolution_delay: int
    dispute_period: int
    is_paused: bool
    slot: int


_EVENT_COLUMNS = {
    "signature": "text",
    "instruction_index": "smallint",
    "event_index": "smallint",
    "slot": "bigint",
    "block_time": "timestamptz",
    "name": "text",
    "market_id": "text",
    "wallet": "text",
    "data": "jsonb",
}
_EVENTS = (
    f"INSERT INTO chain_events ({', '.join(_EVENT_COLUMNS)}) "
    f"SELECT {', '.join(_EVENT_COLUMNS)} FROM {recordset(1, _EVENT_COLUMNS)} "
    "ON CONFLICT DO NOTHING"
)


async def write_chain_events(con: asyncpg.Connection, rows: Sequence[ChainEventRow]) -> int:
    """Insert events (asyncio side); an event already stored is skipped."""
    if not rows:
        return 0
    status: str = await con.execute(_EVENTS, rows_json(rows))
    return _count(status)


async def write_failed_transactions(
    con: asyncpg.Connection, rows: Sequence[FailedTransaction]
) -> int:
    """Record failed transactions (asyncio side); replays are skipped."""
    written = 0
    for r in rows:  # rare (a handful per batch at most), and text[] per row needs no unnest
        status: str = await con.execute(
            "INSERT INTO failed_transactions (signature, slot, block_time, err, instructions, "
            "failed_instruction_index, error_code, error_name, signer) "
            "VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            r.signature,
            r.slot,
            r.block_time,
            msgspec.json.encode(r.err).decode(),
            list(r.instructions),
            r.failed_instruction_index,
            r.error_code,
            r.error_name,
            r.signer,
        )
        written += _count(status)
    return written


_CONFIG_FIELDS = tuple(GlobalConfigState.__struct_fields__)


async def write_global_config(con: asyncpg.Connection, state: GlobalConfigState) -> bool:
    """Upsert the GlobalConfig account (asyncio side); an older slot is skipped."""
    cols = ", ".join(_CONFIG_FIELDS)
    marks = ", ".join(f"${i}" for i in range(1, len(_CONFIG_FIELDS) + 1))
    sets = ", ".join(f"{f} = EXCLUDED.{f}" for f in _CONFIG_FIELDS if f != "address")
    status: str = await con.execute(
        f"INSERT INTO global_config ({cols}) VALUES ({marks}) ON CONFLICT (address) DO UPDATE "
        f"SET {sets}, updated_at = now() WHERE global_config.slot <= EXCLUDED.slot",
        *[getattr(state, f) for f in _CONFIG_FIELDS],
    )
    return _count(status) == 1


async def write_creation_points(
    con: asyncpg.Connection, points: Sequence[tuple[str, datetime, int]]
) -> int:
    """A 0.5 price point at each new market's creation (``(market_id, at, slot)``),
    unless the market already has one, so candles start at creation."""
    if not points:
        return 0
    status: str = await con.execute(
        "INSERT INTO price_points (market_id, at, price_yes, volume, source, slot) "
        "SELECT m, t, 500000000, 0, 'create', s FROM unnest($1::text[], $2::timestamptz[], "
        "$3::bigint[]) AS x(m, t, s) WHERE NOT EXISTS (SELECT 1 FROM price_points p "
        "WHERE p.market_id = x.m AND p.source = 'create')",
        [p[0] for p in points],
        [p[1] for p in points],
        [p[2] for p in points],
    )
    return _count(status)


async def read_global_config(db: Database) -> GlobalConfigState | None:
    """The newest stored GlobalConfig account, if the indexer has seen one."""

    async def _run(con: asyncpg.Connection) -> GlobalConfigState | None:
        row = await con.fetchrow(
            f"SELECT {', '.join(_CONFIG_FIELDS)} FROM global_config ORDER BY slot DESC LIMIT 1"
        )
        return None if row is None else GlobalConfigState(**dict(row))

    return await db.run("indexer.read_global_config", _run, transaction=False)


# ---------------------------------------------------------------- reading back (REST shapes)


async def read_market_records(
    con: asyncpg.Connection, market_ids: Iterable[str]
) -> list[MarketRecord]:
    ids = sorted(set(market_ids))
    if not ids:
        return []
    rows = await con.fetch(
        f"SELECT {_markets._COLUMNS} FROM markets m LEFT JOIN market_metadata md "
        f"ON md.market_id = m.market_id WHERE m.market_id = ANY($1::text[]) ORDER BY m.market_id",
        ids,
    )
    return [_markets._market(r) for r in rows]


# The read-backs below take up to a unit's worth of keys (250 in a backfill).
# Each key is one index probe (LATERAL ... LIMIT 1, which the planner cannot
# turn into a join): a plain join on unnest may be planned as a hash join over
# the whole table while statistics lag a bulk load (see processed_signatures).


async def read_position_records(
    con: asyncpg.Connection, keys: Iterable[tuple[str, str]]
) -> list[PositionRecord]:
    """Positions by ``(market_id, wallet)``."""
    pairs = sorted(set(keys))
    if not pairs:
        return []
    rows = await con.fetch(
        f"SELECT r.* FROM unnest($1::text[], $2::text[]) AS k(m, w) CROSS JOIN LATERAL "
        f"(SELECT {_positions._COLUMNS} {_positions._FROM} "
        f"WHERE p.market_id = k.m AND p.wallet = k.w LIMIT 1) AS r "
        f"ORDER BY r.market_id, r.wallet",
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    return [_positions._position(r) for r in rows]


async def read_trade_records(
    con: asyncpg.Connection, keys: Iterable[tuple[str, int, int]]
) -> list[TradeRecord]:
    """Trades by event key ``(signature, instruction_index, event_index)``, oldest first."""
    ks = sorted(set(keys))
    if not ks:
        return []
    rows = await con.fetch(
        f"SELECT r.* FROM unnest($1::text[], $2::smallint[], $3::smallint[]) AS k(s, i, e) "
        f"CROSS JOIN LATERAL (SELECT {_trades._COLUMNS} FROM trades WHERE signature = k.s "
        f"AND instruction_index = k.i AND event_index = k.e LIMIT 1) AS r ORDER BY r.slot, r.id",
        [k[0] for k in ks],
        [k[1] for k in ks],
        [k[2] for k in ks],
    )
    return [_trades._trade(r) for r in rows]


async def read_vote_records(
    con: asyncpg.Connection, keys: Iterable[tuple[str, str, str]]
) -> list[VoteRecord]:
    """Votes by ``(kind, market_id, wallet)``."""
    out: list[VoteRecord] = []
    wanted = sorted(set(keys))
    for kind in ("proposal", "dispute"):
        pairs = [(m, w) for k, m, w in wanted if k == kind]
        if not pairs:
            continue
        rows = await con.fetch(
            f"SELECT r.* FROM unnest($1::text[], $2::text[]) AS k(m, w) CROSS JOIN LATERAL "
            f"(SELECT {_votes._COLUMNS} FROM {_votes._TABLES[kind]} "
            f"WHERE market_id = k.m AND wallet = k.w LIMIT 1) AS r ORDER BY r.market_id, r.wallet",
            [p[0] for p in pairs],
            [p[1] for p in pairs],
        )
        out.extend(_votes._vote(r) for r in rows)
    return out


# ---------------------------------------------------------------- exactly-once helpers


async def processed_signatures(db: Database, signatures: Sequence[str]) -> set[str]:
    """Which of these signatures were already applied (or recorded as failed)."""
    if not signatures:
        return set()

    async def _run(con: asyncpg.Connection) -> set[str]:
        # One primary-key probe per signature, whatever the statistics say.
        # ``signature = ANY($1)`` compared every row with every element (no
        # hashed ANY for a parameter array) and a plain join on unnest became
        # a hash join over the whole table while a first backfill's statistics
        # still said "empty": both grew with the table (57 ms and 15-25 ms per
        # page of 250 at 10k / 100k rows).  LIMIT keeps the lateral subquery
        # from being flattened into such a join.
        rows = await con.fetch(
            "SELECT s.signature FROM unnest($1::text[]) AS s(signature), LATERAL "
            "(SELECT 1 FROM processed_transactions p WHERE p.signature = s.signature "
            "LIMIT 1) AS hit",
            list(signatures),
        )
        return {r["signature"] for r in rows}

    return await db.run("indexer.processed_signatures", _run, transaction=False)


# ---------------------------------------------------------------- webhook inbox


class InboxItem(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    signature: str
    slot: int | None
    #: the raw transaction element, or None when only the signature is known
    body: Any


#: Tables a backfill grows, whose planner statistics it refreshes (see
#: :func:`refresh_statistics`).
BULK_TABLES: tuple[str, ...] = (
    "processed_transactions",
    "trades",
    "price_points",
    "trade_fees",
    "chain_events",
    "positions",
    "markets",
)


async def refresh_statistics(db: Database) -> None:
    """``ANALYZE`` the tables a backfill fills.

    The planner's statistics lag behind a bulk load (autovacuum analyzes a
    minute or more later): with "this table is empty" or "this table has
    100k rows" while it has the other, a per-signature probe or a
    previous-trade lookup can be planned as a scan of the whole table, and
    a backfill slows down as it goes (seen: 2,500 -> 580 transactions/s).
    ANALYZE samples, takes no lock that blocks writers, and costs tens of
    milliseconds at these sizes.
    """

    async def _run(con: asyncpg.Connection) -> None:
        await con.execute("ANALYZE " + ", ".join(BULK_TABLES))

    await db.run("indexer.refresh_statistics", _run, transaction=False)


async def enqueue_inbox(db: Database, items: Sequence[tuple[str, int | None, bytes | None]]) -> int:
    """Durably store webhook deliveries: ``(signature, slot, raw JSON element or None)``."""
    if not items:
        return 0

    async def _run(con: asyncpg.Connection) -> int:
        status: str = await con.execute(
            "INSERT INTO webhook_inbox (signature, slot, body) SELECT s, sl, b::jsonb "
            "FROM unnest($1::text[], $2::bigint[], $3::text[]) AS x(s, sl, b)",
            [i[0] for i in items],
            [i[1] for i in items],
            [None if i[2] is None else i[2].decode() for i in items],
        )
        return _count(status)

    return await db.run("indexer.enqueue_inbox", _run)


async def take_inbox(db: Database, limit: int = 500) -> list[InboxItem]:
    """The oldest queued deliveries (not removed: see :func:`delete_inbox`)."""

    async def _run(con: asyncpg.Connection) -> list[InboxItem]:
        rows = await con.fetch(
            "SELECT id, signature, slot, body::text AS body FROM webhook_inbox "
            "ORDER BY id LIMIT $1",
            limit,
        )
        return [
            InboxItem(
                id=r["id"],
                signature=r["signature"],
                slot=r["slot"],
                body=None if r["body"] is None else msgspec.json.decode(r["body"]),
            )
            for r in rows
        ]

    return await db.run("indexer.take_inbox", _run, transaction=False)


async def delete_inbox(con: asyncpg.Connection, ids: Sequence[int]) -> int:
    """Remove applied deliveries (asyncio side, in the applying transaction)."""
    if not ids:
        return 0
    status: str = await con.execute(
        "DELETE FROM webhook_inbox WHERE id = ANY($1::bigint[])", list(ids)
    )
    return _count(status)


# ---------------------------------------------------------------- finality and reverts


class PendingSignature(msgspec.Struct, frozen=True, kw_only=True):
    signature: str
    slot: int
    processed_at: datetime


async def pending_finality(
    db: Database, up_to_slot: int, limit: int = 1000
) -> list[PendingSignature]:
    """Applied but not yet finalized signatures at or below ``up_to_slot``, oldest first."""

    async def _run(con: asyncpg.Connection) -> list[PendingSignature]:
        rows = await con.fetch(
            "SELECT signature, min(slot) AS slot, min(processed_at) AS processed_at "
            "FROM processed_transactions WHERE NOT finalized AND slot <= $1 "
            "GROUP BY signature ORDER BY min(slot), signature LIMIT $2",
            up_to_slot,
            limit,
        )
        return [PendingSignature(**dict(r)) for r in rows]

    return await db.run("indexer.pending_finality", _run, transaction=False)


async def mark_all_finalized(db: Database, up_to_slot: int) -> int:
    """Flag every chain-derived row at or below a finalized slot (one transaction)."""

    async def _run(con: asyncpg.Connection) -> int:
        total = 0
        for table in ("markets", "positions", "trades", "processed_transactions", "chain_events"):
            status: str = await con.execute(
                f"UPDATE {table} SET finalized = true WHERE NOT finalized AND slot <= $1",
                up_to_slot,
            )
            total += _count(status)
        return total

    return await db.run("indexer.mark_all_finalized", _run)


async def revert_signatures(
    con: asyncpg.Connection, signatures: Sequence[str]
) -> dict[str, list[str]]:
    """Undo the event effects of transactions that disappeared (asyncio side).

    Deletes their trades (with price points and fees), on-chain votes, events,
    failed-transaction records and exactly-once keys, so that a re-landed copy
    would be applied afresh.  Account-derived rows (markets, positions) are
    not touched here: the caller re-reads those accounts from the chain.
    Returns ``{"markets": [...], "wallets": [...]}`` affected.
    """
    sigs = list(signatures)
    markets: set[str] = set()
    wallets: set[str] = set()
    rows = await con.fetch(
        "DELETE FROM trades WHERE signature = ANY($1::text[]) RETURNING market_id, wallet", sigs
    )
    for r in rows:
        markets.add(r["market_id"])
        wallets.add(r["wallet"])
    for table in ("proposal_votes", "dispute_votes"):
        rows = await con.fetch(
            f"DELETE FROM {table} WHERE source = 'onchain' AND signature = ANY($1::text[]) "
            f"RETURNING market_id, wallet",
            sigs,
        )
        for r in rows:
            markets.add(r["market_id"])
            wallets.add(r["wallet"])
    rows = await con.fetch(
        "DELETE FROM chain_events WHERE signature = ANY($1::text[]) RETURNING market_id", sigs
    )
    markets.update(r["market_id"] for r in rows if r["market_id"] is not None)
    await con.execute("DELETE FROM failed_transactions WHERE signature = ANY($1::text[])", sigs)
    await con.execute("DELETE FROM processed_transactions WHERE signature = ANY($1::text[])", sigs)
    return {"markets": sorted(markets), "wallets": sorted(wallets)}


# ---------------------------------------------------------------- reconciliation reads


async def read_chain_markets(db: Database) -> dict[str, MarketChainState]:
    """Every market's chain fields as stored, by market_id."""
    fields = MarketChainState.__struct_fields__

    async def _run(con: asyncpg.Connection) -> dict[str, MarketChainState]:
        rows = await con.fetch(f"SELECT {', '.join(fields)} FROM markets")
        out = {}
        for r in rows:
            state = from_row(MarketChainState, r)
            out[state.market_id] = state
        return out

    return await db.run("indexer.read_chain_markets", _run, transaction=False)


async def read_chain_positions(db: Database) -> dict[tuple[str, str], PositionState]:
    """Every position as stored, by ``(market_id, wallet)``."""
    fields = PositionState.__struct_fields__

    async def _run(con: asyncpg.Connection) -> dict[tuple[str, str], PositionState]:
        rows = await con.fetch(f"SELECT {', '.join(fields)} FROM positions")
        out = {}
        for r in rows:
            position = from_row(PositionState, r)
            out[(position.market_id, position.wallet)] = position
        return out

    return await db.run("indexer.read_chain_positions", _run, transaction=False)


async def chain_table_counts(db: Database) -> dict[str, int]:
    """Row counts of the chain tables plus duplicate trade keys (for tests and ops)."""

    async def _run(con: asyncpg.Connection) -> dict[str, int]:
        out = {}
        for table in (
            "markets",
            "positions",
            "trades",
            "price_points",
            "proposal_votes",
            "dispute_votes",
            "chain_events",
            "failed_transactions",
            "processed_transactions",
            "dead_letters",
            "webhook_inbox",
        ):
            out[table] = int(await con.fetchval(f"SELECT count(*) FROM {table}"))
        out["duplicate_trades"] = int(
            await con.fetchval(
                "SELECT count(*) FROM (SELECT signature, instruction_index, event_index "
                "FROM trades GROUP BY 1, 2, 3 HAVING count(*) > 1) d"
            )
        )
        return out

    return await db.run("indexer.chain_table_counts", _run, transaction=False)
