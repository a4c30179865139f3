"""The legacy response shapes: what the original ZMART web frontend reads, built
from zmartd's own views and feed records (never from a query of their own).

Rules, kept in every shape (docs/legacy-api.md lists them per call):

* ``state`` is the chain's MarketState integer 0..6 (``status`` its name);
  outcomes are ``"YES"``/``"NO"``;
* u64 quantities (share-units with 9 decimals, lamports, b) are decimal strings,
  as in ``/v1`` (the frontend ``BigInt``s or ``Number``s them; JSON numbers
  would lose precision above 2^53);
* prices are a fraction 0..1 (``yesPrice``), or percent 0..100 in the price
  history (``yes``/``no``), as the frontend's components expect per call;
* display strings (``user``, ``action``, ``amount``) are computed from real
  values: shares in whole shares, lamports in SOL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import msgspec

from zmartd.model import views
from zmartd.model.views import PRICE_SCALE, I64Str, MarketStatus, OutcomeName, U64Str
from zmartd.storage.feeds import ActivityRecord, MarketBrief, PricePoint, TrendingRecord
from zmartd.storage.records import CategoryCount

__all__ = [
    "EMOJI",
    "LegacyActivity",
    "LegacyCategory",
    "LegacyDiscussion",
    "LegacyMarket",
    "LegacyPosition",
    "LegacyPricePoint",
    "LegacyRelated",
    "LegacyTrade",
    "LegacyTrending",
    "LegacyUserStats",
    "LegacyVote",
    "activity",
    "category",
    "category_name",
    "discussion",
    "market",
    "position",
    "price_point",
    "question",
    "related",
    "short_wallet",
    "trade",
    "trending",
    "user_stats",
]

#: Shown next to a category in the hot-topics sidebar ("📌" for the others).
EMOJI: Final = {
    "crypto": "🪙",
    "sports": "⚽",
    "politics": "🏛️",
    "economy": "📈",
    "finance": "💰",
    "technology": "💻",
    "tech": "💻",
    "science": "🔬",
    "entertainment": "🎬",
    "weather": "🌦️",
    "gaming": "🎮",
}
_OTHER_EMOJI: Final = "📌"
_SOL: Final = 1_000_000_000


class _Shape(msgspec.Struct, frozen=True, kw_only=True):
    pass


def question(title: str | None, market_id: str) -> str:
    """A market's question: its registered title, or a stand-in naming the market
    while its creator has registered none (the frontend needs a string)."""
    return title if title else f"Market {market_id[:8]}"


def category_name(slug: str | None) -> str:
    """``"us-politics"`` -> ``"Us Politics"``; no category -> ``"Other"``."""
    return " ".join(w.capitalize() for w in slug.split("-")) if slug else "Other"


def short_wallet(wallet: str) -> str:
    return f"{wallet[:6]}...{wallet[-4:]}"


def _fraction(price_e9: int) -> float:
    return round(price_e9 / PRICE_SCALE, 6)


def _sol(lamports: int) -> str:
    return f"{lamports / _SOL:.2f} SOL"


def _shares(units: int) -> str:
    return f"{units / _SOL:,.2f}"


# ---------------------------------------------------------------- markets


class LegacyMarket(_Shape, frozen=True, kw_only=True):
    """A market row (R1 items, R3 body)."""

    id: str
    on_chain_address: str
    question: str
    description: str
    category: str | None
    state: int
    status: MarketStatus
    creator_wallet: str
    b_parameter: U64Str
    initial_liquidity: U64Str
    current_liquidity: U64Str
    shares_yes: U64Str
    shares_no: U64Str
    total_volume: U64Str
    #: YES price as a fraction 0..1
    yes_price: float
    created_at: datetime
    approved_at: datetime | None
    activated_at: datetime | None
    resolution_proposed_at: datetime | None
    resolved_at: datetime | None
    finalized_at: datetime | None
    cancelled_at: datetime | None
    end_time: datetime | None
    proposed_outcome: OutcomeName | None
    final_outcome: OutcomeName | None
    image_url: str | None
    tags: list[str]


def market(m: views.Market) -> LegacyMarket:
    return LegacyMarket(
        id=m.market_id,
        on_chain_address=m.address,
        question=question(m.title, m.market_id),
        description=m.description or "",
        category=m.category,
        state=m.state,
        status=m.status,
        creator_wallet=m.creator,
        b_parameter=m.b_parameter,
        initial_liquidity=m.initial_liquidity,
        current_liquidity=m.current_liquidity,
        shares_yes=m.shares_yes,
        shares_no=m.shares_no,
        total_volume=m.total_volume,
        yes_price=_fraction(m.price_yes),
        created_at=m.created_at,
        approved_at=m.approved_at,
        activated_at=m.activated_at,
        resolution_proposed_at=m.resolution_proposed_at,
        resolved_at=m.resolved_at,
        finalized_at=m.finalized_at,
        cancelled_at=m.cancelled_at,
        end_time=m.end_time,
        proposed_outcome=m.proposed_outcome,
        final_outcome=m.final_outcome,
        image_url=m.image_url,
        tags=m.tags,
    )


class LegacyTrade(_Shape, frozen=True, kw_only=True):
    id: int
    market_id: str
    user_wallet: str
    trade_type: Literal["buy", "sell"]
    outcome: OutcomeName
    #: share-units (9 decimals)
    shares: U64Str
    #: lamports: paid including fees (buy) or received net of fees (sell)
    cost: U64Str
    #: the YES price right after the trade, 0..1
    price: float
    created_at: datetime
    tx_signature: str


def trade(t: views.Trade) -> LegacyTrade:
    return LegacyTrade(
        id=t.id,
        market_id=t.market_id,
        user_wallet=t.wallet,
        trade_type=t.side,
        outcome=t.outcome,
        shares=t.shares,
        cost=t.amount,
        price=_fraction(t.price_yes),
        created_at=t.block_time,
        tx_signature=t.signature,
    )


class LegacyPricePoint(_Shape, frozen=True, kw_only=True):
    timestamp: datetime
    #: percent 0..100
    yes: float
    no: float


def price_point(p: PricePoint) -> LegacyPricePoint:
    yes = round(p.price_yes * 100 / PRICE_SCALE, 4)
    return LegacyPricePoint(timestamp=p.at, yes=yes, no=round(100 - yes, 4))


class LegacyCategory(_Shape, frozen=True, kw_only=True):
    id: str
    name: str
    count: int
    emoji: str
    #: growth of the category's market count over the last 7 days ("+25%"), "new"
    #: when all its markets are that young
    trend: str


def category(c: CategoryCount, before: int, recent: int) -> LegacyCategory:
    # "new": every market of the category is younger than the window
    trend = f"+{round(recent * 100 / before)}%" if before else ("new" if recent else "+0%")
    return LegacyCategory(
        id=c.category,
        name=category_name(c.category),
        count=c.markets,
        emoji=EMOJI.get(c.category, _OTHER_EMOJI),
        trend=trend,
    )


class LegacyTrending(_Shape, frozen=True, kw_only=True):
    id: str
    question: str
    #: 0..1
    yesPrice: float
    #: YES price change over 24 h in percentage points (signed)
    change24h: float
    #: SOL traded in 24 h
    volume24h: float
    uniqueTraders: int
    category: str


def trending(t: TrendingRecord) -> LegacyTrending:
    return LegacyTrending(
        id=t.market_id,
        question=question(t.title, t.market_id),
        yesPrice=_fraction(t.price_yes),
        change24h=round((t.price_yes - t.price_before) * 100 / PRICE_SCALE, 2),
        volume24h=round(t.volume / _SOL, 4),
        uniqueTraders=t.traders,
        category=category_name(t.category),
    )


class LegacyRelated(_Shape, frozen=True, kw_only=True):
    id: str
    question: str
    yesPrice: float
    category: str
    categoryMatch: bool


def related(r: MarketBrief, of_category: str | None) -> LegacyRelated:
    return LegacyRelated(
        id=r.market_id,
        question=question(r.title, r.market_id),
        yesPrice=_fraction(r.price_yes),
        category=category_name(r.category),
        categoryMatch=of_category is not None and r.category == of_category,
    )


class LegacyActivity(_Shape, frozen=True, kw_only=True):
    id: str
    type: Literal["trade", "resolution", "creation"]
    user: str
    action: str
    market: str
    marketId: str
    time: datetime
    amount: str | None = None


def activity(a: ActivityRecord) -> LegacyActivity:
    if a.kind == "trade":
        verb = "bought" if a.side == "buy" else "sold"
        ident = f"trade-{a.trade_id}"
        action = f"{verb} {_shares(a.shares or 0)} {a.outcome} shares"
        amount: str | None = _sol(a.amount or 0)
    elif a.kind == "creation":
        ident, action, amount = f"creation-{a.market_id}", "created a market", None
    else:
        result = views.outcome_name(a.final_outcome) or "INVALID"
        ident, action, amount = f"resolution-{a.market_id}", f"resolved {result}", None
    return LegacyActivity(
        id=ident,
        type=a.kind,
        user=short_wallet(a.wallet),
        action=action,
        market=question(a.title, a.market_id),
        marketId=a.market_id,
        time=a.at,
        amount=amount,
    )


# ---------------------------------------------------------------- users


class LegacyPosition(_Shape, frozen=True, kw_only=True):
    """One portfolio row (R10): lamports and share-units as decimal strings."""

    market_id: str
    question: str
    shares_yes: U64Str
    shares_no: U64Str
    total_invested: U64Str
    current_value: U64Str
    unrealized_pnl: I64Str
    #: unrealized_pnl / total_invested in percent (0 without an investment)
    roi: float
    state: int
    status: MarketStatus
    has_claimed: bool
    claimed_amount: U64Str


def position(p: views.Position) -> LegacyPosition:
    invested = int(p.total_invested)
    pnl = int(p.unrealized_pnl)
    return LegacyPosition(
        market_id=p.market_id,
        question=question(p.market_title, p.market_id),
        shares_yes=p.shares_yes,
        shares_no=p.shares_no,
        total_invested=p.total_invested,
        current_value=p.current_value,
        unrealized_pnl=p.unrealized_pnl,
        roi=round(pnl * 100 / invested, 2) if invested else 0.0,
        state=p.market_state,
        status=p.market_status,
        has_claimed=p.has_claimed,
        claimed_amount=p.claimed_amount,
    )


class LegacyUserStats(_Shape, frozen=True, kw_only=True):
    """``UserStats`` of the frontend's API client (camelCase)."""

    totalTrades: int
    #: lamports bought (incl. fees) + sold (net)
    totalVolume: U64Str
    #: percent of settled positions won; null before any settled position
    winRate: float | None
    #: realized + unrealized P&L, signed lamports
    totalPnL: I64Str
    activePositions: int


def user_stats(s: views.UserStats) -> LegacyUserStats:
    return LegacyUserStats(
        totalTrades=s.trades,
        totalVolume=s.volume,
        winRate=None if s.win_rate_bps is None else s.win_rate_bps / 100,
        totalPnL=str(int(s.realized_pnl) + int(s.unrealized_pnl)),
        activePositions=s.open_positions,
    )


# ---------------------------------------------------------------- discussions, votes


class LegacyDiscussion(_Shape, frozen=True, kw_only=True):
    """``Discussion`` of the frontend's API client.  zmartd has no post votes or flags:
    ``upvotes``/``downvotes`` are 0 and ``isFlagged`` false because none exist."""

    id: int
    marketId: str
    author: str
    content: str | None
    parentId: int | None
    upvotes: int
    downvotes: int
    isFlagged: bool
    isDeleted: bool
    createdAt: datetime
    replies: list[LegacyDiscussion] | None = None


def discussion(
    d: views.Discussion, replies: list[views.Discussion] | None = None
) -> LegacyDiscussion:
    return LegacyDiscussion(
        id=d.id,
        marketId=d.market_id,
        author=d.wallet,
        content=d.content,
        parentId=d.parent_id,
        upvotes=0,
        downvotes=0,
        isFlagged=False,
        isDeleted=d.deleted,
        createdAt=d.created_at,
        replies=None if replies is None else [discussion(r) for r in replies],
    )


class LegacyVote(_Shape, frozen=True, kw_only=True):
    market_id: str
    user_wallet: str
    vote_type: Literal["proposal", "dispute"]
    #: proposal: approve; dispute: support the dispute
    vote: bool
    created_at: datetime
    updated_at: datetime


def vote(v: views.Vote) -> LegacyVote:
    return LegacyVote(
        market_id=v.market_id,
        user_wallet=v.wallet,
        vote_type=v.kind,
        vote=v.vote in ("like", "agree"),
        created_at=v.created_at,
        updated_at=v.updated_at,
    )
