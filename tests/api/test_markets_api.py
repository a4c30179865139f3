"""/v1/markets on a live server and the real PostgreSQL: list, detail, trades,
candles, holders, quotes (checked against the chain quoter), creator metadata,
hot-read caching and pagination while rows are inserted."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from tests.api import factories as fx
from tests.api.conftest import live_api
from tests.storage import factories as f
from zmartd.api.cache import tags_for_event
from zmartd.bus import MarketStateChanged
from zmartd.chain.quoter import DEFAULT_FEES, FeeConfig, MarketMath, quote_buy, quote_sell
from zmartd.model.views import market_view
from zmartd.storage import indexer as indexer_store
from zmartd.storage import markets as market_store
from zmartd.storage.database import Database
from zmartd.storage.indexer import GlobalConfigState


async def test_list_detail_filters_and_errors(db: Database) -> None:
    creator = fx.fresh()
    seeded = [
        await fx.seed_market(
            db,
            creator=creator,
            state=s,
            volume=v,
            liquidity=f.B + v,
            created=fx.T0 + timedelta(minutes=i),
        )
        for i, (s, v) in enumerate([(2, 5), (0, 9), (2, 7), (5, 1)])
    ]
    ids = [m.market_id for m in seeded]
    wallet = f.wallet(creator)
    async with live_api(fx.config(), db) as api:
        c = api.client
        r = await c.get("/v1/markets", params={"creator": wallet})
        assert r.status_code == 200
        body = r.json()
        assert [m["market_id"] for m in body["items"]] == ids[::-1]  # newest first
        assert body["next_cursor"] is None
        first = body["items"][-1]
        assert first["status"] == "ACTIVE" and first["state"] == 2
        assert first["b_parameter"] == str(f.B) and first["price_yes"] == 500_000_000
        assert first["price_no"] == 500_000_000 and first["tags"] == []
        by_volume = await c.get("/v1/markets", params={"creator": wallet, "sort": "volume"})
        assert [m["total_volume"] for m in by_volume.json()["items"]] == ["9", "7", "5", "1"]
        for state in ("2", "ACTIVE"):
            r = await c.get("/v1/markets", params={"creator": wallet, "state": state})
            assert {m["market_id"] for m in r.json()["items"]} == {ids[0], ids[2]}
        # detail by hex id and by account address give the same market
        hexed = await c.get(f"/v1/markets/{ids[3]}")
        assert hexed.status_code == 200 and hexed.json()["status"] == "FINALIZED"
        by_address = await c.get(f"/v1/markets/{seeded[3].address}")
        assert by_address.json() == hexed.json()
        # errors: unknown market, malformed id, bad filters, bad cursor, unknown parameter
        missing = await c.get(f"/v1/markets/{'ab' * 32}")
        assert missing.status_code == 404
        assert missing.json()["type"] == "urn:zmart:problem:not-found"
        for path, params in [
            ("/v1/markets/xyz", {}),
            ("/v1/markets", {"state": "7"}),
            ("/v1/markets", {"sort": "random"}),
            ("/v1/markets", {"limit": "0"}),
            ("/v1/markets", {"nope": "1"}),
            ("/v1/markets", {"creator": "not-a-key"}),
        ]:
            r = await c.get(path, params=params)
            assert r.status_code == 422, (path, params, r.text)
            assert r.headers["content-type"] == "application/problem+json"
        # well-formed by the schema, but not issued here / not a key: 400
        for params in [{"cursor": "bm90LWEtY3Vyc29y"}, {"creator": "1" * 43}]:
            r = await c.get("/v1/markets", params=params)
            assert r.status_code == 400, (params, r.text)
            assert r.json()["type"] == "urn:zmart:problem:malformed"
            assert "cursor" in r.json()["detail"] or "32 bytes" in r.json()["detail"]


async def test_pagination_is_stable_while_markets_and_trades_are_inserted(db: Database) -> None:
    creator = fx.fresh()
    wallet = f.wallet(creator)
    original = [
        await fx.seed_market(db, creator=creator, created=fx.T0 + timedelta(hours=i))
        for i in range(7)
    ]
    market = original[0].market_id
    trader = f.wallet(fx.fresh())
    await fx.seed_trades(
        db, market, trader, [{"at": fx.T0 + timedelta(seconds=i)} for i in range(9)]
    )
    async with live_api(fx.config(), db) as api:
        c = api.client
        seen: list[str] = []
        cursor = None
        for page_no in range(10):
            params = {"creator": wallet, "limit": "3", **({"cursor": cursor} if cursor else {})}
            body = (await c.get("/v1/markets", params=params)).json()
            seen += [m["market_id"] for m in body["items"]]
            # newer and older markets appear between pages: neither repeats nor skips
            await fx.seed_market(
                db, creator=creator, created=fx.T0 + timedelta(days=1, hours=page_no)
            )
            cursor = body["next_cursor"]
            if cursor is None:
                break
        expected = [m.market_id for m in original][::-1]
        assert seen[:7] == expected and len(set(seen)) == len(seen)

        trade_ids: list[int] = []
        cursor = None
        while True:
            params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
            body = (await c.get(f"/v1/markets/{market}/trades", params=params)).json()
            trade_ids += [t["id"] for t in body["items"]]
            await fx.seed_trades(db, market, trader, [{"at": fx.T0 + timedelta(days=2)}])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert len(trade_ids) == 9 == len(set(trade_ids))
        # a cursor from another list is refused
        r = await c.get("/v1/markets", params={"cursor": cursor or _trades_cursor(body)})
        assert r.status_code == 400


def _trades_cursor(body: dict[str, object]) -> str:
    return "AQ"  # too short to carry a checksum: invalid for every list


async def test_trades_holders_and_candles(db: Database) -> None:
    m = await fx.seed_market(db)
    a, b = f.wallet(fx.fresh()), f.wallet(fx.fresh())
    await fx.seed_trades(
        db,
        m.market_id,
        a,
        [
            {"price": 510_000_000, "amount": 100, "at": fx.T0 + timedelta(minutes=0, seconds=10)},
            {"price": 530_000_000, "amount": 200, "at": fx.T0 + timedelta(minutes=0, seconds=40)},
            {
                "price": 490_000_000,
                "amount": 300,
                "side": "sell",
                "at": fx.T0 + timedelta(minutes=1, seconds=5),
            },
        ],
    )
    await fx.seed_position(db, m.market_id, a, yes=3 * 10**9, invested=600)
    await fx.seed_position(db, m.market_id, b, no=5 * 10**9, invested=900)
    async with live_api(fx.config(), db) as api:
        c = api.client
        trades = (await c.get(f"/v1/markets/{m.market_id}/trades")).json()["items"]
        assert [t["price_yes"] for t in trades] == [490_000_000, 530_000_000, 510_000_000]
        assert trades[0]["side"] == "sell" and trades[0]["amount"] == "300"
        assert trades[0]["price_no"] == 510_000_000 and trades[0]["wallet"] == a
        holders = (await c.get(f"/v1/markets/{m.market_id}/holders")).json()["items"]
        assert [(h["wallet"], h["shares_no"]) for h in holders] == [(b, str(5 * 10**9)), (a, "0")]
        params = {"interval": "1m", "from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:05:00Z"}
        candles = (await c.get(f"/v1/markets/{m.market_id}/prices", params=params)).json()
        assert candles["interval"] == "1m"
        assert [
            (k["open"], k["high"], k["low"], k["close"], k["volume"], k["points"])
            for k in candles["candles"]
        ] == [
            (510_000_000, 530_000_000, 510_000_000, 530_000_000, "300", 2),
            (490_000_000, 490_000_000, 490_000_000, 490_000_000, "300", 1),
        ]
        default = await c.get(f"/v1/markets/{m.market_id}/prices")
        assert default.status_code == 200 and default.json()["interval"] == "1h"
        for params in [
            {"from": "2026-01-01T00:00:00"},  # no zone
            {"to": "0.5"},  # a number is no RFC 3339 date-time
            {"interval": "2m"},
            {"to": "9999-12-31T23:59:59-14:00"},
        ]:
            r = await c.get(f"/v1/markets/{m.market_id}/prices", params=params)
            assert r.status_code == 422, (params, r.text)
        # each time valid, together beyond the schema: 400
        for params in [
            {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            {"to": "0001-01-01T00:00:00Z"},
        ]:
            r = await c.get(f"/v1/markets/{m.market_id}/prices", params=params)
            assert r.status_code == 400, (params, r.text)
        # too many candles: the latest 5,000 intervals
        wide = await c.get(
            f"/v1/markets/{m.market_id}/prices",
            params={"interval": "1m", "from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        )
        assert wide.status_code == 200, wide.text
        assert wide.json()["start"] == "2025-12-28T12:40:00Z"
        for sub in ("trades", "holders", "prices", "quote?side=buy&outcome=yes&amount=100000"):
            assert (await c.get(f"/v1/markets/{'cd' * 32}/{sub}")).status_code == 404, sub


async def test_quote_matches_the_chain_quoter_to_the_unit(db: Database) -> None:
    m = await fx.seed_market(db, shares_yes=f.B // 1000 + 7 * 10**9, current_liquidity=10**12)
    holder = f.wallet(fx.fresh())
    await fx.seed_position(db, m.market_id, holder, yes=2 * 10**9)
    math = MarketMath(
        b_parameter=m.b_parameter,
        shares_yes=m.shares_yes,
        shares_no=m.shares_no,
        current_liquidity=m.current_liquidity,
    )
    async with live_api(fx.config(), db) as api:
        c = api.client
        url = f"/v1/markets/{m.market_id}/quote"
        r = await c.get(url, params={"side": "buy", "outcome": "yes", "amount": "1000000000"})
        assert r.status_code == 200, r.text
        q = r.json()
        want = quote_buy(math, DEFAULT_FEES, True, 10**9)
        assert q["shares"] == str(want.shares) and q["lamports"] == str(want.total_cost)
        assert q["lamports_before_fees"] == str(want.cost_before_fees)
        assert q["fees"] == {
            "protocol": str(want.fees.protocol),
            "resolver": str(want.fees.resolver),
            "lp": str(want.fees.lp),
            "total": str(want.fees.total),
        }
        assert q["price_yes_after"] == want.new_price_yes
        assert q["fees_source"] == "program_defaults"
        assert q["fee_rates"] == {"protocol_bps": 300, "resolver_bps": 200, "lp_bps": 500}
        sell = await c.get(
            url, params={"side": "sell", "outcome": "yes", "amount": str(10**9), "wallet": holder}
        )
        assert sell.status_code == 200, sell.text
        want_sell = quote_sell(math, DEFAULT_FEES, True, 10**9, 2 * 10**9)
        assert sell.json()["lamports"] == str(want_sell.net_proceeds)
        assert any("4.7" in n for n in sell.json()["notes"])
        # chain rejections name the program error
        small = await c.get(url, params={"side": "buy", "outcome": "no", "amount": "5"})
        assert small.status_code == 409
        assert small.json()["errors"][0]["message"].startswith("TradeTooSmall")
        short = await c.get(
            url,
            params={"side": "sell", "outcome": "yes", "amount": str(3 * 10**9), "wallet": holder},
        )
        assert short.status_code == 409
        assert short.json()["errors"][0]["message"].startswith("InsufficientShares")
        for params in [
            {"side": "hold", "outcome": "yes", "amount": "1"},
            {"side": "buy", "outcome": "yes", "amount": "0"},
            {"side": "buy", "outcome": "yes", "amount": str(2**64)},
            {"side": "buy", "outcome": "yes"},
        ]:
            assert (await c.get(url, params=params)).status_code == 422, params
        proposed = await fx.seed_market(db, state=0)
        r = await c.get(
            f"/v1/markets/{proposed.market_id}/quote",
            params={"side": "buy", "outcome": "yes", "amount": "100000"},
        )
        assert r.status_code == 409 and "InvalidMarketState" in r.json()["detail"]


async def test_metadata_register_and_patch_rules(db: Database) -> None:
    creator = f.wallet(fx.fresh())
    other = f.wallet(fx.fresh())
    market_id = f.market_id(fx.fresh())
    body = {
        "market_id": market_id,
        "title": "Will it rain?",
        "category": "weather",
        "tags": ["rain"],
        "end_time": "2030-01-01T00:00:00+02:00",
    }
    async with live_api(fx.config(), db) as api:
        c = api.client
        mine = fx.headers(await fx.session(db, creator))
        theirs = fx.headers(await fx.session(db, other))
        assert (await c.post("/v1/markets", json=body)).status_code == 401
        r = await c.post("/v1/markets", json=body, headers=mine)
        assert r.status_code == 201, r.text
        assert r.json()["creator"] == creator and r.json()["end_time"] == "2029-12-31T22:00:00Z"
        assert (await c.post("/v1/markets", json=body, headers=mine)).status_code == 409
        # another wallet's registration for an id not indexed yet is only its own claim
        assert (await c.post("/v1/markets", json=body, headers=theirs)).status_code == 201
        for bad in [
            {**body, "title": ""},
            {**body, "category": "Not A Slug"},
            {**body, "tags": ["x"] * 11},
            {**body, "image_url": "ftp://x"},
            {**body, "title": "a\u0000b"},
            {**body, "end_time": "2030-01-01T00:00:00"},
            {**body, "extra": 1},
        ]:
            r = await c.post("/v1/markets", json=bad, headers=mine)
            assert r.status_code == 422, (bad, r.text)
        # the market appears on chain, created by `creator`, PROPOSED: PATCH works
        state = f.market(fx.fresh(), state=0)
        await market_store.upsert_markets(
            db,
            [
                type(state)(
                    **{
                        **{k: getattr(state, k) for k in state.__struct_fields__},
                        "market_id": market_id,
                        "creator": creator,
                    }
                )
            ],
        )
        events = api.ctx.bus.topic("events").subscribe("test")
        patch = await c.patch(
            f"/v1/markets/{market_id}",
            json={"title": "Rain in May?", "image_url": None},
            headers=mine,
        )
        assert patch.status_code == 200 and patch.json()["title"] == "Rain in May?"
        assert patch.json()["tags"] == ["rain"]  # untouched fields stay
        event = events.receive_nowait()
        assert isinstance(event, MarketStateChanged) and event.market_id == market_id
        assert event.data["title"] == "Rain in May?"
        detail = (await c.get(f"/v1/markets/{market_id}")).json()
        assert detail["title"] == "Rain in May?" and detail["category"] == "weather"
        assert (
            await c.patch(f"/v1/markets/{market_id}", json={"title": "x"}, headers=theirs)
        ).status_code == 403
        assert (
            await c.patch(
                f"/v1/markets/{f.market_id(fx.fresh())}", json={"title": "x"}, headers=mine
            )
        ).status_code == 404
        # once the market leaves PROPOSED, metadata is frozen
        active = type(state)(
            **{
                **{k: getattr(state, k) for k in state.__struct_fields__},
                "market_id": market_id,
                "creator": creator,
                "state": 2,
                "slot": 9,
            }
        )
        await market_store.upsert_markets(db, [active])
        r = await c.patch(f"/v1/markets/{market_id}", json={"title": "late"}, headers=mine)
        assert r.status_code == 409
        # the chain's creator is authoritative for a market nobody registered yet
        onchain = f.market_id(fx.fresh())
        fresh = f.market(fx.fresh(), state=0)
        await market_store.upsert_markets(
            db,
            [
                type(fresh)(
                    **{
                        **{k: getattr(fresh, k) for k in fresh.__struct_fields__},
                        "market_id": onchain,
                        "creator": creator,
                    }
                )
            ],
        )
        r = await c.post("/v1/markets", json={**body, "market_id": onchain}, headers=theirs)
        assert r.status_code == 403
        assert await market_store.get_metadata(db, onchain, other) is None


async def _index_market(db: Database, market_id: str, creator: str) -> None:
    state = f.market(fx.fresh(), state=0)
    await market_store.upsert_markets(
        db,
        [
            type(state)(
                **{
                    **{k: getattr(state, k) for k in state.__struct_fields__},
                    "market_id": market_id,
                    "creator": creator,
                }
            )
        ],
    )


async def test_metadata_squatting_before_indexing_is_dropped(db: Database) -> None:
    """An attacker registers metadata for a market id seen at `processed` before zmartd
    indexes it; the real creator registers too, before and after indexing. The market
    shows the creator's metadata, the creator can always edit it, and the squatter's claim
    is gone (it used to win, and lock the creator out with 403)."""
    creator, attacker = f.wallet(fx.fresh()), f.wallet(fx.fresh())
    early, late = f.market_id(fx.fresh()), f.market_id(fx.fresh())
    squat = {"title": "Squatted", "resolution_source": "https://evil.example"}
    real = {"title": "Will it rain?", "resolution_source": "https://weather.example"}
    async with live_api(fx.config(), db) as api:
        c = api.client
        mine = fx.headers(await fx.session(db, creator))
        theirs = fx.headers(await fx.session(db, attacker))
        # order 1: squatter first, creator second, then the market is indexed
        assert (
            await c.post("/v1/markets", json={"market_id": early, **squat}, headers=theirs)
        ).status_code == 201
        assert (
            await c.post("/v1/markets", json={"market_id": early, **real}, headers=mine)
        ).status_code == 201
        await _index_market(db, early, creator)
        shown = (await c.get(f"/v1/markets/{early}")).json()
        assert shown["title"] == "Will it rain?"
        assert shown["resolution_source"] == "https://weather.example"
        assert (
            await c.patch(f"/v1/markets/{early}", json={"title": "Rain?"}, headers=mine)
        ).status_code == 200
        assert (
            await c.patch(f"/v1/markets/{early}", json={"title": "x"}, headers=theirs)
        ).status_code == 403
        assert await market_store.get_metadata(db, early, attacker) is None
        # order 2: squatter first, market indexed, creator registers afterwards
        assert (
            await c.post("/v1/markets", json={"market_id": late, **squat}, headers=theirs)
        ).status_code == 201
        await _index_market(db, late, creator)
        indexed = await market_store.get_market(db, late)
        assert indexed is not None and indexed.title is None  # not the squatter's
        assert await market_store.get_metadata(db, late, attacker) is None
        r = await c.post("/v1/markets", json={"market_id": late, **real}, headers=mine)
        assert r.status_code == 201, r.text
        assert (await c.get(f"/v1/markets/{late}")).json()["title"] == "Will it rain?"
        # and the squatter cannot register once the market is indexed
        assert (
            await c.post("/v1/markets", json={"market_id": late, **squat}, headers=theirs)
        ).status_code == 403


async def test_a_metadata_edit_is_one_database_unit(db: Database) -> None:
    """A PATCH reads, checks, writes and reads back for publishing in one named unit
    (it used to be three transactions and one more read)."""
    creator = f.wallet(fx.fresh())
    market_id = f.market_id(fx.fresh())
    body = {"market_id": market_id, "title": "Will it snow?"}
    state = f.market(fx.fresh(), state=0)
    await market_store.upsert_markets(
        db,
        [
            type(state)(
                **{
                    **{k: getattr(state, k) for k in state.__struct_fields__},
                    "market_id": market_id,
                    "creator": creator,
                }
            )
        ],
    )
    async with live_api(fx.config(), db) as api:
        mine = fx.headers(await fx.session(db, creator))
        units: list[str] = []
        db.observe = lambda unit, seconds, error: units.append(unit)
        try:
            r = await api.client.post("/v1/markets", json=body, headers=mine)
            assert r.status_code == 201, r.text
            assert [u for u in units if u.startswith("markets.")] == ["markets.edit_metadata"]
            units.clear()
            r = await api.client.patch(
                f"/v1/markets/{market_id}", json={"title": "Snow?"}, headers=mine
            )
            assert r.status_code == 200, r.text
            assert [u for u in units if not u.startswith("auth.")] == ["markets.edit_metadata"]
        finally:
            db.observe = None


async def test_hot_reads_are_cached_with_etags_and_dropped_by_events(db: Database) -> None:
    m = await fx.seed_market(db)
    async with live_api(fx.config(), db) as api:
        c = api.client
        url = f"/v1/markets/{m.market_id}"
        first = await c.get(url)
        assert first.headers["X-Cache"] == "miss"
        second = await c.get(url)
        assert second.headers["X-Cache"] == "hit" and second.json() == first.json()
        etag = first.headers["ETag"]
        assert (await c.get(url, headers={"If-None-Match": etag})).status_code == 304
        quote = f"{url}/quote?side=buy&outcome=yes&amount=1000000000"
        await c.get(quote)
        assert (await c.get(quote)).headers["X-Cache"] == "hit"
        await c.get("/v1/markets")
        assert (await c.get("/v1/markets")).headers["X-Cache"] == "hit"
        # the indexer's event for this market drops exactly the answers about it
        record = await market_store.get_market(db, m.market_id)
        assert record is not None
        event = MarketStateChanged(
            market_id=m.market_id,
            at="2026-01-01T00:00:00Z",
            data={"market": market_view(record).market_id},
        )
        api.state.cache.invalidate(tags_for_event(event))
        assert (await c.get(url)).headers["X-Cache"] == "miss"
        assert (await c.get(quote)).headers["X-Cache"] == "miss"
        assert (await c.get("/v1/markets")).headers["X-Cache"] == "miss"
        stats = await c.get("/v1/stats")
        assert stats.status_code == 200
        body = stats.json()
        assert body["markets"] >= 1 and set(body["markets_by_status"]) == {
            "PROPOSED",
            "APPROVED",
            "ACTIVE",
            "RESOLVING",
            "DISPUTED",
            "FINALIZED",
            "CANCELLED",
        }


async def test_quotes_and_dispute_deadlines_follow_the_indexed_global_config(
    db: Database,
) -> None:
    """Once the indexer has stored the GlobalConfig account, quotes use its fee
    rates and vote summaries its dispute period (not the program defaults)."""
    proposed_at = fx.T0 + timedelta(days=3)
    active = await fx.seed_market(db, current_liquidity=10**12)
    disputed = await fx.seed_market(db, state=4, resolution_proposed_at=proposed_at)
    config = GlobalConfigState(
        address=f.address(fx.fresh()),
        admin=f.wallet(fx.fresh()),
        backend_authority=f.wallet(fx.fresh()),
        protocol_fee_wallet=f.wallet(fx.fresh()),
        protocol_fee_bps=100,
        resolver_reward_bps=50,
        liquidity_provider_fee_bps=250,
        proposal_approval_threshold=7000,
        dispute_success_threshold=6000,
        min_resolution_delay=86_400,
        dispute_period=3_600,
        is_paused=False,
        slot=5,
    )

    async def put(con: asyncpg.Connection) -> None:
        await indexer_store.write_global_config(con, config)

    async def drop(con: asyncpg.Connection) -> None:
        await con.execute("DELETE FROM global_config WHERE address = $1", config.address)

    await db.run("test", put)
    try:
        async with live_api(fx.config(), db) as api:
            r = await api.client.get(
                f"/v1/markets/{active.market_id}/quote",
                params={"side": "buy", "outcome": "yes", "amount": "1000000000"},
            )
            assert r.status_code == 200, r.text
            q = r.json()
            fees = FeeConfig(100, 50, 250)
            want = quote_buy(
                MarketMath(
                    b_parameter=active.b_parameter,
                    shares_yes=active.shares_yes,
                    shares_no=active.shares_no,
                    current_liquidity=active.current_liquidity,
                ),
                fees,
                True,
                10**9,
            )
            assert q["fees_source"] == "global_config" and q["notes"] == []
            assert q["fee_rates"] == {"protocol_bps": 100, "resolver_bps": 50, "lp_bps": 250}
            assert q["lamports"] == str(want.total_cost) and q["shares"] == str(want.shares)
            summary = (await api.client.get(f"/v1/markets/{disputed.market_id}/votes")).json()
            assert summary["dispute_period"] == 3_600
            assert summary["dispute_period_source"] == "global_config"
            assert summary["dispute_window_ends_at"] == "2026-01-04T01:00:00Z"
    finally:
        await db.run("test", drop)
