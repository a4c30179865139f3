"""Snapshotter fixtures: the storage tests' per-module schema (``db``), and posts written
with chosen timestamps (the API stamps ``now()``; snapshots are about days)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.storage.conftest import db, module_dsn, truncate
from tests.storage.factories import market, market_id, wallet
from zmartd.storage import markets
from zmartd.storage.database import Database

__all__ = ["add_markets", "add_post", "db", "module_dsn", "reset"]


async def reset(db: Database, *market_numbers: int) -> None:
    await truncate(db)
    await markets.upsert_markets(db, [market(n) for n in market_numbers])


async def add_post(
    db: Database,
    n: int,
    at: datetime,
    content: str,
    *,
    parent: int | None = None,
    who: int = 1,
    deleted: datetime | None = None,
    edited: datetime | None = None,
) -> int:
    """A post in market ``n`` written at ``at`` (and edited/deleted when given)."""

    async def _run(con: Any) -> int:
        post_id: int = await con.fetchval(
            "INSERT INTO discussions (market_id, parent_id, wallet, content, created_at, "
            "edited_at, deleted_at, deleted_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "RETURNING id",
            market_id(n),
            parent,
            wallet(who),
            content,
            at,
            edited,
            deleted,
            None if deleted is None else "author",
        )
        return post_id

    return await db.run("test.add_post", _run)


async def add_markets(db: Database, *numbers: int) -> None:
    await markets.upsert_markets(db, [market(n) for n in numbers])
