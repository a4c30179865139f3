"""The shapes of the REST API's answers, and the converters from storage records.

Every ``/v1`` response body (and every bus :class:`~zmartd.bus.DomainEvent`'s
``data``, so that a WebSocket client can apply an event without refetching)
is one of these msgspec Structs.  Storage returns typed records; the
``*_view`` functions here are the only place that turns them into what a
client sees, so the REST API and the event stream cannot drift apart.

Conventions (also stated in the OpenAPI document):

* **u64 quantities are decimal strings** (``"1835823062"``): lamports,
  share-units, liquidity, volume, b.  They exceed 2^53 in practice (the chain's
  share-units carry 9 decimals), and JavaScript's ``JSON.parse`` silently
  rounds such numbers.  Signed lamport sums (P&L) are decimal strings too.
  Counts (trades, votes, u32 counters) and slots are JSON integers.
* **Prices are integers scaled by 10^9** (``price_yes`` 512000000 = 0.512),
  exactly the chain's ``new_price_yes``; ``price_no = 10^9 - price_yes``.
  One share is 10^9 share-units, so *share-units x price / 10^9* is lamports.
* ``state`` is the chain's MarketState integer 0..6; ``status`` its name.
* Outcomes are ``"YES"``/``"NO"``; sides ``"buy"``/``"sell"``.
* Times are RFC 3339 UTC strings; absent times are ``null``.
* ``market_id`` is the 64-hex on-chain market id (the key of every URL).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec

from zmartd.chain.lmsr import U64_MAX, QuoteError
from zmartd.chain.quoter import MarketMath, PositionHoldings, QuoteInputError, claim_payout
from zmartd.model.wire import enc_hook
from zmartd.storage.aggregator import AggregationOutcome
from zmartd.storage.alerts import AlertRecord
from zmartd.storage.claims import ClaimTotals as ClaimTotalsRecord
from zmartd.storage.records import (
    AnchorRecord,
    CandleRecord,
    DiscussionRecord,
    DiscussionThread,
    HolderRecord,
    MarketMetadataRecord,
    MarketRecord,
    PositionRecord,
    TradeRecord,
    UserRecord,
    VoteRecord,
    VoteTally,
)
from zmartd.storage.records import PlatformStats as PlatformStatsRecord
from zmartd.storage.records import UserStats as UserStatsRecord

__all__ = [
    "PRICE_SCALE",
    "STATE_NAMES",
    "Alert",
    "Candle",
    "Candles",
    "ClaimTotals",
    "Discussion",
    "DiscussionThreadView",
    "FeeRates",
    "Holder",
    "I64Str",
    "Market",
    "MarketMetadata",
    "MarketStatus",
    "PlatformStats",
    "Position",
    "Quote",
    "QuoteFees",
    "Snapshot",
    "SnapshotLinks",
    "Trade",
    "TxBuilt",
    "TxQuote",
    "TxStatus",
    "TxSubmitted",
    "U64Str",
    "UserProfile",
    "UserStats",
    "Vote",
    "VoteSummary",
    "VoteTallyView",
    "alert_view",
    "candle_view",
    "claim_totals_view",
    "claimable",
    "discussion_view",
    "holder_view",
    "market_view",
    "metadata_view",
    "outcome_name",
    "platform_stats_view",
    "position_value",
    "position_view",
    "snapshot_view",
    "tally_view",
    "thread_view",
    "to_builtins",
    "trade_view",
    "user_stats_view",
    "user_view",
    "vote_choice",
    "vote_view",
]

#: Prices and share-units carry 9 decimals (the chain's fixed-point scale).
PRICE_SCALE: Final = 1_000_000_000

_ACTIVE: Final = 2
_FINALIZED: Final = 5

MarketStatus = Literal[
    "PROPOSED", "APPROVED", "ACTIVE", "RESOLVING", "DISPUTED", "FINALIZED", "CANCELLED"
]
STATE_NAMES: Final[tuple[MarketStatus, ...]] = (
    "PROPOSED",
    "APPROVED",
    "ACTIVE",
    "RESOLVING",
    "DISPUTED",
    "FINALIZED",
    "CANCELLED",
)

U64Str = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(0|[1-9][0-9]{0,19})$",
        description="u64 as a decimal string (lamports or share-units; 10^9 share-units = 1 share)",
    ),
]
I64Str = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(0|-?[1-9][0-9]{0,19})$",
        description="signed lamports as a decimal string",
    ),
]
MarketId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9a-f]{64}$", description="the 32-byte on-chain market id, 64 lowercase hex"
    ),
]
Price = Annotated[
    int, msgspec.Meta(ge=0, le=PRICE_SCALE, description="price scaled by 10^9 (500000000 = 0.5)")
]
State = Annotated[int, msgspec.Meta(ge=0, le=6, description="MarketState 0..6")]
OutcomeName = Literal["YES", "NO"]
V = TypeVar("V", bound=msgspec.Struct)
VoteChoice = Literal["like", "dislike", "agree", "disagree"]


def _s(value: int) -> str:
    return str(value)


def outcome_name(value: bool | None) -> OutcomeName | None:
    """The chain's ``Option<bool>`` outcome (true = YES) as ``"YES"``/``"NO"``/None."""
    return None if value is None else ("YES" if value else "NO")


def _outcome(value: bool | str | None) -> OutcomeName | None:
    # records hold the chain's Option<bool> (markets) or already the name (trades)
    return value if isinstance(value, str) else outcome_name(value)  # type: ignore[return-value]


class _View(msgspec.Struct, frozen=True, kw_only=True):
    pass


# The wire rules, declared once by the view's annotation: a field typed U64Str or I64Str
# is the record's integer as decimal text, OutcomeName is the chain's Option<bool> as a
# name, a list is the record's tuple; every other field is the record's value as it is.
_RULES: Final[tuple[tuple[Any, Callable[[Any], Any]], ...]] = (
    (U64Str, _s),
    (I64Str, _s),
    (OutcomeName, _outcome),
    (OutcomeName | None, _outcome),
    (list[str], list),
)
_Builder = Callable[[Any, dict[str, Any]], Any]
_BUILDERS: dict[tuple[type, type, frozenset[str]], _Builder] = {}


def _builder(view: type[msgspec.Struct], record: type, derived: frozenset[str]) -> _Builder:
    """A function ``(record, derived) -> view`` for one (view, record, derived names)
    combination, compiled once: as fast as a hand-written constructor call (a generic
    per-field loop doubled market_view's cost), and still derived from the types."""
    hints = typing.get_type_hints(view, include_extras=True)
    have = set(getattr(record, "__struct_fields__", ()))
    convs: dict[str, Callable[[Any], Any]] = {}
    args = []
    for name in view.__struct_fields__:
        if name in derived or name not in have:
            continue
        conv = next((c for t, c in _RULES if hints[name] == t), None)
        if conv is None:
            args.append(f"{name}=r.{name}")
        else:
            convs[f"_c_{name}"] = conv
            args.append(f"{name}=_c_{name}(r.{name})")
    namespace: dict[str, Any] = {"_V": view, **convs}
    exec(f"def build(r, d):\n    return _V({', '.join(args)}, **d)\n", namespace)
    built: _Builder = namespace["build"]
    return built


def derive(view: type[V], record: msgspec.Struct, **derived: Any) -> V:
    """The view of ``record``: every view field the record has, by the wire rules above,
    plus the ``derived`` fields (computed ones, such as ``status`` or ``price_no``)."""
    key = (view, type(record), frozenset(derived))
    build = _BUILDERS.get(key)
    if build is None:
        build = _BUILDERS[key] = _builder(view, type(record), key[2])
    result: V = build(record, derived)
    return result


# ---------------------------------------------------------------- markets


class Market(_View, frozen=True, kw_only=True):
    """A market: the chain account mirrored by the indexer plus the creator's metadata.

    Metadata fields are null (tags empty) until the creator registers them.
    Vote counters are the numbers last *stored on chain* by an aggregation;
    live tallies are at ``/v1/markets/{market_id}/votes``.
    """

    market_id: MarketId
    address: str
    creator: str
    state: State
    status: MarketStatus
    title: str | None
    description: str | None
    category: str | None
    tags: list[str]
    image_url: str | None
    resolution_source: str | None
    end_time: datetime | None
    b_parameter: U64Str
    initial_liquidity: U64Str
    current_liquidity: U64Str
    shares_yes: U64Str
    shares_no: U64Str
    total_volume: U64Str
    price_yes: Price
    price_no: Price
    created_at: datetime
    approved_at: datetime | None
    activated_at: datetime | None
    resolution_proposed_at: datetime | None
    resolved_at: datetime | None
    finalized_at: datetime | None
    dispute_initiated_at: datetime | None
    cancelled_at: datetime | None
    resolver: str | None
    proposed_outcome: OutcomeName | None
    final_outcome: OutcomeName | None
    ipfs_question_hash: str | None
    ipfs_evidence_hash: str | None
    dispute_initiator: str | None
    accumulated_resolver_fees: U64Str
    accumulated_lp_fees: U64Str
    proposal_likes: int
    proposal_dislikes: int
    proposal_total_votes: int
    dispute_agree: int
    dispute_disagree: int
    dispute_total_votes: int
    was_disputed: bool
    #: slot of the account state shown
    slot: int
    #: true once that slot is finalized (false = confirmed only)
    finalized: bool
    updated_at: datetime


def market_view(m: MarketRecord) -> Market:
    return derive(Market, m, status=STATE_NAMES[m.state], price_no=PRICE_SCALE - m.price_yes)


class MarketMetadata(_View, frozen=True, kw_only=True):
    """What the creator registered off chain for a market."""

    market_id: MarketId
    creator: str
    title: str
    description: str
    category: str | None
    tags: list[str]
    image_url: str | None
    resolution_source: str | None
    end_time: datetime | None
    created_at: datetime
    updated_at: datetime


def metadata_view(m: MarketMetadataRecord) -> MarketMetadata:
    return derive(MarketMetadata, m)


# ---------------------------------------------------------------- trading


class Trade(_View, frozen=True, kw_only=True):
    """A SharesBought/SharesSold event."""

    id: int
    market_id: MarketId
    wallet: str
    side: Literal["buy", "sell"]
    outcome: OutcomeName
    shares: U64Str
    #: buy: lamports paid including fees; sell: lamports received net of fees
    amount: U64Str
    #: the market's YES price right after this trade
    price_yes: Price
    price_no: Price
    block_time: datetime
    slot: int
    signature: str
    finalized: bool


def trade_view(t: TradeRecord) -> Trade:
    return derive(Trade, t, price_no=PRICE_SCALE - t.price_yes)


def position_value(
    *,
    state: int,
    price_yes: int,
    final_outcome: bool | None,
    shares_yes: int,
    shares_no: int,
    total_invested: int,
    has_claimed: bool,
) -> int:
    """What a position is worth now, in lamports (the P&L valuation rule).

    * open markets (PROPOSED..DISPUTED): each side at the last displayed price,
      ``shares x price / 10^9``;
    * FINALIZED with an outcome: winning share-units at 1 lamport each (a share
      pays out 1 SOL), losing ones at 0; FINALIZED without an outcome (INVALID):
      the refund of ``total_invested``;
    * already claimed, or CANCELLED (the program has no refund instruction): 0.
    """
    if has_claimed or state == 6:
        return 0
    if state == 5:
        if final_outcome is None:
            return total_invested
        return shares_yes if final_outcome else shares_no
    return (shares_yes * price_yes + shares_no * (PRICE_SCALE - price_yes)) // PRICE_SCALE


class Position(_View, frozen=True, kw_only=True):
    """A wallet's UserPosition in one market, valued at the market's current price."""

    market_id: MarketId
    wallet: str
    address: str
    shares_yes: U64Str
    shares_no: U64Str
    #: sum of buy costs including fees (the chain never reduces it on sells)
    total_invested: U64Str
    trades_count: int
    last_trade_at: datetime
    has_claimed: bool
    claimed_amount: U64Str
    market_title: str | None
    market_state: State
    market_status: MarketStatus
    market_price_yes: Price
    market_final_outcome: OutcomeName | None
    #: lamports, see position_value in the API description
    current_value: U64Str
    #: current_value + claimed_amount - total_invested
    unrealized_pnl: I64Str
    slot: int
    finalized: bool
    #: lamports ``claim_winnings`` would pay now (FINALIZED, unclaimed), by the chain's
    #: claim math on the indexed market; 0 when there is nothing to claim.  The market
    #: account's lamport balance is not indexed: a claim it cannot cover still fails
    #: (``InsufficientLiquidity``, see ``POST /v1/tx/claim``)
    claimable: U64Str = "0"
    #: whether a sell of this position can land now: ACTIVE, shares held, and a program
    #: whose sells work (never on the deployed program, where every sell reverts)
    can_sell: bool = False
    #: whether the wallet can withdraw the market's liquidity now (it created the
    #: market, FINALIZED, liquidity not yet withdrawn)
    can_withdraw: bool = False


def claimable(p: PositionRecord) -> int:
    """What ``claim_winnings`` pays this position now (0: nothing to claim)."""
    if p.market_state != _FINALIZED or p.has_claimed:
        return 0
    try:
        return claim_payout(
            MarketMath(
                b_parameter=p.market_b_parameter,
                shares_yes=p.market_shares_yes,
                shares_no=p.market_shares_no,
                current_liquidity=p.market_current_liquidity,
            ),
            PositionHoldings(
                shares_yes=p.shares_yes, shares_no=p.shares_no, total_invested=p.total_invested
            ),
            final_outcome=p.market_final_outcome,
            accumulated_resolver_fees=p.market_accumulated_resolver_fees,
            # not indexed: the balance check is the chain's (see Position.claimable)
            market_lamports=U64_MAX,
        ).winnings
    except (QuoteError, QuoteInputError):
        return 0


def position_view(p: PositionRecord, *, sells_work: bool = False) -> Position:
    """``sells_work``: the program's sells pay (only the patched chain double)."""
    value = position_value(
        state=p.market_state,
        price_yes=p.market_price_yes,
        final_outcome=p.market_final_outcome,
        shares_yes=p.shares_yes,
        shares_no=p.shares_no,
        total_invested=p.total_invested,
        has_claimed=p.has_claimed,
    )
    return derive(
        Position,
        p,
        market_status=STATE_NAMES[p.market_state],
        current_value=_s(value),
        unrealized_pnl=_s(value + p.claimed_amount - p.total_invested),
        claimable=_s(claimable(p)),
        can_sell=sells_work and p.market_state == _ACTIVE and p.shares_yes + p.shares_no > 0,
        can_withdraw=(
            p.market_state == _FINALIZED
            and p.wallet == p.market_creator
            and p.market_current_liquidity > 0
        ),
    )


class Holder(_View, frozen=True, kw_only=True):
    wallet: str
    shares_yes: U64Str
    shares_no: U64Str
    total_invested: U64Str


def holder_view(h: HolderRecord) -> Holder:
    return Holder(
        wallet=h.wallet,
        shares_yes=_s(h.shares_yes),
        shares_no=_s(h.shares_no),
        total_invested=_s(h.total_invested),
    )


class Candle(_View, frozen=True, kw_only=True):
    """OHLC of the YES price over ``[start, start + interval)`` (buckets aligned to the epoch)."""

    start: datetime
    open: Price
    high: Price
    low: Price
    close: Price
    #: lamports traded in the bucket
    volume: U64Str
    #: price points (trades, creation, snapshots) in the bucket
    points: int


def candle_view(c: CandleRecord) -> Candle:
    return Candle(
        start=c.start,
        open=c.open,
        high=c.high,
        low=c.low,
        close=c.close,
        volume=_s(c.volume),
        points=c.points,
    )


class Candles(_View, frozen=True, kw_only=True):
    """Only buckets with points are listed: carry the previous close over gaps."""

    market_id: MarketId
    interval: Literal["1m", "5m", "1h", "1d"]
    start: datetime
    end: datetime
    candles: list[Candle]


class QuoteFees(_View, frozen=True, kw_only=True):
    """Fees of the trade in lamports; ``lp`` takes the rounding remainder."""

    protocol: U64Str
    resolver: U64Str
    lp: U64Str
    total: U64Str


class FeeRates(_View, frozen=True, kw_only=True):
    protocol_bps: int
    resolver_bps: int
    lp_bps: int


class Quote(_View, frozen=True, kw_only=True):
    """What ``buy_shares``/``sell_shares`` would do right now, to the unit (the chain's math).

    buy: ``amount`` is the fee-inclusive budget sent as ``target_cost``;
    ``lamports`` is what the chain takes (``total_cost`` <= budget).
    sell: ``amount`` is the share-units to sell; ``lamports`` is the net
    proceeds (gross minus fees) the chain computes.
    """

    market_id: MarketId
    side: Literal["buy", "sell"]
    outcome: OutcomeName
    amount: U64Str
    shares: U64Str
    #: buy: LMSR cost before fees; sell: gross proceeds before fees
    lamports_before_fees: U64Str
    fees: QuoteFees
    #: buy: total_cost paid (incl. fees); sell: net proceeds
    lamports: U64Str
    price_yes_before: Price
    price_yes_after: Price
    price_no_after: Price
    shares_yes_after: U64Str
    shares_no_after: U64Str
    fee_rates: FeeRates
    #: "program_defaults" until a GlobalConfig is indexed (300/200/500 bps)
    fees_source: Literal["global_config", "program_defaults"]
    #: market slot the quote was computed from
    slot: int
    notes: list[str]


# ---------------------------------------------------------------- votes


def vote_choice(kind: str, vote: bool) -> VoteChoice:
    if kind == "proposal":
        return "like" if vote else "dislike"
    return "agree" if vote else "disagree"


class Vote(_View, frozen=True, kw_only=True):
    """One wallet's proposal (like/dislike) or dispute (agree/disagree) vote."""

    market_id: MarketId
    wallet: str
    kind: Literal["proposal", "dispute"]
    vote: VoteChoice
    #: offchain = cast through this API; onchain = a VoteRecord account
    source: Literal["offchain", "onchain"]
    created_at: datetime
    updated_at: datetime
    aggregated_at: datetime | None
    #: true once aggregated or cast on chain: it can no longer change
    locked: bool
    #: false when the vote policy ([votes]) keeps this vote out of tallies
    counted: bool = True
    #: why it is not counted: no_history (no position or trade), address_limit
    excluded: Literal["no_history", "address_limit"] | None = None


def vote_view(v: VoteRecord) -> Vote:
    return Vote(
        market_id=v.market_id,
        wallet=v.wallet,
        kind=v.kind,
        vote=vote_choice(v.kind, v.vote),
        source=v.source,
        created_at=v.created_at,
        updated_at=v.updated_at,
        aggregated_at=v.aggregated_at,
        locked=v.source == "onchain" or v.aggregated_at is not None,
        counted=v.excluded is None,
        excluded=v.excluded,
    )


#: The program's default thresholds and the aggregator's default min_votes, when none are given.
_DEFAULT_THRESHOLDS: Final = {"proposal": 7000, "dispute": 6000}
_DEFAULT_MIN_VOTES: Final = 10


class VoteTallyView(_View, frozen=True, kw_only=True):
    """Live counts of one kind of vote, and what the aggregator would decide."""

    kind: Literal["proposal", "dispute"]
    #: likes (proposal) or agrees (dispute)
    yes: int
    #: dislikes or disagrees
    no: int
    total: int
    #: votes not yet covered by an aggregation
    pending: int
    last_aggregation_id: int | None
    #: yes x 10000 // total (the chain's integer floor); null without votes
    approval_bps: int | None
    #: GlobalConfig proposal_approval_threshold / dispute_success_threshold (inclusive)
    threshold_bps: int
    #: [aggregator] min_votes: fewer votes and the aggregator does not act
    min_votes: int
    meets_threshold: bool
    #: votes kept but not counted, by reason ([votes] policy): no_history, address_limit
    excluded: dict[str, int] = msgspec.field(default_factory=dict)


def tally_view(
    tally: VoteTally, *, threshold_bps: int | None = None, min_votes: int | None = None
) -> VoteTallyView:
    """``threshold_bps``/``min_votes`` default to the program's and ``[aggregator]``'s defaults."""
    threshold = _DEFAULT_THRESHOLDS[tally.kind] if threshold_bps is None else threshold_bps
    minimum = _DEFAULT_MIN_VOTES if min_votes is None else min_votes
    approval = tally.yes * 10_000 // tally.total if tally.total else None
    return VoteTallyView(
        kind=tally.kind,
        yes=tally.yes,
        no=tally.no,
        total=tally.total,
        pending=tally.pending,
        last_aggregation_id=tally.last_aggregation_id,
        approval_bps=approval,
        threshold_bps=threshold,
        min_votes=minimum,
        meets_threshold=approval is not None and tally.total >= minimum and approval >= threshold,
        excluded=dict(tally.excluded),
    )


class IntentView(_View, frozen=True, kw_only=True):
    """The on-chain transaction an aggregation became (see ``zmartd intents``)."""

    id: int
    kind: str
    #: pending / signed (on the wire) / landed / failed
    state: str
    signature: str | None
    #: the program error that failed it, if any
    error_name: str | None


class AggregationView(_View, frozen=True, kw_only=True):
    """The aggregator's last decision for one kind of vote of a market."""

    kind: Literal["proposal", "dispute"]
    at: datetime
    #: e.g. approved, not_approved, needs_admin, in_flight, voting_open, finalized, error
    outcome: str
    detail: str
    #: the counts the decision was about (on chain, or frozen for sending)
    yes: int
    no: int
    aggregation_id: int | None
    intent: IntentView | None


def aggregation_view(o: AggregationOutcome) -> AggregationView:
    intent = None
    if o.intent_id is not None and o.intent_kind is not None and o.intent_state is not None:
        intent = IntentView(
            id=o.intent_id,
            kind=o.intent_kind,
            state=o.intent_state,
            signature=o.signature,
            error_name=o.error_name,
        )
    return AggregationView(
        kind=o.kind,
        at=o.at,
        outcome=o.outcome,
        detail=o.detail,
        yes=o.yes,
        no=o.no,
        aggregation_id=o.aggregation_id,
        intent=intent,
    )


class VoteSummary(_View, frozen=True, kw_only=True):
    """Both tallies of a market, which one is open, and the deadlines."""

    market_id: MarketId
    state: State
    status: MarketStatus
    #: proposal votes are taken while PROPOSED, dispute votes while DISPUTED
    accepting: Literal["proposal", "dispute"] | None
    proposal: VoteTallyView
    dispute: VoteTallyView
    resolution_proposed_at: datetime | None
    #: seconds; the chain's GlobalConfig.dispute_period (program default 72 h)
    dispute_period: int
    dispute_period_source: Literal["global_config", "program_defaults"]
    #: resolution_proposed_at + dispute_period: disputes may be opened strictly before,
    #: an undisputed market may be finalized at or after it
    dispute_window_ends_at: datetime | None
    #: the vote aggregator's last decision per kind, with the intent it submitted
    aggregations: list[AggregationView] = []


# ---------------------------------------------------------------- discussions


class Discussion(_View, frozen=True, kw_only=True):
    """A post; ``content`` is null once deleted (the post keeps its place in the thread)."""

    id: int
    market_id: MarketId
    parent_id: int | None
    wallet: str
    content: str | None
    created_at: datetime
    edited_at: datetime | None
    deleted: bool


def discussion_view(d: DiscussionRecord) -> Discussion:
    return Discussion(
        id=d.id,
        market_id=d.market_id,
        parent_id=d.parent_id,
        wallet=d.wallet,
        content=None if d.deleted else d.content,
        created_at=d.created_at,
        edited_at=d.edited_at,
        deleted=d.deleted,
    )


class DiscussionThreadView(_View, frozen=True, kw_only=True):
    """A top-level post and all its replies at any depth, oldest first (follow parent_id)."""

    root: Discussion
    replies: list[Discussion]


def thread_view(t: DiscussionThread) -> DiscussionThreadView:
    return DiscussionThreadView(
        root=discussion_view(t.root), replies=[discussion_view(r) for r in t.replies]
    )


# ---------------------------------------------------------------- users, platform


class UserStats(_View, frozen=True, kw_only=True):
    """A wallet's activity and P&L (lamports; see the P&L rule in the API description)."""

    trades: int
    #: lamports bought (incl. fees) + sold (net)
    volume: U64Str
    bought: U64Str
    sold: U64Str
    claimed: U64Str
    realized_pnl: I64Str
    unrealized_pnl: I64Str
    markets_traded: int
    open_positions: int
    markets_created: int
    winning_positions: int
    losing_positions: int
    #: winning / (winning + losing) in basis points; null before any settled position
    win_rate_bps: int | None
    proposal_votes: int
    dispute_votes: int
    discussions: int


def user_stats_view(s: UserStatsRecord, *, realized: int, unrealized: int) -> UserStats:
    settled = s.winning_positions + s.losing_positions
    return UserStats(
        trades=s.trades,
        volume=_s(s.volume),
        bought=_s(s.bought),
        sold=_s(s.sold),
        claimed=_s(s.claimed),
        realized_pnl=_s(realized),
        unrealized_pnl=_s(unrealized),
        markets_traded=s.markets_traded,
        open_positions=s.open_positions,
        markets_created=s.markets_created,
        winning_positions=s.winning_positions,
        losing_positions=s.losing_positions,
        win_rate_bps=s.winning_positions * 10_000 // settled if settled else None,
        proposal_votes=s.proposal_votes,
        dispute_votes=s.dispute_votes,
        discussions=s.discussions,
    )


class UserProfile(_View, frozen=True, kw_only=True):
    """A wallet's public profile; ``registered`` is false (fields null) until it signs
    in or edits its profile.  ``stats`` is present on ``GET /v1/users/{wallet}``."""

    wallet: str
    registered: bool
    display_name: str | None
    bio: str | None
    avatar_url: str | None
    website_url: str | None
    twitter: str | None
    created_at: datetime | None
    updated_at: datetime | None
    stats: UserStats | None = None


def user_view(wallet: str, u: UserRecord | None, stats: UserStats | None = None) -> UserProfile:
    if u is None:
        return UserProfile(
            wallet=wallet,
            registered=False,
            display_name=None,
            bio=None,
            avatar_url=None,
            website_url=None,
            twitter=None,
            created_at=None,
            updated_at=None,
            stats=stats,
        )
    return UserProfile(
        wallet=u.wallet,
        registered=True,
        display_name=u.display_name,
        bio=u.bio,
        avatar_url=u.avatar_url,
        website_url=u.website_url,
        twitter=u.twitter,
        created_at=u.created_at,
        updated_at=u.updated_at,
        stats=stats,
    )


class PlatformStats(_View, frozen=True, kw_only=True):
    markets: int
    #: market count per status (every status present)
    markets_by_status: dict[MarketStatus, int]
    total_volume: U64Str
    total_liquidity: U64Str
    trades: int
    #: wallets holding or having held a position
    traders: int
    #: wallets with a profile (signed in at least once)
    users: int
    volume_24h: U64Str
    trades_24h: int


def platform_stats_view(p: PlatformStatsRecord) -> PlatformStats:
    return PlatformStats(
        markets=p.markets,
        markets_by_status={STATE_NAMES[s]: p.markets_by_state.get(s, 0) for s in range(7)},
        total_volume=_s(p.total_volume),
        total_liquidity=_s(p.total_liquidity),
        trades=p.trades,
        traders=p.traders,
        users=p.users,
        volume_24h=_s(p.volume_24h),
        trades_24h=p.trades_24h,
    )


# ---------------------------------------------------------------- claims


class ClaimTotals(_View, frozen=True, kw_only=True):
    """What a FINALIZED market owes its traders, by the program's claim_winnings
    arithmetic: winning shares x current_liquidity // the side's shares, or the
    amount invested when the final outcome is INVALID (null)."""

    market_id: MarketId
    final_outcome: OutcomeName | None
    finalized_at: datetime | None
    claimable_positions: int
    claimable: U64Str
    claimed_positions: int
    claimed: U64Str
    resolver_fees_due: U64Str


def claim_totals_view(
    totals: ClaimTotalsRecord, final_outcome: bool | None, finalized_at: datetime | None
) -> ClaimTotals:
    return derive(
        ClaimTotals, totals, final_outcome=outcome_name(final_outcome), finalized_at=finalized_at
    )


# ---------------------------------------------------------------- alerts


class Alert(_View, frozen=True, kw_only=True):
    """An operator alert of the market monitor: one per condition (``dedup_key``).

    ``first_seen``/``count`` describe the current firing episode; ``notified``
    lists the channels that took its latest notice (empty when none is set up).
    """

    id: int
    dedup_key: str
    severity: Literal["info", "warning", "critical"]
    title: str
    details: dict[str, Any]
    state: Literal["firing", "resolved"]
    first_seen: datetime
    last_seen: datetime
    count: int
    resolved_at: datetime | None
    notified_at: datetime | None
    notified: list[str]
    notify_failures: int


def alert_view(a: AlertRecord) -> Alert:
    return derive(Alert, a)


# ---------------------------------------------------------------- events


def to_builtins(view: msgspec.Struct) -> dict[str, Any]:
    """A view as plain JSON-ready data: the ``data`` of a bus DomainEvent."""
    out = msgspec.to_builtins(view, enc_hook=enc_hook)
    if not isinstance(out, dict):
        raise TypeError(f"{type(view).__name__} is not an object-shaped view")
    return out


# ---------------------------------------------------------------- discussion snapshots


class SnapshotLinks(_View, frozen=True, kw_only=True):
    #: this document's metadata
    self: str
    #: the content on this server's read-only gateway (local backend, not pruned), else null
    content: str | None
    #: the content's IPFS URI (any gateway: ``https://<gateway>/ipfs/<cid>``)
    ipfs: str
    #: the market's snapshot list (null for a day's root)
    market: str | None
    #: the day's root document, once made (null for a root)
    root: str | None


class Snapshot(_View, frozen=True, kw_only=True):
    """A daily discussion snapshot of one market (``kind = "discussions"``) or a day's root
    document listing them (``"discussions_root"``), stored under ``cid``.

    ``complete`` is false for a snapshot of a day still in progress (``covers_until`` <
    ``period_end``).  ``state`` is ``pruned`` once the content was unpinned/deleted after
    the retention period (the metadata stays).
    """

    cid: str
    kind: Literal["discussions", "discussions_root"]
    market_id: MarketId | None
    day: str
    period_start: datetime
    period_end: datetime
    covers_until: datetime
    complete: bool
    size_bytes: int
    post_count: int
    content_sha256: str
    backend: str
    state: Literal["pinned", "pruned"]
    created_at: datetime
    pruned_at: datetime | None
    links: SnapshotLinks


def snapshot_view(a: AnchorRecord, *, root_cid: str | None = None) -> Snapshot:
    """The view of a snapshot anchor (``a.period_start`` set); ``root_cid`` is the day's
    root when known."""
    assert a.period_start is not None and a.period_end is not None
    assert a.kind in ("discussions", "discussions_root")
    covers = a.covers_until or a.period_end
    served = a.backend == "local" and a.pruned_at is None
    return Snapshot(
        cid=a.cid,
        kind=a.kind,
        market_id=a.market_id,
        day=a.period_start.date().isoformat(),
        period_start=a.period_start,
        period_end=a.period_end,
        covers_until=covers,
        complete=covers == a.period_end,
        size_bytes=a.size_bytes,
        post_count=a.post_count or 0,
        content_sha256=a.content_sha256.hex(),
        backend=a.backend or "local",
        state="pruned" if a.pruned_at is not None else "pinned",
        created_at=a.created_at,
        pruned_at=a.pruned_at,
        links=SnapshotLinks(
            self=f"/v1/snapshots/{a.cid}",
            content=f"/ipfs/{a.cid}" if served else None,
            ipfs=f"ipfs://{a.cid}",
            market=None if a.market_id is None else f"/v1/markets/{a.market_id}/snapshots",
            root=None if root_cid is None else f"/v1/snapshots/{root_cid}",
        ),
    )


# ---------------------------------------------------------------- transactions for wallets


class TxQuote(_View, frozen=True, kw_only=True):
    """What the built trade does, from the chain's own integer math on the indexed
    state.  buy: ``shares`` share-units for ``cost`` lamports (fees included, the
    ``SharesBought.cost``) and ``max_cost``, the ``target_cost`` in the instruction:
    the chain never takes more, whatever happens before the transaction lands.
    sell: ``shares`` sold for ``cost`` = the net proceeds (``SharesSold.proceeds``),
    and ``min_proceeds`` in the instruction.  ``fees`` per recipient; the outcome's
    price before and after (scaled 10^9)."""

    side: Literal["buy", "sell"] = "buy"
    outcome: OutcomeName
    shares: U64Str
    cost: U64Str
    fees: QuoteFees
    price_before: Price
    price_after: Price
    max_cost: U64Str | None = None
    #: buy: ``shares`` less ``slippage_bps``, what the wallet UI should warn below
    #: (the program has no minimum-shares argument, see the route's description)
    min_shares: U64Str | None = None
    min_proceeds: U64Str | None = None


class TxBuilt(_View, frozen=True, kw_only=True):
    """An unsigned v0 transaction for the wallet to sign (the wallet is the fee payer
    and only signer), with the quote it was built from."""

    #: base64 of the serialized VersionedTransaction (signature slot zeroed)
    transaction: str
    quote: TxQuote | None = None
    blockhash: str
    last_valid_block_height: int
    #: an estimate of when ``last_valid_block_height`` passes (block height now
    #: plus the remaining blocks at the cluster's slot time)
    expires_at: datetime
    compute_unit_limit: int
    #: micro-lamports per compute unit
    compute_unit_price: int
    #: compute units the zmart-core instruction consumed in simulation
    simulated_units: int
    #: lamports the instruction pays the wallet (claim_winnings, withdraw_liquidity)
    payout: U64Str | None = None
    #: create-market: the new market's id and the question metadata's hash in it
    market_id: MarketId | None = None
    question_hash: str | None = None
    notes: list[str] = []


class TxSubmitted(_View, frozen=True, kw_only=True):
    signature: str


TxState = Literal["pending", "processed", "confirmed", "finalized", "expired", "failed"]


class TxStatus(_View, frozen=True, kw_only=True):
    """Where a submitted transaction is.  ``pending``: this server is still
    rebroadcasting it and the chain has not seen it yet; ``expired``: its blockhash
    passed and the chain never saw it (it can no longer land); ``failed``: it
    landed with an error (``error`` names the program error when zmart-core
    failed)."""

    signature: str
    status: TxState
    slot: int | None = None
    error: str | None = None
    error_message: str | None = None
