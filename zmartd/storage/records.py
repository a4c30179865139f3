"""What storage functions return and raise: typed, immutable records.

No asyncpg ``Record`` leaves ``zmartd/storage``: callers get these msgspec
Structs (frozen, keyword-only), which the API can encode directly.  Amounts are
Python ``int`` (lamports / share-units; u64 columns are exact NUMERIC in the
database), prices are scaled by 1e9 like the chain's ``new_price_yes``, market
states are the chain's integers 0..6, times are timezone-aware ``datetime``.

Pagination is keyset-based: a :class:`Page` carries an opaque ``next_cursor``
(the sort key of the last item, signed by the server: :mod:`zmartd.storage.cursors`).
A cursor that does not decode, fails its MAC, is out of range, or belongs to
another list or sort raises :class:`InvalidCursor`, which the API turns into 422.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

__all__ = [
    "U64",
    "AnchorRecord",
    "AuditEntry",
    "CandleRecord",
    "CategoryCount",
    "ChainCursor",
    "DeadLetter",
    "DiscussionRecord",
    "DiscussionThread",
    "ExcludedReason",
    "HolderRecord",
    "InvalidArgument",
    "InvalidCursor",
    "MarketChainState",
    "MarketMetadataRecord",
    "MarketRecord",
    "NonceRecord",
    "NotFound",
    "NotPermitted",
    "Page",
    "PlatformStats",
    "PositionRecord",
    "PositionState",
    "SessionRecord",
    "SmallInt",
    "SqlType",
    "StorageError",
    "TradeEvent",
    "TradeRecord",
    "UserRecord",
    "UserStats",
    "VoteKind",
    "VoteLocked",
    "VoteRecord",
    "VoteTally",
    "check_limit",
    "from_row",
    "rejected",
    "sql_columns",
    "u64",
]

T = TypeVar("T")

VoteKind = Literal["proposal", "dispute"]
Outcome = Literal["YES", "NO"]
Side = Literal["buy", "sell"]


# ---------------------------------------------------------------- errors


class StorageError(Exception):
    """Base of the typed errors storage functions raise for bad requests."""


class InvalidCursor(StorageError):
    """A pagination cursor that this list did not produce (tampered, stale format, other sort)."""


class InvalidArgument(StorageError):
    """A parameter outside what the query can serve (limit, time range, enum value...)."""


class NotFound(StorageError):
    """The row the operation needs does not exist."""


class NotPermitted(StorageError):
    """The row exists but this caller or this state does not allow the change."""


class VoteLocked(StorageError):
    """The vote was already aggregated (or cast on chain) and can no longer change."""


# ---------------------------------------------------------------- pagination


class Page(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    items: tuple[T, ...]
    #: pass back to get the next page; None on the last page
    next_cursor: str | None


def check_limit(limit: int, maximum: int) -> None:
    """Page sizes are bounded so that no request can ask for a table scan."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise InvalidArgument(f"limit must be an integer in 1..{maximum}, got {limit!r}")


def rejected(exc: Exception) -> StorageError:
    """A constraint violation caused by the caller's values, as a typed error.

    The message names the constraint (or column) so the API can say which
    field was wrong; it never includes the rejected value.
    """
    constraint = getattr(exc, "constraint_name", None) or getattr(exc, "column_name", None)
    kind = type(exc).__name__
    if kind == "UniqueViolationError":
        return NotPermitted(f"already exists ({constraint})")
    if kind == "ForeignKeyViolationError":
        return NotFound(f"referenced row does not exist ({constraint})")
    return InvalidArgument(f"value rejected by {constraint or 'a constraint'} ({kind})")


def u64(value: Decimal | int | None) -> int:
    """NUMERIC(20,0) column value as int (columns are NOT NULL; None would be a bug)."""
    if value is None:
        raise TypeError("u64 column is NULL")
    return int(value)


@dataclass(frozen=True, slots=True)
class SqlType:
    """``Annotated`` marker: the SQL type of a record field's column, where the Python
    type does not say it (a u64 is an ``int`` in Python and an exact NUMERIC in SQL)."""

    name: str


#: an unsigned 64-bit chain quantity: ``int`` in Python, NUMERIC(20,0) in PostgreSQL
U64 = Annotated[int, SqlType("numeric")]
#: a small enumeration (MarketState 0..6)
SmallInt = Annotated[int, SqlType("smallint")]

_PLAIN_SQL: dict[Any, str] = {int: "bigint", bool: "boolean", str: "text", datetime: "timestamptz"}
_COLUMNS_CACHE: dict[type, dict[str, str]] = {}


def sql_columns(record: type) -> dict[str, str]:
    """Field name -> SQL type of a record struct, from its annotations (``U64`` and
    ``SmallInt`` markers, else int -> bigint, bool -> boolean, str -> text, datetime ->
    timestamptz; ``X | None`` is X). The one place that maps records to columns."""
    columns = _COLUMNS_CACHE.get(record)
    if columns is None:
        hints = typing.get_type_hints(record, include_extras=True)
        columns = {}
        for name in record.__struct_fields__:  # type: ignore[attr-defined]
            hint = hints[name]
            if typing.get_origin(hint) in (typing.Union, types.UnionType):
                hint = next(a for a in typing.get_args(hint) if a is not type(None))
            if typing.get_origin(hint) is Annotated:
                marker = next((m for m in hint.__metadata__ if isinstance(m, SqlType)), None)
                if marker is not None:
                    columns[name] = marker.name
                    continue
                hint = typing.get_args(hint)[0]
            if typing.get_origin(hint) is Literal:
                hint = type(typing.get_args(hint)[0])
            if typing.get_origin(hint) is tuple:
                columns[name] = "text[]"
            else:
                columns[name] = _PLAIN_SQL[hint]
        _COLUMNS_CACHE[record] = columns
    return columns


R = TypeVar("R")
_ROW_PLANS: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def from_row(record: type[R], row: Mapping[str, Any]) -> R:
    """A record struct from a database row: NUMERIC u64 columns become ``int``, arrays
    become tuples, every other value is taken as asyncpg returns it."""
    plan = _ROW_PLANS.get(record)
    if plan is None:
        columns = sql_columns(record)
        plan = _ROW_PLANS[record] = (
            tuple(n for n, t in columns.items() if t == "numeric"),
            tuple(n for n, t in columns.items() if t.endswith("[]")),
        )
    data = dict(row)
    for name in plan[0]:
        data[name] = u64(data[name])
    for name in plan[1]:
        data[name] = tuple(data[name] or ())
    return record(**data)


# ---------------------------------------------------------------- markets


class MarketChainState(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded MarketAccount as the indexer writes it (docs/chain.md §3.2)."""

    market_id: str
    address: str
    creator: str
    state: SmallInt
    b_parameter: U64
    initial_liquidity: U64
    current_liquidity: U64
    shares_yes: U64
    shares_no: U64
    total_volume: U64
    created_at: datetime
    slot: int
    price_yes: int = 500_000_000
    approved_at: datetime | None = None
    activated_at: datetime | None = None
    resolution_proposed_at: datetime | None = None
    resolved_at: datetime | None = None
    finalized_at: datetime | None = None
    dispute_initiated_at: datetime | None = None
    cancelled_at: datetime | None = None
    resolver: str | None = None
    proposed_outcome: bool | None = None
    final_outcome: bool | None = None
    ipfs_question_hash: str | None = None
    ipfs_evidence_hash: str | None = None
    dispute_initiator: str | None = None
    accumulated_resolver_fees: U64 = 0
    accumulated_lp_fees: U64 = 0
    proposal_likes: int = 0
    proposal_dislikes: int = 0
    proposal_total_votes: int = 0
    dispute_agree: int = 0
    dispute_disagree: int = 0
    dispute_total_votes: int = 0
    was_disputed: bool = False
    finalized: bool = False


class MarketRecord(MarketChainState, frozen=True, kw_only=True):
    """A market: the chain mirror (:class:`MarketChainState`) plus when the row last
    changed and the creator's off-chain metadata (None, tags empty, if absent)."""

    updated_at: datetime
    title: str | None
    description: str | None
    category: str | None
    tags: tuple[str, ...]
    image_url: str | None
    resolution_source: str | None
    end_time: datetime | None


class MarketMetadataRecord(msgspec.Struct, frozen=True, kw_only=True):
    market_id: str
    creator: str
    title: str
    description: str
    category: str | None
    tags: tuple[str, ...]
    image_url: str | None
    resolution_source: str | None
    end_time: datetime | None
    created_at: datetime
    updated_at: datetime


class CategoryCount(msgspec.Struct, frozen=True, kw_only=True):
    category: str
    markets: int


# ---------------------------------------------------------------- trading


class TradeEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded SharesBought/SharesSold, as the indexer writes it."""

    market_id: str
    wallet: str
    side: Side
    outcome: Outcome
    shares: U64
    #: buy: ``cost`` (incl. fees); sell: ``proceeds`` (net)
    amount: U64
    #: ``new_price_yes`` (scaled 1e9)
    price_yes: int
    block_time: datetime
    slot: int
    signature: str
    instruction_index: SmallInt
    event_index: SmallInt = 0
    finalized: bool = False


class TradeRecord(TradeEvent, frozen=True, kw_only=True):
    """A stored trade: the event as indexed plus its row id."""

    id: int


class PositionState(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded UserPosition account, as the indexer writes it."""

    market_id: str
    wallet: str
    address: str
    shares_yes: U64
    shares_no: U64
    total_invested: U64
    trades_count: int
    last_trade_at: datetime
    slot: int
    has_claimed: bool = False
    claimed_amount: U64 = 0
    finalized: bool = False


class PositionRecord(PositionState, frozen=True, kw_only=True):
    """A UserPosition plus what a portfolio needs of its market (the claim math
    reads its share totals, liquidity and resolver fees)."""

    market_state: SmallInt
    market_price_yes: int
    market_final_outcome: bool | None
    market_title: str | None
    market_creator: str
    market_b_parameter: U64
    market_shares_yes: U64
    market_shares_no: U64
    market_current_liquidity: U64
    market_accumulated_resolver_fees: U64


class HolderRecord(msgspec.Struct, frozen=True, kw_only=True):
    wallet: str
    shares_yes: int
    shares_no: int
    total_invested: int


class CandleRecord(msgspec.Struct, frozen=True, kw_only=True):
    """OHLC of the YES price (scaled 1e9) over ``[start, start + interval)``."""

    start: datetime
    open: int
    high: int
    low: int
    close: int
    #: traded lamports in the bucket
    volume: int
    points: int


# ---------------------------------------------------------------- votes, discussions


#: Why an off-chain vote does not count (see migration 0008 and the API's vote policy).
ExcludedReason = Literal["no_history", "address_limit"]


class VoteRecord(msgspec.Struct, frozen=True, kw_only=True):
    market_id: str
    wallet: str
    kind: VoteKind
    #: proposal: True = like; dispute: True = agree with the dispute
    vote: bool
    source: Literal["offchain", "onchain"]
    created_at: datetime
    updated_at: datetime
    aggregated_at: datetime | None
    aggregation_id: int | None
    #: why an off-chain vote is kept but not counted (None: counted)
    excluded: ExcludedReason | None = None


class VoteTally(msgspec.Struct, frozen=True, kw_only=True):
    """Counted votes only; ``excluded`` says how many were kept out, by reason."""

    market_id: str
    kind: VoteKind
    yes: int
    no: int
    total: int
    #: votes not yet covered by an aggregation (still changeable if off-chain)
    pending: int
    last_aggregation_id: int | None
    excluded: dict[str, int] = msgspec.field(default_factory=dict)


class DiscussionRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    market_id: str
    parent_id: int | None
    wallet: str
    #: None when the post is deleted
    content: str | None
    created_at: datetime
    edited_at: datetime | None
    deleted: bool


class DiscussionThread(msgspec.Struct, frozen=True, kw_only=True):
    """A top-level post and all its replies (at any depth) in creation order."""

    root: DiscussionRecord
    replies: tuple[DiscussionRecord, ...]


# ---------------------------------------------------------------- users, auth


class UserRecord(msgspec.Struct, frozen=True, kw_only=True):
    wallet: str
    display_name: str | None
    bio: str | None
    avatar_url: str | None
    website_url: str | None
    twitter: str | None
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


class UserStats(msgspec.Struct, frozen=True, kw_only=True):
    """Inputs for a profile's numbers; P&L itself is computed by the caller from these."""

    wallet: str
    trades: int
    #: lamports bought (costs incl. fees) + sold (net proceeds)
    volume: int
    bought: int
    sold: int
    claimed: int
    markets_traded: int
    open_positions: int
    #: positions in FINALIZED markets holding shares of the final outcome
    winning_positions: int
    #: positions in FINALIZED markets with a final outcome and no winning shares
    losing_positions: int
    markets_created: int
    proposal_votes: int
    dispute_votes: int
    discussions: int


class NonceRecord(msgspec.Struct, frozen=True, kw_only=True):
    nonce: str
    wallet: str
    domain: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    wallet: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime | None
    revoked_at: datetime | None


# ---------------------------------------------------------------- chain, audit, stats, anchors


class ChainCursor(msgspec.Struct, frozen=True, kw_only=True):
    stream: str
    slot: int
    signature: str | None
    block_time: datetime | None
    updated_at: datetime


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    signature: str
    slot: int | None
    reason: str
    payload: Any
    attempts: int
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    ip: str | None
    request_id: str | None


class PlatformStats(msgspec.Struct, frozen=True, kw_only=True):
    markets: int
    #: market count per chain state 0..6 (every state present, zero if none)
    markets_by_state: dict[int, int]
    total_volume: int
    total_liquidity: int
    trades: int
    traders: int
    users: int
    volume_24h: int
    trades_24h: int


class AnchorRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: Literal["market_metadata", "evidence", "discussions", "discussions_root", "votes"]
    market_id: str | None
    cid: str
    content_sha256: bytes
    size_bytes: int
    covers_until: datetime | None
    created_at: datetime
    pinned_at: datetime | None
    #: the UTC period a discussion snapshot covers (``covers_until`` < ``period_end``
    #: for a snapshot of a day still in progress)
    period_start: datetime | None = None
    period_end: datetime | None = None
    post_count: int | None = None
    backend: str | None = None
    #: unpinned/deleted from its backend after the retention period (the row stays)
    pruned_at: datetime | None = None
