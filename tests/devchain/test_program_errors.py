"""Negative cases for every zmart-core instruction: wrong signer, wrong state,
too early, too late, slippage, paused, wrong PDA, double vote… each must fail
with the spec's error code (docs/chain.md §4, §6) and leave state untouched."""

from __future__ import annotations

from dataclasses import replace
from typing import NotRequired, TypedDict

import pytest
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tests.devchain import EVIDENCE, SOL, Chain, custom_code
from zmartd.chain import instructions as ix
from zmartd.chain.accounts import encode_account
from zmartd.chain.pda import global_config_pda, market_pda
from zmartd.chain.types import MarketState
from zmartd.devchain.bank import Account


def code_of(chain: Chain, instruction: Instruction, payer: Keypair, *signers: Keypair) -> int | str:
    before = dict(chain.bank.accounts())
    res = chain.fails(instruction, payer, *signers)
    after = dict(chain.bank.accounts())
    # only the fee payer changed (the fee), nothing else
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed <= {payer.pubkey()}, changed
    return custom_code(res)


def with_meta(instruction: Instruction, index: int, *, signer: bool, writable: bool) -> Instruction:
    metas = list(instruction.accounts)
    metas[index] = AccountMeta(metas[index].pubkey, signer, writable)
    return Instruction(instruction.program_id, instruction.data, metas)


def with_account(instruction: Instruction, index: int, key: Pubkey) -> Instruction:
    metas = list(instruction.accounts)
    old = metas[index]
    metas[index] = AccountMeta(key, old.is_signer, old.is_writable)
    return Instruction(instruction.program_id, instruction.data, metas)


@pytest.fixture
def chain() -> Chain:
    c = Chain()
    c.init_config()
    return c


@pytest.fixture
def creator(chain: Chain) -> Keypair:
    return chain.wallet()


@pytest.fixture
def trader(chain: Chain) -> Keypair:
    return chain.wallet()


def resolving(chain: Chain, creator: Keypair, trader: Keypair) -> bytes:
    mid = chain.active_market(creator)
    chain.ok(chain.buy(trader, mid, True, SOL), trader)
    chain.now += 5
    chain.resolve(trader, mid, True)
    chain.now += 5
    return mid


def finalized(chain: Chain, creator: Keypair, trader: Keypair) -> bytes:
    mid = resolving(chain, creator, trader)
    chain.now += 259_200
    chain.finalize(mid)
    return mid


# -- configuration ---------------------------------------------------------------


def test_initialize_twice_fails_in_system_program(chain: Chain) -> None:
    other = chain.wallet()
    build = ix.initialize_global_config(
        admin=other.pubkey(), backend_authority=other.pubkey(), protocol_fee_wallet=other.pubkey()
    )
    res = chain.fails(build, other)
    assert custom_code(res) == 0
    key = global_config_pda()[0]
    assert f"Allocate: account Address {{ address: {key}, base: None }} already in use" in res.logs
    assert res.logs[-1].endswith("failed: custom program error: 0x0")


def test_initialize_wrong_pda_and_missing_signature() -> None:
    chain = Chain()
    admin = chain.admin
    good = ix.initialize_global_config(
        admin=admin.pubkey(), backend_authority=admin.pubkey(), protocol_fee_wallet=admin.pubkey()
    )
    assert code_of(chain, with_account(good, 1, Pubkey.new_unique()), admin) == 2006
    payer = chain.wallet()
    assert code_of(chain, with_meta(good, 0, signer=False, writable=True), payer) == 3010


class ConfigSettings(TypedDict):
    """The settings arguments of ``ix.update_global_config``."""

    protocol_fee_bps: int
    resolver_reward_bps: int
    liquidity_provider_fee_bps: int
    proposal_approval_threshold: int
    dispute_success_threshold: int
    min_resolution_delay: NotRequired[int]
    dispute_period: NotRequired[int]


def test_update_global_config_checks(chain: Chain) -> None:
    base = ConfigSettings(
        protocol_fee_bps=300,
        resolver_reward_bps=200,
        liquidity_provider_fee_bps=500,
        proposal_approval_threshold=7000,
        dispute_success_threshold=6000,
    )
    stranger = chain.wallet()
    a = chain.admin
    assert (
        code_of(chain, ix.update_global_config(admin=stranger.pubkey(), **base), stranger) == 6029
    )
    bad_fees: ConfigSettings = {
        **base,
        "protocol_fee_bps": 9000,
        "liquidity_provider_fee_bps": 1000,
    }
    assert code_of(chain, ix.update_global_config(admin=a.pubkey(), **bad_fees), a) == 6004
    bad_threshold: ConfigSettings = {**base, "dispute_success_threshold": 10_001}
    assert code_of(chain, ix.update_global_config(admin=a.pubkey(), **bad_threshold), a) == 6001
    bad_times: tuple[ConfigSettings, ...] = (
        {**base, "dispute_period": 0},
        {**base, "min_resolution_delay": -5},
    )
    for bad_time in bad_times:
        assert code_of(chain, ix.update_global_config(admin=a.pubkey(), **bad_time), a) == 6002
    # the admin's non-writable config meta: ConstraintMut
    good = ix.update_global_config(admin=a.pubkey(), **base)
    assert code_of(chain, with_meta(good, 1, signer=False, writable=False), a) == 2000


def test_emergency_pause_admin_only_and_gates_create_buy_sell(
    chain: Chain, creator: Keypair, trader: Keypair
) -> None:
    mid = chain.active_market(creator)
    chain.ok(chain.buy(trader, mid, True, SOL), trader)
    assert code_of(chain, ix.emergency_pause(admin=trader.pubkey()), trader) == 6029
    chain.ok(ix.emergency_pause(admin=chain.admin.pubkey()), chain.admin)
    assert chain.config().is_paused
    create = ix.create_market(
        creator=creator.pubkey(),
        market_id=bytes(32),
        b_parameter=100 * SOL,
        initial_liquidity=1,
        ipfs_question_hash=EVIDENCE,
    )
    assert code_of(chain, create, creator) == 6010
    assert code_of(chain, chain.buy(trader, mid, True, SOL), trader) == 6010
    sell = ix.sell_shares(
        user=trader.pubkey(),
        market_id=mid,
        outcome=True,
        shares_to_sell=1,
        min_proceeds=0,
        protocol_fee_wallet=chain.fee_wallet.pubkey(),
    )
    assert code_of(chain, sell, trader) == 6010
    # §11.18: everything else still works while paused
    chain.now += 1
    chain.resolve(trader, mid)
    chain.ok(ix.emergency_pause(admin=chain.admin.pubkey()), chain.admin)
    assert not chain.config().is_paused


# -- market creation and proposal ------------------------------------------------------


def test_create_market_checks(chain: Chain, creator: Keypair) -> None:
    def create(mid: bytes, b: int, liq: int) -> Instruction:
        return ix.create_market(
            creator=creator.pubkey(),
            market_id=mid,
            b_parameter=b,
            initial_liquidity=liq,
            ipfs_question_hash=EVIDENCE,
        )

    assert code_of(chain, create(b"\x01" * 32, 0, SOL), creator) == 6042
    assert code_of(chain, create(b"\x01" * 32, 100 * SOL, 0), creator) == 6017
    mid = chain.create(creator)
    assert code_of(chain, create(mid, 100 * SOL, SOL), creator) == 0  # reused market_id
    wrong = with_account(create(b"\x02" * 32, 100 * SOL, SOL), 1, market_pda(b"\x03" * 32)[0])
    assert code_of(chain, wrong, creator) == 2006


def test_proposal_votes(chain: Chain, creator: Keypair, trader: Keypair) -> None:
    mid = chain.create(creator)
    vote = ix.submit_proposal_vote(user=trader.pubkey(), market_id=mid, vote=True)
    chain.ok(vote, trader)
    chain.now += 1
    again = ix.submit_proposal_vote(user=trader.pubkey(), market_id=mid, vote=False)
    assert code_of(chain, again, trader) == 0  # AlreadyVoted is never returned (§11.20)
    backend = chain.backend
    agg = ix.aggregate_proposal_votes(
        backend_authority=trader.pubkey(), market_id=mid, final_likes=1, final_dislikes=0
    )
    assert code_of(chain, agg, trader) == 6029
    overflow = ix.aggregate_proposal_votes(
        backend_authority=backend.pubkey(), market_id=mid, final_likes=2**32 - 1, final_dislikes=1
    )
    assert code_of(chain, overflow, backend) == 6033
    chain.approve(mid)
    voter = chain.wallet()
    assert (
        code_of(
            chain, ix.submit_proposal_vote(user=voter.pubkey(), market_id=mid, vote=True), voter
        )
        == 6051
    )
    agg_ok = ix.aggregate_proposal_votes(
        backend_authority=backend.pubkey(), market_id=mid, final_likes=1, final_dislikes=0
    )
    assert code_of(chain, agg_ok, backend) == 6051


def test_approve_proposal_checks(chain: Chain, creator: Keypair) -> None:
    mid = chain.create(creator)
    admin = chain.admin
    approve = ix.approve_proposal(admin=admin.pubkey(), market_id=mid)
    stranger = chain.wallet()
    res = chain.fails(ix.approve_proposal(admin=stranger.pubkey(), market_id=mid), stranger)
    assert custom_code(res) == 6029
    assert (
        "Program log: AnchorError caused by account: global_config. Error Code: Unauthorized. "
        "Error Number: 6029. Error Message: Unauthorized." in res.logs
    )
    assert code_of(chain, approve, admin) == 6024  # no votes aggregated yet
    b = chain.backend
    for likes, code in ((69, 6025), (70, None)):
        chain.ok(
            ix.aggregate_proposal_votes(
                backend_authority=b.pubkey(),
                market_id=mid,
                final_likes=likes,
                final_dislikes=100 - likes,
            ),
            b,
        )
        if code is None:
            chain.ok(approve, admin)
        else:
            assert code_of(chain, approve, admin) == code
    chain.now += 1
    assert code_of(chain, ix.approve_proposal(admin=admin.pubkey(), market_id=mid), admin) == 6006


def test_activate_and_cancel_checks(chain: Chain, creator: Keypair, trader: Keypair) -> None:
    mid = chain.create(creator)
    activate_by_creator = ix.activate_market(authority=creator.pubkey(), market_id=mid)
    assert code_of(chain, activate_by_creator, creator) == 6006  # still Proposed
    chain.approve(mid)
    assert (
        code_of(chain, ix.activate_market(authority=trader.pubkey(), market_id=mid), trader) == 6029
    )
    chain.ok(activate_by_creator, creator)  # admin OR creator
    admin = chain.admin
    assert code_of(chain, ix.cancel_market(admin=trader.pubkey(), market_id=mid), trader) == 6029
    assert code_of(chain, ix.cancel_market(admin=admin.pubkey(), market_id=mid), admin) == 6011
    other = chain.create(creator)
    chain.ok(ix.cancel_market(admin=admin.pubkey(), market_id=other), admin)
    chain.now += 1
    assert code_of(chain, ix.cancel_market(admin=admin.pubkey(), market_id=other), admin) == 6012


# -- trading -------------------------------------------------------------------------------


def test_buy_checks(chain: Chain, creator: Keypair, trader: Keypair) -> None:
    proposed = chain.create(creator)
    assert code_of(chain, chain.buy(trader, proposed, True, SOL), trader) == 6007
    mid = chain.active_market(creator)
    assert code_of(chain, chain.buy(trader, mid, True, 9_999), trader) == 6018
    assert code_of(chain, chain.buy(trader, mid, True, 1_000_000), trader) == 6034  # dead zone
    wrong_wallet = ix.buy_shares(
        user=trader.pubkey(),
        market_id=mid,
        outcome=True,
        target_cost=SOL,
        protocol_fee_wallet=trader.pubkey(),
    )
    assert code_of(chain, wrong_wallet, trader) == 6029
    other_market = chain.active_market(creator)
    bad_position = with_account(
        chain.buy(trader, mid, True, SOL), 2, ix.buy_shares(
            user=trader.pubkey(), market_id=other_market, outcome=True, target_cost=SOL,
            protocol_fee_wallet=chain.fee_wallet.pubkey(),
        ).accounts[2].pubkey,
    )  # fmt: skip
    assert code_of(chain, bad_position, trader) == 2006
    not_signed = with_meta(chain.buy(trader, mid, True, SOL), 3, signer=False, writable=True)
    assert code_of(chain, not_signed, chain.wallet()) == 3010
    small_b = chain.active_market(creator, b=99 * SOL)
    assert code_of(chain, chain.buy(trader, small_b, True, SOL), trader) == 6042
    # fees above the hard-coded 10 % gross-up: every buy is SlippageExceeded (§11.7)
    admin = chain.admin
    chain.ok(
        ix.update_global_config(
            admin=admin.pubkey(),
            protocol_fee_bps=300,
            resolver_reward_bps=300,
            liquidity_provider_fee_bps=500,
            proposal_approval_threshold=7000,
            dispute_success_threshold=6000,
        ),
        admin,
    )
    assert code_of(chain, chain.buy(trader, mid, True, SOL), trader) == 6015


def sell(
    chain: Chain, user: Keypair, mid: bytes, n: int, min_proceeds: int = 0, yes: bool = True
) -> Instruction:
    return ix.sell_shares(
        user=user.pubkey(),
        market_id=mid,
        outcome=yes,
        shares_to_sell=n,
        min_proceeds=min_proceeds,
        protocol_fee_wallet=chain.fee_wallet.pubkey(),
    )


def test_sell_checks(chain: Chain, creator: Keypair, trader: Keypair) -> None:
    mid = chain.active_market(creator, liquidity=100 * SOL)  # a pot big enough to pass
    assert code_of(chain, sell(chain, trader, mid, 1), trader) == 3012  # no position yet
    chain.ok(chain.buy(trader, mid, True, SOL), trader)
    shares = chain.position(mid, trader.pubkey()).shares_yes
    assert code_of(chain, sell(chain, trader, mid, shares + 1), trader) == 6014
    assert code_of(chain, sell(chain, trader, mid, 1_000), trader) == 6018
    assert code_of(chain, sell(chain, trader, mid, shares, min_proceeds=SOL), trader) == 6015
    # someone else's position: seeds follow position.user, then the Unauthorized constraint
    thief = chain.wallet()
    stolen = with_meta(sell(chain, trader, mid, shares), 3, signer=False, writable=True)
    stolen_metas = list(stolen.accounts)
    stolen_metas[3] = AccountMeta(thief.pubkey(), True, True)
    stolen = Instruction(stolen.program_id, stolen.data, stolen_metas)
    assert code_of(chain, stolen, thief) == 6029
    small = chain.active_market(creator)  # default pot: 0.1 SOL
    chain.ok(chain.buy(trader, small, True, SOL), trader)
    held = chain.position(small, trader.pubkey()).shares_yes
    assert code_of(chain, sell(chain, trader, small, held), trader) == 6016


# -- resolution ----------------------------------------------------------------------------------


def test_resolve_checks(chain: Chain, creator: Keypair, trader: Keypair) -> None:
    proposed = chain.create(creator)
    res_ix = ix.resolve_market(
        resolver=trader.pubkey(),
        market_id=proposed,
        proposed_outcome=True,
        ipfs_evidence_hash=EVIDENCE,
    )
    assert code_of(chain, res_ix, trader) == 6007
    mid = chain.create(creator)
    chain.approve(mid)
    chain.activate(mid)  # same second as activation: strictly-after check
    res_ix = ix.resolve_market(
        resolver=trader.pubkey(), market_id=mid, proposed_outcome=True, ipfs_evidence_hash=EVIDENCE
    )
    assert code_of(chain, res_ix, trader) == 6044
    chain.now += 315_360_001  # more than 10 years after creation
    assert code_of(chain, res_ix, trader) == 6044


def test_dispute_window(chain: Chain, creator: Keypair, trader: Keypair) -> None:
    active = chain.active_market(creator)
    disputer = chain.wallet()
    assert (
        code_of(chain, ix.initiate_dispute(initiator=disputer.pubkey(), market_id=active), disputer)
        == 6007
    )
    chain.now -= 10
    mid = resolving(chain, creator, trader)
    chain.now -= 5  # same second as resolution
    dispute = ix.initiate_dispute(initiator=disputer.pubkey(), market_id=mid)
    assert code_of(chain, dispute, disputer) == 6044
    chain.now = chain.market(mid).resolution_proposed_at + 259_200  # deadline is exclusive
    assert code_of(chain, dispute, disputer) == 6020
    chain.now -= 1
    chain.ok(dispute, disputer)
    vote = ix.submit_dispute_vote(user=trader.pubkey(), market_id=mid, vote=True)
    chain.ok(vote, trader)
    chain.now += 1
    assert (
        code_of(
            chain, ix.submit_dispute_vote(user=trader.pubkey(), market_id=mid, vote=False), trader
        )
        == 0
    )
    voter = chain.wallet()
    on_active = ix.submit_dispute_vote(user=voter.pubkey(), market_id=active, vote=True)
    assert code_of(chain, on_active, voter) == 6051
    agg = ix.aggregate_dispute_votes(
        backend_authority=trader.pubkey(), market_id=mid, final_agrees=1, final_disagrees=1
    )
    assert code_of(chain, agg, trader) == 6029
    b = chain.backend
    agg_active = ix.aggregate_dispute_votes(
        backend_authority=b.pubkey(), market_id=active, final_agrees=1, final_disagrees=1
    )
    assert code_of(chain, agg_active, b) == 6051


def test_finalize_checks(chain: Chain, creator: Keypair, trader: Keypair) -> None:
    b = chain.backend
    active = chain.active_market(creator)
    fin = ix.finalize_market(backend_authority=b.pubkey(), market_id=active)
    assert code_of(chain, fin, b) == 6007
    chain.now -= 10
    mid = resolving(chain, creator, trader)
    fin = ix.finalize_market(backend_authority=b.pubkey(), market_id=mid)
    assert (
        code_of(chain, ix.finalize_market(backend_authority=trader.pubkey(), market_id=mid), trader)
        == 6029
    )
    chain.now = chain.market(mid).resolution_proposed_at + 259_199
    assert code_of(chain, fin, b) == 6027  # one second early
    chain.ok(ix.initiate_dispute(initiator=trader.pubkey(), market_id=mid), trader)
    assert code_of(chain, fin, b) == 6024  # Disputed needs Some/Some
    zero = ix.finalize_market(
        backend_authority=b.pubkey(), market_id=mid, dispute_agree=0, dispute_disagree=0
    )
    assert code_of(chain, zero, b) == 6024
    # 60/100 agree: the dispute wins and the outcome flips (no time condition)
    res = chain.finalize(mid, 60, 40)
    m = chain.market(mid)
    assert (m.state, m.final_outcome, m.was_disputed) == (MarketState.FINALIZED, False, True)
    assert res.err is None


def test_bounded_loss_blocks_finalization(chain: Chain, creator: Keypair, trader: Keypair) -> None:
    mid = resolving(chain, creator, trader)
    key = market_pda(mid)[0]
    acct = chain.bank.get_account(key)
    assert acct is not None
    # state a working sell path could reach: pot drained below initial - b*ln2
    m = replace(chain.market(mid), initial_liquidity=80 * SOL, current_liquidity=10 * SOL)
    chain.bank.set_account(key, Account(acct.lamports, encode_account(m), acct.owner))
    chain.now += 259_200
    fin = ix.finalize_market(backend_authority=chain.backend.pubkey(), market_id=mid)
    assert code_of(chain, fin, chain.backend) == 6041
    m = replace(m, current_liquidity=80 * SOL - 69_314_718_000)  # exactly b*ln2: allowed
    chain.bank.set_account(key, Account(acct.lamports, encode_account(m), acct.owner))
    chain.finalize(mid)


# -- payouts -----------------------------------------------------------------------------------


def test_claim_checks(chain: Chain, creator: Keypair, trader: Keypair) -> None:
    mid = resolving(chain, creator, trader)
    claim = ix.claim_winnings(user=trader.pubkey(), market_id=mid, resolver=trader.pubkey())
    assert code_of(chain, claim, trader) == 6007
    loser = chain.wallet()
    chain.now += 259_200
    chain.finalize(mid)
    # a position on the losing side only
    assert (
        code_of(
            chain,
            ix.claim_winnings(user=loser.pubkey(), market_id=mid, resolver=trader.pubkey()),
            loser,
        )
        == 3012
    )
    wrong_resolver = ix.claim_winnings(
        user=trader.pubkey(), market_id=mid, resolver=creator.pubkey()
    )
    assert code_of(chain, wrong_resolver, trader) == 6031
    # someone else's position: ConstraintHasOne (no custom error)
    thief_claim = list(claim.accounts)
    thief_claim[3] = AccountMeta(loser.pubkey(), True, True)
    thief = Instruction(claim.program_id, claim.data, thief_claim)
    assert code_of(chain, thief, loser) == 2001
    chain.ok(claim, trader)
    chain.now += 1
    again = ix.claim_winnings(user=trader.pubkey(), market_id=mid, resolver=trader.pubkey())
    assert code_of(chain, again, trader) == 6022


def test_claim_losing_side_no_winnings(chain: Chain, creator: Keypair, trader: Keypair) -> None:
    mid = chain.active_market(creator)
    no_buyer = chain.wallet()
    chain.ok(chain.buy(trader, mid, True, SOL), trader)
    chain.ok(chain.buy(no_buyer, mid, False, SOL), no_buyer)
    chain.now += 5
    chain.resolve(trader, mid, True)
    chain.now += 259_200
    chain.finalize(mid)
    claim = ix.claim_winnings(user=no_buyer.pubkey(), market_id=mid, resolver=trader.pubkey())
    assert code_of(chain, claim, no_buyer) == 6023


def test_withdraw_checks(chain: Chain, creator: Keypair, trader: Keypair) -> None:
    mid = resolving(chain, creator, trader)
    withdraw = ix.withdraw_liquidity(creator=creator.pubkey(), market_id=mid)
    assert code_of(chain, withdraw, creator) == 6007
    chain.now += 259_200
    chain.finalize(mid)
    assert (
        code_of(chain, ix.withdraw_liquidity(creator=trader.pubkey(), market_id=mid), trader)
        == 6029
    )
    chain.ok(withdraw, creator)
    chain.now += 1
    assert (
        code_of(chain, ix.withdraw_liquidity(creator=creator.pubkey(), market_id=mid), creator)
        == 6016
    )


# -- Anchor framework errors -----------------------------------------------------------------------


def test_anchor_account_validation(chain: Chain, creator: Keypair, trader: Keypair) -> None:
    mid = chain.active_market(creator)
    buy = chain.buy(trader, mid, True, SOL)
    config_key = global_config_pda()[0]
    assert code_of(chain, with_account(buy, 1, config_key), trader) == 3002  # config as market
    foreign = Pubkey.new_unique()
    chain.bank.set_account(foreign, Account(10 * SOL, bytes(488), Pubkey.new_unique()))
    res = chain.fails(with_account(buy, 1, foreign), trader)
    assert custom_code(res) == 3007
    foreign_account = chain.bank.get_account(foreign)
    assert foreign_account is not None
    assert res.logs[3:5] == ["Program log: Left:", f"Program log: {foreign_account.owner}"]
    assert code_of(chain, with_account(buy, 1, Pubkey.new_unique()), trader) == 3012
    assert code_of(chain, with_meta(buy, 1, signer=False, writable=False), trader) == 2000
    assert code_of(chain, with_account(buy, 5, Pubkey.new_unique()), trader) == 3008
    # a different real market under another market's id: ConstraintSeeds
    other = chain.active_market(creator)
    bad = with_account(
        ix.approve_proposal(admin=chain.admin.pubkey(), market_id=mid), 1, market_pda(other)[0]
    )
    assert code_of(chain, bad, chain.admin) == 6006  # seeds are the account's own: valid PDA
    key = market_pda(other)[0]
    acct = chain.bank.get_account(key)
    assert acct is not None
    forged = replace(chain.market(other), market_id=mid)  # stored id no longer matches
    chain.bank.set_account(key, Account(acct.lamports, encode_account(forged), acct.owner))
    assert code_of(chain, chain.buy(trader, other, True, SOL), trader) == 2006


def test_anchor_instruction_decoding(chain: Chain, trader: Keypair) -> None:
    pid = chain.bank.program_id
    res = chain.fails(Instruction(pid, b"\x01\x02", []), trader)
    assert custom_code(res) == 100
    res = chain.fails(Instruction(pid, b"\xff" * 8, []), trader)
    assert custom_code(res) == 101
    assert res.logs[1] == (
        "Program log: AnchorError occurred. Error Code: InstructionFallbackNotFound. "
        "Error Number: 101. Error Message: Fallback functions are not supported."
    )
    good = ix.submit_proposal_vote(user=trader.pubkey(), market_id=bytes(32), vote=True)
    bad_bool = Instruction(pid, good.data[:8] + b"\x02", list(good.accounts))
    res = chain.fails(bad_bool, trader)
    assert custom_code(res) == 102
    assert res.logs[1] == "Program log: Instruction: SubmitProposalVote"
    short = Instruction(pid, good.data, list(good.accounts)[:2])
    assert custom_code(chain.fails(short, trader)) == 3005
