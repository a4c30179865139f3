"""The aggregator's SQL and arithmetic: the tally per vote source (one wallet
counts once), freezing an aggregation with its intent idempotently, and the
program's integer threshold."""

from __future__ import annotations

from tests.api import factories as fx
from tests.storage import factories as f
from zmartd.aggregator.policy import approval_bps, approves, dispute_flips
from zmartd.storage import aggregator as store
from zmartd.storage import votes as vote_store
from zmartd.storage.database import Database
from zmartd.storage.votes import ChainVote


async def test_tally_by_source_and_idempotent_freeze(db: Database) -> None:
    m = await fx.seed_market(db, state=0)
    api_voters = [f.wallet(fx.fresh()) for _ in range(5)]
    for i, w in enumerate(api_voters):
        await vote_store.cast_vote(db, kind="proposal", market_id=m.market_id, wallet=w, vote=i < 4)
    chain_voter = f.wallet(fx.fresh())

    async def on_chain(con: object) -> None:
        await vote_store.write_chain_votes(
            con,
            [
                ChainVote(
                    kind="proposal",
                    market_id=m.market_id,
                    wallet=w,
                    vote=False,
                    signature=f.signature(fx.fresh()),
                    slot=5,
                    voted_at=fx.T0,
                )
                for w in (chain_voter, api_voters[0])
            ],
        )  # api_voters[0] re-votes on chain

    await db.run("test", on_chain)

    def counts(rows: list[store.Candidate]) -> tuple[int, int]:
        [row] = [r for r in rows if r.market_id == m.market_id]
        return row.yes, row.no

    # both: 3 API likes + 1 API dislike + 2 chain dislikes (the chain vote replaced an API one)
    assert counts(await store.candidates(db, "proposal", "both")) == (3, 3)
    assert counts(await store.candidates(db, "proposal", "api")) == (3, 1)
    assert counts(await store.candidates(db, "proposal", "chain")) == (0, 2)
    first = await store.freeze_and_submit(
        db,
        kind="proposal",
        market_id=m.market_id,
        source="api",
        intent_kind="aggregate_proposal_votes",
        args_for=lambda y, n: {"likes": y, "dislikes": n},
    )
    agg_id, yes, no, intent = first
    assert (yes, no) == (3, 1) and intent.args == {"likes": 3, "dislikes": 1}
    assert intent.idempotency_key.endswith(":3:1:after:0")
    [row] = [r for r in await store.candidates(db, "proposal", "api") if r.market_id == m.market_id]
    assert row.last_aggregation_id == agg_id and row.last_intent_state == "pending"
    # frozen: those API votes can no longer change
    again = await store.freeze_and_submit(
        db,
        kind="proposal",
        market_id=m.market_id,
        source="api",
        intent_kind="aggregate_proposal_votes",
        args_for=lambda y, n: {"likes": y, "dislikes": n},
    )
    assert again[3].id != intent.id and again[3].idempotency_key.endswith(f":after:{agg_id}")
    await store.record_outcome(
        db,
        market_id=m.market_id,
        kind="proposal",
        outcome="approved",
        detail="x",
        yes=3,
        no=1,
        aggregation_id=agg_id,
        intent_id=intent.id,
    )
    [outcome] = await store.read_outcomes(db, m.market_id)
    assert outcome.outcome == "approved" and outcome.intent_kind == "aggregate_proposal_votes"


def test_program_integer_arithmetic() -> None:
    assert approval_bps(7, 10) == 7000 and approves(7, 3, threshold_bps=7000, min_votes=10)
    # 2333 / 3333 = 69.996 %: 6999 bps after the floor, not approved at 7000
    assert approval_bps(2333, 3333) == 6999
    assert not approves(2333, 1000, threshold_bps=7000, min_votes=1)  # 6999 bps
    assert not approves(9, 0, threshold_bps=7000, min_votes=10)  # too few votes
    assert not approves(0, 0, threshold_bps=0, min_votes=0)  # the program needs total > 0
    assert dispute_flips(3, 2, threshold_bps=6000) and not dispute_flips(1, 3, threshold_bps=6000)
    assert dispute_flips(2, 1, threshold_bps=6000)
