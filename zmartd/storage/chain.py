"""Indexer bookkeeping: watermarks, exactly-once keys, dead letters, finality.

The indexer applies a batch of transactions as one unit of work: it claims
their event keys (:func:`write_claims` returns only the keys not seen before,
so a replayed event is skipped), writes their effects (markets, positions,
trades, votes: ``write_*`` in the domain modules), and advances its watermark
(:func:`write_cursor`), all on one connection in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from zmartd.storage.bulk import recordset, rows_json
from zmartd.storage.database import Database
from zmartd.storage.records import ChainCursor, DeadLetter, check_limit, rejected

__all__ = [
    "EventKey",
    "advance_cursor",
    "get_cursor",
    "list_dead_letters",
    "mark_finalized",
    "record_dead_letter",
    "resolve_dead_letter",
    "write_claims",
    "write_cursor",
]


class EventKey(msgspec.Struct, frozen=True, kw_only=True):
    """One applied zmart instruction/event: (signature, instruction index, event index)."""

    signature: str
    instruction_index: int
    event_index: int = 0
    slot: int
    block_time: datetime | None = None


async def get_cursor(db: Database, stream: str) -> ChainCursor | None:
    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        return await con.fetchrow(
            "SELECT stream, slot, signature, block_time, updated_at FROM chain_cursors "
            "WHERE stream = $1",
            stream,
        )

    row = await db.run("chain.get_cursor", _run, transaction=False)
    return None if row is None else ChainCursor(**dict(row))


async def write_cursor(
    con: asyncpg.Connection,
    stream: str,
    *,
    slot: int,
    signature: str | None,
    block_time: datetime | None = None,
) -> bool:
    """Move the watermark forward (asyncio side); False if ``slot`` is behind it."""
    status: str = await con.execute(
        "INSERT INTO chain_cursors AS c (stream, slot, signature, block_time) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (stream) DO UPDATE SET slot = EXCLUDED.slot, "
        "signature = EXCLUDED.signature, block_time = EXCLUDED.block_time, updated_at = now() "
        "WHERE c.slot <= EXCLUDED.slot",
        stream,
        slot,
        signature,
        block_time,
    )
    return status != "INSERT 0 0"


async def advance_cursor(
    db: Database,
    stream: str,
    *,
    slot: int,
    signature: str | None,
    block_time: datetime | None = None,
) -> bool:
    """:func:`write_cursor` as its own transaction."""

    async def _run(con: asyncpg.Connection) -> bool:
        return await write_cursor(
            con, stream, slot=slot, signature=signature, block_time=block_time
        )

    try:
        return await db.run("chain.advance_cursor", _run)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc


_CLAIM_COLUMNS = {
    "signature": "text",
    "instruction_index": "smallint",
    "event_index": "smallint",
    "slot": "bigint",
    "block_time": "timestamptz",
}
_CLAIM = (
    f"INSERT INTO processed_transactions ({', '.join(_CLAIM_COLUMNS)}) "
    f"SELECT {', '.join(_CLAIM_COLUMNS)} FROM {recordset(1, _CLAIM_COLUMNS)} "
    "ON CONFLICT DO NOTHING RETURNING signature, instruction_index, event_index"
)


async def write_claims(
    con: asyncpg.Connection, keys: Sequence[EventKey]
) -> set[tuple[str, int, int]]:
    """Record event keys as processed (asyncio side); returns those not seen before.

    Call inside the transaction that applies the events: if it rolls back, the
    claims roll back with it, and the events will be applied on the next try.
    """
    if not keys:
        return set()
    rows = await con.fetch(_CLAIM, rows_json(keys))
    return {(r["signature"], r["instruction_index"], r["event_index"]) for r in rows}


async def mark_finalized(db: Database, up_to_slot: int) -> int:
    """Flag every chain-derived row at or below a finalized slot; returns rows changed."""

    async def _run(con: asyncpg.Connection) -> int:
        total = 0
        for table in ("markets", "positions", "trades", "processed_transactions"):
            status: str = await con.execute(
                f"UPDATE {table} SET finalized = true WHERE NOT finalized AND slot <= $1",
                up_to_slot,
            )
            total += int(status.rsplit(" ", 1)[-1])
        return total

    return await db.run("chain.mark_finalized", _run)


def _dead(row: asyncpg.Record) -> DeadLetter:
    data: dict[str, Any] = dict(row)
    data["payload"] = None if data["payload"] is None else msgspec.json.decode(data["payload"])
    return DeadLetter(**data)


_DEAD_COLUMNS = (
    "id, signature, slot, reason, payload, attempts, first_seen_at, last_seen_at, resolved_at"
)


async def record_dead_letter(
    db: Database, *, signature: str, slot: int | None, reason: str, payload: Any = None
) -> DeadLetter:
    """Park a transaction that could not be applied (counting repeated attempts)."""
    body = None if payload is None else msgspec.json.encode(payload).decode()

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        row: asyncpg.Record = await con.fetchrow(
            f"INSERT INTO dead_letters AS d (signature, slot, reason, payload) "
            f"VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (signature) DO UPDATE SET "
            f"reason = EXCLUDED.reason, payload = coalesce(EXCLUDED.payload, d.payload), "
            f"attempts = d.attempts + 1, last_seen_at = now(), resolved_at = NULL "
            f"RETURNING {_DEAD_COLUMNS}",
            signature,
            slot,
            reason[:4000],
            body,
        )
        return row

    try:
        return _dead(await db.run("chain.record_dead_letter", _run))
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc


async def list_dead_letters(
    db: Database, *, unresolved_only: bool = True, limit: int = 100
) -> tuple[DeadLetter, ...]:
    """Dead letters, oldest first."""
    check_limit(limit, 1000)

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(
            f"SELECT {_DEAD_COLUMNS} FROM dead_letters "
            f"WHERE NOT $1 OR resolved_at IS NULL ORDER BY first_seen_at, id LIMIT $2",
            unresolved_only,
            limit,
        )
        return rows

    return tuple(_dead(r) for r in await db.run("chain.list_dead_letters", _run, transaction=False))


async def resolve_dead_letter(db: Database, signature: str) -> bool:
    """Mark a dead letter handled (after a successful retry); False if none was open."""

    async def _run(con: asyncpg.Connection) -> str:
        status: str = await con.execute(
            "UPDATE dead_letters SET resolved_at = now() "
            "WHERE signature = $1::text AND resolved_at IS NULL",
            signature,
        )
        return status

    return (await db.run("chain.resolve_dead_letter", _run)) != "UPDATE 0"
