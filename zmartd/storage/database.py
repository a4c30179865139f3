"""The asyncpg pool, reached from trio through trio-asyncio.

asyncpg is asyncio-only, so every call crosses the trio-asyncio bridge, and
each crossing costs ~150 us (measured with a bare
``aio_as_trio(asyncio.sleep)(0)``).  The rule is therefore *one
crossing per unit of work*: :meth:`Database.run` takes a coroutine function
that receives a connection and does the whole unit (one transaction, one
batch) on the asyncio side.  Storage modules build on this; nothing outside
``zmartd/storage`` sees a connection or SQL.

The trio-asyncio loop itself is opened once for the life of the daemon (in
``zmartd.app``), so that every actor's tasks can cross the bridge.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import trio
import trio_asyncio

from zmartd.services import ServiceKey
from zmartd.storage.cursors import Cursors

__all__ = ["DATABASE", "Database", "UnitOfWork"]

T = TypeVar("T")
UnitOfWork = Callable[[asyncpg.Connection], Awaitable[T]]


async def _in_connection(pool: asyncpg.Pool, fn: UnitOfWork[T], transaction: bool) -> T:
    async with pool.acquire() as con:
        if not transaction:
            return await fn(con)
        async with con.transaction():
            return await fn(con)


class Database:
    """A pool plus the one-crossing-per-unit discipline."""

    def __init__(
        self, pool: asyncpg.Pool, dsn_for_logs: str, *, cursors: Cursors | None = None
    ) -> None:
        self._pool = pool
        self.dsn_for_logs = dsn_for_logs
        #: signs and checks the pagination cursors of list functions (the storage actor
        #: passes the configured key; without one, cursors last as long as this object)
        self.cursors = cursors or Cursors.ephemeral()
        # The pool belongs to the asyncio loop it was created on; remember it
        # so that any trio task (not only those spawned inside open_loop) can
        # cross into it.
        self._loop: Any = trio_asyncio.current_loop.get()
        #: ``observe(unit, seconds, error)`` after every unit (the storage actor points it
        #: at the daemon's metrics)
        self.observe: Callable[[str, float, BaseException | None], None] | None = None

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        statement_timeout: float,
        connect_timeout: float = 10.0,
        cursors: Cursors | None = None,
    ) -> Database:
        # TimeZone UTC: a naive datetime in a JSON row set (storage/bulk.py)
        # means UTC, as it does for asyncpg's own timestamptz encoding here
        settings = {"statement_timeout": str(int(statement_timeout * 1000)), "TimeZone": "UTC"}
        pool = await trio_asyncio.aio_as_trio(asyncpg.create_pool)(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings=settings,
            timeout=connect_timeout,
        )
        return cls(pool, _safe_dsn(dsn), cursors=cursors)

    async def run(self, name: str, fn: UnitOfWork[T], *, transaction: bool = True) -> T:
        """Run ``fn(connection)`` as the unit of work ``name``, in one bridge crossing.

        ``name`` (``"<domain>.<operation>"``, like Synapse's ``runInteraction`` description)
        labels the unit's latency and errors in ``/metrics`` when an observer is set.
        """
        started = time.perf_counter()
        try:
            result: T = await self._loop.run_aio_coroutine(
                _in_connection(self._pool, fn, transaction)
            )
        except BaseException as exc:
            if self.observe is not None and not isinstance(exc, trio.Cancelled):
                self.observe(name, time.perf_counter() - started, exc)
            raise
        if self.observe is not None:
            self.observe(name, time.perf_counter() - started, None)
        return result

    async def ping(self) -> None:
        """A round trip to the server; raises if it is unreachable."""

        async def _ping(con: asyncpg.Connection) -> Any:
            return await con.fetchval("SELECT 1")

        await self.run("database.ping", _ping, transaction=False)

    async def close(self) -> None:
        await self._loop.run_aio_coroutine(self._pool.close())


def _safe_dsn(dsn: str) -> str:
    """The DSN without its password, for logs."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "<unparseable dsn>"
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


#: The service key under which the storage actor provides the pool (re-exported by
#: :mod:`zmartd.model.services` with the other shared keys).
DATABASE = ServiceKey("database", Database)
