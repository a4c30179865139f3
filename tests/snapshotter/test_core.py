"""Days, catch-up, pruning and the local store served at /ipfs/{cid}, against a real
PostgreSQL and a warped clock."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.api.conftest import live_api, make_config
from tests.snapshotter.conftest import add_post, reset
from tests.storage.conftest import sql
from tests.storage.factories import market_id
from zmartd.api.rest.gateway import IMMUTABLE
from zmartd.snapshotter.actor import next_run, run_round
from zmartd.snapshotter.backends import BackendError, LocalBackend
from zmartd.snapshotter.cid import cid_of
from zmartd.snapshotter.core import Snapshotter
from zmartd.snapshotter.metrics import SnapshotMetrics
from zmartd.storage import anchors
from zmartd.storage.blobs import BlobStore
from zmartd.storage.database import Database

D0 = date(2026, 5, 1)


def at(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Log:
    """Records what the snapshotter logs, by level."""

    lines: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.lines.append((level, event, kw))

    def at_level(self, level: str) -> list[tuple[str, dict[str, Any]]]:
        return [(e, kw) for lvl, e, kw in self.lines if lvl == level]


REGISTRIES: dict[int, CollectorRegistry] = {}


def make(
    db: Database, tmp_path: Path, now: datetime, backend: Any = None
) -> tuple[Snapshotter, Clock, SnapshotMetrics, Log, BlobStore]:
    store = BlobStore.under(tmp_path)
    clock = Clock(now)
    registry = CollectorRegistry()
    metrics = SnapshotMetrics(registry)
    REGISTRIES[id(metrics)] = registry
    log = Log()
    snap = Snapshotter(
        db,
        backend or LocalBackend(store),
        workdir=store.workdir(),
        metrics=metrics,
        log=log,
        clock=clock,
    )
    return snap, clock, metrics, log, store


def counter(metrics: SnapshotMetrics, name: str, **labels: str) -> float:
    value = REGISTRIES[id(metrics)].get_sample_value(name, labels or None)
    return float(value or 0.0)


async def test_a_day_is_stored_verified_anchored_and_served(db: Database, tmp_path: Path) -> None:
    await reset(db, 1, 2, 3)
    await add_post(db, 1, at(D0, 9), "market one")
    await add_post(db, 2, at(D0, 10), "market two")
    await add_post(db, 3, at(D0 - timedelta(days=1), 10), "quiet market: no activity on D0")
    snap, _clock, metrics, _log, store = make(db, tmp_path, at(D0 + timedelta(days=1), 0, 5))

    result = await snap.snapshot_day(D0)
    assert result.ok and result.skipped == 0
    assert [a.market_id for a in result.made] == sorted([market_id(1), market_id(2)])
    root = result.root
    assert root is not None and root.kind == "discussions_root" and root.market_id is None
    for anchor in (*result.made, root):
        path = store.path(anchor.cid)
        assert path is not None and path.is_file()
        raw = path.read_bytes()
        assert cid_of(raw) == anchor.cid and len(raw) == anchor.size_bytes
        assert (anchor.period_start, anchor.period_end, anchor.covers_until) == (
            at(D0),
            at(D0 + timedelta(days=1)),
            at(D0 + timedelta(days=1)),
        )
        assert anchor.backend == "local" and anchor.pinned_at is not None
    root_doc = json.loads(store.path(root.cid).read_bytes())  # type: ignore[union-attr]
    assert root_doc["snapshots"] == [
        {"bytes": a.size_bytes, "cid": a.cid, "market_id": a.market_id, "posts": 1}
        for a in result.made
    ]
    assert counter(metrics, "zmartd_snapshots_total", kind="discussions") == 2
    assert counter(metrics, "zmartd_snapshots_total", kind="discussions_root") == 1

    # idempotent per (market, day): a second run stores and records nothing new
    again = await snap.snapshot_day(D0)
    assert (again.made, again.skipped, again.root) == ([], 2, root)
    assert len(await anchors.list_anchors(db, limit=50)) == 3

    cfg = make_config(daemon={"data_dir": str(tmp_path)})
    async with live_api(cfg, db) as api:
        cid = result.made[0].cid
        got = await api.client.get(f"/ipfs/{cid}")
        assert got.status_code == 200
        assert got.content == store.path(cid).read_bytes()  # type: ignore[union-attr]
        assert got.headers["cache-control"] == IMMUTABLE
        assert got.headers["etag"] == f'"{cid}"'
        assert got.headers["content-type"] == "application/json"
        cached = await api.client.get(f"/ipfs/{cid}", headers={"If-None-Match": f'"{cid}"'})
        assert cached.status_code == 304 and cached.content == b""
        head = await api.client.head(f"/ipfs/{cid}")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(got.content))
        missing = await api.client.get(f"/ipfs/{cid_of(b'never stored')}")
        assert missing.status_code == 404
        for bad in ("not-a-cid", "..%2F..%2Fetc%2Fpasswd", "Qm" + "0" * 44):
            assert (await api.client.get(f"/ipfs/{bad}")).status_code in (400, 404)


async def test_today_is_partial_until_the_scheduled_run(db: Database, tmp_path: Path) -> None:
    await reset(db, 1)
    await add_post(db, 1, at(D0, 1), "early")
    snap, clock, _m, _log, _store = make(db, tmp_path, at(D0, 12))
    partial = await snap.snapshot_day(D0)
    assert partial.made[0].covers_until == at(D0, 12) and partial.root is not None
    await add_post(db, 1, at(D0, 13), "later the same day")
    clock.now = at(D0 + timedelta(days=1), 0, 1)
    full = await snap.snapshot_day(D0)
    assert full.made[0].covers_until == at(D0 + timedelta(days=1))
    assert full.made[0].cid != partial.made[0].cid and full.made[0].post_count == 2
    with pytest.raises(ValueError, match="has not started"):
        await snap.snapshot_day(D0 + timedelta(days=2))


async def test_catch_up_of_five_missed_days_then_pruning(db: Database, tmp_path: Path) -> None:
    await reset(db, 1, 2)
    for d in range(7):
        await add_post(db, 1 + d % 2, at(D0 + timedelta(days=d), 8), f"day {d}")
    cfg = make_config(snapshotter={"at": "00:30", "retention_days": 90}).snapshotter
    # the daemon ran on D0+1 after 00:30: D0 is done
    snap, clock, metrics, _log, store = make(db, tmp_path, at(D0 + timedelta(days=1), 0, 45))
    assert await run_round(snap, cfg)
    roots = await sql(
        db, "SELECT period_start FROM ipfs_anchors WHERE kind = 'discussions_root' ORDER BY id"
    )
    assert [r["period_start"] for r in roots] == [at(D0)]
    # ... then was down for five days; it comes back on D0+6 at 00:10, before `at`
    clock.now = at(D0 + timedelta(days=6), 0, 10)
    assert await run_round(snap, cfg)
    rows = await sql(db, "SELECT kind, market_id, period_start FROM ipfs_anchors ORDER BY id")
    roots = [r["period_start"] for r in rows if r["kind"] == "discussions_root"]
    assert roots == [at(D0 + timedelta(days=d)) for d in range(5)]  # oldest first, D0+5 not due
    # every market snapshot of a day precedes its root
    seen_days = [r["period_start"] for r in rows]
    assert seen_days == sorted(seen_days)
    clock.now = at(D0 + timedelta(days=6), 0, 31)
    assert await run_round(snap, cfg)
    assert await anchors.last_complete_day(db) == at(D0 + timedelta(days=5))
    count = len(rows) + 2
    assert await run_round(snap, cfg)  # nothing due: nothing changes
    assert len(await anchors.list_anchors(db, limit=500)) == count
    assert next_run(clock.now, (0, 30)) == at(D0 + timedelta(days=7), 0, 30)
    assert metrics.last_success._value.get() > 0

    # 91 days after D0+2: D0..D0+2 are older than 90 days and pruned; rows stay
    clock.now = at(D0 + timedelta(days=93), 1)
    before = await anchors.list_anchors(db, limit=500)
    assert await run_round(snap, cfg)
    after = {a.id: a for a in await anchors.list_anchors(db, limit=500)}
    old = [
        a
        for a in before
        if a.period_start is not None and a.period_start < at(D0 + timedelta(days=3))
    ]
    assert old and all(after[a.id].pruned_at is not None for a in old)
    assert all(not store.has(a.cid) for a in old)
    kept = [a for a in before if a.id not in {o.id for o in old}]
    # newer days were caught up meanwhile (never older than the retention period)
    assert all(after[a.id].pruned_at is None and store.has(a.cid) for a in kept)
    assert counter(metrics, "zmartd_snapshots_pruned_total") == len(old)
    assert set(after) >= {a.id for a in before}


class WrongCid(LocalBackend):
    """Stores like the local backend, then reports another CID."""

    async def put(self, path: Path, name: str) -> str:
        await super().put(path, name)
        return cid_of(b"something else")


async def test_a_wrong_cid_anchors_nothing(db: Database, tmp_path: Path) -> None:
    await reset(db, 1)
    await add_post(db, 1, at(D0, 9), "hello")
    store = BlobStore.under(tmp_path)
    snap, _clock, metrics, log, _store = make(
        db, tmp_path, at(D0 + timedelta(days=1), 1), backend=WrongCid(store)
    )
    result = await snap.snapshot_day(D0)
    assert not result.ok and result.made == [] and result.root is None
    assert await anchors.list_anchors(db, limit=10) == ()
    assert counter(metrics, "zmartd_snapshot_failures_total", reason="cid_mismatch") == 1
    [(event, fields)] = log.at_level("error")
    assert "another CID" in event and fields["market_id"] == market_id(1)
    assert fields["reported"] == cid_of(b"something else")


async def test_catch_up_fills_a_gap_left_behind_a_day_run_by_hand(
    db: Database, tmp_path: Path
) -> None:
    await reset(db, 1)
    for d in range(4):
        await add_post(db, 1, at(D0 + timedelta(days=d), 8), f"day {d}")
    snap, _clock, _m, _log, _store = make(db, tmp_path, at(D0 + timedelta(days=4), 1))
    await snap.snapshot_day(D0 + timedelta(days=2))  # by hand, before any scheduled run
    due = await snap.due_days((0, 0), 90)
    assert due == [D0, D0 + timedelta(days=1), D0 + timedelta(days=3)]
    results = await snap.catch_up((0, 0), 90)
    assert [r.day for r in results] == due and all(r.ok for r in results)
    assert await snap.due_days((0, 0), 90) == []


class FailOn(LocalBackend):
    """A backend that is down for one day's documents."""

    def __init__(self, store: BlobStore, day: date) -> None:
        super().__init__(store)
        self.day = day

    async def put(self, path: Path, name: str) -> str:
        if self.day.isoformat() in name:
            raise BackendError("connection refused")
        return await super().put(path, name)


async def test_a_failing_day_stops_the_round_and_later_days_wait(
    db: Database, tmp_path: Path
) -> None:
    await reset(db, 1)
    for d in range(4):
        await add_post(db, 1, at(D0 + timedelta(days=d), 8), f"day {d}")
    backend = FailOn(BlobStore.under(tmp_path), D0 + timedelta(days=1))
    snap, _clock, metrics, _log, _store = make(
        db, tmp_path, at(D0 + timedelta(days=4), 1), backend=backend
    )
    results = await snap.catch_up((0, 0), 90)
    assert [(r.day, r.ok) for r in results] == [(D0, True), (D0 + timedelta(days=1), False)]
    assert counter(metrics, "zmartd_snapshot_failures_total", reason="backend") == 1
    backend.day = date(1970, 1, 1)  # back up: the next round resumes at the failed day
    results = await snap.catch_up((0, 0), 90)
    assert [r.day for r in results] == [D0 + timedelta(days=d) for d in (1, 2, 3)]
