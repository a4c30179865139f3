"""Storage test fixtures: one PostgreSQL schema per test module, migrated once.

Every module gets ``s_<module>`` in the session database (``pg_dsn``) and
connects with ``search_path`` set to it, so modules cannot see each other's
rows and the migrations are exercised exactly as in production (they never
name a schema).  Tests that need an empty table set call :func:`truncate`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import trio
import trio_asyncio

from zmartd.storage.database import Database
from zmartd.storage.migrate import migrate

# parents before children
TABLES = (
    "markets",
    "market_metadata",
    "positions",
    "trades",
    "price_points",
    "chain_cursors",
    "processed_transactions",
    "dead_letters",
    "users",
    "vote_aggregations",
    "proposal_votes",
    "dispute_votes",
    "discussions",
    "ipfs_anchors",
    "auth_nonces",
    "sessions",
    "admin_audit_log",
)


def schema_dsn(pg_dsn: str, schema: str) -> str:
    return f"{pg_dsn}?search_path={schema}"


def create_schema(pg_dsn: str, schema: str) -> None:
    async def _create() -> None:
        con = await asyncpg.connect(pg_dsn)
        try:
            await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await con.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await con.close()

    asyncio.run(_create())


def migrated_schema(pg_dsn: str, schema: str) -> str:
    """A fresh schema with every migration applied; its DSN (for module fixtures)."""
    create_schema(pg_dsn, schema)
    dsn = schema_dsn(pg_dsn, schema)

    async def _migrate() -> None:
        async with trio_asyncio.open_loop():
            database = await Database.connect(dsn, min_size=1, max_size=2, statement_timeout=30)
            try:
                await migrate(database)
            finally:
                await database.close()

    trio.run(_migrate)
    return dsn


@pytest.fixture(scope="module")
def module_dsn(pg_dsn: str, request: pytest.FixtureRequest) -> Iterator[str]:
    schema = "s_" + request.module.__name__.rsplit(".", 1)[-1]
    create_schema(pg_dsn, schema)
    yield schema_dsn(pg_dsn, schema)


@pytest.fixture
async def db(module_dsn: str) -> AsyncIterator[Database]:
    """A pool on the module's schema, migrated (a no-op after the module's first test)."""
    async with trio_asyncio.open_loop():
        database = await Database.connect(module_dsn, min_size=1, max_size=4, statement_timeout=30)
        try:
            await migrate(database)
            yield database
        finally:
            await database.close()


async def truncate(db: Database) -> None:
    """Empty every table.  DELETE (children first) is much faster than TRUNCATE on the few
    rows tests write; the append-only audit log can only be truncated."""

    async def _run(con: Any) -> None:
        for table in reversed(TABLES):
            if table == "admin_audit_log":
                if await con.fetchval("SELECT EXISTS (SELECT 1 FROM admin_audit_log)"):
                    await con.execute("TRUNCATE admin_audit_log")
            else:
                await con.execute(f"DELETE FROM {table}")

    await db.run("test", _run)


async def sql(db: Database, query: str, *args: Any) -> Any:
    """Run one statement in its own transaction; returns fetched rows."""

    async def _run(con: Any) -> Any:
        if args:
            return await con.fetch(query, *args)
        return await con.execute(query) if ";" in query else await con.fetch(query)

    return await db.run("test", _run)
