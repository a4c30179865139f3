"""``GET /v1/admin/alerts``: admin sessions only, state/severity filters, cursor pages."""

from __future__ import annotations

from typing import Literal

from tests.api import factories as fx
from tests.api.conftest import live_api
from tests.storage import factories as f
from zmartd.storage import alerts
from zmartd.storage.alerts import Observation
from zmartd.storage.database import Database


async def test_admin_lists_alerts_with_filters_and_pages(db: Database) -> None:
    admin, user = (f.wallet(fx.fresh()) for _ in range(2))
    tag = f"api-test-{fx.fresh()}"
    ids = {}
    cases: tuple[tuple[str, Literal["warning", "critical"]], ...] = (
        ("a", "warning"),
        ("b", "critical"),
        ("c", "warning"),
    )
    for name, severity in cases:
        alert, _ = await alerts.observe(
            db,
            Observation(
                key=f"{tag}:{name}",
                severity=severity,
                title=f"alert {name}",
                details={"market_id": "ab" * 32},
            ),
            repeat_after=3600,
        )
        ids[name] = alert.id
    # "a" clears
    await alerts.resolve_absent(
        db,
        [f"{tag}:b", f"{tag}:c"]
        + [
            a.dedup_key
            for a in (await alerts.list_alerts(db, state="firing", limit=500)).items
            if not a.dedup_key.startswith(tag)
        ],
    )
    async with live_api(fx.config(admin={"wallets": [admin]}), db) as api:
        c = api.client
        assert (await c.get("/v1/admin/alerts")).status_code == 401
        as_user = fx.headers(await fx.session(db, user))
        assert (await c.get("/v1/admin/alerts", headers=as_user)).status_code == 403
        h = fx.headers(await fx.session(db, admin))

        def mine(doc: dict[str, object]) -> list[str]:
            items = doc["items"]
            assert isinstance(items, list)
            return [i["dedup_key"] for i in items if i["dedup_key"].startswith(tag)]

        r = await c.get("/v1/admin/alerts", headers=h)
        assert r.status_code == 200, r.text
        assert mine(r.json()) == [f"{tag}:c", f"{tag}:b", f"{tag}:a"]  # newest first
        item = r.json()["items"][0]
        assert item["severity"] == "warning" and item["state"] == "firing"
        assert item["count"] == 1 and item["notified"] == [] and item["details"]["market_id"]
        firing = (await c.get("/v1/admin/alerts?state=firing", headers=h)).json()
        assert mine(firing) == [f"{tag}:c", f"{tag}:b"]
        critical = (
            await c.get("/v1/admin/alerts?severity=critical&state=firing", headers=h)
        ).json()
        assert mine(critical) == [f"{tag}:b"]
        resolved = (await c.get("/v1/admin/alerts?state=resolved", headers=h)).json()
        assert f"{tag}:a" in mine(resolved) and resolved["items"][0]["resolved_at"]
        # one per page, following next_cursor
        seen: list[str] = []
        url = "/v1/admin/alerts?limit=1"
        while True:
            page = (await c.get(url, headers=h)).json()
            seen += mine(page)
            if page["next_cursor"] is None:
                break
            url = f"/v1/admin/alerts?limit=1&cursor={page['next_cursor']}"
        assert seen == [f"{tag}:c", f"{tag}:b", f"{tag}:a"]
        bad = await c.get("/v1/admin/alerts?severity=fatal", headers=h)
        assert bad.status_code == 422
        forged = await c.get("/v1/admin/alerts?cursor=AAAA", headers=h)
        assert forged.status_code == 400  # schema-valid but not ours: malformed, not 422
