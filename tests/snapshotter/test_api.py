"""``GET /v1/markets/{id}/snapshots`` (cursor-paginated) and ``GET /v1/snapshots/{cid}``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.api.conftest import live_api, make_config
from tests.snapshotter.conftest import add_post, reset
from tests.snapshotter.test_core import D0, at, make
from tests.storage.factories import address, market_id
from zmartd.snapshotter.cid import cid_of
from zmartd.storage.database import Database


async def test_snapshot_list_and_detail(db: Database, tmp_path: Path) -> None:
    await reset(db, 1, 2)
    for d in range(5):
        await add_post(db, 1, at(D0 + timedelta(days=d), 9), f"day {d}")
    snap, clock, _m, _log, _store = make(db, tmp_path, at(D0 + timedelta(days=5), 1))
    for d in range(5):
        await snap.snapshot_day(D0 + timedelta(days=d))
    clock.now = at(D0 + timedelta(days=5), 12)  # today, in progress: a partial snapshot
    await add_post(db, 1, at(D0 + timedelta(days=5), 11), "today")
    await snap.snapshot_day(D0 + timedelta(days=5))

    cfg = make_config(daemon={"data_dir": str(tmp_path)})
    async with live_api(cfg, db) as api:
        seen: list[dict[str, object]] = []
        cursor = None
        while True:
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            page = await api.client.get(f"/v1/markets/{market_id(1)}/snapshots", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            seen += body["items"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert [s["day"] for s in seen] == [
            (D0 + timedelta(days=d)).isoformat() for d in range(5, -1, -1)
        ]
        assert [s["complete"] for s in seen] == [False] + [True] * 5
        assert [s["post_count"] for s in seen] == [6, 5, 4, 3, 2, 1]
        newest_complete = seen[1]
        assert newest_complete["state"] == "pinned" and newest_complete["backend"] == "local"
        links = newest_complete["links"]
        assert links["content"] == f"/ipfs/{newest_complete['cid']}"  # type: ignore[index]

        detail = await api.client.get(f"/v1/snapshots/{newest_complete['cid']}")
        assert detail.status_code == 200
        doc = detail.json()
        assert doc["kind"] == "discussions" and doc["links"]["root"] is not None
        root = await api.client.get(doc["links"]["root"])
        assert root.status_code == 200 and root.json()["kind"] == "discussions_root"
        content = await api.client.get(doc["links"]["content"])
        assert cid_of(content.content) == doc["cid"]

        # by address too; unknown market, unknown/malformed CID, bad cursor
        by_address = await api.client.get(f"/v1/markets/{address(1)}/snapshots")
        assert by_address.status_code == 200 and len(by_address.json()["items"]) == 6
        assert (await api.client.get(f"/v1/markets/{market_id(9)}/snapshots")).status_code == 404
        assert (await api.client.get(f"/v1/snapshots/{cid_of(b'x')}")).status_code == 404
        assert (await api.client.get("/v1/snapshots/not-a-cid")).status_code in (400, 422)
        bad = await api.client.get(
            f"/v1/markets/{market_id(1)}/snapshots", params={"cursor": "AAAA"}
        )
        assert bad.status_code == 400
        empty = await api.client.get(f"/v1/markets/{market_id(2)}/snapshots")
        assert empty.json() == {"items": [], "next_cursor": None}
