"""IPFS anchors: which content zmartd published (CID + sha256), for what, and whether
it is pinned.  Recording the same (kind, market, CID) twice returns the first record.

Discussion snapshots (``discussions`` per market, ``discussions_root`` per day) also carry
the UTC period they cover, their post count, backend and pruning state; one *complete*
snapshot (``covers_until = period_end``) exists per (kind, market, day), which is what
makes the snapshotter idempotent.  Rows are never deleted, only marked pruned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from zmartd.storage.cursors import BIGINT, TIME
from zmartd.storage.database import Database
from zmartd.storage.records import (
    AnchorRecord,
    InvalidArgument,
    Page,
    check_limit,
    rejected,
)

__all__ = [
    "AnchorKind",
    "SnapshotAnchor",
    "anchor_by_cid",
    "complete_days",
    "complete_snapshot",
    "day_snapshots",
    "last_complete_day",
    "latest_anchor",
    "list_anchors",
    "mark_pinned",
    "mark_pruned",
    "market_snapshots",
    "prunable",
    "record_anchor",
    "record_snapshot",
    "unprunable",
]

AnchorKind = Literal["market_metadata", "evidence", "discussions", "discussions_root", "votes"]
_COLUMNS = (
    "id, kind, market_id, cid, content_sha256, size_bytes, covers_until, created_at, "
    "pinned_at, period_start, period_end, post_count, backend, pruned_at"
)


def _anchor(row: asyncpg.Record) -> AnchorRecord:
    return AnchorRecord(**dict(row))


async def record_anchor(
    db: Database,
    *,
    kind: AnchorKind,
    market_id: str | None,
    cid: str,
    content_sha256: bytes,
    size_bytes: int,
    covers_until: datetime | None = None,
) -> AnchorRecord:
    if len(content_sha256) != 32:
        raise InvalidArgument("content_sha256 must be 32 bytes")

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        row = await con.fetchrow(
            f"INSERT INTO ipfs_anchors (kind, market_id, cid, content_sha256, size_bytes, "
            f"covers_until) VALUES ($1, $2, $3, $4, $5, $6) "
            f"ON CONFLICT ON CONSTRAINT ipfs_anchors_once DO NOTHING RETURNING {_COLUMNS}",
            kind,
            market_id,
            cid,
            content_sha256,
            size_bytes,
            covers_until,
        )
        if row is None:
            row = await con.fetchrow(
                f"SELECT {_COLUMNS} FROM ipfs_anchors WHERE kind = $1 "
                f"AND market_id IS NOT DISTINCT FROM $2::text AND cid = $3",
                kind,
                market_id,
                cid,
            )
        assert row is not None
        return row

    try:
        return _anchor(await db.run("anchors.record_anchor", _run))
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc


async def mark_pinned(db: Database, anchor_id: int) -> bool:
    async def _run(con: asyncpg.Connection) -> str:
        status: str = await con.execute(
            "UPDATE ipfs_anchors SET pinned_at = now() WHERE id = $1 AND pinned_at IS NULL",
            anchor_id,
        )
        return status

    return (await db.run("anchors.mark_pinned", _run)) != "UPDATE 0"


async def list_anchors(
    db: Database,
    *,
    market_id: str | None = None,
    kind: AnchorKind | None = None,
    limit: int = 50,
) -> tuple[AnchorRecord, ...]:
    """Anchors newest first, optionally of one market and/or kind."""
    check_limit(limit, 500)
    where: list[str] = []
    args: list[Any] = []
    if market_id is not None:
        args.append(market_id)
        where.append(f"market_id = ${len(args)}::text")
    if kind is not None:
        args.append(kind)
        where.append(f"kind = ${len(args)}")
    args.append(limit)
    sql = (
        f"SELECT {_COLUMNS} FROM ipfs_anchors "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + f"ORDER BY created_at DESC, id DESC LIMIT ${len(args)}"
    )

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(sql, *args)
        return rows

    return tuple(_anchor(r) for r in await db.run("anchors.list_anchors", _run, transaction=False))


async def latest_anchor(
    db: Database, *, kind: AnchorKind, market_id: str | None
) -> AnchorRecord | None:
    if market_id is None:
        rows = await list_anchors(db, kind=kind, limit=1)
    else:
        rows = await list_anchors(db, market_id=market_id, kind=kind, limit=1)
    return rows[0] if rows else None


# ---------------------------------------------------------------- discussion snapshots


class SnapshotAnchor(msgspec.Struct, frozen=True, kw_only=True):
    """What the snapshotter records for one stored, verified snapshot."""

    kind: Literal["discussions", "discussions_root"]
    market_id: str | None
    cid: str
    content_sha256: bytes
    size_bytes: int
    post_count: int
    period_start: datetime
    period_end: datetime
    covers_until: datetime
    backend: str


async def record_snapshot(db: Database, snap: SnapshotAnchor) -> AnchorRecord:
    """Record a snapshot the backend has stored and pinned (its CID verified).

    Idempotent: the same content (same CID) or a second complete snapshot of the same
    (kind, market, day) returns the row already there.
    """
    if len(snap.content_sha256) != 32:
        raise InvalidArgument("content_sha256 must be 32 bytes")

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        row = await con.fetchrow(
            f"INSERT INTO ipfs_anchors (kind, market_id, cid, content_sha256, size_bytes, "
            f"covers_until, period_start, period_end, post_count, backend, pinned_at) "
            f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now()) "
            f"ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
            snap.kind,
            snap.market_id,
            snap.cid,
            snap.content_sha256,
            snap.size_bytes,
            snap.covers_until,
            snap.period_start,
            snap.period_end,
            snap.post_count,
            snap.backend,
        )
        if row is None:
            row = await con.fetchrow(
                f"SELECT {_COLUMNS} FROM ipfs_anchors WHERE kind = $1 "
                f"AND market_id IS NOT DISTINCT FROM $2::text "
                f"AND (cid = $3 OR (period_start = $4 AND covers_until = period_end)) "
                f"ORDER BY id LIMIT 1",
                snap.kind,
                snap.market_id,
                snap.cid,
                snap.period_start,
            )
        assert row is not None
        return row

    try:
        return _anchor(await db.run("anchors.record_snapshot", _run))
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc


async def complete_snapshot(
    db: Database,
    *,
    kind: Literal["discussions", "discussions_root"],
    market_id: str | None,
    period_start: datetime,
) -> AnchorRecord | None:
    """The complete snapshot of (kind, market, day), if one was made."""

    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await con.fetchrow(
            f"SELECT {_COLUMNS} FROM ipfs_anchors WHERE kind = $1 "
            f"AND market_id IS NOT DISTINCT FROM $2::text AND period_start = $3 "
            f"AND covers_until = period_end",
            kind,
            market_id,
            period_start,
        )
        return row

    row = await db.run("anchors.complete_snapshot", _run, transaction=False)
    return None if row is None else _anchor(row)


async def day_snapshots(db: Database, period_start: datetime) -> tuple[AnchorRecord, ...]:
    """The newest snapshot of each market for one day (the complete one once made), by
    market id: the content of the day's root."""

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(
            f"SELECT DISTINCT ON (market_id) {_COLUMNS} FROM ipfs_anchors "
            f"WHERE kind = 'discussions' AND period_start = $1 "
            f"ORDER BY market_id, covers_until DESC, id DESC",
            period_start,
        )
        return rows

    return tuple(_anchor(r) for r in await db.run("anchors.day_snapshots", _run, transaction=False))


async def last_complete_day(db: Database) -> datetime | None:
    """Start of the newest day whose root document was made (catch-up resumes after it)."""

    async def _run(con: asyncpg.Connection) -> datetime | None:
        value: datetime | None = await con.fetchval(
            "SELECT max(period_start) FROM ipfs_anchors WHERE kind = 'discussions_root' "
            "AND covers_until = period_end"
        )
        return value

    return await db.run("anchors.last_complete_day", _run, transaction=False)


async def complete_days(db: Database, since: datetime) -> frozenset[datetime]:
    """Starts of the days since ``since`` whose complete root document was made."""

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(
            "SELECT period_start FROM ipfs_anchors WHERE kind = 'discussions_root' "
            "AND covers_until = period_end AND period_start >= $1",
            since,
        )
        return rows

    rows = await db.run("anchors.complete_days", _run, transaction=False)
    return frozenset(r["period_start"] for r in rows)


async def market_snapshots(
    db: Database, market_id: str, *, limit: int = 20, cursor: str | None = None
) -> Page[AnchorRecord]:
    """A market's discussion snapshots, newest period first (partial ones of a day after
    its complete one), keyset-paged on (period_start, id)."""
    check_limit(limit, 500)
    args: list[Any] = [market_id]
    where = "kind = 'discussions' AND market_id = $1::text"
    if cursor is not None:
        start, last_id = db.cursors.decode(cursor, "snapshots", (TIME, BIGINT))
        args += [start, last_id]
        where += " AND (period_start, id) < ($2::timestamptz, $3::bigint)"
    args.append(limit + 1)
    sql = (
        f"SELECT {_COLUMNS} FROM ipfs_anchors WHERE {where} "
        f"ORDER BY period_start DESC, id DESC LIMIT ${len(args)}"
    )

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(sql, *args)
        return rows

    rows = await db.run("anchors.market_snapshots", _run, transaction=False)
    items = tuple(_anchor(r) for r in rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        assert last.period_start is not None
        next_cursor = db.cursors.encode("snapshots", (last.period_start, last.id))
    return Page(items=items, next_cursor=next_cursor)


async def anchor_by_cid(db: Database, cid: str) -> AnchorRecord | None:
    """The first anchor of a CID (snapshots first), or None."""

    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await con.fetchrow(
            f"SELECT {_COLUMNS} FROM ipfs_anchors WHERE cid = $1 "
            f"ORDER BY (period_start IS NULL), id LIMIT 1",
            cid,
        )
        return row

    row = await db.run("anchors.anchor_by_cid", _run, transaction=False)
    return None if row is None else _anchor(row)


async def prunable(
    db: Database, before: datetime, *, backend: str, limit: int = 500
) -> tuple[AnchorRecord, ...]:
    """Snapshots stored through ``backend`` whose period started before ``before`` and
    that are not pruned yet."""
    check_limit(limit, 5000)

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(
            f"SELECT {_COLUMNS} FROM ipfs_anchors WHERE period_start IS NOT NULL "
            f"AND pruned_at IS NULL AND period_start < $1 AND backend = $2 "
            f"ORDER BY period_start, id LIMIT $3",
            before,
            backend,
            limit,
        )
        return rows

    return tuple(_anchor(r) for r in await db.run("anchors.prunable", _run, transaction=False))


async def unprunable(db: Database, before: datetime, *, backend: str) -> int:
    """How many snapshots due for pruning were stored through another backend than
    ``backend`` (the configured one cannot remove them)."""

    async def _run(con: asyncpg.Connection) -> int:
        count: int = await con.fetchval(
            "SELECT count(*) FROM ipfs_anchors WHERE period_start IS NOT NULL "
            "AND pruned_at IS NULL AND period_start < $1 AND backend IS DISTINCT FROM $2",
            before,
            backend,
        )
        return count

    return await db.run("anchors.unprunable", _run, transaction=False)


async def mark_pruned(db: Database, anchor_id: int) -> bool:
    """The content was unpinned/deleted; the row stays as the record of what existed."""

    async def _run(con: asyncpg.Connection) -> str:
        status: str = await con.execute(
            "UPDATE ipfs_anchors SET pruned_at = now() WHERE id = $1 AND pruned_at IS NULL",
            anchor_id,
        )
        return status

    return (await db.run("anchors.mark_pruned", _run)) != "UPDATE 0"
