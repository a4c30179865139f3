"""Shared fixtures: the machine's real PostgreSQL and Redis, isolated per run.

Every test run creates its own database (``zmartd_test_<pid>_<random>``) on
the PostgreSQL at ``ZMARTD_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
and drops it at the end, and uses a unique Redis key prefix that is deleted
at the end.  Nothing is shared between runs, so parallel CI runs and
developers' runs cannot collide.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

ADMIN_DSN = os.environ.get("ZMARTD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ZMARTD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a fresh database created for this test session."""
    import asyncpg

    name = f"zmartd_test_{os.getpid()}_{secrets.token_hex(4)}"

    async def create() -> None:
        con = await asyncpg.connect(ADMIN_DSN, timeout=10)
        try:
            await con.execute(f'CREATE DATABASE "{name}"')
        finally:
            await con.close()

    async def drop() -> None:
        con = await asyncpg.connect(ADMIN_DSN, timeout=10)
        try:
            await con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await con.close()

    try:
        asyncio.run(create())
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"the test PostgreSQL at {ADMIN_DSN} is not usable: {exc}")
    try:
        yield _with_database(ADMIN_DSN, name)
    finally:
        asyncio.run(drop())


@pytest.fixture(scope="session")
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix; every key under it is deleted after the test."""
    prefix = f"zmartd-test:{os.getpid()}:{secrets.token_hex(4)}:"
    yield prefix

    async def cleanup() -> None:
        import coredis

        client = coredis.Redis.from_url(redis_url)
        async with client:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(keys)

    import trio

    trio.run(cleanup)
