"""The deployed program's known bugs and quirks (docs/chain.md §11), one test each,
and the ``patched`` variant that fixes the fund-moving ones."""

from __future__ import annotations

import pytest
from solders.keypair import Keypair

from tests.devchain import SOL, Chain, custom_code, events
from zmartd.chain import instructions as ix
from zmartd.chain.pda import market_pda
from zmartd.chain.quoter import DEFAULT_FEES, MarketMath, quote_sell
from zmartd.chain.types import MarketState, SharesBought, SharesSold

SYS = "11111111111111111111111111111111"


def setup(variant: str = "deployed") -> tuple[Chain, Keypair, Keypair]:
    chain = Chain(variant=variant)
    chain.init_config()
    return chain, chain.wallet(100_000 * SOL), chain.wallet(100_000 * SOL)


def sell_ix(chain: Chain, user: Keypair, mid: bytes, n: int, yes: bool = True) -> ix.Instruction:  # type: ignore[name-defined]
    return ix.sell_shares(
        user=user.pubkey(),
        market_id=mid,
        outcome=yes,
        shares_to_sell=n,
        min_proceeds=0,
        protocol_fee_wallet=chain.fee_wallet.pubkey(),
    )


def test_1_sell_passes_every_check_then_reverts_at_the_payout() -> None:
    chain, creator, trader = setup()
    mid = chain.active_market(creator, liquidity=100 * SOL)
    chain.ok(chain.buy(trader, mid, True, SOL), trader)
    market_before = chain.bank.get_account(market_pda(mid)[0])
    n = chain.position(mid, trader.pubkey()).shares_yes // 2
    res = chain.fails(sell_ix(chain, trader, mid, n), trader)
    pid = chain.bank.program_id
    assert res.err == {"InstructionError": [0, "InvalidArgument"]}
    assert res.logs[-6:] == [
        "Program log: Instruction: SellShares",
        f"Program {SYS} invoke [2]",
        "Transfer: `from` must not carry data",
        f"Program {SYS} failed: invalid program argument",
        f"Program {pid} consumed {res.compute_units_consumed} of 200000 compute units",
        f"Program {pid} failed: invalid program argument",
    ]
    assert events(res) == []
    assert chain.bank.get_account(market_pda(mid)[0]) == market_before  # rolled back


def test_1_patched_sell_pays_out_by_direct_lamport_moves() -> None:
    chain, creator, trader = setup("patched")
    mid = chain.active_market(creator, liquidity=100 * SOL)
    chain.ok(chain.buy(trader, mid, True, SOL), trader)
    market = chain.market(mid)
    n = chain.position(mid, trader.pubkey()).shares_yes // 2
    quote = quote_sell(MarketMath.from_account(market), DEFAULT_FEES, True, n, n * 2)
    mkey = market_pda(mid)[0]
    before = (
        chain.lamports(trader.pubkey()),
        chain.lamports(chain.fee_wallet.pubkey()),
        chain.lamports(mkey),
    )
    res = chain.ok(sell_ix(chain, trader, mid, n), trader)
    assert chain.lamports(trader.pubkey()) == before[0] + quote.net_proceeds - res.fee
    assert chain.lamports(chain.fee_wallet.pubkey()) == before[1] + quote.fees.protocol
    assert chain.lamports(mkey) == before[2] - quote.total_payout
    after = chain.market(mid)
    assert after.current_liquidity == quote.new_current_liquidity
    assert after.total_volume == market.total_volume + quote.proceeds_before_fees
    assert not after.is_locked
    pos = chain.position(mid, trader.pubkey())
    assert pos.shares_yes == n and pos.trades_count == 2
    assert pos.total_invested == market.total_volume  # sells never reduce it (§11.5)
    assert events(res) == [
        SharesSold(
            mid, trader.pubkey(), True, n, quote.net_proceeds, quote.new_price_yes, chain.now
        )
    ]


@pytest.mark.parametrize(("variant", "deposit"), [("deployed", 0), ("patched", 5 * SOL)])
def test_2_initial_liquidity_is_a_bare_number(variant: str, deposit: int) -> None:
    chain, creator, _ = setup(variant)
    before = chain.lamports(creator.pubkey())
    mid = chain.create(creator, liquidity=5 * SOL)
    assert chain.lamports(market_pda(mid)[0]) == 4_287_360 + deposit
    assert chain.market(mid).current_liquidity == 5 * SOL
    assert before - chain.lamports(creator.pubkey()) == 4_287_360 + deposit + 5000


def finalized_two_sided(chain: Chain, creator: Keypair, yes: Keypair, no: Keypair) -> bytes:
    mid = chain.active_market(creator)
    chain.ok(chain.buy(yes, mid, True, 2 * SOL), yes)
    chain.ok(chain.buy(no, mid, False, 2 * SOL), no)
    chain.now += 5
    chain.resolve(yes, mid, True)
    chain.now += 259_200
    chain.finalize(mid)
    return mid


def test_3_creator_withdraw_drains_before_claims() -> None:
    chain, creator, trader = setup()
    mid = finalized_two_sided(chain, creator, trader, chain.wallet())
    res = chain.ok(ix.withdraw_liquidity(creator=creator.pubkey(), market_id=mid), creator)
    assert chain.lamports(market_pda(mid)[0]) == 4_297_360  # traders' deposits swept too
    assert chain.market(mid).current_liquidity == 0
    assert res.err is None
    claim = ix.claim_winnings(user=trader.pubkey(), market_id=mid, resolver=trader.pubkey())
    assert custom_code(chain.fails(claim, trader)) == 6023  # NoWinnings


def test_4_seed_shares_dilute_winners_and_claims_do_not_shrink_the_pot() -> None:
    chain, creator, a = setup()
    b = chain.wallet()
    mid = chain.active_market(creator)
    chain.ok(chain.buy(a, mid, True, SOL), a)
    chain.ok(chain.buy(b, mid, True, SOL), b)
    chain.now += 5
    chain.resolve(a, mid, True)
    chain.now += 259_200
    chain.finalize(mid)
    m = chain.market(mid)
    paid = []
    for user in (a, b):
        res = chain.ok(
            ix.claim_winnings(user=user.pubkey(), market_id=mid, resolver=a.pubkey()), user
        )
        paid.append(events(res)[0].amount)
        assert chain.market(mid).current_liquidity == m.current_liquidity  # snapshot pot
    owned = chain.position(mid, a.pubkey()).shares_yes + chain.position(mid, b.pubkey()).shares_yes
    assert owned == m.shares_yes - m.b_parameter // 1000  # the seed is nobody's
    assert sum(paid) < m.current_liquidity


def test_5_and_14_aggregate_dispute_failure_finalizes_invalid_with_refunds() -> None:
    chain, creator, trader = setup()
    late = chain.wallet()
    mid = chain.active_market(creator)
    chain.ok(chain.buy(trader, mid, True, SOL), trader)
    chain.ok(chain.buy(late, mid, False, SOL), late)
    chain.now += 5
    chain.resolve(trader, mid, True)
    chain.now += 5
    chain.ok(ix.initiate_dispute(initiator=trader.pubkey(), market_id=mid), trader)
    b = chain.backend
    chain.ok(
        ix.aggregate_dispute_votes(
            backend_authority=b.pubkey(), market_id=mid, final_agrees=1, final_disagrees=9
        ),
        b,
    )
    m = chain.market(mid)
    assert (m.state, m.final_outcome, m.finalized_at, m.was_disputed) == (
        MarketState.FINALIZED,
        None,
        0,
        True,
    )
    assert m.resolved_at == chain.now
    # refunds pay total_invested (fees included) first come, first served
    invested = chain.position(mid, trader.pubkey()).total_invested
    before = chain.lamports(trader.pubkey())
    claim = ix.claim_winnings(user=trader.pubkey(), market_id=mid, resolver=trader.pubkey())
    res = chain.ok(claim, trader)
    assert chain.lamports(trader.pubkey()) == before + invested - res.fee
    assert events(res)[0].outcome is None
    # the protocol fees left the market, so the last refund cannot be paid
    late_claim = ix.claim_winnings(user=late.pubkey(), market_id=mid, resolver=trader.pubkey())
    assert custom_code(chain.fails(late_claim, late)) == 6016


def test_14_and_19_aggregate_dispute_success_returns_to_resolving_unflipped() -> None:
    chain, creator, trader = setup()
    mid = chain.active_market(creator)
    chain.ok(chain.buy(trader, mid, True, SOL), trader)
    chain.now += 5
    chain.resolve(trader, mid, True)
    proposed_at = chain.market(mid).resolution_proposed_at
    chain.now += 5
    chain.ok(ix.initiate_dispute(initiator=trader.pubkey(), market_id=mid), trader)
    b = chain.backend
    res = chain.ok(
        ix.aggregate_dispute_votes(
            backend_authority=b.pubkey(), market_id=mid, final_agrees=9, final_disagrees=1
        ),
        b,
    )
    assert events(res)[0].dispute_succeeded and events(res)[0].agreement_percentage == 90
    m = chain.market(mid)
    assert (m.state, m.proposed_outcome, m.was_disputed) == (MarketState.RESOLVING, True, True)
    assert m.resolution_proposed_at == proposed_at
    chain.now = proposed_at + 259_200
    chain.finalize(mid)
    m = chain.market(mid)
    assert (m.final_outcome, m.was_disputed) == (True, False)  # the disputed outcome stands


def test_8_non_monotone_price_and_trailing_side_underflow() -> None:
    chain, creator, whale = setup()
    mid = chain.active_market(creator)
    res = chain.ok(chain.buy(whale, mid, True, 1_000 * SOL), whale)
    bought = events(res)[0]
    assert isinstance(bought, SharesBought)
    m = chain.market(mid)
    assert m.shares_yes - m.shares_no > 3_464 * SOL // 10  # past 2*sqrt(3)*b
    assert bought.new_price_yes < 933_012_701  # the displayed price fell back
    assert custom_code(chain.fails(chain.buy(whale, mid, False, SOL), whale)) == 6034


def test_9_dead_zone_on_a_balanced_market() -> None:
    chain, creator, trader = setup()
    mid = chain.active_market(creator)
    assert custom_code(chain.fails(chain.buy(trader, mid, True, 1_000_000), trader)) == 6034
    chain.ok(chain.buy(trader, mid, True, 2_000_000), trader)


def test_10_zero_share_buy_succeeds_and_counts_as_a_trade() -> None:
    chain, creator, trader = setup()
    mid = chain.active_market(creator)
    chain.ok(chain.buy(trader, mid, True, SOL), trader)
    before = chain.position(mid, trader.pubkey())
    res = chain.ok(chain.buy(trader, mid, True, 10_000), trader)
    ev = events(res)[0]
    assert (ev.shares, ev.cost) == (0, 0)
    after = chain.position(mid, trader.pubkey())
    assert after.trades_count == before.trades_count + 1
    assert after.total_invested == before.total_invested


def test_11_small_b_accepted_at_creation_but_untradeable() -> None:
    chain, creator, trader = setup()
    mid = chain.active_market(creator, b=SOL)
    assert chain.market(mid).b_parameter == SOL
    assert custom_code(chain.fails(chain.buy(trader, mid, True, SOL), trader)) == 6042


def test_13_anyone_resolves_and_collects_the_resolver_fees() -> None:
    chain, creator, trader = setup()
    mid = chain.active_market(creator)
    chain.ok(chain.buy(trader, mid, True, SOL), trader)
    stranger = chain.wallet()
    chain.resolve(stranger, mid, False)  # any wallet, any outcome, right after activation
    m = chain.market(mid)
    assert m.resolver == stranger.pubkey() and m.proposed_outcome is False
    fees = m.accumulated_resolver_fees
    chain.now += 259_200
    chain.finalize(mid)
    # the first *winning* claim pays the resolver; here NO won and nobody holds NO
    claim = ix.claim_winnings(user=trader.pubkey(), market_id=mid, resolver=stranger.pubkey())
    assert custom_code(chain.fails(claim, trader)) == 6023
    assert fees > 0


def test_13_first_winning_claim_pays_the_resolver() -> None:
    chain, creator, trader = setup()
    mid = chain.active_market(creator)
    chain.ok(chain.buy(trader, mid, True, SOL), trader)
    stranger = chain.wallet()
    chain.resolve(stranger, mid, True)
    fees = chain.market(mid).accumulated_resolver_fees
    chain.now += 259_200
    chain.finalize(mid)
    before = chain.lamports(stranger.pubkey())
    chain.ok(
        ix.claim_winnings(user=trader.pubkey(), market_id=mid, resolver=stranger.pubkey()), trader
    )
    assert chain.lamports(stranger.pubkey()) == before + fees
    assert chain.market(mid).accumulated_resolver_fees == 0


def test_15_aggregate_proposal_votes_never_approves() -> None:
    chain, creator, _ = setup()
    mid = chain.create(creator)
    b = chain.backend
    res = chain.ok(
        ix.aggregate_proposal_votes(
            backend_authority=b.pubkey(), market_id=mid, final_likes=100, final_dislikes=0
        ),
        b,
    )
    assert events(res)[0].approved
    assert chain.market(mid).state == MarketState.PROPOSED


def test_16_initialize_is_first_come_and_final() -> None:
    chain = Chain()
    squatter = chain.wallet()
    chain.ok(
        ix.initialize_global_config(
            admin=squatter.pubkey(),
            backend_authority=squatter.pubkey(),
            protocol_fee_wallet=squatter.pubkey(),
        ),
        squatter,
    )
    assert chain.config().admin == squatter.pubkey()
    res = chain.fails(
        ix.initialize_global_config(
            admin=chain.admin.pubkey(),
            backend_authority=chain.backend.pubkey(),
            protocol_fee_wallet=chain.fee_wallet.pubkey(),
        ),
        chain.admin,
    )
    assert custom_code(res) == 0
