"""What the market monitor reads from the mirror: markets past a deadline in
chain time, sender intents that keep failing, the indexer's watermark.

Every deadline is compared with ``now`` passed in by the caller -- the chain's
clock -- so that this server's clock never decides when a market is due.
Each function is one read-only unit of work.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import asyncpg
import msgspec

from zmartd.storage.database import Database

__all__ = [
    "STATE_SINCE",
    "DueMarket",
    "FailingIntent",
    "due_finalizations",
    "failing_intents",
    "indexed_slot",
    "needs_resolution",
    "overdue_disputes",
    "stuck_markets",
]

#: chain state number -> the column saying since when a market is in it
STATE_SINCE: Final[dict[int, str]] = {
    0: "created_at",
    1: "approved_at",
    3: "resolution_proposed_at",
    4: "dispute_initiated_at",
}


class DueMarket(msgspec.Struct, frozen=True, kw_only=True):
    market_id: str
    state: int
    creator: str
    resolver: str | None
    title: str | None
    #: the deadline or state-entry time the check compared with ``now``
    since: datetime


def _due(rows: list[asyncpg.Record]) -> list[DueMarket]:
    return [DueMarket(**dict(r)) for r in rows]


_SELECT: Final = (
    "SELECT m.market_id, m.state, m.creator, m.resolver, md.title, {since} AS since "
    "FROM markets m LEFT JOIN market_metadata md USING (market_id) "
)


async def due_finalizations(db: Database, *, now: datetime, dispute_period: int) -> list[DueMarket]:
    """RESOLVING markets whose dispute window (``dispute_period`` seconds from
    ``resolution_proposed_at``) has passed at ``now``: the program accepts
    ``finalize_market`` once ``now >= resolution_proposed_at + dispute_period``."""

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        return list(
            await con.fetch(
                _SELECT.format(since="m.resolution_proposed_at")
                + "WHERE m.state = 3 AND m.resolution_proposed_at IS NOT NULL "
                "AND m.resolution_proposed_at + make_interval(secs => $2) <= $1 "
                "ORDER BY m.resolution_proposed_at, m.market_id",
                now,
                float(dispute_period),
            )
        )

    return _due(await db.run("monitor.due_finalizations", _run, transaction=False))


async def needs_resolution(db: Database, *, now: datetime, grace: float) -> list[DueMarket]:
    """ACTIVE markets whose metadata ``end_time`` passed more than ``grace``
    seconds ago with no resolution proposed."""

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        return list(
            await con.fetch(
                _SELECT.format(since="md.end_time")
                + "WHERE m.state = 2 AND m.resolution_proposed_at IS NULL "
                "AND md.end_time IS NOT NULL AND md.end_time + make_interval(secs => $2) <= $1 "
                "ORDER BY md.end_time, m.market_id",
                now,
                grace,
            )
        )

    return _due(await db.run("monitor.needs_resolution", _run, transaction=False))


async def overdue_disputes(db: Database, *, now: datetime, after: float) -> list[DueMarket]:
    """DISPUTED markets whose dispute began more than ``after`` seconds ago."""

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        return list(
            await con.fetch(
                _SELECT.format(since="m.dispute_initiated_at")
                + "WHERE m.state = 4 AND m.dispute_initiated_at IS NOT NULL "
                "AND m.dispute_initiated_at + make_interval(secs => $2) <= $1 "
                "ORDER BY m.dispute_initiated_at, m.market_id",
                now,
                after,
            )
        )

    return _due(await db.run("monitor.overdue_disputes", _run, transaction=False))


async def stuck_markets(
    db: Database, *, now: datetime, maxima: dict[int, float]
) -> list[DueMarket]:
    """Markets in a state of ``maxima`` (state -> seconds, 0 = no limit) for
    longer than its maximum, measured from the state's entry time."""
    parts: list[str] = []
    args: list[object] = [now]
    for state, limit in sorted(maxima.items()):
        if limit <= 0:
            continue
        column = STATE_SINCE[state]
        args.append(limit)
        parts.append(
            _SELECT.format(since=f"m.{column}")
            + f"WHERE m.state = {state} AND m.{column} IS NOT NULL "
            f"AND m.{column} + make_interval(secs => ${len(args)}) <= $1"
        )
    if not parts:
        return []
    sql = " UNION ALL ".join(f"({p})" for p in parts) + " ORDER BY since, market_id"

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        return list(await con.fetch(sql, *args))

    return _due(await db.run("monitor.stuck_markets", _run, transaction=False))


class FailingIntent(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: str
    market_id: str
    state: str
    attempts: int
    last_error: str | None


async def failing_intents(db: Database, *, attempts: int) -> list[FailingIntent]:
    """Intents that failed (and whose market is not settled another way), or
    that are still open after ``attempts`` attempts."""

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        return list(
            await con.fetch(
                "SELECT i.id, i.kind, i.market_id, i.state, i.attempts, i.last_error "
                "FROM intents i LEFT JOIN markets m USING (market_id) "
                "WHERE (i.state = 'failed' AND coalesce(m.state, 0) NOT IN (5, 6)) "
                "OR (i.state IN ('pending', 'signed') AND i.attempts >= $1) ORDER BY i.id",
                attempts,
            )
        )

    rows = await db.run("monitor.failing_intents", _run, transaction=False)
    return [FailingIntent(**dict(r)) for r in rows]


async def indexed_slot(db: Database) -> int | None:
    """The indexer's highest watermark over its streams (None before any)."""

    async def _run(con: asyncpg.Connection) -> int | None:
        value = await con.fetchval("SELECT max(slot) FROM chain_cursors")
        return None if value is None else int(value)

    return await db.run("monitor.indexed_slot", _run, transaction=False)
