"""A market with 100,000 posts: the snapshot streams (peak RSS grows < 100 MB) and the
whole day (build, store in the local backend, verify, anchor, root) takes < 10 s.

Measured in a child process: its resident set is sampled every 10 ms while the day is
snapshotted, and the growth is the highest sample minus the one taken just before.  (A
build that held the page-less document or every post at once would grow by several
hundred MB here.)"""

from __future__ import annotations

import json
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.snapshotter.conftest import reset
from tests.snapshotter.test_core import D0, at
from tests.storage.factories import market_id, wallet
from zmartd.storage.database import Database

POSTS = 100_000

_CHILD = textwrap.dedent("""
    import json, os, sys, time, psutil, trio, trio_asyncio
    from datetime import UTC, date, datetime
    from pathlib import Path
    import structlog
    from prometheus_client import CollectorRegistry
    from zmartd.snapshotter.backends import LocalBackend
    from zmartd.snapshotter.core import Snapshotter
    from zmartd.snapshotter.metrics import SnapshotMetrics
    from zmartd.storage.blobs import BlobStore
    from zmartd.storage.database import Database

    def rss_mb():
        return psutil.Process(os.getpid()).memory_info().rss / 2**20

    async def sample(peak, done):
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            with trio.move_on_after(0.01):
                await done.wait()

    async def main():
        dsn, data_dir, day, now = sys.argv[1:5]
        async with trio_asyncio.open_loop():
            db = await Database.connect(dsn, min_size=1, max_size=2, statement_timeout=60)
            try:
                store = BlobStore.under(Path(data_dir))
                snap = Snapshotter(db, LocalBackend(store), workdir=store.workdir(),
                                   metrics=SnapshotMetrics(CollectorRegistry()),
                                   log=structlog.get_logger(),
                                   clock=lambda: datetime.fromisoformat(now))
                await db.run("warm", lambda con: con.fetchval("SELECT 1"))
                before = rss_mb()
                peak, done = [before], trio.Event()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(sample, peak, done)
                    started = time.perf_counter()
                    result = await snap.snapshot_day(date.fromisoformat(day))
                    took = time.perf_counter() - started
                    done.set()
                print(json.dumps({"before_mb": before, "after_mb": peak[0], "seconds": took,
                                  "ok": result.ok, "posts": [a.post_count for a in result.made],
                                  "bytes": [a.size_bytes for a in result.made]}))
            finally:
                await db.close()

    trio.run(main)
""")


async def _fill(db: Database) -> None:
    async def _run(con: Any) -> None:
        await con.execute(
            "INSERT INTO discussions (market_id, wallet, content, created_at, deleted_at, "
            "deleted_by) SELECT $1, $2, repeat('post number ' || g || ' ', 12), "
            "$3::timestamptz + g * interval '100 milliseconds', "
            "CASE WHEN g % 50 = 0 THEN $3::timestamptz + interval '1 hour' END, "
            "CASE WHEN g % 50 = 0 THEN 'author' END FROM generate_series(1, $4) g",
            market_id(1),
            wallet(1),
            at(D0, 8),
            POSTS,
        )

    await db.run("test.fill", _run)


@pytest.mark.slow
async def test_100k_posts_stream_in_bounded_memory(
    db: Database, module_dsn: str, tmp_path: Path
) -> None:
    await reset(db, 1)
    await _fill(db)
    with trio.fail_after(120):
        done = await trio.run_process(
            [
                sys.executable,
                "-c",
                _CHILD,
                module_dsn,
                str(tmp_path),
                D0.isoformat(),
                at(D0 + timedelta(days=1), 1).isoformat(),
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert report["ok"] and report["posts"] == [POSTS]
    assert report["bytes"][0] > 30_000_000  # really ~30+ MB of JSON, not a stub
    growth = report["after_mb"] - report["before_mb"]
    print(
        f"100k posts: {report['bytes'][0] / 1e6:.1f} MB in {report['seconds']:.2f} s, "
        f"peak RSS growth {growth:.1f} MB"
    )
    assert growth < 100, report
    assert report["seconds"] < 10, report
