"""``GET /v1/markets/{id}/claims``: a FINALIZED market's payouts by the program's
claim_winnings arithmetic (integer floor), claimed amounts, INVALID refunds."""

from __future__ import annotations

from datetime import timedelta

from tests.api import factories as fx
from tests.api.conftest import live_api
from tests.storage import factories as f
from zmartd.storage.database import Database

SIDE = 3_000_000_000  # the market's YES (and NO) share-units
LIQ = 10_000_000_007  # current_liquidity: not a multiple of SIDE, so the floor matters


async def test_claims_of_a_finalized_market(db: Database) -> None:
    fin = fx.T0 + timedelta(days=4)
    yes = await fx.seed_market(
        db,
        state=5,
        final_outcome=True,
        finalized_at=fin,
        shares_yes=SIDE,
        shares_no=SIDE,
        liquidity=LIQ,
        accumulated_resolver_fees=12_345,
    )
    invalid = await fx.seed_market(
        db,
        state=5,
        final_outcome=None,
        finalized_at=fin,
        shares_yes=SIDE,
        shares_no=SIDE,
    )
    active = await fx.seed_market(db, state=2)
    a, b, c, d = (f.wallet(fx.fresh()) for _ in range(4))
    await fx.seed_position(db, yes.market_id, a, yes=1_000_000_000, invested=7)
    await fx.seed_position(db, yes.market_id, b, yes=2_000_000_000, no=5, invested=9)
    await fx.seed_position(db, yes.market_id, c, no=SIDE, invested=11)  # lost: nothing
    await fx.seed_position(db, yes.market_id, d, yes=0, claimed=4_000, invested=1)
    await fx.seed_position(db, invalid.market_id, a, yes=5, invested=300)
    await fx.seed_position(db, invalid.market_id, b, no=5, invested=200, claimed=200)
    await fx.seed_position(db, invalid.market_id, c, invested=0)  # nothing to refund
    async with live_api(fx.config(), db) as api:
        r = await api.client.get(f"/v1/markets/{yes.market_id}/claims")
        assert r.status_code == 200, r.text
        doc = r.json()
        expected = 1_000_000_000 * LIQ // SIDE + 2_000_000_000 * LIQ // SIDE
        assert doc == {
            "market_id": yes.market_id,
            "final_outcome": "YES",
            "finalized_at": "2026-01-05T00:00:00Z",
            "claimable_positions": 2,
            "claimable": str(expected),
            "claimed_positions": 1,
            "claimed": "4000",
            "resolver_fees_due": "12345",
        }
        refund = (await api.client.get(f"/v1/markets/{invalid.market_id}/claims")).json()
        assert refund["final_outcome"] is None and refund["resolver_fees_due"] == "0"
        assert (refund["claimable_positions"], refund["claimable"]) == (1, "300")
        assert (refund["claimed_positions"], refund["claimed"]) == (1, "200")
        early = await api.client.get(f"/v1/markets/{active.market_id}/claims")
        assert early.status_code == 409 and "ACTIVE" in early.json()["detail"]
        missing = await api.client.get(f"/v1/markets/{f.market_id(fx.fresh())}/claims")
        assert missing.status_code == 404
