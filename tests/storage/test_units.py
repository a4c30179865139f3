"""Named units of work: every Database.run names its unit, and the observer the storage
actor installs sees each unit's latency and, for a unit that raised, its error type."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from zmartd.observability import Metrics
from zmartd.storage.database import Database


async def test_units_are_observed_by_name(db: Database) -> None:
    seen: list[tuple[str, float, str | None]] = []
    db.observe = lambda unit, seconds, error: seen.append(
        (unit, seconds, None if error is None else type(error).__name__)
    )

    async def one(con: asyncpg.Connection) -> Any:
        return await con.fetchval("SELECT 1")

    async def bad(con: asyncpg.Connection) -> Any:
        return await con.fetchval("SELECT nope")

    assert await db.run("test.one", one) == 1
    with pytest.raises(asyncpg.UndefinedColumnError):
        await db.run("test.bad", bad, transaction=False)
    assert [(u, e) for u, _, e in seen] == [
        ("test.one", None),
        ("test.bad", "UndefinedColumnError"),
    ]
    assert all(s >= 0 for _, s, _ in seen)


async def test_metrics_expose_units(db: Database) -> None:
    metrics = Metrics()
    db.observe = metrics.observe_db_unit

    async def one(con: asyncpg.Connection) -> Any:
        return await con.fetchval("SELECT 1")

    await db.run("markets.example", one)
    await db.run("markets.example", one)
    registry = metrics.registry
    count = registry.get_sample_value(
        "zmartd_db_unit_duration_seconds_count", {"unit": "markets.example"}
    )
    assert count == 2
    assert (
        registry.get_sample_value(
            "zmartd_db_unit_errors_total", {"unit": "markets.example", "error": "X"}
        )
        is None
    )


def test_every_leader_role_has_its_own_lock_key() -> None:
    """Regression: the snapshotter took the sender's advisory lock key, so wherever the
    snapshotter led, the sender stood by forever."""
    from zmartd.snapshotter.actor import LOCK_KEY as SNAPSHOTTER
    from zmartd.storage.indexer import LEADER_LOCK_KEY
    from zmartd.storage.leader import ROLES, lock_key
    from zmartd.storage.migrate import ADVISORY_LOCK_KEY

    keys = [lock_key(role) for role in ROLES]
    assert len(set(keys)) == len(keys)
    assert lock_key("snapshotter") == SNAPSHOTTER and lock_key("indexer") == LEADER_LOCK_KEY
    assert ADVISORY_LOCK_KEY not in set(keys) - {lock_key("migrate")}
