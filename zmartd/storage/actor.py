"""The ``storage`` actor: owns the database connection pool (and the embedded
server when no DSN is configured) and provides it as the ``database`` service.

A database outage is an expected condition, not a crash: crashing would burn
the supervisor's restart intensity within a minute and take the whole daemon
down while PostgreSQL restarts.  So the actor reconnects by itself with
backoff, withdraws the service while the database is unreachable (request
handlers answer 503) and reports itself *degraded*, which makes ``/ready``
answer 503 too.

Before providing the service it applies pending migrations
(:mod:`zmartd.storage.migrate`, under a Postgres advisory lock, so several
instances starting at once do not race).  A :class:`MigrationError` (a changed
or missing applied migration, a migration whose SQL fails) is not an outage:
it is logged and the actor fails, so the supervisor's restart limit ends the
daemon instead of serving on a schema it does not understand.

The pool it provides carries the key that signs pagination cursors
(:func:`zmartd.storage.cursors.cursors_for`: ``[database] cursor_secret``,
or the secret generated into the data dir).  A data dir that cannot hold
that secret is, like a failed migration, a configuration problem: logged,
and the actor fails.

While connected it also deletes expired sign-in nonces and sessions every
:data:`PURGE_INTERVAL` (:func:`zmartd.storage.auth.purge_expired`): anyone
can make the server write a nonce, so without it ``auth_nonces`` grows with
unauthenticated traffic.  Every instance does it; the deletes are idempotent.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import trio

from zmartd.context import ActorContext
from zmartd.storage import auth as auth_store
from zmartd.storage.cursors import cursors_for, secret_path
from zmartd.storage.database import DATABASE, Database
from zmartd.storage.embedded import database_dsn
from zmartd.storage.migrate import MigrationError, migrate

__all__ = ["PING_INTERVAL", "PURGE_INTERVAL", "run"]

PING_INTERVAL = 5.0
#: Seconds between purges of expired nonces and sessions (and one at each connect).
PURGE_INTERVAL = 600.0
RECONNECT_MAX = 15.0


async def run(
    ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
) -> None:
    cfg = ctx.config.database
    log = ctx.log
    try:
        cursors = await trio.to_thread.run_sync(cursors_for, ctx.config)
    except OSError as exc:
        log.error(
            "cannot read or create the cursor secret; set [database] cursor_secret",
            path=str(secret_path(ctx.config)),
            error=str(exc),
        )
        raise
    async with AsyncExitStack() as stack:
        dsn = await database_dsn(ctx.config, stack)
        started = False
        delay = 0.5
        while not stopping.is_set():
            try:
                db = await Database.connect(
                    dsn,
                    min_size=cfg.pool_min,
                    max_size=cfg.pool_max,
                    statement_timeout=cfg.statement_timeout,
                    cursors=cursors,
                )
                db.observe = ctx.metrics.observe_db_unit
                try:
                    report = await migrate(db)
                except BaseException:
                    with trio.move_on_after(2) as cleanup:
                        cleanup.shield = True
                        await db.close()
                    raise
            except MigrationError as exc:
                log.error(
                    "database migration failed; refusing to start",
                    version=exc.version,
                    error=str(exc),
                )
                raise
            except Exception as exc:  # asyncpg, OSError, timeouts: all mean "not reachable"
                reason = f"cannot connect to the database: {type(exc).__name__}: {exc}"
                ctx.set_degraded(reason)
                log.warning("database unreachable; retrying", error=str(exc), retry_in=delay)
                with trio.move_on_after(delay):
                    await stopping.wait()
                delay = min(RECONNECT_MAX, delay * 2)
                continue
            delay = 0.5
            ctx.set_degraded(None)
            ctx.services.provide(DATABASE, db)
            log.info(
                "database connected",
                dsn=db.dsn_for_logs,
                migrations_applied=[m.label for m in report.applied],
            )
            if not started:
                task_status.started()
                started = True
            try:
                lost: Exception | None = None
                async with trio.open_nursery() as housekeeping:
                    housekeeping.start_soon(_purge_expired, db, log)
                    try:  # caught in here: through the nursery it would be an ExceptionGroup
                        await _watch(db, stopping)
                    except Exception as exc:
                        lost = exc
                    housekeeping.cancel_scope.cancel()
                if lost is not None:
                    reason = f"{type(lost).__name__}: {lost}"
                    ctx.set_degraded(f"database connection lost: {reason}")
                    log.warning("database connection lost; reconnecting", error=str(lost))
            finally:
                ctx.services.withdraw(DATABASE, db)
                with trio.move_on_after(2) as cleanup:
                    cleanup.shield = True
                    try:
                        await db.close()
                    except Exception as exc:  # a pool whose connections died: nothing to keep
                        log.info("closing the lost pool failed", error=str(exc))
        ctx.set_degraded(None)


async def _purge_expired(db: Database, log: Any) -> None:
    """Purge now and every PURGE_INTERVAL; a failure is logged and retried next time
    (the connection's health is :func:`_watch`'s business)."""
    while True:
        try:
            removed = await auth_store.purge_expired(db)
        except Exception as exc:
            log.warning(
                "purging expired sign-in nonces and sessions failed",
                error=f"{type(exc).__name__}: {exc}",
            )
        else:
            if removed:
                log.info("purged expired sign-in nonces and sessions", rows=removed)
        await trio.sleep(PURGE_INTERVAL)


async def _watch(db: Database, stopping: trio.Event) -> None:
    """Return when stopping; raise when the database stops answering."""
    while True:
        with trio.move_on_after(PING_INTERVAL):
            await stopping.wait()
            return
        with trio.fail_after(PING_INTERVAL):
            await db.ping()
