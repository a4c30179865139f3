"""The legacy /api surface, called exactly as the original frontend calls it (R1-R10,
D1-D10 of docs/legacy-api.md), with a check of every field and type it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from solders.keypair import Keypair

from tests.api import factories as fx
from tests.api.conftest import live_api
from tests.api.legacy_client import (
    axios_headers,
    check_market,
    fetch_headers,
    is_u64_text,
)
from tests.storage import factories as f
from zmartd.storage import markets as market_store
from zmartd.storage import prices
from zmartd.storage.database import Database
from zmartd.storage.markets import MarketMetadataInput

G = 10**9


async def _metadata(
    db: Database, market_id: str, creator: str, title: str, category: str | None
) -> None:
    await market_store.import_metadata(
        db,
        [
            (
                market_id,
                creator,
                MarketMetadataInput(title=title, description=f"about {title}", category=category),
            )
        ],
    )


async def test_market_list_detail_and_not_found(db: Database) -> None:
    category = f"c{fx.fresh()}"
    made = []
    for state in (2, 2, 1):
        m = await fx.seed_market(db, state=state, volume=3 * G)
        await _metadata(db, m.market_id, m.creator, f"Question {m.market_id[:6]}?", category)
        made.append(m)
    bare = await fx.seed_market(db)  # no metadata registered
    async with live_api(fx.config(http={"cors_origins": ["http://localhost:3000"]}), db) as api:
        c = api.client
        # R2 (QuickStats): no query; R1: ?state=<int>, both axios
        r = await c.get("/api/markets", headers=axios_headers())
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
        body = r.json()
        assert set(body) == {"markets", "count", "offset", "limit"}
        assert (body["offset"], body["limit"]) == (0, 20) and body["count"] >= 4
        for m in body["markets"]:
            check_market(m)
        times = [m["created_at"] for m in body["markets"]]
        assert times == sorted(times, reverse=True)
        r = await c.get("/api/markets", params={"state": "2"}, headers=axios_headers(Keypair()))
        assert r.status_code == 200 and all(m["state"] == 2 for m in r.json()["markets"])
        # category filter (Postman) and names for state; count is the filter's total
        r = await c.get(
            "/api/markets",
            params={"category": category, "state": "ACTIVE", "limit": "1", "offset": "1"},
        )
        page = r.json()
        assert page["count"] == 2 and len(page["markets"]) == 1
        assert page["markets"][0]["id"] == made[0].market_id  # older of the two ACTIVE
        assert page["markets"][0]["category"] == category
        assert page["markets"][0]["total_volume"] == str(3 * G)
        # R3: by hex id and by address; the same body
        r = await c.get(f"/api/markets/{made[1].market_id}", headers=axios_headers())
        assert r.status_code == 200
        detail = r.json()
        check_market(detail)
        assert detail["question"] == f"Question {made[1].market_id[:6]}?"
        assert detail["description"] == f"about {detail['question']}"
        assert (await c.get(f"/api/markets/{made[1].address}")).json()["id"] == detail["id"]
        # a market without metadata still has a question and a description string
        r = await c.get(f"/api/markets/{bare.market_id}")
        assert r.json()["question"] == f"Market {bare.market_id[:8]}"
        assert r.json()["description"] == ""
        # unknown -> 404 with the legacy message member
        for ref in (f.market_id(fx.fresh()), f.address(fx.fresh()), "market-1762466408246-4"):
            r = await c.get(f"/api/markets/{ref}", headers=axios_headers())
            assert r.status_code == 404, ref
            assert r.json()["message"] and r.json()["status"] == 404
        # no redirects: a trailing slash is served as without (as Express did), a doubled
        # slash inside is a 404
        r = await c.get("/api/markets/", follow_redirects=False)
        assert r.status_code == 200 and "markets" in r.json()
        r = await c.get(f"/api/markets/{made[1].market_id}/", follow_redirects=False)
        assert r.status_code == 200 and r.json()["id"] == made[1].market_id
        r = await c.get("/api//markets", follow_redirects=False)
        assert r.status_code == 404
        # parameters the original did not know are ignored, as Express did
        r = await c.get("/api/markets", params={"foo": "1", "state": "1"})
        assert r.status_code == 200 and all(m["state"] == 1 for m in r.json()["markets"])
        r = await c.get("/api/markets?limit=0")
        assert r.status_code == 422 and "limit" in r.json()["message"]


async def test_trades_and_price_history(db: Database) -> None:
    m = await fx.seed_market(db)
    trader = f.wallet(fx.fresh())
    await prices.add_price_point(
        db, m.market_id, at=f.T0, price_yes=500_000_000, slot=1, source="create"
    )
    await fx.seed_trades(
        db,
        m.market_id,
        trader,
        [
            {
                "shares": 2 * G,
                "amount": 1_100_000_000,
                "price": 600_000_000,
                "at": f.T0 + timedelta(minutes=1),
            },
            {
                "side": "sell",
                "outcome": "NO",
                "shares": G,
                "amount": 300_000_000,
                "price": 650_000_000,
                "at": f.T0 + timedelta(minutes=2),
            },
        ],
    )
    async with live_api(fx.config(), db) as api:
        c = api.client
        # R4 (OrderBook, raw fetch, no query)
        r = await c.get(f"/api/markets/{m.market_id}/trades", headers=fetch_headers())
        assert r.status_code == 200
        body = r.json()
        assert body["market_id"] == m.market_id and body["count"] == 2
        newest, oldest = body["trades"]
        assert (newest["trade_type"], newest["outcome"], newest["shares"], newest["cost"]) == (
            "sell",
            "NO",
            str(G),
            "300000000",
        )
        assert (oldest["trade_type"], oldest["outcome"]) == ("buy", "YES")
        assert oldest["user_wallet"] == trader and is_u64_text(oldest["shares"])
        # D2: same path with limit=50 (and Postman's offset)
        r = await c.get(f"/api/markets/{m.market_id}/trades", params={"limit": "50", "offset": "1"})
        assert [t["id"] for t in r.json()["trades"]] == [oldest["id"]]
        # R5 (PriceChart): ?limit=50; percent 0..100, oldest first, from creation
        r = await c.get(
            f"/api/markets/{m.market_id}/price-history",
            params={"limit": "50"},
            headers=fetch_headers(),
        )
        assert r.status_code == 200
        history = r.json()
        assert history["market_id"] == m.market_id and history["count"] == 3
        assert [(p["yes"], p["no"]) for p in history["price_history"]] == [
            (50.0, 50.0),
            (60.0, 40.0),
            (65.0, 35.0),
        ]
        assert all(p["timestamp"].endswith("Z") for p in history["price_history"])
        unknown = f.market_id(fx.fresh())
        assert (await c.get(f"/api/markets/{unknown}/price-history")).status_code == 404
        assert (await c.get(f"/api/markets/{unknown}/trades")).status_code == 404


async def test_sidebars(db: Database) -> None:
    now = datetime.now(UTC)
    category = f"k{fx.fresh()}"
    hot = await fx.seed_market(db, price_yes=600_000_000, created=now - timedelta(days=2))
    await _metadata(db, hot.market_id, hot.creator, "Hot question?", category)
    sibling = await fx.seed_market(db)
    await _metadata(db, sibling.market_id, sibling.creator, "Sibling?", category)
    await prices.add_price_point(
        db,
        hot.market_id,
        at=now - timedelta(days=2),
        price_yes=500_000_000,
        slot=1,
        source="create",
    )
    traders = [f.wallet(fx.fresh()) for _ in range(2)]
    # the second trade is dated after anything other tests seed (their markets are created
    # up to ~3 years after T0), so that it is the newest item of the activity feed
    times = (now - timedelta(minutes=5), datetime(2040, 1, 1, tzinfo=UTC))
    for n, (who, at) in enumerate(zip(traders, times, strict=True)):
        spec = {"shares": 3 * G, "amount": 10**15 + n, "price": 600_000_000, "at": at}
        await fx.seed_trades(db, hot.market_id, who, [spec])
    async with live_api(fx.config(), db) as api:
        c = api.client
        # R7 TrendingMarkets: ?limit=3
        r = await c.get("/api/markets/trending", params={"limit": "3"}, headers=fetch_headers())
        assert r.status_code == 200
        body = r.json()
        assert body["count"] == len(body["trending"]) <= 3
        top = body["trending"][0]
        assert top["id"] == hot.market_id and top["question"] == "Hot question?"
        assert top["yesPrice"] == 0.6 and top["change24h"] == 10.0
        assert top["volume24h"] == round((2 * 10**15 + 1) / G, 4)
        assert top["uniqueTraders"] == 2
        for t in body["trending"]:
            assert 0 <= t["yesPrice"] <= 1 and isinstance(t["change24h"], (int, float))
        # R8 RecentActivity: ?limit=20
        r = await c.get("/api/markets/activity", params={"limit": "20"}, headers=fetch_headers())
        assert r.status_code == 200
        acts = r.json()
        assert acts["count"] == len(acts["activities"]) <= 20
        first = acts["activities"][0]
        assert first["type"] == "trade" and first["marketId"] == hot.market_id
        assert first["user"] == f"{traders[1][:6]}...{traders[1][-4:]}"
        assert first["action"] == "bought 3.00 YES shares"
        assert first["amount"] == f"{(10**15 + 1) / G:.2f} SOL"
        assert first["market"] == "Hot question?"
        ids = [a["id"] for a in acts["activities"]]
        assert len(set(ids)) == len(ids)
        for a in acts["activities"]:
            assert a["type"] in ("trade", "resolution", "creation")
            assert isinstance(a["time"], str) and isinstance(a["action"], str)
        # R9 RelatedMarkets: ?limit=3, same category first; unknown id -> []
        r = await c.get(f"/api/markets/{hot.market_id}/related", params={"limit": "3"})
        rel = r.json()
        assert rel["related"][0]["id"] == sibling.market_id
        assert rel["related"][0]["category"] == category.capitalize()
        assert all(x["id"] != hot.market_id and 0 <= x["yesPrice"] <= 1 for x in rel["related"])
        r = await c.get(f"/api/markets/{f.market_id(fx.fresh())}/related", params={"limit": "3"})
        assert r.status_code == 200 and r.json() == {"related": [], "count": 0}
        # R6 HotTopics
        r = await c.get("/api/markets/categories", headers=fetch_headers())
        assert r.status_code == 200
        cats = r.json()
        assert cats["count"] == len(cats["categories"]) <= 5
        for cat in cats["categories"]:
            assert isinstance(cat["id"], str) and isinstance(cat["name"], str)
            assert isinstance(cat["count"], int) and isinstance(cat["emoji"], str)
            assert isinstance(cat["trend"], str)


async def test_portfolio_and_user_calls(db: Database) -> None:
    me = Keypair()
    wallet = str(me.pubkey())
    a = await fx.seed_market(db, price_yes=700_000_000)
    await _metadata(db, a.market_id, a.creator, "Portfolio question?", None)
    await fx.seed_position(db, a.market_id, wallet, yes=3 * G, invested=2_400_000_000)
    await fx.seed_trades(db, a.market_id, wallet, [{"shares": 3 * G, "amount": 2_400_000_000}])
    async with live_api(fx.config(), db) as api:
        c = api.client
        # R10 PortfolioSummary: axios with the wallet's signature header -> a bare array
        r = await c.get(f"/api/users/{wallet}/positions", headers=axios_headers(me))
        assert r.status_code == 200, r.text
        rows = r.json()
        assert isinstance(rows, list) and len(rows) == 1
        p = rows[0]
        assert p["market_id"] == a.market_id and p["question"] == "Portfolio question?"
        assert (p["shares_yes"], p["shares_no"]) == (str(3 * G), "0")
        assert (p["total_invested"], p["current_value"]) == ("2400000000", "2100000000")
        assert p["state"] == 2 and p["roi"] == -12.5 and p["unrealized_pnl"] == "-300000000"
        empty = await c.get(f"/api/users/{f.wallet(fx.fresh())}/positions", headers=axios_headers())
        assert empty.status_code == 200 and empty.json() == []
        # D1
        r = await c.get(f"/api/users/{wallet}/positions/{a.market_id}")
        assert r.status_code == 200 and r.json()["market_id"] == a.market_id
        other = await fx.seed_market(db)
        assert (await c.get(f"/api/users/{wallet}/positions/{other.market_id}")).status_code == 404
        # D3: ?limit=50
        r = await c.get(f"/api/users/{wallet}/trades", params={"limit": "50"})
        assert r.json()["wallet"] == wallet and r.json()["count"] == 1
        assert r.json()["trades"][0]["outcome"] == "YES"
        # D8
        r = await c.get(f"/api/users/{wallet}/stats")
        stats = r.json()
        assert stats["totalTrades"] == 1 and stats["totalVolume"] == "2400000000"
        assert stats["activePositions"] == 1 and stats["winRate"] is None
        assert stats["totalPnL"] == "-300000000"


async def test_openapi_documents_legacy_routes_as_deprecated(db: Database) -> None:
    async with live_api(fx.config(), db) as api:
        doc = (await api.client.get("/openapi.json")).json()
    legacy = {
        (m, p): op
        for p, ops in doc["paths"].items()
        for m, op in ops.items()
        if p.startswith("/api/")
    }
    assert ("get", "/api/markets") in legacy and ("get", "/api/users/{wallet}/positions") in legacy
    assert len(legacy) == 16
    for (_method, path), op in legacy.items():
        assert op["tags"] == ["legacy"] and op["deprecated"] is True, path
        assert "/v1" in op["description"], path
    for path, ops in doc["paths"].items():
        if path.startswith("/v1/"):
            assert all(not op.get("deprecated") for op in ops.values()), path
