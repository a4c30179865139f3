"""/v1/users over HTTP: profiles with stats and the P&L rule, positions, trades,
PATCH /v1/users/me."""

from __future__ import annotations

from tests.api import factories as fx
from tests.api.conftest import live_api
from tests.storage import factories as f
from zmartd.storage.database import Database

G = 10**9


async def test_profile_stats_and_pnl(db: Database) -> None:
    me = f.wallet(fx.fresh())
    a = await fx.seed_market(db, price_yes=700_000_000)
    b = await fx.seed_market(db, state=5, final_outcome=True)
    c_ = await fx.seed_market(db, state=5, final_outcome=True)
    await fx.seed_trades(
        db,
        a.market_id,
        me,
        [
            {"shares": 2 * G, "amount": 1_000_000_000},
            {"shares": 2 * G, "amount": 1_400_000_000},
            {"side": "sell", "shares": G, "amount": 700_000_000},
        ],
    )
    await fx.seed_trades(
        db, b.market_id, me, [{"outcome": "NO", "shares": G, "amount": 500_000_000}]
    )
    await fx.seed_trades(db, c_.market_id, me, [{"shares": G, "amount": 400_000_000}])
    await fx.seed_position(db, a.market_id, me, yes=3 * G, invested=2_400_000_000)
    await fx.seed_position(db, b.market_id, me, no=G, invested=500_000_000)
    await fx.seed_position(db, c_.market_id, me, yes=G, invested=400_000_000, claimed=1_050_000_000)
    async with live_api(fx.config(), db) as api:
        c = api.client
        r = await c.get(f"/v1/users/{me}")
        assert r.status_code == 200, r.text
        profile = r.json()
        assert profile["registered"] is False and profile["display_name"] is None
        s = profile["stats"]
        # realized: A sold 1 share at 0.7 SOL that cost 0.6 on average (+0.1), B lost 0.5,
        # C claimed 1.05 for 0.4 (+0.65); unrealized: A's 3 shares at 0.7 cost 1.8 (+0.3)
        assert s["realized_pnl"] == "250000000" and s["unrealized_pnl"] == "300000000"
        assert (s["trades"], s["bought"], s["sold"], s["volume"]) == (
            5,
            "3300000000",
            "700000000",
            "4000000000",
        )
        assert (s["winning_positions"], s["losing_positions"], s["win_rate_bps"]) == (1, 1, 5000)
        assert s["claimed"] == "1050000000" and s["markets_created"] == 0
        positions = (await c.get(f"/v1/users/{me}/positions")).json()["items"]
        by_market = {p["market_id"]: p for p in positions}
        pa = by_market[a.market_id]
        assert pa["current_value"] == "2100000000" and pa["unrealized_pnl"] == "-300000000"
        assert pa["market_status"] == "ACTIVE" and pa["market_price_yes"] == 700_000_000
        assert by_market[b.market_id]["current_value"] == "0"
        assert by_market[c_.market_id]["unrealized_pnl"] == "650000000"
        open_only = (await c.get(f"/v1/users/{me}/positions", params={"open": "true"})).json()
        assert len(open_only["items"]) == 3  # all still hold shares
        trades = (await c.get(f"/v1/users/{me}/trades", params={"limit": "2"})).json()
        assert len(trades["items"]) == 2 and trades["next_cursor"] is not None
        assert (await c.get("/v1/users/not-a-wallet")).status_code == 404  # no such route
        assert (await c.get("/v1/users/" + "1" * 43)).status_code == 400  # base58, not a key
        assert (
            await c.get(f"/v1/users/{me}/positions", params={"open": "maybe"})
        ).status_code == 422
        fresh = (await c.get(f"/v1/users/{f.wallet(fx.fresh())}")).json()
        assert fresh["stats"]["realized_pnl"] == "0" and fresh["stats"]["win_rate_bps"] is None


async def test_patch_me(db: Database) -> None:
    me, other = f.wallet(fx.fresh()), f.wallet(fx.fresh())
    name = f"name{fx.fresh()}"
    async with live_api(fx.config(), db) as api:
        c = api.client
        h, ho = fx.headers(await fx.session(db, me)), fx.headers(await fx.session(db, other))
        body = {"display_name": name, "twitter": "zmart_io", "website_url": "https://z.io"}
        assert (await c.patch("/v1/users/me", json=body)).status_code == 401
        r = await c.patch("/v1/users/me", json=body, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["registered"] is True and r.json()["twitter"] == "zmart_io"
        cleared = await c.patch("/v1/users/me", json={"twitter": None}, headers=h)
        assert cleared.json()["twitter"] is None and cleared.json()["display_name"] == name
        taken = await c.patch("/v1/users/me", json={"display_name": name.upper()}, headers=ho)
        assert taken.status_code == 409
        # look-alikes are the same name (regression: Cyrillic letters and zero-width
        # characters passed the uniqueness check)
        for twin in [
            name.replace("a", "\u0430"),
            name[:2] + "\u200b" + name[2:],
            name.replace("e", "\uff45"),
            " ".join(name.split()),
        ]:
            r = await c.patch("/v1/users/me", json={"display_name": twin}, headers=ho)
            assert r.status_code == 409, (twin, r.text)
        invisible = await c.patch(
            "/v1/users/me", json={"display_name": "\u200b\u2060 \u200d"}, headers=ho
        )
        assert invisible.status_code == 400 and "visible" in invisible.text
        wide = await c.patch(
            "/v1/users/me", json={"display_name": f"\uff4e{fx.fresh()}"}, headers=ho
        )
        assert wide.status_code == 200 and wide.json()["display_name"].startswith("n")  # NFKC
        for bad in [
            {"twitter": "@nope"},
            {"display_name": ""},
            {"bio": "x" * 501},
            {"avatar_url": "javascript:alert(1)"},
            {"wallet": me},
        ]:
            assert (await c.patch("/v1/users/me", json=bad, headers=h)).status_code == 422, bad
        profile = (await c.get(f"/v1/users/{me}")).json()
        assert profile["display_name"] == name and profile["stats"]["trades"] == 0
