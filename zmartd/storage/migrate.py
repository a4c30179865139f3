"""Versioned SQL migrations: ``zmartd/storage/migrations/NNNN_snake_name.sql``.

Rules, and why:

* Files apply in version order, each in its own transaction together with the
  row that records it in ``schema_migrations(version, name, checksum,
  applied_at)``, so a failed migration leaves nothing half-applied and is
  retried whole on the next run.
* The whole run holds the session advisory lock :data:`ADVISORY_LOCK_KEY` on one
  connection, so several zmartd instances starting at once against the same
  database serialise: the first applies, the others then find nothing pending.
  (Advisory locks are per database, so unrelated databases on one server do
  not contend.)
* The sha256 of every applied file is recorded.  An applied file that changed,
  or an applied version no longer on disk, means this code and this database
  disagree about the schema: that is a :class:`MigrationError` naming the
  version, never something to paper over.  So is a pending version lower than
  one already applied (two branches numbered their migrations the same way).
* The runner does its whole job in one coroutine on one connection, hence one
  trio-asyncio bridge crossing (``Database.run``).

SQL files must not name a schema: the tables go to the connection's
``search_path`` (``public`` by default), which lets tests use one schema each.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from importlib.abc import Traversable
from typing import Literal

import asyncpg

from zmartd.storage.database import Database

__all__ = [
    "ADVISORY_LOCK_KEY",
    "Migration",
    "MigrationError",
    "MigrationReport",
    "MigrationState",
    "MigrationStatus",
    "apply_migrations",
    "inspect_migrations",
    "load_migrations",
    "migrate",
    "migration_status",
]

#: ``pg_advisory_lock`` key held while migrating: the ASCII bytes ``zmartd`` followed by
#: ``0x0001`` (0x7A6D_6172_7464_0001 = 8822477106163761153), a signed 64-bit value.
ADVISORY_LOCK_KEY = 0x7A6D_6172_7464_0001

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")

MigrationState = Literal["applied", "pending", "changed", "missing"]


class MigrationError(Exception):
    """The schema cannot be brought up to date; ``version`` names the culprit."""

    def __init__(self, message: str, version: int | None = None) -> None:
        super().__init__(message)
        self.version = version


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str  # sha256 hex of the file's bytes

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """One version as seen by :func:`inspect_migrations`.

    ``changed``: applied, but the file on disk differs; ``missing``: applied,
    but no such file on disk.
    """

    version: int
    name: str
    state: MigrationState
    applied_at: datetime | None

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What a run applied (or, with ``dry_run``, would apply)."""

    applied: tuple[Migration, ...]
    already_applied: tuple[int, ...]
    dry_run: bool


def load_migrations(directory: Traversable | None = None) -> tuple[Migration, ...]:
    """The migration files of ``directory`` (default: the packaged ones), in order.

    Every ``.sql`` file must be named ``NNNN_snake_name.sql`` and versions must
    be unique: a misnamed file would otherwise be silently skipped.
    """
    root = directory if directory is not None else resources.files("zmartd.storage.migrations")
    found: dict[int, Migration] = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_snake_name.sql")
        version = int(match.group(1))
        if version == 0:
            raise MigrationError(f"migration file {entry.name!r}: versions start at 0001", 0)
        data = entry.read_bytes()
        if version in found:
            raise MigrationError(
                f"two migration files have version {version:04d}: "
                f"{found[version].label}.sql and {entry.name}",
                version,
            )
        found[version] = Migration(
            version=version,
            name=match.group(2),
            sql=data.decode("utf-8"),
            checksum=hashlib.sha256(data).hexdigest(),
        )
    return tuple(found[v] for v in sorted(found))


# ---------------------------------------------------------------- asyncio side

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY CHECK (version > 0),
    name        text NOT NULL,
    checksum    text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def _applied(con: asyncpg.Connection) -> dict[int, tuple[str, str, datetime]]:
    exists = await con.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await con.fetch(
        "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
    )
    return {r["version"]: (r["name"], r["checksum"], r["applied_at"]) for r in rows}


def _compare(
    migrations: tuple[Migration, ...], applied: dict[int, tuple[str, str, datetime]]
) -> tuple[MigrationStatus, ...]:
    on_disk = {m.version: m for m in migrations}
    out: list[MigrationStatus] = []
    for version in sorted(set(on_disk) | set(applied)):
        mig = on_disk.get(version)
        row = applied.get(version)
        if row is None:
            assert mig is not None
            out.append(MigrationStatus(version, mig.name, "pending", None))
        elif mig is None:
            out.append(MigrationStatus(version, row[0], "missing", row[2]))
        elif mig.checksum != row[1]:
            out.append(MigrationStatus(version, mig.name, "changed", row[2]))
        else:
            out.append(MigrationStatus(version, mig.name, "applied", row[2]))
    return tuple(out)


def _check(statuses: tuple[MigrationStatus, ...]) -> None:
    """Raise for any state that a run must not continue from."""
    for s in statuses:
        if s.state == "changed":
            raise MigrationError(
                f"migration {s.label} was changed after it was applied (checksum mismatch); "
                "restore the file and add a new migration instead",
                s.version,
            )
        if s.state == "missing":
            raise MigrationError(
                f"migration {s.label} is applied in the database but missing from this "
                "version of zmartd (is this an older release?)",
                s.version,
            )
    top = max((s.version for s in statuses if s.state == "applied"), default=0)
    for s in statuses:
        if s.state == "pending" and s.version < top:
            raise MigrationError(
                f"migration {s.label} is pending but the later version {top:04d} is already "
                "applied; renumber it after the applied ones",
                s.version,
            )


async def inspect_migrations(
    con: asyncpg.Connection, migrations: tuple[Migration, ...]
) -> tuple[MigrationStatus, ...]:
    """Every version known to the files or the database, with its state (read-only)."""
    return _compare(migrations, await _applied(con))


async def apply_migrations(
    con: asyncpg.Connection, migrations: tuple[Migration, ...], *, dry_run: bool = False
) -> MigrationReport:
    """Apply the pending migrations on ``con`` under the advisory lock (asyncio side).

    Connection failures propagate unchanged (the caller may retry); an SQL error
    inside a migration becomes a :class:`MigrationError` naming its version.
    """
    # No statement timeout for the lock wait and the DDL; restored below.
    previous_timeout = await con.fetchval("SELECT current_setting('statement_timeout')")
    await con.execute("SELECT set_config('statement_timeout', '0', false)")
    await con.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        if not dry_run:
            await con.execute(_CREATE_TABLE)
        statuses = _compare(migrations, await _applied(con))
        _check(statuses)
        pending_versions = {s.version for s in statuses if s.state == "pending"}
        pending = tuple(m for m in migrations if m.version in pending_versions)
        already = tuple(s.version for s in statuses if s.state == "applied")
        if not dry_run:
            for mig in pending:
                await _apply_one(con, mig)
        return MigrationReport(applied=pending, already_applied=already, dry_run=dry_run)
    finally:
        if not con.is_closed():
            await con.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
            await con.execute("SELECT set_config('statement_timeout', $1, false)", previous_timeout)


async def _apply_one(con: asyncpg.Connection, mig: Migration) -> None:
    try:
        async with con.transaction():
            await con.execute(mig.sql)
            await con.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                mig.version,
                mig.name,
                mig.checksum,
            )
    except asyncpg.PostgresConnectionError:
        raise
    except asyncpg.PostgresError as exc:
        raise MigrationError(
            f"migration {mig.label} failed: {type(exc).__name__}: {exc}", mig.version
        ) from exc


# ---------------------------------------------------------------- trio side


async def migrate(
    db: Database, *, dry_run: bool = False, migrations: tuple[Migration, ...] | None = None
) -> MigrationReport:
    """Bring ``db`` up to date (one bridge crossing, one connection)."""
    migs = load_migrations() if migrations is None else migrations

    async def _run(con: asyncpg.Connection) -> MigrationReport:
        return await apply_migrations(con, migs, dry_run=dry_run)

    return await db.run("migrate.migrate", _run, transaction=False)


async def migration_status(
    db: Database, *, migrations: tuple[Migration, ...] | None = None
) -> tuple[MigrationStatus, ...]:
    """Applied/pending/changed/missing per version, without changing anything."""
    migs = load_migrations() if migrations is None else migrations

    async def _run(con: asyncpg.Connection) -> tuple[MigrationStatus, ...]:
        return await inspect_migrations(con, migs)

    return await db.run("migrate.migration_status", _run, transaction=False)
