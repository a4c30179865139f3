"""Reads for discussion snapshots: which markets had discussion activity in a period, the
posts of a market up to a cut-off in pages (so a snapshot streams in bounded memory), and
where catch-up starts.

A deleted post's text is blanked in SQL, like every other discussion read: it never
leaves storage, so a snapshot can only hold its tombstone.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from zmartd.storage.database import Database
from zmartd.storage.records import check_limit

__all__ = ["SnapshotPost", "active_markets", "first_post_at", "posts_page"]


class SnapshotPost(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    id: int
    parent_id: int | None
    wallet: str
    #: None when the post is deleted (a tombstone)
    content: str | None
    created_at: datetime
    edited_at: datetime | None


async def active_markets(db: Database, start: datetime, end: datetime) -> tuple[str, ...]:
    """Markets with a post created, edited or deleted in [start, end), by market id."""

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(
            "SELECT DISTINCT market_id FROM discussions "
            "WHERE (created_at >= $1 AND created_at < $2) "
            "   OR (edited_at >= $1 AND edited_at < $2) "
            "   OR (deleted_at >= $1 AND deleted_at < $2) ORDER BY market_id",
            start,
            end,
        )
        return rows

    rows = await db.run("snapshots.active_markets", _run, transaction=False)
    return tuple(str(r["market_id"]) for r in rows)


async def posts_page(
    db: Database,
    market_id: str,
    cutoff: datetime,
    *,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[SnapshotPost]:
    """Up to ``limit`` posts of the market created before ``cutoff``, in (created_at, id)
    order, strictly after ``after``."""
    check_limit(limit, 50_000)
    cols = (
        "id, parent_id, wallet, CASE WHEN deleted_at IS NULL THEN content END AS content, "
        "created_at, CASE WHEN deleted_at IS NULL THEN edited_at END AS edited_at"
    )

    async def _run(con: asyncpg.Connection) -> list[SnapshotPost]:
        if after is None:
            rows = await con.fetch(
                f"SELECT {cols} FROM discussions WHERE market_id = $1::text "
                f"AND created_at < $2 ORDER BY created_at, id LIMIT $3",
                market_id,
                cutoff,
                limit,
            )
        else:
            rows = await con.fetch(
                f"SELECT {cols} FROM discussions WHERE market_id = $1::text "
                f"AND created_at < $2 AND (created_at, id) > ($3, $4) "
                f"ORDER BY created_at, id LIMIT $5",
                market_id,
                cutoff,
                after[0],
                after[1],
                limit,
            )
        return [
            SnapshotPost(
                id=r[0], parent_id=r[1], wallet=r[2], content=r[3], created_at=r[4], edited_at=r[5]
            )
            for r in rows
        ]

    return await db.run("snapshots.posts_page", _run, transaction=False)


async def first_post_at(db: Database) -> datetime | None:
    """When the oldest post was written (catch-up never starts before its day)."""

    async def _run(con: asyncpg.Connection) -> datetime | None:
        value: datetime | None = await con.fetchval("SELECT min(created_at) FROM discussions")
        return value

    return await db.run("snapshots.first_post_at", _run, transaction=False)
