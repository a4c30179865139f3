"""Exact trade, claim and withdrawal quotes for zmart-core.

Sections cited as § are those of docs/chain.md (§4.6-7, §4.11-12, §9, §10).

The REST ``/quote`` endpoint, the transaction builders and the local chain
double all need to know *precisely* what ``buy_shares`` / ``sell_shares`` /
``claim_winnings`` / ``withdraw_liquidity`` will do: how many share-units, how
many lamports to whom, which error.  These functions run the chain's own integer
algorithm (:mod:`zmartd.chain.lmsr`) with the handler's checks in the handler's
order, and return frozen dataclasses holding every number needed to apply the
instruction to account state.

Inputs are plain ints so that values decoded from ``MarketAccount``,
``GlobalConfig`` and ``UserPosition`` can be passed without importing the codec
(``MarketMath.from_account`` & co. accept any object with the right attribute
names).  Chain rejections raise :class:`QuoteError` (``.error`` is the
:class:`~zmartd.chain.errors.ProgramError`); inputs that could not even be
Borsh-encoded (negative, > u64, bps > u16) raise :class:`QuoteInputError`.

What these functions do *not* check (they depend on accounts, not on numbers):
``ProtocolPaused``, ``InvalidMarketState``, ``Unauthorized`` fee wallet,
``AlreadyClaimed``, ``InvalidResolver``, and the runtime failure that makes
every ``sell_shares`` revert on a real cluster (§4.7, §11 item 1).  The chain
double must check those itself, before calling in here (they come first on
chain).

Chain limits a caller must know about (§9.7):

* **minimum**: ``target_cost`` ≥ 10,000 lamports for a buy, gross proceeds ≥
  10,000 lamports for a sell (``TradeTooSmall``);
* **granularity**: the fill search stops within 10⁶ share-units, so small
  budgets fill **0 shares for 0 lamports** and still "succeed"; with very large
  b the cost quantum b/10⁹ lamports can even give shares for free;
* **dead zone**: on an exactly balanced market (every fresh market) small buys
  fail with ``UnderflowError`` (≤ ~0.001 SOL at b = 100 SOL, ≤ ~0.01 SOL at
  b = 1,000 SOL, ≤ 10 SOL at b = 10⁶ SOL);
* **cap**: at most 20·b share-units per buy; a bigger budget buys ~20·b and
  spends less than ``target_cost``;
* **lopsided markets**: past a lead of 2√3·b buying/selling the trailing side
  fails with ``UnderflowError``; past ~10·b buying the leader fails with
  ``ExponentTooLarge``;
* **fees**: buys gross up by a hard-coded 10 %, so a fee total above 1,000 bps
  makes buys fail with ``SlippageExceeded``; a fee total of 0 makes every trade
  fail with ``DivisionByZero``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from zmartd.chain.lmsr import (
    BPS_DENOMINATOR,
    BUY_GROSS_UP_DENOMINATOR,
    BUY_GROSS_UP_NUMERATOR,
    MAX_TARGET_COST,
    MIN_TRADE_AMOUNT,
    SEARCH_UPPER_BOUND_FACTOR,
    U64_MAX,
    QuoteError,
    S,
    cost_function,
    fee_split,
    price_yes,
    shares_for_cost,
)

__all__ = [
    "DEFAULT_FEES",
    "MARKET_RENT_EXEMPT_MINIMUM",
    "WITHDRAW_SAFETY_MARGIN",
    "BuyQuote",
    "ClaimQuote",
    "FeeConfig",
    "FeeSplit",
    "MarketMath",
    "PositionHoldings",
    "Prices",
    "QuoteError",
    "QuoteInputError",
    "SellQuote",
    "TargetUnreachable",
    "buy_target_for_shares",
    "claim_payout",
    "prices",
    "quote_buy",
    "quote_sell",
    "refund_amount",
    "sell_min_proceeds",
    "split_fees",
    "withdrawable",
]

#: Rent-exempt minimum of a 488-byte MarketAccount: (128 + 488) * 6,960 lamports.
#: Every lamport move out of a market must leave at least this much (§10).
MARKET_RENT_EXEMPT_MINIMUM = 4_287_360
#: ``withdraw_liquidity`` leaves rent + this margin in the market (§4.12).
WITHDRAW_SAFETY_MARGIN = 10_000
_U16_MAX = 0xFFFF


class QuoteInputError(ValueError):
    """An argument no transaction could carry (negative, > u64, bps > u16, …)."""


class TargetUnreachable(Exception):
    """No ``target_cost`` buys the requested number of shares right now.

    ``best_shares`` is the largest fill seen during the search; ``last_error``
    the last chain error met on the way (e.g. ``ExponentTooLarge`` on a
    lopsided market), if any.
    """

    def __init__(self, wanted: int, best_shares: int, last_error: QuoteError | None) -> None:
        self.wanted = wanted
        self.best_shares = best_shares
        self.last_error = last_error
        why = f"; last chain error: {last_error}" if last_error is not None else ""
        super().__init__(
            f"no target_cost fills {wanted} share-units (best fill {best_shares}){why}"
        )


def _u64(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise QuoteInputError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= U64_MAX:
        raise QuoteInputError(f"{name} = {value} is outside u64")
    return value


def _u16(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise QuoteInputError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= _U16_MAX:
        raise QuoteInputError(f"{name} = {value} is outside u16")
    return value


def _flag(name: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise QuoteInputError(f"{name} must be a bool (True = YES), got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


class _MarketFields(Protocol):
    @property
    def b_parameter(self) -> int: ...
    @property
    def shares_yes(self) -> int: ...
    @property
    def shares_no(self) -> int: ...
    @property
    def current_liquidity(self) -> int: ...


class _FeeFields(Protocol):
    @property
    def protocol_fee_bps(self) -> int: ...
    @property
    def resolver_reward_bps(self) -> int: ...
    @property
    def liquidity_provider_fee_bps(self) -> int: ...


class _PositionFields(Protocol):
    @property
    def shares_yes(self) -> int: ...
    @property
    def shares_no(self) -> int: ...
    @property
    def total_invested(self) -> int: ...


@dataclass(frozen=True, slots=True)
class MarketMath:
    """The MarketAccount fields the trading math reads (names as on chain)."""

    b_parameter: int
    shares_yes: int
    shares_no: int
    #: Only sells (liquidity check) and claims (pro-rata pot) use it.
    current_liquidity: int = 0

    def __post_init__(self) -> None:
        _u64("b_parameter", self.b_parameter)
        _u64("shares_yes", self.shares_yes)
        _u64("shares_no", self.shares_no)
        _u64("current_liquidity", self.current_liquidity)

    @classmethod
    def from_account(cls, account: _MarketFields) -> MarketMath:
        """From a decoded MarketAccount (any object with those attributes)."""
        return cls(
            b_parameter=account.b_parameter,
            shares_yes=account.shares_yes,
            shares_no=account.shares_no,
            current_liquidity=account.current_liquidity,
        )

    @classmethod
    def fresh(cls, b_parameter: int, initial_liquidity: int) -> MarketMath:
        """The state ``create_market`` writes: b/1000 seed shares on each side."""
        seed = _u64("b_parameter", b_parameter) // 1000
        return cls(b_parameter, seed, seed, initial_liquidity)


@dataclass(frozen=True, slots=True)
class FeeConfig:
    """GlobalConfig's three fee rates, in basis points (u16 on chain)."""

    protocol_bps: int
    resolver_bps: int
    lp_bps: int

    def __post_init__(self) -> None:
        _u16("protocol_bps", self.protocol_bps)
        _u16("resolver_bps", self.resolver_bps)
        _u16("lp_bps", self.lp_bps)

    @classmethod
    def from_config(cls, config: _FeeFields) -> FeeConfig:
        """From a decoded GlobalConfig (any object with those attributes)."""
        return cls(
            config.protocol_fee_bps, config.resolver_reward_bps, config.liquidity_provider_fee_bps
        )

    @property
    def total_bps(self) -> int:
        return self.protocol_bps + self.resolver_bps + self.lp_bps


#: What ``initialize_global_config`` writes: 3 % / 2 % / 5 %.
DEFAULT_FEES = FeeConfig(300, 200, 500)


@dataclass(frozen=True, slots=True)
class PositionHoldings:
    """The UserPosition fields claims read."""

    shares_yes: int
    shares_no: int
    #: Sum of buy ``total_cost`` incl. fees, never reduced by sells.
    total_invested: int

    def __post_init__(self) -> None:
        _u64("shares_yes", self.shares_yes)
        _u64("shares_no", self.shares_no)
        _u64("total_invested", self.total_invested)

    @classmethod
    def from_account(cls, account: _PositionFields) -> PositionHoldings:
        """From a decoded UserPosition (any object with those attributes)."""
        return cls(account.shares_yes, account.shares_no, account.total_invested)


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeeSplit:
    """Fees of one trade in lamports; ``lp`` takes the rounding remainder."""

    protocol: int
    resolver: int
    lp: int
    total: int


@dataclass(frozen=True, slots=True)
class Prices:
    """Displayed prices (S-scaled): ``no`` is defined on chain as S - ``yes``."""

    yes: int
    no: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BuyQuote:
    """What ``buy_shares(outcome, target_cost)`` does, to the lamport.

    To apply it (§4.6 step 6-8): transfer ``lamports_to_market`` user → market
    and ``lamports_to_protocol_wallet`` user → fee wallet; set the market's
    ``shares_yes``/``shares_no`` to ``new_shares_*``; add ``total_volume_delta``
    to ``total_volume``, ``current_liquidity_delta`` to ``current_liquidity``,
    ``fees.resolver`` to ``accumulated_resolver_fees`` and ``fees.lp`` to
    ``accumulated_lp_fees`` (all checked u64 adds → ``OverflowError``); on the
    position add ``shares`` to the side, ``total_cost`` to ``total_invested``
    and 1 to ``trades_count``.  ``SharesBought{shares, cost = total_cost,
    new_price_yes}`` is emitted even when ``shares`` is 0.

    Order caveat: on chain those checked adds run *before* the post-trade price
    is computed, whereas :func:`quote_buy` raises a price ``ExponentTooLarge``
    before the caller can do them.  The two only disagree when an account
    total would overflow u64 (~1.8·10¹⁰ SOL of volume) in the same trade.
    """

    outcome_yes: bool
    target_cost: int
    #: Pre-fee budget ``target_cost·10,000 // 11,000`` given to the fill search.
    max_cost_before_fees: int
    shares: int
    #: LMSR cost of the fill, before fees: C(q + shares) - C(q).
    cost_before_fees: int
    fees: FeeSplit
    #: ``cost_before_fees + fees.total`` ≤ ``target_cost``; the event's ``cost``.
    total_cost: int
    lamports_to_market: int
    lamports_to_protocol_wallet: int
    new_shares_yes: int
    new_shares_no: int
    new_price_yes: int
    #: resolver + LP fee; the pre-fee cost is *not* added to current_liquidity.
    current_liquidity_delta: int
    total_volume_delta: int
    #: Cost evaluations in the fill search (≈ compute-unit driver on chain).
    search_probes: int

    @property
    def new_price_no(self) -> int:
        return S - self.new_price_yes

    @property
    def accumulated_resolver_fees_delta(self) -> int:
        return self.fees.resolver

    @property
    def accumulated_lp_fees_delta(self) -> int:
        return self.fees.lp


@dataclass(frozen=True, slots=True, kw_only=True)
class SellQuote:
    """What ``sell_shares(outcome, shares_to_sell, min_proceeds)`` computes.

    To apply it (§4.7 step 8-10): market side shares → ``new_shares_*``;
    ``total_volume += total_volume_delta`` (the *gross*, unlike buys);
    ``current_liquidity = new_current_liquidity``; resolver/LP accumulators
    += ``fees.resolver``/``fees.lp``; position side -= ``shares``,
    ``trades_count`` += 1 (``total_invested`` unchanged); pay ``net_proceeds``
    market → user and ``fees.protocol`` market → fee wallet, each only if the
    market keeps its rent-exempt minimum.  On a real cluster that payout step
    always fails (§4.7): the numbers are what a fixed program would use.
    """

    outcome_yes: bool
    shares: int
    min_proceeds: int
    #: C(q) - C(q - shares).
    proceeds_before_fees: int
    fees: FeeSplit
    #: ``proceeds_before_fees - fees.total``; the event's ``proceeds``.
    net_proceeds: int
    #: ``net_proceeds + fees.protocol``, checked against current_liquidity.
    total_payout: int
    new_current_liquidity: int
    new_shares_yes: int
    new_shares_no: int
    new_price_yes: int
    total_volume_delta: int

    @property
    def new_price_no(self) -> int:
        return S - self.new_price_yes

    @property
    def lamports_to_user(self) -> int:
        return self.net_proceeds

    @property
    def lamports_to_protocol_wallet(self) -> int:
        return self.fees.protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimQuote:
    """What ``claim_winnings`` pays (§4.11, §10).

    Apply: move ``winnings`` market → user and ``resolver_paid`` market →
    ``market.resolver``; set ``accumulated_resolver_fees`` to
    ``accumulated_resolver_fees_after``; on the position ``has_claimed = True``
    and ``claimed_amount = winnings``.  Market share totals and
    ``current_liquidity`` are *not* reduced, so every winner is paid from the
    same snapshot.
    """

    #: The market's final outcome: True YES, False NO, None INVALID (refund).
    outcome: bool | None
    #: ``WinningsClaimed.amount`` / ``UserPosition.claimed_amount``.
    winnings: int
    resolver_paid: int
    market_lamports_after: int
    accumulated_resolver_fees_after: int

    @property
    def is_refund(self) -> bool:
        return self.outcome is None


# ---------------------------------------------------------------------------
# Quotes
# ---------------------------------------------------------------------------


def split_fees(amount: int, fees: FeeConfig) -> FeeSplit:
    """§9.6 fee split of a trade amount (``DivisionByZero`` if all bps are 0)."""
    p, r, lp, total = fee_split(
        _u64("amount", amount), fees.protocol_bps, fees.resolver_bps, fees.lp_bps
    )
    return FeeSplit(protocol=p, resolver=r, lp=lp, total=total)


def prices(market: MarketMath) -> Prices:
    """Displayed YES/NO prices of the current state (§9.4).

    ``ExponentTooLarge`` past a lead of 20·b; ``InvalidBParameter`` for b < 100
    SOL.  These are display prices of a non-monotone approximation — never use
    them to estimate a fill; call :func:`quote_buy`.
    """
    yes = price_yes(market.b_parameter, market.shares_yes, market.shares_no)
    return Prices(yes=yes, no=S - yes)


def quote_buy(market: MarketMath, fees: FeeConfig, outcome_yes: bool, target_cost: int) -> BuyQuote:
    """Run ``buy_shares(outcome_yes, target_cost)``'s math (§4.6 steps 2-9, §9.5).

    ``target_cost`` is the fee-inclusive budget T exactly as sent on chain;
    the chain spends *up to* T (``total_cost`` ≤ T) and there is no
    minimum-shares argument.  Errors, in the chain's order: ``TradeTooSmall``
    (T < 10,000), ``OverflowError`` (T > 1,844,674,407,370,955),
    ``InvalidBParameter`` (b < 100 SOL), ``OverflowError``/``ExponentTooLarge``/
    ``UnderflowError`` from the fill search, ``DivisionByZero`` (fee total 0),
    ``SlippageExceeded`` (fees + cost > T, i.e. fee total > 10 %), and
    ``ExponentTooLarge`` from the post-trade price.  See the module docstring
    for the dead zone, granularity and 20·b cap.
    """
    _flag("outcome_yes", outcome_yes)
    _u64("target_cost", target_cost)
    b, q_yes, q_no = market.b_parameter, market.shares_yes, market.shares_no
    if target_cost < MIN_TRADE_AMOUNT:
        raise QuoteError("TradeTooSmall", f"target_cost {target_cost} < {MIN_TRADE_AMOUNT}")
    if target_cost > MAX_TARGET_COST:
        raise QuoteError("OverflowError", "target_cost * 10,000 exceeds u64")
    budget = target_cost * BUY_GROSS_UP_NUMERATOR // BUY_GROSS_UP_DENOMINATOR
    shares, probes = shares_for_cost(b, q_yes, q_no, outcome_yes, budget)
    if outcome_yes:
        new_yes, new_no = q_yes + shares, q_no
    else:
        new_yes, new_no = q_yes, q_no + shares
    if new_yes > U64_MAX or new_no > U64_MAX:  # the chain's checked add in C(q + shares)
        raise QuoteError("OverflowError", "shares + fill exceeds u64")
    before = cost_function(b, q_yes, q_no)
    after = cost_function(b, new_yes, new_no)
    if after < before:
        raise QuoteError("UnderflowError", "cost of fill negative")
    cost = after - before
    split = split_fees(cost, fees)
    total = cost + split.total
    if total > U64_MAX:
        raise QuoteError("OverflowError", "cost + fees exceeds u64")
    if total > target_cost:
        raise QuoteError("SlippageExceeded", f"cost + fees {total} > target_cost {target_cost}")
    return BuyQuote(
        outcome_yes=outcome_yes,
        target_cost=target_cost,
        max_cost_before_fees=budget,
        shares=shares,
        cost_before_fees=cost,
        fees=split,
        total_cost=total,
        lamports_to_market=total - split.protocol,
        lamports_to_protocol_wallet=split.protocol,
        new_shares_yes=new_yes,
        new_shares_no=new_no,
        new_price_yes=price_yes(b, new_yes, new_no),
        current_liquidity_delta=split.resolver + split.lp,
        total_volume_delta=total,
        search_probes=probes,
    )


def quote_sell(
    market: MarketMath,
    fees: FeeConfig,
    outcome_yes: bool,
    shares_to_sell: int,
    user_shares: int,
    min_proceeds: int = 0,
) -> SellQuote:
    """Run ``sell_shares(outcome_yes, shares_to_sell, min_proceeds)``'s math (§4.7, §9.5).

    ``user_shares`` is the position's holding on that side; ``min_proceeds`` is
    compared with the **net** proceeds.  Errors, in the chain's order:
    ``InsufficientShares`` (user holds fewer, or the market side holds fewer),
    ``InvalidBParameter``/``ExponentTooLarge``/``UnderflowError`` from the cost
    difference (selling the trailing side of a lopsided market *raises* C),
    ``TradeTooSmall`` (gross < 10,000), ``DivisionByZero`` (fee total 0),
    ``SlippageExceeded`` (net < min_proceeds), ``InsufficientLiquidity`` (net +
    protocol fee > current_liquidity — which excludes traders' deposits, so most
    real sells fail here), ``ExponentTooLarge`` from the post-trade price.
    """
    _flag("outcome_yes", outcome_yes)
    _u64("shares_to_sell", shares_to_sell)
    _u64("user_shares", user_shares)
    _u64("min_proceeds", min_proceeds)
    b, q_yes, q_no = market.b_parameter, market.shares_yes, market.shares_no
    if user_shares < shares_to_sell:
        raise QuoteError("InsufficientShares", f"position holds {user_shares} < {shares_to_sell}")
    before = cost_function(b, q_yes, q_no)
    side = q_yes if outcome_yes else q_no
    if side < shares_to_sell:
        raise QuoteError("InsufficientShares", f"market side holds {side} < {shares_to_sell}")
    if outcome_yes:
        new_yes, new_no = q_yes - shares_to_sell, q_no
    else:
        new_yes, new_no = q_yes, q_no - shares_to_sell
    after = cost_function(b, new_yes, new_no)
    if after > before:
        raise QuoteError("UnderflowError", "selling raises the cost function")
    gross = before - after
    if gross < MIN_TRADE_AMOUNT:
        raise QuoteError("TradeTooSmall", f"gross proceeds {gross} < {MIN_TRADE_AMOUNT}")
    split = split_fees(gross, fees)
    net = gross - split.total
    if net < min_proceeds:
        raise QuoteError("SlippageExceeded", f"net proceeds {net} < min_proceeds {min_proceeds}")
    payout = net + split.protocol
    if payout > market.current_liquidity:
        raise QuoteError(
            "InsufficientLiquidity",
            f"payout {payout} > current_liquidity {market.current_liquidity}",
        )
    return SellQuote(
        outcome_yes=outcome_yes,
        shares=shares_to_sell,
        min_proceeds=min_proceeds,
        proceeds_before_fees=gross,
        fees=split,
        net_proceeds=net,
        total_payout=payout,
        new_current_liquidity=market.current_liquidity - payout,
        new_shares_yes=new_yes,
        new_shares_no=new_no,
        new_price_yes=price_yes(b, new_yes, new_no),
        total_volume_delta=gross,
    )


# ---------------------------------------------------------------------------
# Off-chain helpers: choosing the arguments to send
# ---------------------------------------------------------------------------


def sell_min_proceeds(quote: SellQuote, slippage_bps: int) -> int:
    """The ``min_proceeds`` to send so the sell reverts if the net falls more
    than ``slippage_bps`` below this quote's net (floor; 0 bps = exact net)."""
    if isinstance(slippage_bps, bool) or not isinstance(slippage_bps, int):
        raise QuoteInputError("slippage_bps must be an int")
    if not 0 <= slippage_bps <= BPS_DENOMINATOR:
        raise QuoteInputError(f"slippage_bps = {slippage_bps} outside 0..{BPS_DENOMINATOR}")
    return quote.net_proceeds * (BPS_DENOMINATOR - slippage_bps) // BPS_DENOMINATOR


def buy_target_for_shares(
    market: MarketMath, fees: FeeConfig, outcome_yes: bool, min_shares: int
) -> BuyQuote:
    """A ``target_cost`` that fills at least ``min_shares`` in the current state.

    The chain has no inverse and no minimum-shares argument (§9.7), so this
    searches over T with :func:`quote_buy` itself: gallop from an estimate
    (the pre-fee cost of ``min_shares`` grossed up by 10 %) to bracket a
    budget that works, then bisect to a T where T works and T - 1 does not
    (fails on chain or fills fewer shares).  Because the chain's fill is not
    monotone in T (dead zone, Padé exp) that T is a *local* minimum, but the
    returned quote is always one that was actually computed for it.

    If the market moves before the transaction lands, the same T fills fewer
    shares — the chain still never spends more than T.  Raises
    :class:`TargetUnreachable` when no T up to the u64 limit fills enough
    (the per-buy cap is ~20·b share-units).
    """
    _flag("outcome_yes", outcome_yes)
    _u64("min_shares", min_shares)
    if min_shares == 0:
        raise QuoteInputError("min_shares must be positive")
    best = 0
    last_error: QuoteError | None = None

    def probe(t: int) -> BuyQuote | None:
        nonlocal best, last_error
        try:
            q = quote_buy(market, fees, outcome_yes, t)
        except QuoteError as exc:
            last_error = exc
            return None
        best = max(best, q.shares)
        return q if q.shares >= min_shares else None

    # Every buy starts with C(q): an error there (b < 100 SOL, a lead past 20·b)
    # is the chain's answer for every budget.
    cost_function(market.b_parameter, market.shares_yes, market.shares_no)
    if min_shares > SEARCH_UPPER_BOUND_FACTOR * market.b_parameter:  # the per-buy cap
        raise TargetUnreachable(min_shares, 0, None)
    t_hi = max(
        MIN_TRADE_AMOUNT, min(MAX_TARGET_COST, _estimate_target(market, outcome_yes, min_shares))
    )
    found = probe(t_hi)
    if found is not None:  # gallop down until a budget fails or the minimum is hit
        t_lo = MIN_TRADE_AMOUNT - 1  # below the minimum counts as failing
        t = t_hi // 2
        while t >= MIN_TRADE_AMOUNT:
            q = probe(t)
            if q is None:
                t_lo = t
                break
            t_hi, found = t, q
            t //= 2
    else:  # gallop up until a budget fills enough
        while found is None:
            if t_hi == MAX_TARGET_COST:
                raise TargetUnreachable(min_shares, best, last_error)
            t_lo, t_hi = t_hi, min(MAX_TARGET_COST, 2 * t_hi)
            found = probe(t_hi)
    while t_hi - t_lo > 1:  # invariant: t_lo fails, t_hi fills enough (found)
        mid = (t_lo + t_hi) // 2
        q = probe(mid)
        if q is None:
            t_lo = mid
        else:
            t_hi, found = mid, q
    return found


def _estimate_target(market: MarketMath, outcome_yes: bool, shares: int) -> int:
    """Pre-fee cost of ``shares`` grossed up by 11/10 — a first guess only."""
    b, q_yes, q_no = market.b_parameter, market.shares_yes, market.shares_no
    try:
        before = cost_function(b, q_yes, q_no)
        if outcome_yes:
            after = cost_function(b, min(U64_MAX, q_yes + shares), q_no)
        else:
            after = cost_function(b, q_yes, min(U64_MAX, q_no + shares))
    except QuoteError:
        return MIN_TRADE_AMOUNT
    if after <= before:
        return MIN_TRADE_AMOUNT
    return -(-(after - before) * BUY_GROSS_UP_DENOMINATOR // BUY_GROSS_UP_NUMERATOR)


# ---------------------------------------------------------------------------
# §10 payouts
# ---------------------------------------------------------------------------


def _move_out(lamports: int, amount: int, rent_minimum: int) -> int:
    """A direct lamport move out of the market, with the program's checks."""
    if amount > lamports:
        raise QuoteError("InsufficientFunds", f"market holds {lamports} < {amount}")
    left = lamports - amount
    if left < rent_minimum:
        raise QuoteError("WouldBreakRentExemption", f"market would keep {left} < {rent_minimum}")
    return left


def refund_amount(position: PositionHoldings) -> int:
    """INVALID-outcome refund: the position's ``total_invested`` (§10).

    Includes fees and ignores any sells; ``NoWinnings`` when it is 0.
    """
    if position.total_invested == 0:
        raise QuoteError("NoWinnings", "nothing invested to refund")
    return position.total_invested


def claim_payout(
    market: MarketMath,
    position: PositionHoldings,
    *,
    final_outcome: bool | None,
    accumulated_resolver_fees: int,
    market_lamports: int,
    rent_exempt_minimum: int = MARKET_RENT_EXEMPT_MINIMUM,
) -> ClaimQuote:
    """``claim_winnings`` for one position (§4.11, §10).

    YES/NO: winnings = user side shares * current_liquidity // market side
    shares (128-bit floor; the denominator includes the unowned b/1000 seed);
    the first winning claim also pays all accumulated resolver fees to the
    resolver.  INVALID (``final_outcome=None``): refund of ``total_invested``,
    resolver not paid.  Errors: ``NoWinnings``, ``InsufficientLiquidity``
    (lamports < winnings + resolver fees), ``WouldBreakRentExemption`` (a move
    would leave less than the rent-exempt minimum), ``DivisionByZero``.
    Account checks (state Finalized, ``AlreadyClaimed``, ``InvalidResolver``)
    are the caller's.
    """
    _u64("accumulated_resolver_fees", accumulated_resolver_fees)
    _u64("market_lamports", market_lamports)
    _u64("rent_exempt_minimum", rent_exempt_minimum)
    if final_outcome is not None:
        _flag("final_outcome", final_outcome)
    if final_outcome is None:
        refund = refund_amount(position)
        if market_lamports < refund:
            raise QuoteError("InsufficientLiquidity", f"market holds {market_lamports} < {refund}")
        left = _move_out(market_lamports, refund, rent_exempt_minimum)
        return ClaimQuote(
            outcome=None,
            winnings=refund,
            resolver_paid=0,
            market_lamports_after=left,
            accumulated_resolver_fees_after=accumulated_resolver_fees,
        )
    if final_outcome:
        user_side, market_side = position.shares_yes, market.shares_yes
    else:
        user_side, market_side = position.shares_no, market.shares_no
    if user_side == 0:
        raise QuoteError("NoWinnings", "no shares on the winning side")
    if market_side == 0:
        raise QuoteError("DivisionByZero", "market holds no winning shares")
    winnings = user_side * market.current_liquidity // market_side
    if winnings > U64_MAX:
        raise QuoteError("OverflowError", "winnings exceed u64")
    if winnings == 0:
        raise QuoteError("NoWinnings", "pro-rata share rounds to 0")
    needed = winnings + accumulated_resolver_fees
    if needed > U64_MAX:
        raise QuoteError("OverflowError", "winnings + resolver fees exceed u64")
    if market_lamports < needed:
        raise QuoteError("InsufficientLiquidity", f"market holds {market_lamports} < {needed}")
    left = _move_out(market_lamports, winnings, rent_exempt_minimum)
    paid = accumulated_resolver_fees
    if paid > 0:
        left = _move_out(left, paid, rent_exempt_minimum)
    return ClaimQuote(
        outcome=final_outcome,
        winnings=winnings,
        resolver_paid=paid,
        market_lamports_after=left,
        accumulated_resolver_fees_after=0 if paid > 0 else accumulated_resolver_fees,
    )


def withdrawable(
    market_lamports: int, rent_exempt_minimum: int = MARKET_RENT_EXEMPT_MINIMUM
) -> int:
    """What ``withdraw_liquidity`` moves to the creator (§4.12, §10).

    Everything above rent-exempt minimum + 10,000 lamports — the traders'
    deposits included, not just LP fees; ``InsufficientLiquidity`` when that is
    0.  The instruction then sets ``current_liquidity`` and
    ``accumulated_lp_fees`` to 0, so later winning claims get ``NoWinnings``.
    """
    _u64("market_lamports", market_lamports)
    _u64("rent_exempt_minimum", rent_exempt_minimum)
    keep = rent_exempt_minimum + WITHDRAW_SAFETY_MARGIN
    amount = market_lamports - keep if market_lamports > keep else 0
    if amount == 0:
        raise QuoteError("InsufficientLiquidity", f"market holds {market_lamports} <= {keep}")
    return amount
