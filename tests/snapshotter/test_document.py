"""The canonical snapshot document: shape, ordering, tombstones, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import trio

from tests.snapshotter.conftest import add_post, reset
from tests.storage.factories import market_id, wallet
from zmartd.snapshotter.cid import cid_of
from zmartd.snapshotter.document import SCHEMA, Period, build_market_snapshot, iso
from zmartd.storage.database import Database

DAY = date(2026, 3, 10)
START = datetime(2026, 3, 10, tzinfo=UTC)


async def _seed(db: Database) -> dict[str, int]:
    await reset(db, 1, 2)
    ids = {}
    # inserted out of time order: the document orders by (created_at, id)
    ids["late"] = await add_post(db, 1, START + timedelta(hours=20), "late one, ünïcödé ✓")
    ids["first"] = await add_post(db, 1, START - timedelta(days=3), "first post")
    ids["reply"] = await add_post(
        db,
        1,
        START + timedelta(hours=1),
        "a reply",
        parent=ids["first"],
        who=2,
        edited=START + timedelta(hours=2),
    )
    ids["gone"] = await add_post(
        db, 1, START + timedelta(hours=1), "secret text", deleted=START + timedelta(hours=3)
    )
    ids["tomorrow"] = await add_post(db, 1, START + timedelta(days=1), "after the cut-off")
    await add_post(db, 2, START, "another market")
    return ids


async def test_document_is_canonical_and_ordered(db: Database, tmp_path: Path) -> None:
    ids = await _seed(db)
    built = await build_market_snapshot(
        db, market_id(1), Period(DAY), now=START + timedelta(days=5), workdir=tmp_path, page_size=2
    )  # several pages
    raw = built.path.read_bytes()
    doc = json.loads(raw)
    # canonical: what a sorted-keys, compact, UTF-8 encoder makes of the parsed document
    assert (
        raw == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert (built.cid, built.sha256, built.size, built.post_count) == (
        cid_of(raw),
        hashlib.sha256(raw).digest(),
        len(raw),
        4,
    )
    assert doc["schema"] == SCHEMA and doc["market_id"] == market_id(1)
    assert doc["period"] == {
        "day": "2026-03-10",
        "start": "2026-03-10T00:00:00.000000Z",
        "end": "2026-03-11T00:00:00.000000Z",
    }
    assert doc["cut_off"] == "2026-03-11T00:00:00.000000Z"
    assert doc["counts"] == {"posts": 3, "tombstones": 1, "total": 4}
    # (created_at, id): first, then the two 01:00 posts by id, then late; not tomorrow's
    same_time = sorted([ids["reply"], ids["gone"]])
    assert [p["id"] for p in doc["posts"]] == [ids["first"], *same_time, ids["late"]]
    by_id = {p["id"]: p for p in doc["posts"]}
    assert by_id[ids["gone"]] == {
        "created_at": iso(START + timedelta(hours=1)),
        "deleted": True,
        "id": ids["gone"],
        "parent_id": None,
    }
    assert b"secret text" not in raw
    reply = by_id[ids["reply"]]
    assert reply == {
        "content": "a reply",
        "content_sha256": hashlib.sha256(b"a reply").hexdigest(),
        "created_at": "2026-03-10T01:00:00.000000Z",
        "deleted": False,
        "edited_at": "2026-03-10T02:00:00.000000Z",
        "id": ids["reply"],
        "parent_id": ids["first"],
        "wallet": wallet(2),
    }
    assert "ünïcödé ✓".encode() in raw  # UTF-8, not \u escapes
    # the page size changes nothing
    again = await build_market_snapshot(
        db, market_id(1), Period(DAY), now=START + timedelta(days=5), workdir=tmp_path
    )
    assert again.path.read_bytes() == raw and again.cid == built.cid


async def test_day_in_progress_cuts_off_at_now(db: Database, tmp_path: Path) -> None:
    await _seed(db)
    now = START + timedelta(hours=10)
    built = await build_market_snapshot(db, market_id(1), Period(DAY), now=now, workdir=tmp_path)
    doc = json.loads(built.path.read_bytes())
    assert doc["cut_off"] == iso(now) and doc["counts"]["total"] == 3


async def test_empty_market_gives_an_empty_list(db: Database, tmp_path: Path) -> None:
    await reset(db, 3)
    built = await build_market_snapshot(
        db, market_id(3), Period(DAY), now=START + timedelta(days=1), workdir=tmp_path
    )
    doc = json.loads(built.path.read_bytes())
    assert doc["posts"] == [] and doc["counts"]["total"] == 0


_CHILD = textwrap.dedent("""
    import sys, tempfile, trio, trio_asyncio
    from datetime import UTC, date, datetime
    from pathlib import Path
    from zmartd.snapshotter.document import Period, build_market_snapshot
    from zmartd.storage.database import Database

    async def main():
        async with trio_asyncio.open_loop():
            db = await Database.connect(sys.argv[1], min_size=1, max_size=1,
                                        statement_timeout=30)
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    built = await build_market_snapshot(
                        db, sys.argv[2], Period(date(2026, 3, 10)),
                        now=datetime(2026, 3, 20, tzinfo=UTC), workdir=Path(tmp))
                    print(built.cid)
            finally:
                await db.close()

    trio.run(main)
""")


@pytest.mark.slow
async def test_same_data_same_cid_in_two_processes(db: Database, module_dsn: str) -> None:
    await _seed(db)
    env = {**os.environ, "PYTHONHASHSEED": "random", "TZ": "Asia/Kathmandu"}
    cids = []
    for seed in ("1", "2"):
        with trio.fail_after(60):
            out = await trio.run_process(
                [sys.executable, "-c", _CHILD, module_dsn, market_id(1)],
                capture_stdout=True,
                env={**env, "PYTHONHASHSEED": seed},
                check=True,
            )
        cids.append(out.stdout.decode().strip())
    assert cids[0] == cids[1] and cids[0].startswith("bafkrei")
