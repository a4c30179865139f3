"""The storage actor against the machine's real PostgreSQL, including an outage.

A small TCP proxy sits between the actor and PostgreSQL so that the test can
cut the database off and bring it back, as a PostgreSQL restart would.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import trio
from solders.keypair import Keypair

from zmartd.app import Daemon
from zmartd.config import load_config
from zmartd.model.services import DATABASE
from zmartd.storage import actor as storage_actor
from zmartd.storage import auth as auth_store
from zmartd.storage.cursors import BIGINT, SECRET_FILE, Cursors
from zmartd.storage.database import Database, _safe_dsn
from zmartd.tree import TREE


class Proxy:
    """Forwards 127.0.0.1:<port> to a target; can refuse and cut connections."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.up = True
        self.port = 0
        self._conns: set[trio.CancelScope] = set()

    async def serve(self, *, task_status: trio.TaskStatus[None]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        if not self.up:
            await client.aclose()
            return
        with trio.CancelScope() as scope:
            self._conns.add(scope)
            try:
                server = await trio.open_tcp_stream(*self.target)
                async with client, server, trio.open_nursery() as n:
                    n.start_soon(self._pipe, client, server)
                    n.start_soon(self._pipe, server, client)
            finally:
                self._conns.discard(scope)

    @staticmethod
    async def _pipe(a: trio.SocketStream, b: trio.SocketStream) -> None:
        try:
            async for chunk in a:
                await b.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            with trio.move_on_after(0.1):
                await b.aclose()

    def cut(self) -> None:
        self.up = False
        for scope in list(self._conns):
            scope.cancel()


async def wait_for(pred: Any, timeout: float = 20) -> None:
    with trio.fail_after(timeout):
        while not pred():
            await trio.sleep(0.02)


async def test_outage_degrades_then_recovers(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_actor, "PING_INTERVAL", 0.2)
    parts = urlsplit(pg_dsn)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    async with trio.open_nursery() as n:
        await n.start(proxy.serve)
        dsn = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
        config = tmp_path / "z.toml"
        config.write_text(
            f'[daemon]\ndata_dir = "{tmp_path}"\n[database]\ndsn = "{dsn}"\n'
            'pool_min = 1\npool_max = 2\n[log]\nlevel = "error"\n'
        )
        daemon = Daemon(load_config(config), config, [d for d in TREE if d.name == "storage"])
        n.start_soon(daemon.run)
        await wait_for(lambda: daemon.supervisor.ready)
        db = await daemon.services.get(DATABASE)

        async def one(con: Any) -> Any:
            return await con.fetchval("SELECT current_database()")

        assert await db.run("test", one) == parts.path.lstrip("/")

        proxy.cut()
        await wait_for(lambda: "storage" in daemon.health.degraded)
        assert DATABASE not in daemon.services
        assert daemon.supervisor.status("storage").restarts == 0  # not a crash

        proxy.up = True
        await wait_for(
            lambda: "storage" not in daemon.health.degraded and DATABASE in daemon.services
        )
        db = await daemon.services.get(DATABASE)
        assert await db.run("test", one) == parts.path.lstrip("/")
        await daemon.shutdown()
        n.cancel_scope.cancel()


async def test_unit_of_work_is_one_transaction(pg_dsn: str) -> None:
    import trio_asyncio

    async with trio_asyncio.open_loop():
        db = await Database.connect(pg_dsn, min_size=1, max_size=2, statement_timeout=5)
        try:

            async def setup(con: Any) -> None:
                await con.execute("CREATE TABLE IF NOT EXISTS uow_t (v int)")
                await con.execute("TRUNCATE uow_t")

            await db.run("test", setup)

            async def failing(con: Any) -> None:
                await con.execute("INSERT INTO uow_t VALUES (1)")
                raise RuntimeError("abort the unit")

            with pytest.raises(RuntimeError):
                await db.run("test", failing)

            async def count(con: Any) -> Any:
                return await con.fetchval("SELECT count(*) FROM uow_t")

            assert await db.run("test", count) == 0  # rolled back as a whole
        finally:
            await db.close()


def test_dsn_password_is_hidden_in_logs() -> None:
    assert _safe_dsn("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert _safe_dsn("postgresql://u@h/db") == "postgresql://u@h/db"


async def test_expired_nonces_and_sessions_are_purged_on_a_timer(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22, finding 8: auth_nonces grew with unauthenticated requests, never purged."""
    monkeypatch.setattr(storage_actor, "PURGE_INTERVAL", 0.2)
    config = tmp_path / "z.toml"
    config.write_text(
        f'[daemon]\ndata_dir = "{tmp_path}"\n[database]\ndsn = "{pg_dsn}"\n'
        'pool_min = 1\npool_max = 2\n[log]\nlevel = "error"\n'
    )
    daemon = Daemon(load_config(config), config, [d for d in TREE if d.name == "storage"])
    wallet = str(Keypair().pubkey())

    async def expire(db: Database, table: str, key: str, value: Any, ago: timedelta) -> None:
        start = "issued_at" if table == "auth_nonces" else "created_at"

        async def run(con: Any) -> None:
            await con.execute(
                f"UPDATE {table} SET {start} = now() - 2 * $2::interval, "
                f"expires_at = now() - $2::interval WHERE {key} = $1",
                value,
                ago,
            )

        await db.run("test.expire", run)

    async def exists(db: Database, table: str, key: str, value: Any) -> bool:
        async def run(con: Any) -> bool:
            found: bool = await con.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {key} = $1)", value
            )
            return found

        return await db.run("test.exists", run)

    async with trio.open_nursery() as n:
        n.start_soon(daemon.run)
        await wait_for(lambda: daemon.supervisor.ready)
        db = await daemon.services.get(DATABASE)
        live = await auth_store.create_nonce(db, wallet=wallet, domain="d", ttl=timedelta(1))
        old = await auth_store.create_nonce(db, wallet=wallet, domain="d", ttl=timedelta(1))
        _, live_session = await auth_store.create_session(db, wallet=wallet, ttl=timedelta(1))
        _, old_session = await auth_store.create_session(db, wallet=wallet, ttl=timedelta(1))
        # rows that expire while the daemon runs: the timer, not only a purge at start
        await expire(db, "auth_nonces", "nonce", old.nonce, timedelta(seconds=1))
        await expire(db, "sessions", "id", old_session.id, timedelta(days=2))
        with trio.fail_after(10):
            while await exists(db, "auth_nonces", "nonce", old.nonce) or await exists(
                db, "sessions", "id", old_session.id
            ):
                await trio.sleep(0.05)
        assert await exists(db, "auth_nonces", "nonce", live.nonce)
        assert await exists(db, "sessions", "id", live_session.id)

        # the pool signs cursors with the secret generated into the data dir
        secret = (tmp_path / SECRET_FILE).read_text().strip()
        cursor = Cursors.from_secret(secret).encode("k", (1,))
        assert db.cursors.decode(cursor, "k", (BIGINT,)) == (1,)
        await daemon.shutdown()
        n.cancel_scope.cancel()
