"""Single use of the legacy signature header in storage: a second consume is refused,
and rows whose window has passed are deleted by the next consume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from tests.storage import factories as f
from zmartd.storage import legacy_signatures
from zmartd.storage.database import Database

NOW = datetime(2026, 12, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


async def _count(db: Database) -> int:
    async def _run(con: asyncpg.Connection) -> int:
        n: int = await con.fetchval("SELECT count(*) FROM legacy_signatures")
        return n

    return await db.run("test.count", _run)


async def _consume(db: Database, n: int, at: datetime) -> bool:
    return await legacy_signatures.consume(
        db,
        signature=f.signature(n),
        wallet=f.wallet(1),
        signed_at=at,
        expires_at=at + WINDOW,
        now=at,
    )


async def test_consume_once_and_purge(db: Database) -> None:
    assert await _consume(db, 1, NOW)
    assert not await _consume(db, 1, NOW)
    assert await _consume(db, 2, NOW)
    assert await _count(db) == 2
    assert await _consume(db, 3, NOW + WINDOW + timedelta(seconds=1))
    assert await _count(db) == 1  # the two expired ones are gone
