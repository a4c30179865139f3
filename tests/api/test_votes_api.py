"""Proposal and dispute votes over HTTP: state windows, one changeable vote per
wallet until aggregated, tallies with thresholds, the dispute deadline, events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.api import factories as fx
from tests.api.conftest import live_api
from tests.storage import factories as f
from zmartd.bus import VoteChanged
from zmartd.storage import indexer as indexer_store
from zmartd.storage import votes as vote_store
from zmartd.storage.database import Database


async def test_proposal_votes_change_until_aggregated(db: Database) -> None:
    m = await fx.seed_market(db, state=0)
    voters = [f.wallet(fx.fresh()) for _ in range(3)]
    cfg = fx.config(aggregator={"min_votes": 3})
    async with live_api(cfg, db) as api:
        c = api.client
        url = f"/v1/markets/{m.market_id}/votes/proposal"
        tokens = [fx.headers(await fx.session(db, w)) for w in voters]
        assert (await c.post(url, json={"vote": "like"})).status_code == 401
        events = api.ctx.bus.topic("events").subscribe("test")
        r = await c.post(url, json={"vote": "like"}, headers=tokens[0])
        assert r.status_code == 200, r.text
        assert r.json()["vote"] == "like" and r.json()["locked"] is False
        event = events.receive_nowait()
        assert isinstance(event, VoteChanged) and event.kind == "proposal"
        assert event.wallet == voters[0] and event.data["vote"] == "like"
        changed = await c.post(url, json={"vote": "dislike"}, headers=tokens[0])
        assert changed.json()["vote"] == "dislike"
        for h in tokens[1:]:
            assert (await c.post(url, json={"vote": "like"}, headers=h)).status_code == 200
        summary = (await c.get(f"/v1/markets/{m.market_id}/votes")).json()
        p = summary["proposal"]
        assert (p["yes"], p["no"], p["total"], p["pending"]) == (2, 1, 3, 3)
        # the program's default threshold while no GlobalConfig is indexed: 66.66 % < 70 %
        assert p["approval_bps"] == 6666 and p["threshold_bps"] == 7000
        assert p["min_votes"] == 3 and p["meets_threshold"] is False
        assert summary["accepting"] == "proposal" and summary["dispute"]["approval_bps"] is None
        assert summary["dispute"]["threshold_bps"] == 6000
        # once the indexer has seen the GlobalConfig, its thresholds are the ones shown
        await indexer_store_config(db, proposal_bps=6000, dispute_bps=5000)
        summary = (await c.get(f"/v1/markets/{m.market_id}/votes")).json()
        assert summary["proposal"]["threshold_bps"] == 6000
        assert summary["proposal"]["meets_threshold"] is True
        assert summary["dispute"]["threshold_bps"] == 5000
        assert summary["dispute_period_source"] == "global_config"
        # wrong kind for the state, wrong body, unknown market
        r = await c.post(
            f"/v1/markets/{m.market_id}/votes/dispute", json={"vote": "agree"}, headers=tokens[0]
        )
        assert r.status_code == 409
        assert (await c.post(url, json={"vote": "agree"}, headers=tokens[0])).status_code == 422
        assert (await c.post(url, json={}, headers=tokens[0])).status_code == 422
        assert (
            await c.post(
                f"/v1/markets/{'ef' * 32}/votes/proposal", json={"vote": "like"}, headers=tokens[0]
            )
        ).status_code == 404
        # aggregated votes are final
        await vote_store.aggregate(db, kind="proposal", market_id=m.market_id)
        r = await c.post(url, json={"vote": "like"}, headers=tokens[0])
        assert r.status_code == 409 and r.json()["type"] == "urn:zmart:problem:conflict"
        mine = (await c.get(f"/v1/users/{voters[0]}/votes")).json()["items"]
        assert [(v["kind"], v["vote"], v["locked"]) for v in mine] == [
            ("proposal", "dislike", True)
        ]


async def indexer_store_config(db: Database, *, proposal_bps: int, dispute_bps: int) -> None:
    state = indexer_store.GlobalConfigState(
        address=f.wallet(fx.fresh()),
        admin=f.wallet(fx.fresh()),
        backend_authority=f.wallet(fx.fresh()),
        protocol_fee_wallet=f.wallet(fx.fresh()),
        protocol_fee_bps=300,
        resolver_reward_bps=200,
        liquidity_provider_fee_bps=500,
        proposal_approval_threshold=proposal_bps,
        dispute_success_threshold=dispute_bps,
        min_resolution_delay=86_400,
        dispute_period=259_200,
        is_paused=False,
        slot=1,
    )

    async def _run(con: Any) -> None:
        await con.execute("DELETE FROM global_config")
        await indexer_store.write_global_config(con, state)

    await db.run("test", _run)


async def test_dispute_votes_and_deadline(db: Database) -> None:
    proposed_at = fx.T0 + timedelta(days=3)
    m = await fx.seed_market(
        db,
        state=4,
        resolution_proposed_at=proposed_at,
        dispute_initiated_at=proposed_at + timedelta(hours=1),
    )
    voter = f.wallet(fx.fresh())
    async with live_api(fx.config(), db) as api:
        c = api.client
        h = fx.headers(await fx.session(db, voter))
        r = await c.post(
            f"/v1/markets/{m.market_id}/votes/dispute", json={"vote": "agree"}, headers=h
        )
        assert r.status_code == 200 and r.json()["kind"] == "dispute"
        assert (
            await c.post(
                f"/v1/markets/{m.market_id}/votes/proposal", json={"vote": "like"}, headers=h
            )
        ).status_code == 409
        summary = (await c.get(f"/v1/markets/{m.market_id}/votes")).json()
        assert summary["status"] == "DISPUTED" and summary["accepting"] == "dispute"
        assert summary["dispute"]["yes"] == 1 and summary["dispute"]["meets_threshold"] is False
        assert summary["dispute_period"] == 259_200
        assert summary["dispute_window_ends_at"] == "2026-01-07T00:00:00Z"
        assert (await c.get(f"/v1/markets/{'0f' * 32}/votes")).status_code == 404
        by_kind = await c.get(f"/v1/users/{voter}/votes", params={"kind": "proposal"})
        assert by_kind.json()["items"] == []


async def test_sybil_votes_are_kept_but_not_counted(db: Database) -> None:
    """Regression (attacker's probe): 12 fresh keypairs with no history, from one address,
    moved a PROPOSED market's tally from 3 votes / 66.7 % likes to 15 votes / 13.3 %, past
    min_votes. With the default policy ([votes] eligibility = "history",
    max_per_address = 3) they are kept, shown as excluded with the reason, and never
    counted -- neither in the tally nor in an aggregation."""
    m = await fx.seed_market(db, state=0)
    other = await fx.seed_market(db)  # where the honest voters traded
    honest = [f.wallet(fx.fresh()) for _ in range(3)]
    for w in honest:
        await fx.seed_trades(db, other.market_id, w, [{}])
    cfg = fx.config(votes={}, aggregator={"min_votes": 10})  # the defaults
    assert cfg.votes.eligibility == "history" and cfg.votes.max_per_address == 3
    async with live_api(cfg, db) as api:
        c = api.client
        url = f"/v1/markets/{m.market_id}/votes/proposal"
        for w, vote in zip(honest, ["like", "like", "dislike"], strict=True):
            r = await c.post(url, json={"vote": vote}, headers=fx.headers(await fx.session(db, w)))
            assert r.status_code == 200 and r.json()["counted"] is True, r.text
        for _ in range(12):
            sybil = f.wallet(fx.fresh())
            r = await c.post(
                url, json={"vote": "dislike"}, headers=fx.headers(await fx.session(db, sybil))
            )
            assert r.status_code == 200
            assert (r.json()["counted"], r.json()["excluded"]) == (False, "no_history")
        p = (await c.get(f"/v1/markets/{m.market_id}/votes")).json()["proposal"]
        assert (p["yes"], p["no"], p["total"], p["approval_bps"]) == (2, 1, 3, 6666)
        assert p["excluded"] == {"no_history": 12, "address_limit": 0}
        assert p["meets_threshold"] is False  # 3 < min_votes: the sybils did not get it there
        aggregated = await vote_store.aggregate(db, kind="proposal", market_id=m.market_id)
        assert (aggregated.yes, aggregated.no) == (2, 1)


async def test_votes_per_address_are_limited(db: Database) -> None:
    m = await fx.seed_market(db, state=0)
    other = await fx.seed_market(db)
    voters = [f.wallet(fx.fresh()) for _ in range(5)]
    for w in voters:
        await fx.seed_trades(db, other.market_id, w, [{}])
    cfg = fx.config(votes={"eligibility": "history", "max_per_address": 3})
    async with live_api(cfg, db) as api:
        url = f"/v1/markets/{m.market_id}/votes/proposal"
        verdicts = []
        for w in voters:  # all from this test's one address
            r = await api.client.post(
                url, json={"vote": "like"}, headers=fx.headers(await fx.session(db, w))
            )
            verdicts.append(r.json()["excluded"])
        assert verdicts == [None, None, None, "address_limit", "address_limit"]
        p = (await api.client.get(f"/v1/markets/{m.market_id}/votes")).json()["proposal"]
        assert p["total"] == 3 and p["excluded"]["address_limit"] == 2
