"""Leader election for actors that must run on one instance per database.

Several zmartd processes may share one PostgreSQL (a warm standby, a
rolling deploy).  The indexer, the transaction sender, the vote
aggregator and the market monitor must each run in exactly one of them, or
the same work would be done twice (two senders could each sign a transaction for one intent).
Each such role holds a session-level advisory lock whose key is
``"zmartd"`` followed by a two-byte role number (:func:`lock_key`); the
session is a dedicated pool connection, so a killed process loses its
leadership with its connection and a follower takes over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

import asyncpg
import trio

from zmartd.storage.database import Database

__all__ = ["ROLES", "LeaderLost", "leader_lock", "lock_key"]

#: role -> the last two bytes of its lock key ("migrate" is the migration runner's).
ROLES: Final[dict[str, int]] = {
    "migrate": 1,
    "indexer": 2,
    "sender": 3,
    "aggregator": 4,
    "monitor": 5,
}


def lock_key(role: str) -> int:
    """The advisory lock key of ``role``: the bytes ``zmartd`` + the role number (big
    endian), a signed 64-bit value that no other application is likely to use."""
    return int.from_bytes(b"zmartd" + ROLES[role].to_bytes(2, "big"), "big")


class LeaderLost(Exception):
    """The connection holding the leader lock died: another instance may lead now."""


async def _acquire(pool: asyncpg.Pool, key: int) -> asyncpg.Connection | None:
    con = await pool.acquire()
    try:
        if await con.fetchval("SELECT pg_try_advisory_lock($1)", key):
            return con
    except BaseException:
        await pool.release(con)
        raise
    await pool.release(con)
    return None


async def _release(pool: asyncpg.Pool, con: asyncpg.Connection, key: int) -> None:
    try:
        await con.execute("SELECT pg_advisory_unlock($1)", key)
    except (TimeoutError, asyncpg.PostgresError, OSError):
        pass  # a dead session released the lock with itself
    finally:
        await pool.release(con)


@asynccontextmanager
async def leader_lock(
    db: Database,
    key: int,
    *,
    retry_interval: float = 2.0,
    check_interval: float = 5.0,
    on_wait: Callable[[], None] | None = None,
) -> AsyncIterator[None]:
    """Hold a session-level advisory lock on a dedicated pool connection.

    Waits (retrying every ``retry_interval`` s, calling ``on_wait()`` each
    time) while another session holds it.  While held, the connection is
    pinged every ``check_interval`` s; if it dies the lock is gone with it
    and :class:`LeaderLost` is raised into the body, so two instances never
    both believe they lead.  A killed process's session ends, which frees
    the lock for a follower.
    """
    pool, loop = db._pool, db._loop
    while True:
        con = await loop.run_aio_coroutine(_acquire(pool, key))
        if con is not None:
            break
        if on_wait is not None:
            on_wait()
        await trio.sleep(retry_interval)
    try:
        async with trio.open_nursery() as nursery:

            async def _watch() -> None:
                while True:
                    await trio.sleep(check_interval)
                    try:
                        with trio.fail_after(max(check_interval, 1.0)):
                            await loop.run_aio_coroutine(con.fetchval("SELECT 1"))
                    except (
                        asyncpg.PostgresError,
                        OSError,
                        trio.TooSlowError,
                        asyncpg.InterfaceError,
                    ) as exc:
                        raise LeaderLost(f"leader lock connection lost: {exc!r}") from exc

            nursery.start_soon(_watch)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await loop.run_aio_coroutine(_release(pool, con, key))
