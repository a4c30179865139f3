"""IPFS anchors: which content zmartd published (CID + sha256), for what, and whether
it is pinned.  Recording the same (kind, market, CID) twice returns the first record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg

from zmartd.storage.database import Database
from zmartd.storage.records import AnchorRecord, InvalidArgument, check_limit, rejected

__all__ = ["AnchorKind", "latest_anchor", "list_anchors", "mark_pinned", "record_anchor"]

AnchorKind = Literal["market_metadata", "evidence", "discussions", "votes"]
_COLUMNS = ("id, kind, market_id, cid, content_sha256, size_bytes, covers_until, created_at, "
            "pinned_at")


def _anchor(row: asyncpg.Record) -> AnchorRecord:
    return AnchorRecord(**dict(row))


async def record_anchor(
    db: Database, *, kind: AnchorKind, market_id: str | None, cid: str, content_sha256: bytes,
    size_bytes: int, covers_until: datetime | None = None,
) -> AnchorRecord:
    if len(content_sha256) != 32:
        raise InvalidArgument("content_sha256 must be 32 bytes")

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        row = await con.fetchrow(
            f"INSERT INTO ipfs_anchors (kind, market_id, cid, content_sha256, size_bytes, "
            f"covers_until) VALUES ($1, $2, $3, $4, $5, $6) "
            f"ON CONFLICT ON CONSTRAINT ipfs_anchors_once DO NOTHING RETURNING {_COLUMNS}",
            kind, market_id, cid, content_sha256, size_bytes, covers_until,
        )
        if row is None:
            row = await con.fetchrow(
                f"SELECT {_COLUMNS} FROM ipfs_anchors WHERE kind = $1 "
                f"AND market_id IS NOT DISTINCT FROM $2::text AND cid = $3",
                kind, market_id, cid,
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
            anchor_id)
        return status

    return (await db.run("anchors.mark_pinned", _run)) != "UPDATE 0"


async def list_anchors(
    db: Database, *, market_id: str | None = None, kind: AnchorKind | None = None,
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
    sql = (f"SELECT {_COLUMNS} FROM ipfs_anchors "
           + (f"WHERE {' AND '.join(where)} " if where else "")
           + f"ORDER BY created_at DESC, id DESC LIMIT ${len(args)}")

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
