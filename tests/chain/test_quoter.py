"""The quoter against the chain: every vector of lmsr_vectors.json to the unit.

The vectors were produced from the program's own Rust math (docs/chain.md §9.8),
so an exact match here is the evidence that a quote is what the chain will do.
The property tests only assert what the real (quirky) algorithm guarantees:
nothing about monotonicity of C or of the displayed price (§11 items 8-10).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from zmartd.chain import lmsr
from zmartd.chain.errors import ProgramError, lookup
from zmartd.chain.lmsr import QuoteError, S
from zmartd.chain.quoter import (
    DEFAULT_FEES,
    MARKET_RENT_EXEMPT_MINIMUM,
    BuyQuote,
    FeeConfig,
    MarketMath,
    PositionHoldings,
    QuoteInputError,
    SellQuote,
    TargetUnreachable,
    buy_target_for_shares,
    claim_payout,
    prices,
    quote_buy,
    quote_sell,
    refund_amount,
    sell_min_proceeds,
    split_fees,
    withdrawable,
)
from zmartd.chain.spec import load_layout

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "chain" / "lmsr_vectors.json"
DATA: dict[str, Any] = json.loads(FIXTURE.read_text("utf-8"))
VECTORS: list[dict[str, Any]] = DATA["vectors"]


def _of_kind(kind: str) -> list[Any]:
    return [pytest.param(v, id=v["id"]) for v in VECTORS if v["kind"] == kind]


def _fees(i: dict[str, Any]) -> FeeConfig:
    return FeeConfig(
        i["protocol_fee_bps"], i["resolver_reward_bps"], i["liquidity_provider_fee_bps"]
    )


def _error(exc: QuoteError) -> dict[str, Any]:
    return {"ok": False, "error": exc.name, "error_code": exc.code}


def _buy_fields(q: BuyQuote) -> dict[str, Any]:
    return {
        "ok": True,
        "max_cost_before_fees": q.max_cost_before_fees,
        "cost_before_fees": q.cost_before_fees,
        "shares": q.shares,
        "protocol_fee": q.fees.protocol,
        "resolver_fee": q.fees.resolver,
        "lp_fee": q.fees.lp,
        "total_fees": q.fees.total,
        "total_cost": q.total_cost,
        "lamports_user_to_market": q.lamports_to_market,
        "lamports_user_to_protocol_wallet": q.lamports_to_protocol_wallet,
        "new_shares_yes": q.new_shares_yes,
        "new_shares_no": q.new_shares_no,
        "new_price_yes": q.new_price_yes,
        "current_liquidity_delta": q.current_liquidity_delta,
        "total_volume_delta": q.total_volume_delta,
    }


def _sell_fields(q: SellQuote) -> dict[str, Any]:
    return {
        "ok": True,
        "proceeds_before_fees": q.proceeds_before_fees,
        "protocol_fee": q.fees.protocol,
        "resolver_fee": q.fees.resolver,
        "lp_fee": q.fees.lp,
        "total_fees": q.fees.total,
        "net_proceeds": q.net_proceeds,
        "total_payout": q.total_payout,
        "new_current_liquidity": q.new_current_liquidity,
        "new_shares_yes": q.new_shares_yes,
        "new_shares_no": q.new_shares_no,
        "new_price_yes": q.new_price_yes,
        "total_volume_delta": q.total_volume_delta,
    }


# ---------------------------------------------------------------------------
# The fixture itself, so a truncated copy cannot pass silently
# ---------------------------------------------------------------------------


def test_fixture_has_every_vector() -> None:
    counts = DATA["meta"]["counts"]
    assert len(VECTORS) == counts["total"] == 99
    for kind in ("cost_function", "price_yes", "fees", "buy", "sell", "claim"):
        assert len(_of_kind(kind)) == counts[kind]
    assert len({v["id"] for v in VECTORS}) == len(VECTORS)


def test_constants_match_layout() -> None:
    c = load_layout()["constants"]
    assert c["PRECISION"] == lmsr.S
    assert c["LN_2"] == lmsr.LN2
    assert c["MAX_EXP"] == lmsr.MAX_EXP
    assert c["MIN_B"] == lmsr.MIN_B
    assert c["MAX_B_declared_not_enforced"] == lmsr.MAX_B_DECLARED
    assert c["MIN_TRADE_AMOUNT_lamports"] == lmsr.MIN_TRADE_AMOUNT
    assert c["BUY_GROSS_UP_NUMERATOR"] == lmsr.BUY_GROSS_UP_NUMERATOR
    assert c["BUY_GROSS_UP_DENOMINATOR"] == lmsr.BUY_GROSS_UP_DENOMINATOR
    assert c["BINARY_SEARCH_TOLERANCE_share_units"] == lmsr.SEARCH_TOLERANCE
    assert c["BINARY_SEARCH_MAX_ITERATIONS"] == lmsr.SEARCH_MAX_ITERATIONS
    assert c["BINARY_SEARCH_UPPER_BOUND"] == f"{lmsr.SEARCH_UPPER_BOUND_FACTOR} * b"
    d = c["defaults_at_initialize"]
    assert (
        FeeConfig(d["protocol_fee_bps"], d["resolver_reward_bps"], d["liquidity_provider_fee_bps"])
        == DEFAULT_FEES
    )
    # (128 + data_len) * 6960 with the 488-byte market allocation (docs/chain.md §3)
    assert MARKET_RENT_EXEMPT_MINIMUM == (128 + 488) * 6960


# ---------------------------------------------------------------------------
# Vectors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("vector", _of_kind("cost_function"))
def test_cost_function_vector(vector: dict[str, Any]) -> None:
    i = vector["input"]
    try:
        got = {"ok": True, "cost": lmsr.cost_function(i["b"], i["q_yes"], i["q_no"])}
    except QuoteError as exc:
        got = _error(exc)
    assert got == vector["expected"]


@pytest.mark.parametrize("vector", _of_kind("price_yes"))
def test_price_vector(vector: dict[str, Any]) -> None:
    i = vector["input"]
    try:
        p = prices(MarketMath(i["b"], i["q_yes"], i["q_no"]))
        got = {"ok": True, "price_yes": p.yes, "price_no": p.no}
    except QuoteError as exc:
        got = _error(exc)
    assert got == vector["expected"]


@pytest.mark.parametrize("vector", _of_kind("fees"))
def test_fee_vector(vector: dict[str, Any]) -> None:
    i = vector["input"]
    try:
        f = split_fees(i["amount"], _fees(i))
        got = {
            "ok": True,
            "protocol_fee": f.protocol,
            "resolver_fee": f.resolver,
            "lp_fee": f.lp,
            "total_fees": f.total,
        }
    except QuoteError as exc:
        got = _error(exc)
    assert got == vector["expected"]


@pytest.mark.parametrize("vector", _of_kind("buy"))
def test_buy_vector(vector: dict[str, Any]) -> None:
    i = vector["input"]
    market = MarketMath(i["b"], i["q_yes"], i["q_no"])
    try:
        q = quote_buy(market, _fees(i), i["outcome_yes"], i["target_cost"])
        got = _buy_fields(q)
    except QuoteError as exc:
        got = _error(exc)
    assert got == vector["expected"]


@pytest.mark.parametrize("vector", _of_kind("sell"))
def test_sell_vector(vector: dict[str, Any]) -> None:
    i = vector["input"]
    market = MarketMath(i["b"], i["q_yes"], i["q_no"], i["current_liquidity"])
    try:
        q = quote_sell(
            market,
            _fees(i),
            i["outcome_yes"],
            i["shares_to_sell"],
            i["user_shares"],
            i["min_proceeds"],
        )
        got = _sell_fields(q)
    except QuoteError as exc:
        got = _error(exc)
    assert got == vector["expected"]


@pytest.mark.parametrize("vector", _of_kind("claim"))
def test_claim_vector(vector: dict[str, Any]) -> None:
    i = vector["input"]
    market = MarketMath(S * 100, i["mkt_yes"], i["mkt_no"], i["cur_liq"])
    position = PositionHoldings(i["pos_yes"], i["pos_no"], i["pos_invested"])
    try:
        c = claim_payout(
            market,
            position,
            final_outcome=i["final_outcome"],
            accumulated_resolver_fees=i["acc_res"],
            market_lamports=i["lamports"],
        )
        got = {
            "ok": True,
            "winnings": c.winnings,
            "resolver_paid": c.resolver_paid,
            "market_lamports_after": c.market_lamports_after,
            "accumulated_resolver_fees_after": c.accumulated_resolver_fees_after,
        }
        assert c.is_refund is (i["final_outcome"] is None)
    except QuoteError as exc:
        got = _error(exc)
    assert got == vector["expected"]


def test_devnet_scenario_step_by_step() -> None:
    """The documented devnet lifecycle, chaining each step's output into the next."""
    (scenario,) = DATA["scenarios"]
    assert len(scenario["steps"]) == 6
    create = scenario["steps"][0]
    assert create["step"] == "create_market"
    market = MarketMath.fresh(100 * S, 100_000_000)
    assert (market.shares_yes, market.shares_no) == (create["shares_yes"], create["shares_no"])
    assert market.current_liquidity == create["current_liquidity"]
    lamports = create["market_lamports"]
    resolver_fees = 0
    invested = 0
    holdings = {True: 0, False: 0}
    for step in (s for s in scenario["steps"] if s["step"].startswith("buy_shares")):
        outcome_yes = " YES " in step["step"]
        target = 1_000_000_000 if "1 SOL" in step["step"] else 500_000_000
        q = quote_buy(market, DEFAULT_FEES, outcome_yes, target)
        assert {k: v for k, v in _buy_fields(q).items() if k != "ok"} == step["result"]
        lamports += q.lamports_to_market
        resolver_fees += q.accumulated_resolver_fees_delta
        invested += q.total_cost
        holdings[outcome_yes] += q.shares
        market = MarketMath(
            market.b_parameter,
            q.new_shares_yes,
            q.new_shares_no,
            market.current_liquidity + q.current_liquidity_delta,
        )
        assert lamports == step["market_lamports"]
        assert market.current_liquidity == step["current_liquidity"]
    claim_step = next(s for s in scenario["steps"] if s["step"] == "claim_winnings")
    claim = claim_payout(
        market,
        PositionHoldings(holdings[True], holdings[False], invested),
        final_outcome=True,
        accumulated_resolver_fees=resolver_fees,
        market_lamports=lamports,
    )
    assert {
        "ok": True,
        "winnings": claim.winnings,
        "resolver_paid": claim.resolver_paid,
        "market_lamports_after": claim.market_lamports_after,
        "accumulated_resolver_fees_after": claim.accumulated_resolver_fees_after,
    } == claim_step["result"]
    # one wallet is trader and resolver in the scenario
    assert claim.winnings + claim.resolver_paid == claim_step["wallet_receives"]
    withdraw_step = next(s for s in scenario["steps"] if s["step"] == "withdraw_liquidity")
    amount = withdrawable(claim.market_lamports_after)
    assert amount == withdraw_step["withdrawn"]
    assert claim.market_lamports_after - amount == withdraw_step["market_lamports_after"]
    # after the sweep nothing is left to withdraw, and current_liquidity = 0 starves claims
    with pytest.raises(QuoteError) as exc:
        withdrawable(withdraw_step["market_lamports_after"])
    assert exc.value.name == "InsufficientLiquidity"
    drained = MarketMath(market.b_parameter, market.shares_yes, market.shares_no, 0)
    with pytest.raises(QuoteError) as exc:
        claim_payout(
            drained,
            PositionHoldings(1, 0, 1),
            final_outcome=True,
            accumulated_resolver_fees=0,
            market_lamports=withdraw_step["market_lamports_after"],
        )
    assert exc.value.name == "NoWinnings"


# ---------------------------------------------------------------------------
# Primitives: the numbers docs/chain.md §9.2 states
# ---------------------------------------------------------------------------


def test_exp_is_the_pade_approximant() -> None:
    assert lmsr.exp_fixed(0) == S
    assert lmsr.exp_fixed(S) == 2_714_285_715
    assert lmsr.exp_fixed(6 * S) == 7 * S
    assert lmsr.exp_fixed(20 * S) == 1_821_917_808  # (1+10+33.33)/(1-10+33.33)
    # non-monotone: rises to 2*sqrt(3) then falls
    assert lmsr.exp_fixed(3_464_101_615) > lmsr.exp_fixed(3 * S) > lmsr.exp_fixed(S)
    assert lmsr.exp_fixed(6 * S) < lmsr.exp_fixed(3_464_101_615)
    with pytest.raises(QuoteError) as exc:
        lmsr.exp_fixed(20 * S + 1)
    assert exc.value.name == "ExponentTooLarge"


def test_ln_truncation_and_reduction() -> None:
    assert lmsr.ln_fixed(S) == 0
    assert lmsr.ln_fixed(2 * S) == lmsr.LN2
    assert lmsr.ln_fixed(1_999_999_000) == 693_003_614  # 1.43e-4 below ln 2
    assert lmsr.ln_fixed(4 * S) == 2 * lmsr.LN2
    with pytest.raises(QuoteError) as exc:
        lmsr.ln_fixed(0)
    assert exc.value.name == "InvalidInput"


def test_fixed_point_errors() -> None:
    with pytest.raises(QuoteError) as exc:
        lmsr.fdiv(1, 0)
    assert exc.value.name == "DivisionByZero"
    with pytest.raises(QuoteError) as exc:
        lmsr.fdiv(lmsr.U64_MAX, S - 1)
    assert exc.value.name == "OverflowError"
    with pytest.raises(QuoteError) as exc:
        lmsr.fmul(lmsr.U64_MAX, S + 1)
    assert exc.value.name == "OverflowError"
    assert lmsr.fmul(lmsr.U64_MAX, S) == lmsr.U64_MAX


def test_cost_jump_at_balance() -> None:
    """§9.3: C(q+100,000, q) < C(q, q) at b = 100 SOL - the dead zone's cause."""
    b = 100 * S
    assert lmsr.cost_function(b, 100_000_000, 100_000_000) == 69_414_718_000
    assert lmsr.cost_function(b, 100_100_000, 100_000_000) == 69_400_461_400


# ---------------------------------------------------------------------------
# Errors carry the chain's ProgramError
# ---------------------------------------------------------------------------


def test_quote_error_carries_program_error() -> None:
    with pytest.raises(QuoteError) as exc:
        quote_buy(MarketMath.fresh(100 * S, 1), DEFAULT_FEES, True, 9_999)
    err = exc.value
    assert isinstance(err.error, ProgramError)
    assert err.error == lookup(6018)
    assert (err.name, err.code) == ("TradeTooSmall", 6018)
    assert "TradeTooSmall" in str(err)


def test_quote_error_rejects_unknown_names() -> None:
    with pytest.raises(LookupError):
        QuoteError("NotAnError")


def test_bad_inputs_are_typed() -> None:
    with pytest.raises(QuoteInputError):
        MarketMath(-1, 0, 0)
    with pytest.raises(QuoteInputError):
        MarketMath(100 * S, 1 << 64, 0)
    with pytest.raises(QuoteInputError):
        FeeConfig(70_000, 0, 0)
    with pytest.raises(QuoteInputError):
        FeeConfig(True, 0, 0)  # bool is an int to Python, not a u16
    market = MarketMath.fresh(100 * S, S)
    with pytest.raises(QuoteInputError):
        quote_buy(market, DEFAULT_FEES, 1, S)  # type: ignore[arg-type]  # outcome must be bool
    with pytest.raises(QuoteInputError):
        quote_buy(market, DEFAULT_FEES, True, 1.5)  # type: ignore[arg-type]  # no floats
    with pytest.raises(QuoteInputError):
        quote_sell(market, DEFAULT_FEES, True, -1, 0)
    with pytest.raises(QuoteInputError):
        sell_min_proceeds(
            quote_sell(
                MarketMath(100 * S, 1_935_823_062, 100_000_000, 10 * S),
                DEFAULT_FEES,
                True,
                917_911_531,
                917_911_531,
            ),
            10_001,
        )


def test_from_account_duck_typing() -> None:
    class Account:
        b_parameter = 100 * S
        shares_yes = 1_935_823_062
        shares_no = 100_000_000
        current_liquidity = 163_631_806
        total_invested = 999_928_380

    class Config:
        protocol_fee_bps = 300
        resolver_reward_bps = 200
        liquidity_provider_fee_bps = 500

    assert MarketMath.from_account(Account()) == MarketMath(
        100 * S, 1_935_823_062, 100_000_000, 163_631_806
    )
    assert FeeConfig.from_config(Config()) == DEFAULT_FEES
    assert PositionHoldings.from_account(Account()) == PositionHoldings(
        1_935_823_062, 100_000_000, 999_928_380
    )


def test_sell_market_side_smaller_than_sale() -> None:
    # inconsistent inputs (position larger than the market side) still give the chain's error
    market = MarketMath(100 * S, 1_000, 100_000_000, 10 * S)
    with pytest.raises(QuoteError) as exc:
        quote_sell(market, DEFAULT_FEES, True, 2_000, 2_000)
    assert exc.value.name == "InsufficientShares"


def test_claim_resolver_payment_must_keep_rent() -> None:
    """Winnings and resolver fee are two moves, each with its own rent check."""
    market = MarketMath(100 * S, 2 * S, S, S)  # winnings = S * S // 2S = 0.5 SOL
    position = PositionHoldings(S, 0, S)
    fees = 300_000
    lamports = 500_000_000 + fees + MARKET_RENT_EXEMPT_MINIMUM - 1
    with pytest.raises(QuoteError) as exc:  # covered in total; the 2nd move dips below rent
        claim_payout(
            market,
            position,
            final_outcome=True,
            accumulated_resolver_fees=fees,
            market_lamports=lamports,
        )
    assert exc.value.name == "WouldBreakRentExemption"
    ok = claim_payout(
        market,
        position,
        final_outcome=True,
        accumulated_resolver_fees=fees,
        market_lamports=lamports + 1,
    )
    assert ok.winnings == 500_000_000
    assert ok.market_lamports_after == MARKET_RENT_EXEMPT_MINIMUM
    assert (ok.resolver_paid, ok.accumulated_resolver_fees_after) == (fees, 0)


def test_refund_amount() -> None:
    assert refund_amount(PositionHoldings(0, 0, 777)) == 777
    with pytest.raises(QuoteError) as exc:
        refund_amount(PositionHoldings(5, 5, 0))
    assert exc.value.name == "NoWinnings"


# ---------------------------------------------------------------------------
# Off-chain argument helpers
# ---------------------------------------------------------------------------


def test_sell_min_proceeds() -> None:
    market = MarketMath(100 * S, 1_935_823_062, 100_000_000, 10 * S)
    q = quote_sell(market, DEFAULT_FEES, True, 917_911_531, 1_835_823_062)
    assert sell_min_proceeds(q, 0) == q.net_proceeds == 416_436_210
    assert sell_min_proceeds(q, 100) == 416_436_210 * 9_900 // 10_000
    # the chain accepts exactly the net (vector sell-08) and rejects one more (sell-09)
    quote_sell(market, DEFAULT_FEES, True, 917_911_531, 1_835_823_062, sell_min_proceeds(q, 0))


@pytest.mark.parametrize(
    ("market", "outcome_yes", "wanted"),
    [
        pytest.param(MarketMath.fresh(100 * S, S), True, 1_835_823_062, id="fresh-devnet-fill"),
        pytest.param(MarketMath.fresh(100 * S, S), False, 31_000_000, id="fresh-dead-zone-edge"),
        pytest.param(MarketMath(100 * S, 1_100_000_000, 100_000_000), True, 1, id="skewed-1-unit"),
        pytest.param(
            MarketMath(100 * S, 300_100_000_000, 100_000_000), False, 29 * S, id="lead-3b"
        ),
        pytest.param(MarketMath.fresh(1_000 * S, S), False, 1_000 * S, id="b1000-1000-shares"),
    ],
)
def test_buy_target_for_shares(market: MarketMath, outcome_yes: bool, wanted: int) -> None:
    q = buy_target_for_shares(market, DEFAULT_FEES, outcome_yes, wanted)
    assert q.shares >= wanted
    assert quote_buy(market, DEFAULT_FEES, outcome_yes, q.target_cost) == q
    if q.target_cost > lmsr.MIN_TRADE_AMOUNT:  # one lamport less is not enough
        try:
            below = quote_buy(market, DEFAULT_FEES, outcome_yes, q.target_cost - 1)
        except QuoteError:
            return
        assert below.shares < wanted


def test_buy_target_devnet_budget() -> None:
    """1,835,823,062 shares were bought with 1 SOL; the smallest budget is a bit less."""
    q = buy_target_for_shares(MarketMath.fresh(100 * S, S), DEFAULT_FEES, True, 1_835_823_062)
    assert q.target_cost <= 1_000_000_000
    assert q.shares == 1_835_823_062


def test_buy_target_unreachable() -> None:
    market = MarketMath.fresh(100 * S, S)
    with pytest.raises(TargetUnreachable):
        buy_target_for_shares(market, DEFAULT_FEES, True, 20 * 100 * S + 1)
    # YES leads by 12b: buying NO fails for every budget (docs/chain.md §9.7)
    lopsided = MarketMath(100 * S, 1_200_100_000_000, 100_000_000)
    with pytest.raises(TargetUnreachable) as exc:
        buy_target_for_shares(lopsided, DEFAULT_FEES, False, S)
    assert exc.value.last_error is not None
    assert exc.value.last_error.name == "UnderflowError"
    # the chain's answer for every budget surfaces as that chain error
    with pytest.raises(QuoteError) as err:
        buy_target_for_shares(MarketMath.fresh(99 * S, S), DEFAULT_FEES, True, S)
    assert err.value.name == "InvalidBParameter"


# ---------------------------------------------------------------------------
# Properties that the real algorithm guarantees
# ---------------------------------------------------------------------------

u64 = st.integers(0, lmsr.U64_MAX)
bps = st.integers(0, 10_000)
b_values = st.sampled_from([100 * S, 150 * S, 1_000 * S, 12_345_678_900_000, 1_000_000 * S])


@st.composite
def markets(draw: st.DrawFn) -> MarketMath:
    b = draw(b_values)
    seed = b // 1000
    q_yes = seed + draw(st.integers(0, 6 * b))
    q_no = seed + draw(st.integers(0, 6 * b))
    return MarketMath(b, q_yes, q_no, draw(st.one_of(st.integers(0, 10**12), st.just(10**19))))


#: lamport amounts spread over every decade from 10^4 to 10^14 (a flat draw would
#: mostly produce tiny budgets that fill 0 shares)
amounts = st.integers(4, 13).flatmap(lambda e: st.integers(10**e, 10 ** (e + 1)))


fee_configs = st.builds(
    FeeConfig, st.integers(0, 400), st.integers(0, 300), st.integers(0, 500)
).filter(lambda f: f.total_bps > 0)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(amount=st.integers(0, lmsr.U64_MAX // 10_000), p=bps, r=bps, lp=bps)
def test_fee_split_sums_to_total(amount: int, p: int, r: int, lp: int) -> None:
    assume(p + r + lp > 0)
    if amount * (p + r + lp) > lmsr.U64_MAX:
        # The chain multiplies in checked u64: an overflowing split is an error.
        with pytest.raises(QuoteError) as exc:
            split_fees(amount, FeeConfig(p, r, lp))
        assert exc.value.name == "OverflowError"
        return
    f = split_fees(amount, FeeConfig(p, r, lp))
    assert f.protocol + f.resolver + f.lp == f.total == amount * (p + r + lp) // 10_000
    assert min(f.protocol, f.resolver, f.lp) >= 0
    assert f.protocol == f.total * p // (p + r + lp)


@FAST
@given(market=markets())
def test_prices_sum_to_one(market: MarketMath) -> None:
    try:
        p = prices(market)
    except QuoteError as exc:
        assert exc.name == "ExponentTooLarge"
        return
    assert p.yes + p.no == S
    assert 0 < p.yes < S
    # the two branches floor separately: mirrored states agree within one unit
    mirrored = prices(MarketMath(market.b_parameter, market.shares_no, market.shares_yes))
    assert S - 1 <= p.yes + mirrored.yes <= S


@FAST
@given(
    market=markets(),
    fees=fee_configs,
    outcome_yes=st.booleans(),
    target=amounts,
)
def test_buy_success_invariants(
    market: MarketMath, fees: FeeConfig, outcome_yes: bool, target: int
) -> None:
    try:
        q = quote_buy(market, fees, outcome_yes, target)
    except QuoteError as exc:
        assert exc.name in {"UnderflowError", "ExponentTooLarge", "SlippageExceeded"}
        return
    b = market.b_parameter
    assert q.total_cost <= target
    assert q.fees == split_fees(q.cost_before_fees, fees)
    assert q.total_cost == q.cost_before_fees + q.fees.total
    assert q.lamports_to_market + q.lamports_to_protocol_wallet == q.total_cost
    assert q.current_liquidity_delta == q.fees.resolver + q.fees.lp
    assert q.total_volume_delta == q.total_cost
    assert 0 <= q.shares <= 20 * b
    assert q.search_probes <= lmsr.SEARCH_MAX_ITERATIONS
    if outcome_yes:
        assert (q.new_shares_yes, q.new_shares_no) == (
            market.shares_yes + q.shares,
            market.shares_no,
        )
    else:
        assert (q.new_shares_yes, q.new_shares_no) == (
            market.shares_yes,
            market.shares_no + q.shares,
        )
    assert q.cost_before_fees == lmsr.cost_function(
        b, q.new_shares_yes, q.new_shares_no
    ) - lmsr.cost_function(b, market.shares_yes, market.shares_no)
    assert q.new_price_yes == prices(MarketMath(b, q.new_shares_yes, q.new_shares_no)).yes


@FAST
@given(
    market=markets(),
    fees=fee_configs,
    outcome_yes=st.booleans(),
    fraction=st.integers(1, 1000),
    min_proceeds=st.one_of(st.just(0), amounts),
)
def test_sell_success_invariants(
    market: MarketMath, fees: FeeConfig, outcome_yes: bool, fraction: int, min_proceeds: int
) -> None:
    side = market.shares_yes if outcome_yes else market.shares_no
    n = side * fraction // 1000
    try:
        q = quote_sell(market, fees, outcome_yes, n, n, min_proceeds)
    except QuoteError as exc:
        assert exc.name in {
            "UnderflowError",
            "ExponentTooLarge",
            "TradeTooSmall",
            "SlippageExceeded",
            "InsufficientLiquidity",
        }
        return
    assert q.proceeds_before_fees >= lmsr.MIN_TRADE_AMOUNT
    assert q.net_proceeds + q.fees.total == q.proceeds_before_fees
    assert q.net_proceeds >= min_proceeds
    assert q.total_payout == q.net_proceeds + q.fees.protocol <= market.current_liquidity
    assert q.new_current_liquidity == market.current_liquidity - q.total_payout
    assert q.lamports_to_user + q.lamports_to_protocol_wallet == q.total_payout
    assert q.new_shares_yes + q.new_shares_no == market.shares_yes + market.shares_no - n
    assert sell_min_proceeds(q, 0) == q.net_proceeds


@FAST
@given(
    pos=st.integers(1, 10**13),
    extra=st.integers(0, 10**13),
    cur_liq=st.integers(0, 10**13),
    lamports=u64,
)
def test_claims_never_exceed_the_snapshot(
    pos: int, extra: int, cur_liq: int, lamports: int
) -> None:
    market = MarketMath(100 * S, pos + extra, S, cur_liq)
    try:
        c = claim_payout(
            market,
            PositionHoldings(pos, 0, 1),
            final_outcome=True,
            accumulated_resolver_fees=0,
            market_lamports=lamports,
        )
    except QuoteError as exc:
        assert exc.name in {"NoWinnings", "InsufficientLiquidity", "WouldBreakRentExemption"}
        return
    assert 0 < c.winnings <= cur_liq
    assert c.market_lamports_after == lamports - c.winnings >= MARKET_RENT_EXEMPT_MINIMUM


def test_search_stops_at_exactly_the_tolerance() -> None:
    """§9.5: stop when hi - lo <= 10^6 (inclusive).

    With b = 50,000 * 2^21 the bracket 20*b halves to exactly 10^6 after 21
    probes.  The chain stops there and fills 0 shares although a 22nd probe at
    500,000 units would cost 251,658 < the 300,000 budget.
    """
    b = 50_000 * 2**21
    market = MarketMath(b, b // 1000 * 11, b // 1000)
    q = quote_buy(market, DEFAULT_FEES, True, 330_000)
    assert q.max_cost_before_fees == 300_000
    assert (
        lmsr.cost_function(b, market.shares_yes + 500_000, market.shares_no)
        - (lmsr.cost_function(b, market.shares_yes, market.shares_no))
        == 251_658
    )
    assert (q.shares, q.cost_before_fees, q.total_cost, q.search_probes) == (0, 0, 0, 21)
