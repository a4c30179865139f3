"""Trade quotes: what ``buy_shares``/``sell_shares`` would do now, to the unit.

The numbers come from :mod:`zmartd.chain.quoter`, the chain's own integer
LMSR algorithm, fed with the indexed market account (``b_parameter``,
``shares_yes``, ``shares_no``, ``current_liquidity``) and the fee rates of
the indexed GlobalConfig account (``fees_source: "global_config"``).  Before
the indexer has seen that account the rates are the program's defaults
(300/200/500 bps, what ``initialize_global_config`` writes), and the answer
says so in ``fees_source`` and ``notes``.

When the chain would reject the trade the answer is a 409 ``conflict``
naming the program error: the market's state (not ACTIVE:
``InvalidMarketState``; ``InsufficientLiquidity``), or, with ``errors[0]``
on ``amount`` whose message starts with the program error's name,
everything that depends on the amount (``TradeTooSmall``,
``InsufficientShares``, ``UnderflowError`` in the dead zone, ...).  Not 422:
the request is valid -- what the chain accepts depends on the market's
state at that moment (prices, shares, the wallet's position), which no
schema can state.

Sells: ``amount`` is share-units.  With ``wallet`` the seller's indexed
position is used (``InsufficientShares`` as on chain); without it the quote
assumes the seller holds ``amount``.  The current program reverts every sell
after these checks (docs/chain.md §4.7), which the answer's ``notes`` say.
"""

from __future__ import annotations

from typing import Final, Literal

from zmartd.api import problems
from zmartd.api.handlers.markets import resolve
from zmartd.chain.errors import all_errors
from zmartd.chain.lmsr import QuoteError
from zmartd.chain.quoter import (
    DEFAULT_FEES,
    BuyQuote,
    FeeConfig,
    FeeSplit,
    MarketMath,
    SellQuote,
    prices,
    quote_buy,
    quote_sell,
)
from zmartd.model import views
from zmartd.storage import indexer as indexer_store
from zmartd.storage import positions as position_store
from zmartd.storage.database import Database
from zmartd.storage.indexer import GlobalConfigState
from zmartd.storage.records import MarketRecord

__all__ = ["ACTIVE", "SELL_REVERTS_NOTE", "quote", "quote_market"]

ACTIVE: Final = 2
FeesSource = Literal["global_config", "program_defaults"]
#: errors that describe the market's state rather than the requested amount
_STATE_ERRORS: Final = frozenset({"InvalidMarketState", "InsufficientLiquidity"})
SELL_REVERTS_NOTE: Final = (
    "sell_shares on the current zmart-core program reverts after these checks "
    "(docs/chain.md §4.7): the numbers are what a fixed program would pay"
)
_DEFAULTS_NOTE: Final = (
    "fees are the program defaults (protocol 300, resolver 200, LP 500 bps): no GlobalConfig "
    "has been indexed"
)


def _chain_problem(name: str, detail: str) -> problems.Problem:
    known = next((e for e in all_errors() if e.name == name), None)
    code = f" ({known.code})" if known is not None else ""
    text = f"{name}{code}: {detail}" if detail else f"{name}{code}"
    if name in _STATE_ERRORS:
        return problems.conflict(f"the chain would reject this trade: {text}")
    return problems.Problem(
        "conflict",
        f"the chain would reject this trade: {text}",
        errors=[problems.FieldError(field="amount", message=text)],
    )


async def quote(
    db: Database,
    ref: str,
    *,
    side: Literal["buy", "sell"],
    outcome: Literal["yes", "no"],
    amount: int,
    wallet: str | None = None,
) -> views.Quote:
    market = await resolve(db, ref)
    if market.state != ACTIVE:
        raise _chain_problem(
            "InvalidMarketState", f"the market is {views.STATE_NAMES[market.state]}, not ACTIVE"
        )
    config = await indexer_store.read_global_config(db)
    held: int | None = None
    if side == "sell" and wallet is not None:
        position = await position_store.get_position(db, market.market_id, wallet)
        held = (
            0
            if position is None
            else (position.shares_yes if outcome == "yes" else position.shares_no)
        )
    return quote_market(market, config, side=side, outcome=outcome, amount=amount, held=held)


def quote_market(
    market: MarketRecord,
    config: GlobalConfigState | None,
    *,
    side: Literal["buy", "sell"],
    outcome: Literal["yes", "no"],
    amount: int,
    held: int | None = None,
) -> views.Quote:
    """The quote on an already read market and GlobalConfig (None: not indexed, the
    program's default fees); ``held``: the seller's shares of that side (None: assume
    ``amount``).  The market's state is the caller's check."""
    fees = (
        DEFAULT_FEES
        if config is None
        else FeeConfig(
            config.protocol_fee_bps, config.resolver_reward_bps, config.liquidity_provider_fee_bps
        )
    )
    source: FeesSource = "program_defaults" if config is None else "global_config"
    math = MarketMath(
        b_parameter=market.b_parameter,
        shares_yes=market.shares_yes,
        shares_no=market.shares_no,
        current_liquidity=market.current_liquidity,
    )
    yes = outcome == "yes"
    notes = [_DEFAULTS_NOTE] if config is None else []
    try:
        before = prices(math).yes
        if side == "buy":
            return _view(market, fees, source, quote_buy(math, fees, yes, amount), before, notes)
        result = quote_sell(math, fees, yes, amount, amount if held is None else held)
    except QuoteError as exc:
        raise _chain_problem(exc.name, exc.detail) from None
    return _view(market, fees, source, result, before, [*notes, SELL_REVERTS_NOTE])


def _fees(split: FeeSplit) -> views.QuoteFees:
    return views.QuoteFees(
        protocol=str(split.protocol),
        resolver=str(split.resolver),
        lp=str(split.lp),
        total=str(split.total),
    )


def _view(
    market: MarketRecord,
    fees: FeeConfig,
    source: FeesSource,
    q: BuyQuote | SellQuote,
    before: int,
    notes: list[str],
) -> views.Quote:
    if isinstance(q, BuyQuote):
        side: Literal["buy", "sell"] = "buy"
        amount, gross, paid = q.target_cost, q.cost_before_fees, q.total_cost
    else:
        side, amount, gross, paid = "sell", q.shares, q.proceeds_before_fees, q.net_proceeds
    return views.Quote(
        market_id=market.market_id,
        side=side,
        outcome="YES" if q.outcome_yes else "NO",
        amount=str(amount),
        shares=str(q.shares),
        lamports_before_fees=str(gross),
        fees=_fees(q.fees),
        lamports=str(paid),
        price_yes_before=before,
        price_yes_after=q.new_price_yes,
        price_no_after=q.new_price_no,
        shares_yes_after=str(q.new_shares_yes),
        shares_no_after=str(q.new_shares_no),
        fee_rates=views.FeeRates(
            protocol_bps=fees.protocol_bps, resolver_bps=fees.resolver_bps, lp_bps=fees.lp_bps
        ),
        fees_source=source,
        slot=market.slot,
        notes=notes,
    )
