"""The migration runner: order, idempotence, concurrency, tampering, dry-run and status."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_asyncio

from tests.storage.conftest import schema_dsn, sql
from zmartd.storage.database import Database
from zmartd.storage.migrate import (
    ADVISORY_LOCK_KEY,
    Migration,
    MigrationError,
    load_migrations,
    migrate,
    migration_status,
)


def mig(version: int, name: str, text: str) -> Migration:
    return Migration(
        version=version, name=name, sql=text, checksum=hashlib.sha256(text.encode()).hexdigest()
    )


# a slow second migration keeps the first runner inside the lock while the other arrives
SLOW = (
    mig(1, "create_t", "CREATE TABLE t (v int PRIMARY KEY)"),
    mig(2, "slow_insert", "SELECT pg_sleep(0.3); INSERT INTO t VALUES (2)"),
    mig(3, "insert", "INSERT INTO t VALUES (3)"),
)


async def connect(pg_dsn: str, schema: str) -> Database:
    """A pool on a new, empty schema (call inside trio_asyncio.open_loop)."""
    admin = await Database.connect(pg_dsn, min_size=1, max_size=1, statement_timeout=5)
    try:
        await sql(admin, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"')
    finally:
        await admin.close()
    return await Database.connect(
        schema_dsn(pg_dsn, schema), min_size=1, max_size=2, statement_timeout=5
    )


def test_packaged_migrations_are_ordered_and_named() -> None:
    migs = load_migrations()
    assert [m.version for m in migs] == list(range(1, len(migs) + 1))
    assert all(m.sql.strip() and len(m.checksum) == 64 for m in migs)
    assert ADVISORY_LOCK_KEY == int.from_bytes(b"zmartd\x00\x01", "big") < 2**63


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_a.sql": "", "1_b.sql": ""}, "not named"),
        ({"0001_a.sql": "", "0001_b.sql": ""}, "two migration files have version 0001"),
        ({"0000_a.sql": ""}, "start at 0001"),
        ({"0001_Bad-Name.sql": ""}, "not named"),
    ],
)
def test_bad_file_names_are_errors(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(MigrationError, match=message):
        load_migrations(tmp_path)


def test_files_load_in_version_order(tmp_path: Path) -> None:
    (tmp_path / "0002_second.sql").write_text("SELECT 2")
    (tmp_path / "0001_first.sql").write_text("SELECT 1")
    (tmp_path / "README.md").write_text("ignored")
    migs = load_migrations(tmp_path)
    assert [(m.version, m.name) for m in migs] == [(1, "first"), (2, "second")]
    assert migs[0].checksum == hashlib.sha256(b"SELECT 1").hexdigest()


async def test_concurrent_runners_apply_each_migration_once(pg_dsn: str) -> None:
    async with trio_asyncio.open_loop():
        a = await connect(pg_dsn, "mig_race")
        b = await Database.connect(
            schema_dsn(pg_dsn, "mig_race"), min_size=1, max_size=1, statement_timeout=5
        )
        reports: list[Any] = []
        try:

            async def run(db: Database) -> None:
                reports.append(await migrate(db, migrations=SLOW))

            async with trio.open_nursery() as n:
                n.start_soon(run, a)
                n.start_soon(run, b)
            applied = sorted(m.version for r in reports for m in r.applied)
            assert applied == [1, 2, 3]  # all by one runner, none twice
            assert sorted(len(r.applied) for r in reports) == [0, 3]
            rows = await sql(a, "SELECT version FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in rows] == [1, 2, 3]
            assert [r["v"] for r in await sql(a, "SELECT v FROM t ORDER BY v")] == [2, 3]
            # idempotent: a third run applies nothing
            again = await migrate(a, migrations=SLOW)
            assert again.applied == () and again.already_applied == (1, 2, 3)
            # the lock was released (a fresh session can take it without waiting)
            got = await sql(a, "SELECT pg_try_advisory_lock($1) AS ok", ADVISORY_LOCK_KEY)
            assert got[0]["ok"]
        finally:
            await a.close()
            await b.close()


async def test_changed_missing_and_out_of_order_are_errors(pg_dsn: str) -> None:
    async with trio_asyncio.open_loop():
        db = await connect(pg_dsn, "mig_tamper")
        try:
            await migrate(db, migrations=SLOW[:2])
            tampered = (SLOW[0], mig(2, "slow_insert", "INSERT INTO t VALUES (22)"))
            with pytest.raises(MigrationError, match="0002_slow_insert was changed") as info:
                await migrate(db, migrations=tampered)
            assert info.value.version == 2
            with pytest.raises(MigrationError, match="0002_slow_insert is applied") as info:
                await migrate(db, migrations=SLOW[:1])
            assert info.value.version == 2
            # the same in the database: a checksum edited behind the runner's back
            await sql(
                db, "UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1"
            )
            with pytest.raises(MigrationError, match="0001_create_t was changed"):
                await migrate(db, migrations=SLOW)
            states = {s.version: s.state for s in await migration_status(db, migrations=SLOW)}
            assert states == {1: "changed", 2: "applied", 3: "pending"}
            await sql(
                db, "UPDATE schema_migrations SET checksum = $1 WHERE version = 1", SLOW[0].checksum
            )
            late = (*SLOW[:2], mig(4, "four", "SELECT 4"))
            await migrate(db, migrations=late)
            with pytest.raises(MigrationError, match="0003_insert is pending but the later"):
                await migrate(db, migrations=(*late, SLOW[2]))
            assert (await sql(db, "SELECT count(*) AS n FROM t"))[0]["n"] == 1  # 3 not applied
        finally:
            await db.close()


async def test_failing_migration_is_named_and_rolled_back(pg_dsn: str) -> None:
    broken = (SLOW[0], mig(2, "broken", "INSERT INTO t VALUES (1); SELECT no_such_column"))
    async with trio_asyncio.open_loop():
        db = await connect(pg_dsn, "mig_broken")
        try:
            with pytest.raises(MigrationError, match="0002_broken failed") as info:
                await migrate(db, migrations=broken)
            assert info.value.version == 2
            rows = await sql(db, "SELECT version FROM schema_migrations")
            assert [r["version"] for r in rows] == [1]
            assert (await sql(db, "SELECT count(*) AS n FROM t"))[0]["n"] == 0
            # the connection's statement timeout is restored after the run
            got = await sql(db, "SELECT current_setting('statement_timeout') AS s")
            assert got[0]["s"] == "5s"
        finally:
            await db.close()


async def test_dry_run_and_status_change_nothing(pg_dsn: str) -> None:
    async with trio_asyncio.open_loop():
        db = await connect(pg_dsn, "mig_dry")
        try:
            report = await migrate(db, dry_run=True)
            assert report.dry_run and [m.version for m in report.applied] == [
                m.version for m in load_migrations()
            ]
            assert (await sql(db, "SELECT to_regclass('schema_migrations') AS t"))[0]["t"] is None
            statuses = await migration_status(db)
            assert [(s.label, s.state) for s in statuses] == [
                (m.label, "pending") for m in load_migrations()
            ]
            await migrate(db)
            statuses = await migration_status(db)
            assert {s.state for s in statuses} == {"applied"}
            assert all(s.applied_at is not None for s in statuses)
            assert (await migrate(db, dry_run=True)).applied == ()
        finally:
            await db.close()
