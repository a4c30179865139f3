"""The ``snapshotter`` actor inside a daemon: it catches up the missed days at start, and
a second instance on the same database stands by (leader-only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio
import trio_asyncio

from tests.snapshotter.conftest import add_markets, add_post
from tests.storage.conftest import create_schema, schema_dsn
from zmartd.app import Daemon
from zmartd.config import load_config
from zmartd.snapshotter.metrics import snapshot_metrics
from zmartd.storage import anchors
from zmartd.storage.database import Database
from zmartd.storage.migrate import migrate
from zmartd.tree import TREE


def _daemon(tmp_path: Path, dsn: str, name: str) -> Daemon:
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'[daemon]\ndata_dir = "{tmp_path / name}"\ninstance_name = "{name}"\n'
        f'[database]\ndsn = "{dsn}"\n[log]\nlevel = "warning"\n'
        '[snapshotter]\nat = "00:00"\n'
    )
    tree = tuple(d for d in TREE if d.name in ("storage", "snapshotter"))
    return Daemon(load_config(config), None, tree)


async def test_actor_catches_up_and_leads_alone(tmp_path: Path, pg_dsn: str) -> None:
    await trio.to_thread.run_sync(create_schema, pg_dsn, "s_actor")
    dsn = schema_dsn(pg_dsn, "s_actor")
    today = datetime.now(UTC).date()
    async with trio_asyncio.open_loop():
        db = await Database.connect(dsn, min_size=1, max_size=2, statement_timeout=30)
        try:
            await migrate(db)
            await add_markets(db, 1, 2)
            for days_ago in (3, 2, 1):
                day = today - timedelta(days=days_ago)
                await add_post(
                    db,
                    1 + days_ago % 2,
                    datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
                    f"{days_ago} days ago",
                )
            first, second = _daemon(tmp_path, dsn, "one"), _daemon(tmp_path, dsn, "two")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(first.run)
                with trio.fail_after(30):
                    while await anchors.last_complete_day(db) != datetime.combine(
                        today - timedelta(days=1), datetime.min.time(), UTC
                    ):
                        await trio.sleep(0.1)
                made = await anchors.list_anchors(db, limit=50)
                assert (
                    sorted(a.kind for a in made) == ["discussions"] * 3 + ["discussions_root"] * 3
                )
                assert snapshot_metrics(first.metrics.registry).leader._value.get() == 1
                nursery.start_soon(second.run)
                with trio.fail_after(30):
                    while second.supervisor.status("snapshotter").state.value != "running":
                        await trio.sleep(0.05)
                await trio.sleep(0.5)
                assert snapshot_metrics(second.metrics.registry).leader._value.get() == 0
                assert len(await anchors.list_anchors(db, limit=50)) == 6
                await second.shutdown()
                await first.shutdown()
            served = tmp_path / "one" / "ipfs"
            assert all((served / a.cid[-2:] / a.cid).is_file() for a in made)
        finally:
            await db.close()
