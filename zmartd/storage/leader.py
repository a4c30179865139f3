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

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final

import asyncpg
import trio

from zmartd.context import ActorContext
from zmartd.storage.database import DATABASE, Database

__all__ = ["DATABASE_LOST", "ROLES", "LeaderLost", "lead", "leader_lock", "lock_key"]

#: seconds between checks that the lock's connection is still open (no I/O: asyncpg
#: marks it closed when the server or the network hangs up)
_CLOSED_POLL: Final = 0.1

#: role -> the last two bytes of its lock key ("migrate" is the migration runner's).
ROLES: Final[dict[str, int]] = {
    "migrate": 1,
    "indexer": 2,
    "sender": 3,
    "aggregator": 4,
    "snapshotter": 5,
    "monitor": 6,
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
    except (TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        pass  # a dead session released the lock with itself
    finally:
        # the pool may have let go of a dead connection already
        with contextlib.suppress(asyncpg.InterfaceError, OSError):
            await pool.release(con)


@asynccontextmanager
async def leader_lock(
    db: Database,
    key: int,
    *,
    retry_interval: float = 2.0,
    check_interval: float = 5.0,
    on_wait: Callable[[], None] | None = None,
    on_lead: Callable[[bool], None] | None = None,
) -> AsyncIterator[None]:
    """Hold a session-level advisory lock on a dedicated pool connection.

    Waits (retrying every ``retry_interval`` s, calling ``on_wait()`` each
    time) while another session holds it.  While held, the connection is
    pinged every ``check_interval`` s; if it dies the lock is gone with it
    and :class:`LeaderLost` is raised into the body, so two instances never
    both believe they lead.  A killed process's session ends, which frees
    the lock for a follower.  ``on_lead(True)`` is called once the lock is held,
    ``on_lead(False)`` while waiting and when it is given up (the instance's
    roles on ``/health``).
    """
    pool, loop = db._pool, db._loop
    waited = False
    while True:
        con = await loop.run_aio_coroutine(_acquire(pool, key))
        if con is not None:
            break
        waited = True
        if on_lead is not None:
            on_lead(False)
        if on_wait is not None:
            on_wait()
        await trio.sleep(retry_interval)
    if waited:
        # Taking over from another instance: its session is gone, but it may not have
        # noticed yet (a cut network is only seen by its next ping). Hold the lock for
        # one ping interval before acting, so the old leader has stopped by then and two
        # instances never act as leader at once.
        await trio.sleep(check_interval + 1.0)
    if on_lead is not None:
        on_lead(True)
    try:
        async with trio.open_nursery() as nursery:

            async def _watch() -> None:
                while True:
                    # A closed connection (the server or a proxy hung up) is seen at once:
                    # its session, and the lock, are gone, and another instance may
                    # already lead. A silent one is caught by the ping below.
                    waited = 0.0
                    while waited < check_interval:
                        await trio.sleep(_CLOSED_POLL)
                        waited += _CLOSED_POLL
                        if con.is_closed():
                            raise LeaderLost("leader lock connection closed")
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
        if on_lead is not None:
            on_lead(False)
        with trio.CancelScope(shield=True):
            await loop.run_aio_coroutine(_release(pool, con, key))


#: What a lost database looks like from inside a leader: the lock's session ended, or a
#: query met a closed or broken connection.
DATABASE_LOST: Final = (
    LeaderLost,
    ConnectionError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
)


async def lead(
    ctx: ActorContext,
    key: int,
    body: Callable[[Database], Awaitable[None]],
    *,
    on_wait: Callable[[], None] | None = None,
    retry_delay: float = 1.0,
) -> None:
    """Run ``body(db)`` whenever this instance holds the lock ``key``, for as long as the
    actor runs. A lost database or lock is waited out -- the actor stands by until the
    storage actor provides a pool again, then competes for the lock afresh -- instead of
    crashing: four singleton actors crash-looping on one outage exhausted the daemon's
    restart intensity and took the whole process down (tests/test_partition.py)."""
    while True:
        db = await ctx.services.get(DATABASE)
        try:
            async with leader_lock(db, key, on_wait=on_wait, on_lead=ctx.leading):
                await body(db)
            return
        except* DATABASE_LOST as lost:
            ctx.leading(False)
            ctx.log.warning(
                "lost the database or the leader lock; standing by", error=repr(lost.exceptions[0])
            )
        await trio.sleep(retry_delay)
