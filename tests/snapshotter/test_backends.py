"""The ``kubo`` and ``pinning-service`` backends against test servers on real sockets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.api.conftest import make_config
from tests.snapshotter.conftest import add_post, reset
from tests.snapshotter.servers import FakeKubo, FakePinningService, served
from tests.snapshotter.test_core import D0, at, counter, make
from zmartd.snapshotter.backends import KuboBackend, PinningServiceBackend, make_backend
from zmartd.snapshotter.cid import cid_of
from zmartd.storage import anchors
from zmartd.storage.database import Database


async def _two_markets(db: Database) -> None:
    await reset(db, 1, 2)
    await add_post(db, 1, at(D0, 9), "kubo one")
    await add_post(db, 2, at(D0, 10), "kubo two")


async def test_kubo_stores_pins_and_unpins(db: Database, tmp_path: Path) -> None:
    await _two_markets(db)
    kubo = FakeKubo(auth="Basic dXNlcjpwYXNz")
    async with served(kubo.app()) as url:
        cfg = make_config(
            snapshotter={"backend": "kubo", "kubo_url": url, "kubo_auth": "Basic dXNlcjpwYXNz"}
        )
        backend = make_backend(cfg.snapshotter, tmp_path)
        assert isinstance(backend, KuboBackend)
        try:
            snap, clock, metrics, _log, _ = make(
                db, tmp_path, at(D0 + timedelta(days=1), 1), backend=backend
            )
            result = await snap.snapshot_day(D0)
            assert result.ok and len(result.made) == 2 and result.root is not None
            for anchor in (*result.made, result.root):
                assert anchor.backend == "kubo"
                assert anchor.cid in kubo.pins and cid_of(kubo.blocks[anchor.cid]) == anchor.cid
            assert all(a["cid-version"] == "1" and a["raw-leaves"] == "true" for a in kubo.adds)
            assert counter(metrics, "zmartd_snapshots_total", kind="discussions") == 2
            # 91 days later everything is unpinned and marked pruned
            clock.now = at(D0 + timedelta(days=92))
            assert await snap.prune(90) == 3 and kubo.pins == set()
            assert all(a.pruned_at is not None for a in await anchors.list_anchors(db))
            assert await snap.prune(90) == 0
        finally:
            await backend.aclose()


async def test_kubo_reporting_another_cid_anchors_nothing(db: Database, tmp_path: Path) -> None:
    await _two_markets(db)
    liar = FakeKubo(lie=cid_of(b"not what you sent"))
    async with served(liar.app()) as url:
        backend = KuboBackend(url, None, timeout=10)
        try:
            snap, _clock, metrics, log, _ = make(
                db, tmp_path, at(D0 + timedelta(days=1), 1), backend=backend
            )
            result = await snap.snapshot_day(D0)
        finally:
            await backend.aclose()
    assert not result.ok and result.made == [] and result.root is None
    assert await anchors.list_anchors(db) == ()
    assert counter(metrics, "zmartd_snapshot_failures_total", reason="cid_mismatch") == 2
    errors = log.at_level("error")
    assert len(errors) == 2 and all(f["backend"] == "kubo" for _, f in errors)


async def test_kubo_unreachable_or_refusing_is_a_backend_failure(
    db: Database, tmp_path: Path
) -> None:
    await _two_markets(db)
    kubo = FakeKubo(auth="Bearer right")
    async with served(kubo.app()) as url:
        backend = KuboBackend(url, "Bearer wrong", timeout=10)
        try:
            snap, _clock, metrics, log, _ = make(
                db, tmp_path, at(D0 + timedelta(days=1), 1), backend=backend
            )
            result = await snap.snapshot_day(D0)
        finally:
            await backend.aclose()
    assert not result.ok and kubo.blocks == {}
    assert counter(metrics, "zmartd_snapshot_failures_total", reason="backend") == 2
    assert "HTTP 401" in log.at_level("error")[0][1]["error"]


async def test_pinning_service_pins_by_cid_and_unpins(db: Database, tmp_path: Path) -> None:
    await _two_markets(db)
    kubo = FakeKubo()
    psa = FakePinningService(provider=kubo)
    async with served(kubo.app()) as kubo_url, served(psa.app()) as psa_url:
        cfg = make_config(
            snapshotter={
                "backend": "pinning-service",
                "kubo_url": kubo_url,
                "pinning_url": psa_url,
                "pinning_token": "psa-token",
            }
        )
        backend = make_backend(cfg.snapshotter, tmp_path)
        assert isinstance(backend, PinningServiceBackend)
        backend.poll_initial = 0.01
        try:
            snap, clock, _metrics, _log, _ = make(
                db, tmp_path, at(D0 + timedelta(days=1), 1), backend=backend
            )
            result = await snap.snapshot_day(D0)
            assert result.ok and result.root is not None
            pinned = {p["cid"] for p in psa.pins.values()}
            assert pinned == {a.cid for a in (*result.made, result.root)}
            assert all(psa.polls[r] >= 2 for r in psa.pins)  # waited for "pinned"
            assert kubo.pins == set()  # provided by kubo, pinned by the service
            assert all(a.backend == "pinning-service" for a in await anchors.list_anchors(db))
            clock.now = at(D0 + timedelta(days=92))
            assert await snap.prune(90) == 3 and psa.pins == {}
        finally:
            await backend.aclose()


async def test_pinning_service_reporting_another_cid_anchors_nothing(
    db: Database, tmp_path: Path
) -> None:
    await _two_markets(db)
    kubo = FakeKubo()
    psa = FakePinningService(provider=kubo, lie=cid_of(b"elsewhere"))
    async with served(kubo.app()) as kubo_url, served(psa.app()) as psa_url:
        backend = PinningServiceBackend(
            psa_url,
            "psa-token",
            KuboBackend(kubo_url, None, timeout=10, pin=False),
            timeout=10,
            pin_timeout=10,
            poll_initial=0.01,
        )
        try:
            snap, _clock, metrics, log, _ = make(
                db, tmp_path, at(D0 + timedelta(days=1), 1), backend=backend
            )
            result = await snap.snapshot_day(D0)
        finally:
            await backend.aclose()
    assert not result.ok and await anchors.list_anchors(db) == ()
    assert counter(metrics, "zmartd_snapshot_failures_total", reason="cid_mismatch") == 2
    assert psa.pins == {}  # the mismatched pins were removed again
    assert len(log.at_level("error")) == 2


async def test_pruning_leaves_what_another_backend_stored(db: Database, tmp_path: Path) -> None:
    await _two_markets(db)
    local, _c, _m, _log, store = make(db, tmp_path, at(D0 + timedelta(days=1), 1))
    assert (await local.snapshot_day(D0)).ok
    kubo = FakeKubo()
    async with served(kubo.app()) as url:
        backend = KuboBackend(url, None, timeout=10)
        try:
            switched, _c, _m, log, _ = make(
                db, tmp_path, at(D0 + timedelta(days=92)), backend=backend
            )
            assert await switched.prune(90) == 0
        finally:
            await backend.aclose()
    [(event, fields)] = log.at_level("warning")
    assert "another backend" in event and fields["count"] == 3
    made = await anchors.list_anchors(db)
    assert all(a.pruned_at is None and store.has(a.cid) for a in made)
