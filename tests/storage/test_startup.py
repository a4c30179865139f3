"""Migrations at daemon start (storage actor) and the ``zmartd migrate`` command."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio_asyncio

from tests.storage.conftest import schema_dsn, sql
from zmartd import cli
from zmartd.app import EXIT_ESCALATED, Daemon
from zmartd.config import load_config
from zmartd.model.services import DATABASE
from zmartd.storage.database import Database
from zmartd.storage.migrate import load_migrations
from zmartd.tree import TREE


async def fresh(pg_dsn: str, schema: str) -> None:
    admin = await Database.connect(pg_dsn, min_size=1, max_size=1, statement_timeout=5)
    try:
        await sql(admin, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"')
    finally:
        await admin.close()


def config(tmp_path: Path, dsn: str) -> Path:
    path = tmp_path / "z.toml"
    path.write_text(
        f'[daemon]\ndata_dir = "{tmp_path}"\nmax_restarts = 1\nbackoff_initial = 0.01\n'
        f'backoff_max = 0.01\n[database]\ndsn = "{dsn}"\npool_min = 1\npool_max = 2\n'
        '[log]\nlevel = "error"\n'
    )
    return path


async def test_daemon_migrates_then_refuses_a_changed_schema(tmp_path: Path, pg_dsn: str) -> None:
    async with trio_asyncio.open_loop():
        await fresh(pg_dsn, "startup")
    dsn = schema_dsn(pg_dsn, "startup")
    path = config(tmp_path, dsn)
    storage_only = [d for d in TREE if d.name == "storage"]

    daemon = Daemon(load_config(path), path, storage_only)
    async with trio.open_nursery() as n:
        n.start_soon(daemon.run)
        with trio.fail_after(20):
            while not daemon.supervisor.ready:
                await trio.sleep(0.02)
        db = await daemon.services.get(DATABASE)
        rows = await sql(db, "SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in load_migrations()]
        await sql(db, "UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 2")
        await daemon.shutdown()
        n.cancel_scope.cancel()

    daemon = Daemon(load_config(path), path, storage_only)
    with trio.fail_after(20):
        code = await daemon.run()
    assert code == EXIT_ESCALATED  # a startup error, not a silent reconnect loop
    status = daemon.supervisor.status("storage")
    assert status.last_error is not None and "MigrationError" in status.last_error
    assert "0002_offchain" in status.last_error and DATABASE not in daemon.services


def test_migrate_command(tmp_path: Path, pg_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    trio.run(_fresh_schema, pg_dsn, "cli_migrate")
    path = config(tmp_path, schema_dsn(pg_dsn, "cli_migrate"))

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(["migrate", *args, "--config", str(path)])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("--status")
    assert code == 0 and out.split("\n")[0].split() == ["0001_chain_mirror", "pending"]
    code, out, _ = run("--dry-run")
    assert code == 0 and "would apply 0003_auth_audit" in out and "nothing was changed" in out
    code, out, _ = run("--status")
    assert "applied" not in out
    code, out, _ = run()
    assert code == 0 and "applied 0001_chain_mirror" in out
    assert f"up to date ({len(load_migrations())}" in out
    code, out, _ = run()
    assert code == 0 and out.strip() == (
        f"database is up to date ({len(load_migrations())} migrations applied)"
    )
    code, out, _ = run("--status")
    states = [line.split()[1] for line in out.strip().split("\n")]
    assert code == 0 and states == ["applied"] * len(load_migrations())
    trio.run(_tamper, pg_dsn, "cli_migrate")
    code, out, err = run()
    assert code == 1 and "0001_chain_mirror was changed" in err
    code, out, _ = run("--status")
    assert code == 1 and "changed" in out
    with pytest.raises(SystemExit):
        cli.main(["migrate", "--status", "--dry-run", "--config", str(path)])


def test_migrate_command_unreachable_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "postgresql://postgres@127.0.0.1:1/nothing")
    assert cli.main(["migrate", "--config", str(path)]) == 1
    assert "cannot connect to the database" in capsys.readouterr().err


async def _fresh_schema(pg_dsn: str, schema: str) -> None:
    async with trio_asyncio.open_loop():
        await fresh(pg_dsn, schema)


async def _tamper(pg_dsn: str, schema: str) -> None:
    async with trio_asyncio.open_loop():
        db = await Database.connect(
            schema_dsn(pg_dsn, schema), min_size=1, max_size=1, statement_timeout=5
        )
        try:
            await sql(
                db, "UPDATE schema_migrations SET checksum = repeat('1', 64) WHERE version = 1"
            )
        finally:
            await db.close()
