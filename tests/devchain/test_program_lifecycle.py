"""A whole market lifecycle through real transactions, checked byte for byte.

After every step: each touched account's bytes equal the codec's encoding of
the value we expect (decode → compare typed value, and re-encode → compare
bytes), no lamport is created or lost (ledger total + fees burnt is
constant), and the one event decodes to the expected value.  The numbers are
the documented devnet lifecycle (docs/chain.md §10, lmsr_vectors.json scenario).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from solders.pubkey import Pubkey

from tests.devchain import EVIDENCE, QUESTION, SOL, Chain, events
from zmartd.chain import instructions as ix
from zmartd.chain.accounts import encode_account
from zmartd.chain.pda import global_config_pda, market_pda, position_pda, vote_record_pda
from zmartd.chain.types import (
    DisputeInitiated,
    DisputeVoteSubmitted,
    GlobalConfig,
    GlobalConfigInitialized,
    LiquidityWithdrawn,
    MarketAccount,
    MarketActivated,
    MarketCreated,
    MarketFinalized,
    MarketResolved,
    MarketState,
    ProposalAggregated,
    ProposalApproved,
    ProposalVoteSubmitted,
    SharesBought,
    UserPosition,
    VoteRecord,
    VoteType,
    WinningsClaimed,
)
from zmartd.devchain.bank import ExecutionResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chain"
SCENARIO = json.loads((FIXTURES / "lmsr_vectors.json").read_text())["scenarios"][0]["steps"]


class Ledger:
    """Tracks lamport conservation: ledger total + burnt fees never changes."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.start = chain.bank.total_lamports()
        self.burnt = 0

    def step(self, res: ExecutionResult) -> ExecutionResult:
        assert res.err is None, (res.err, res.logs)
        self.burnt += res.fee
        assert self.chain.bank.total_lamports() + self.burnt == self.start
        assert sum(res.pre_balances) - sum(res.post_balances) == res.fee
        return res


def assert_bytes(chain: Chain, key: Pubkey, expected: Any) -> None:
    """The account holds exactly the codec's image of ``expected``."""
    acct = chain.bank.get_account(key)
    assert acct is not None
    assert acct.owner == chain.bank.program_id
    assert acct.data == encode_account(expected)
    assert chain.decode(type(expected), key) == expected


def only_event(res: ExecutionResult) -> Any:
    evs = events(res)
    assert len(evs) == 1, evs
    return evs[0]


def test_devnet_lifecycle_one_wallet_reproduces_documented_numbers() -> None:
    chain = Chain()
    w = chain.admin  # one wallet in every role, as on devnet
    chain.backend = w
    chain.fee_wallet = w
    voter, disputer = chain.wallet(), chain.wallet()  # funded before the ledger count starts
    ledger = Ledger(chain)
    config_key, config_bump = global_config_pda()
    res = ledger.step(
        chain.ok(
            ix.initialize_global_config(
                admin=w.pubkey(), backend_authority=w.pubkey(), protocol_fee_wallet=w.pubkey()
            ),
            w,
        )
    )
    config = GlobalConfig(
        w.pubkey(), w.pubkey(), w.pubkey(), 300, 200, 500, 7000, 6000, 86_400, 259_200, 8000,
        False, bytes(64), config_bump,
    )  # fmt: skip
    assert_bytes(chain, config_key, config)
    assert chain.lamports(config_key) == 2_324_640
    assert only_event(res) == GlobalConfigInitialized(w.pubkey(), w.pubkey(), 300, chain.now)
    # short dispute window, as the devnet run used
    ledger.step(
        chain.ok(
            ix.update_global_config(
                admin=w.pubkey(),
                protocol_fee_bps=300,
                resolver_reward_bps=200,
                liquidity_provider_fee_bps=500,
                proposal_approval_threshold=7000,
                dispute_success_threshold=6000,
                dispute_period=120,
            ),
            w,
        )
    )
    config = replace(config, dispute_period=120)
    assert_bytes(chain, config_key, config)

    # -- create ---------------------------------------------------------------
    mid = bytes(range(32))
    mkey, mbump = market_pda(mid)
    t_create = chain.now
    res = ledger.step(
        chain.ok(
            ix.create_market(
                creator=w.pubkey(),
                market_id=mid,
                b_parameter=100 * SOL,
                initial_liquidity=SOL // 10,
                ipfs_question_hash=QUESTION,
            ),
            w,
        )
    )
    step0 = SCENARIO[0]
    assert chain.lamports(mkey) == step0["market_lamports"]  # rent only: nothing deposited
    market = MarketAccount(
        mid, w.pubkey(), MarketState.PROPOSED, 100 * SOL, SOL // 10, step0["current_liquidity"],
        step0["shares_yes"], step0["shares_no"], 0, t_create, 0, 0, 0, 0, 0, Pubkey.default(),
        None, None, QUESTION, 0, Pubkey.default(), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        False, False, None, False, bytes(119), mbump,
    )  # fmt: skip
    assert_bytes(chain, mkey, market)
    assert only_event(res) == MarketCreated(mid, w.pubkey(), 100 * SOL, 0, t_create)
    # the two System CPIs of `init` show as one CreateAccount inner instruction
    assert [len(i["instructions"]) for i in res.inner_instructions] == [1]

    # -- proposal vote, aggregate, approve, activate --------------------------
    chain.now += 60
    res = ledger.step(
        chain.ok(ix.submit_proposal_vote(user=voter.pubkey(), market_id=mid, vote=True), voter)
    )
    vkey, vbump = vote_record_pda(mkey, voter.pubkey(), VoteType.PROPOSAL)
    assert_bytes(
        chain, vkey, VoteRecord(mkey, voter.pubkey(), VoteType.PROPOSAL, True, chain.now, vbump)
    )
    assert chain.lamports(vkey) == 1_468_560
    assert only_event(res) == ProposalVoteSubmitted(mid, voter.pubkey(), True, chain.now)
    assert_bytes(chain, mkey, market)  # votes do not touch the market

    res = ledger.step(
        chain.ok(
            ix.aggregate_proposal_votes(
                backend_authority=w.pubkey(), market_id=mid, final_likes=7, final_dislikes=3
            ),
            w,
        )
    )
    market = replace(market, proposal_likes=7, proposal_dislikes=3, proposal_total_votes=10)
    assert_bytes(chain, mkey, market)  # counts only, still Proposed
    assert only_event(res) == ProposalAggregated(mid, 7, 3, 70, True, chain.now)

    res = ledger.step(chain.ok(ix.approve_proposal(admin=w.pubkey(), market_id=mid), w))
    market = replace(market, state=MarketState.APPROVED, approved_at=chain.now)
    assert_bytes(chain, mkey, market)
    assert only_event(res) == ProposalApproved(mid, w.pubkey(), chain.now)

    chain.now += 60
    res = ledger.step(chain.ok(ix.activate_market(authority=w.pubkey(), market_id=mid), w))
    market = replace(market, state=MarketState.ACTIVE, activated_at=chain.now)
    assert_bytes(chain, mkey, market)
    assert only_event(res) == MarketActivated(mid, w.pubkey(), SOL // 10, chain.now)

    # -- trades -----------------------------------------------------------------
    pkey, pbump = position_pda(mkey, w.pubkey())
    position = UserPosition(mkey, w.pubkey(), 0, 0, 0, 0, 0, False, 0, bytes(64), pbump)
    volume = 0
    for step, outcome, target in ((SCENARIO[1], True, SOL), (SCENARIO[2], False, SOL // 2)):
        chain.now += 30
        q = step["result"]
        wallet_before = chain.lamports(w.pubkey())
        res = ledger.step(chain.ok(chain.buy(w, mid, outcome, target), w))
        first = position.trades_count == 0
        rent = 2_157_600 if first else 0
        # the wallet is also the fee wallet: it only loses what went to the market
        assert wallet_before - chain.lamports(w.pubkey()) == (
            q["lamports_user_to_market"] + rent + res.fee
        )
        assert chain.lamports(mkey) == step["market_lamports"]
        volume += q["total_volume_delta"]
        market = replace(
            market,
            shares_yes=q["new_shares_yes"],
            shares_no=q["new_shares_no"],
            current_liquidity=step["current_liquidity"],
            total_volume=volume,
            accumulated_resolver_fees=market.accumulated_resolver_fees + q["resolver_fee"],
            accumulated_lp_fees=market.accumulated_lp_fees + q["lp_fee"],
        )
        assert_bytes(chain, mkey, market)
        position = replace(
            position,
            shares_yes=position.shares_yes + (q["shares"] if outcome else 0),
            shares_no=position.shares_no + (0 if outcome else q["shares"]),
            total_invested=position.total_invested + q["total_cost"],
            trades_count=position.trades_count + 1,
            last_trade_at=chain.now,
        )
        assert_bytes(chain, pkey, position)
        assert only_event(res) == SharesBought(
            mid, w.pubkey(), outcome, q["shares"], q["total_cost"], q["new_price_yes"], chain.now
        )
        n_cpis = 3 if first else 2  # (create position) + to market + to fee wallet
        assert len(res.inner_instructions[0]["instructions"]) == n_cpis
    assert SCENARIO[1]["result"]["shares"] == 1_835_823_062
    assert SCENARIO[1]["result"]["total_cost"] == 999_928_380

    # a sell passes nothing here: current_liquidity excludes the buyers' deposits
    res = chain.send(
        [
            ix.sell_shares(
                user=w.pubkey(),
                market_id=mid,
                outcome=True,
                shares_to_sell=SOL,
                min_proceeds=0,
                protocol_fee_wallet=w.pubkey(),
            )
        ],
        w,
    )
    assert res.err == {"InstructionError": [0, {"Custom": 6016}]}  # InsufficientLiquidity
    ledger.burnt += res.fee
    assert_bytes(chain, mkey, market)

    # -- resolve, dispute, dispute votes, finalize -----------------------------
    chain.now += 30
    res = ledger.step(
        chain.ok(
            ix.resolve_market(
                resolver=w.pubkey(),
                market_id=mid,
                proposed_outcome=True,
                ipfs_evidence_hash=EVIDENCE,
            ),
            w,
        )
    )
    market = replace(
        market,
        state=MarketState.RESOLVING,
        proposed_outcome=True,
        resolver=w.pubkey(),
        ipfs_evidence_hash=EVIDENCE,
        resolution_proposed_at=chain.now,
    )
    assert_bytes(chain, mkey, market)
    assert only_event(res) == MarketResolved(mid, w.pubkey(), True, EVIDENCE, chain.now)

    chain.now += 10
    res = ledger.step(
        chain.ok(ix.initiate_dispute(initiator=disputer.pubkey(), market_id=mid), disputer)
    )
    market = replace(
        market,
        state=MarketState.DISPUTED,
        dispute_initiator=disputer.pubkey(),
        dispute_initiated_at=chain.now,
    )
    assert_bytes(chain, mkey, market)
    assert only_event(res) == DisputeInitiated(mid, disputer.pubkey(), True, chain.now)

    res = ledger.step(
        chain.ok(ix.submit_dispute_vote(user=disputer.pubkey(), market_id=mid, vote=True), disputer)
    )
    dkey, dbump = vote_record_pda(mkey, disputer.pubkey(), VoteType.DISPUTE)
    assert_bytes(
        chain, dkey, VoteRecord(mkey, disputer.pubkey(), VoteType.DISPUTE, True, chain.now, dbump)
    )
    assert only_event(res) == DisputeVoteSubmitted(mid, disputer.pubkey(), True, chain.now)

    # 1 agree / 9 disagree: below 60 %, the proposed YES stands (no flip)
    chain.now += 3600
    res = ledger.step(chain.finalize(mid, 1, 9))
    market = replace(
        market,
        dispute_agree=1,
        dispute_disagree=9,
        dispute_total_votes=10,
        final_outcome=True,
        was_disputed=True,
        finalized_at=chain.now,
        state=MarketState.FINALIZED,
    )
    assert_bytes(chain, mkey, market)
    assert only_event(res) == MarketFinalized(mid, True, True, chain.now)

    # -- claim and withdraw ---------------------------------------------------------
    claim = SCENARIO[4]["result"]
    before = chain.lamports(w.pubkey())
    res = ledger.step(
        chain.ok(ix.claim_winnings(user=w.pubkey(), market_id=mid, resolver=w.pubkey()), w)
    )
    assert claim["winnings"] == 185_350_052 and claim["resolver_paid"] == 27_270_384
    assert chain.lamports(w.pubkey()) - before == SCENARIO[4]["wallet_receives"] - res.fee
    assert chain.lamports(mkey) == claim["market_lamports_after"]
    market = replace(market, accumulated_resolver_fees=0)
    assert_bytes(chain, mkey, market)
    position = replace(position, has_claimed=True, claimed_amount=claim["winnings"])
    assert_bytes(chain, pkey, position)
    assert only_event(res) == WinningsClaimed(mkey, w.pubkey(), True, claim["winnings"], chain.now)
    assert res.inner_instructions == []  # direct lamport moves, no CPI

    res = ledger.step(chain.ok(ix.withdraw_liquidity(creator=w.pubkey(), market_id=mid), w))
    assert SCENARIO[5]["withdrawn"] == 1_246_335_108
    assert only_event(res) == LiquidityWithdrawn(
        mid, w.pubkey(), SCENARIO[5]["withdrawn"], chain.now
    )
    assert chain.lamports(mkey) == SCENARIO[5]["market_lamports_after"]
    market = replace(market, current_liquidity=0, accumulated_lp_fees=0)
    assert_bytes(chain, mkey, market)


def test_market_tail_is_never_cleared_and_options_shift_later_fields() -> None:
    """cancel_market's Some(cancelled_at) grows the payload by 8 bytes inside the
    488-byte allocation; the bytes are the codec's, the rest stays zero."""
    chain = Chain()
    chain.init_config()
    creator = chain.wallet()
    mid = chain.create(creator)
    mkey = market_pda(mid)[0]
    before = chain.market(mid)
    chain.ok(ix.cancel_market(admin=chain.admin.pubkey(), market_id=mid), chain.admin)
    after = chain.market(mid)
    assert after == replace(before, state=MarketState.CANCELLED, cancelled_at=chain.now)
    assert not after.is_cancelled  # §11.17
    data = chain.bank.get_account(mkey).data  # type: ignore[union-attr]
    assert len(data) == 488
    assert data == encode_account(after)
    assert len(encode_account(after, pad=False)) == len(encode_account(before, pad=False)) + 8
