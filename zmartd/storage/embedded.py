"""The embedded PostgreSQL used when ``[database] dsn`` is empty.

``pgserver`` ships PostgreSQL binaries in a wheel, so a new user can run
zmartd with no database setup.  Two of its behaviours need care (measured
with pgserver 0.1.4 as root):

* As root it runs PostgreSQL as a ``pgserver`` system user and makes every
  ancestor directory of the data dir world-readable/executable.  That is why
  the data dir should not live under ``/root``; :func:`start` logs the path.
* If the owning process is SIGKILLed, the postmaster keeps running and the
  dead pid stays in ``pgdata/.handle_pids.json``; a later owner reattaches but
  then never stops it.  :func:`_forget_dead_owners` removes dead pids before
  attaching, so the new owner adopts the orphan and stops it on exit.

All pgserver calls block (initdb, ``pg_ctl -w``), so they run in a thread.
"""

from __future__ import annotations

import json
import os
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import trio

if TYPE_CHECKING:
    from zmartd.config import Config

__all__ = ["EmbeddedPostgres", "database_dsn"]

log = structlog.get_logger("zmartd.storage.embedded")


async def database_dsn(config: Config, stack: AsyncExitStack) -> str:
    """The configured ``[database] dsn``; without one, the embedded server's,
    started in ``<daemon.data_dir>/postgres`` and stopped when ``stack``
    closes.  The storage actor and the ``migrate``/``backfill`` commands all
    connect this way, so a command run beside a daemon finds the same data."""
    if config.database.dsn:
        return config.database.dsn.reveal()
    embedded = await EmbeddedPostgres.start(config.daemon.data_dir / "postgres")
    stack.push_async_callback(embedded.stop)
    return embedded.dsn


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_owners(pgdata: Path) -> list[int]:
    """Drop pids of processes that no longer exist from pgserver's owner list."""
    handle_file = pgdata / ".handle_pids.json"
    if not handle_file.exists():
        return []
    try:
        pids = [int(p) for p in json.loads(handle_file.read_text())]
    except (ValueError, TypeError):
        pids = []
    dead = [p for p in pids if p != os.getpid() and not _pid_alive(p)]
    if dead:
        handle_file.write_text(json.dumps([p for p in pids if p not in dead]))
    return dead


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    server: Any

    @property
    def dsn(self) -> str:
        uri: str = self.server.get_uri()
        return uri

    @classmethod
    async def start(cls, pgdata: Path) -> EmbeddedPostgres:
        """Initialise (first run) and start the server in ``pgdata``."""

        def _start() -> Any:
            pgdata.mkdir(parents=True, exist_ok=True)
            # pgserver keeps a lock file (and, for over-long paths, its socket)
            # in the user runtime dir; give it a private one beside the data
            # when the environment has none (systemd services, containers, CI).
            if "XDG_RUNTIME_DIR" not in os.environ:
                runtime = pgdata.parent / "runtime"
                runtime.mkdir(mode=0o700, exist_ok=True)
                runtime.chmod(0o700)
                os.environ["XDG_RUNTIME_DIR"] = str(runtime)
            # imported lazily: it creates its runtime dir on import
            from pgserver.postgres_server import PostgresServer, get_server

            dead = _forget_dead_owners(pgdata)
            if dead:
                log.warning("adopting embedded postgres left by dead owner(s)", pids=dead)
            try:
                return get_server(pgdata, cleanup_mode="stop")
            except BaseException:
                # pgserver caches instances per pgdata, even a half-started
                # one; drop it so that the next attempt starts afresh.
                PostgresServer._instances.pop(pgdata, None)
                raise

        started = trio.current_time()
        server = await trio.to_thread.run_sync(_start)
        log.info("embedded postgres started", pgdata=str(pgdata),
                 seconds=round(trio.current_time() - started, 3))
        return cls(pgdata, server)

    async def stop(self) -> None:
        await trio.to_thread.run_sync(self.server.cleanup)
        log.info("embedded postgres stopped", pgdata=str(self.pgdata))
