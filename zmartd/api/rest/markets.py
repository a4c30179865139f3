"""``/v1/markets``: the market list and detail, trades, candles, holders, quotes,
and the creator's metadata.

``{market_id}`` in every path is the 64-hex on-chain market id or the base58
market account address (both name the same market; answers always carry the
hex ``market_id``).  The hex form is the canonical one: cached answers are
invalidated per market only for it (the address form is invalidated with
the market lists, i.e. by every trade or state change).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec
from msgspec import UNSET, UnsetType
from solders.pubkey import Pubkey

from zmartd.api.cache import MARKETS, market_tag, wallet_tag
from zmartd.api.handlers import markets as handlers
from zmartd.api.handlers import quotes
from zmartd.api.pagination import Page, PageQuery
from zmartd.api.routing import Call, Router
from zmartd.api.validation import Amount, Body, DateTime, Query
from zmartd.model import views
from zmartd.storage.markets import MarketMetadataInput

__all__ = [
    "CandleQuery",
    "MarketListQuery",
    "MarketMetadataBody",
    "MarketMetadataPatch",
    "MarketPath",
    "MarketRef",
    "QuoteQuery",
    "Text",
    "market_tags",
    "router",
    "state_index",
]

router = Router("markets", prefix="/v1/markets", tags=["markets"])

#: PostgreSQL text cannot hold NUL; refusing it here keeps it a 422, not a 500.
_NO_NUL: Final = r"^[^\x00]*$"


def Text(max_length: int, *, min_length: int = 0, description: str = "") -> object:
    """A free-text field: length bounds and no NUL character."""
    return msgspec.Meta(
        min_length=min_length,
        max_length=max_length,
        pattern=_NO_NUL,
        description=description or None,
    )


MarketRef = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(?:[0-9a-f]{64}|[1-9A-HJ-NP-Za-km-z]{32,44})$",
        description="64-hex market_id, or the base58 address of the market account",
        examples=["0" * 64],
    ),
]
MarketId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9a-f]{64}$", description="the 32-byte on-chain market id, 64 lowercase hex"
    ),
]
StateParam = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(?:[0-6]|PROPOSED|APPROVED|ACTIVE|RESOLVING|DISPUTED|FINALIZED|CANCELLED)$",
        description="MarketState 0..6 or its name (PROPOSED ... CANCELLED)",
    ),
]
Category = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$", description="lowercase slug")
]
Tag = Annotated[str, Text(64, min_length=1)]
Url = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\x00]*$", max_length=1000)]
Title = Annotated[str, Text(200, min_length=1)]
Description = Annotated[str, Text(10_000)]
Source = Annotated[str, Text(1000)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=10)]


def market_tags(ref: str) -> list[str]:
    """Cache tags of an answer about one market (see the module docstring)."""
    return [market_tag(ref)] if handlers.is_market_id(ref) else [MARKETS]


class MarketPath(Query, frozen=True, kw_only=True):
    market_id: MarketRef


class MarketListQuery(PageQuery, frozen=True, kw_only=True):
    state: StateParam | None = None
    category: Category | None = None
    creator: Pubkey | None = None
    tag: Tag | None = None
    q: (
        Annotated[
            str,
            Text(
                200,
                description="full-text search (web-search syntax) over "
                "title, category and description",
            ),
        ]
        | None
    ) = None
    sort: Literal["newest", "volume", "closing_soon", "liquidity"] = "newest"


def state_index(value: str | None) -> int | None:
    """A ``StateParam`` (0..6 or a name) as the chain's integer."""
    if value is None:
        return None
    return int(value) if value.isdigit() else views.STATE_NAMES.index(value)


@router.get("/", query=MarketListQuery, response=Page[views.Market], cache=[MARKETS])
async def list_markets(call: Call[None, MarketListQuery]) -> Page[views.Market]:
    """Markets, filtered and sorted, cursor-paginated.

    Sorts: `newest` (creation time), `volume` (total volume), `liquidity`
    (current liquidity), `closing_soon` (off-chain end time, future only,
    soonest first).  Filters combine with AND; `q` is a full-text search.
    """
    q = call.query
    return await handlers.list_markets(
        call.database(),
        state=state_index(q.state),
        category=q.category,
        creator=str(q.creator) if q.creator is not None else None,
        tag=q.tag,
        q=q.q,
        sort=q.sort,
        limit=q.limit,
        cursor=q.cursor,
    )


@router.get(
    "/<market_id>",
    path_type=MarketPath,
    response=views.Market,
    errors=[404],
    cache=lambda call: market_tags(call.path.market_id),
)
async def get_market(call: Call[None, None]) -> views.Market:
    """One market (chain state + metadata)."""
    return await handlers.get(call.database(), call.path.market_id)


@router.get(
    "/<market_id>/trades",
    path_type=MarketPath,
    query=PageQuery,
    response=Page[views.Trade],
    errors=[404],
)
async def market_trades(call: Call[None, PageQuery]) -> Page[views.Trade]:
    """The market's trades, newest first."""
    return await handlers.trades(
        call.database(), call.path.market_id, limit=call.query.limit, cursor=call.query.cursor
    )


class CandleQuery(Query, frozen=True, kw_only=True):
    interval: Literal["1m", "5m", "1h", "1d"] = "1h"
    from_: DateTime | None = msgspec.field(default=None, name="from")
    to: DateTime | None = None


@router.get(
    "/<market_id>/prices",
    path_type=MarketPath,
    query=CandleQuery,
    response=views.Candles,
    errors=[404],
)
async def market_prices(call: Call[None, CandleQuery]) -> views.Candles:
    """OHLC candles of the YES price over `[from, to)`.

    `to` defaults to now, `from` to 500 intervals before `to`; at most 5,000
    candles per request: a wider window keeps the latest 5,000 intervals
    (`start` in the answer says where it begins).  Times are RFC 3339 with a zone.
    """
    q = call.query
    return await handlers.candles(
        call.database(), call.path.market_id, interval=q.interval, start=q.from_, end=q.to
    )


@router.get(
    "/<market_id>/holders",
    path_type=MarketPath,
    query=PageQuery,
    response=Page[views.Holder],
    errors=[404],
)
async def market_holders(call: Call[None, PageQuery]) -> Page[views.Holder]:
    """Wallets holding shares, largest holding (YES + NO share-units) first."""
    return await handlers.holders(
        call.database(), call.path.market_id, limit=call.query.limit, cursor=call.query.cursor
    )


@router.get(
    "/<market_id>/claims", path_type=MarketPath, response=views.ClaimTotals, errors=[404, 409]
)
async def market_claims(call: Call[None, None]) -> views.ClaimTotals:
    """What a FINALIZED market owes its traders: unclaimed payouts by the program's
    `claim_winnings` arithmetic (winning shares x current_liquidity // the side's
    shares; the amount invested when the final outcome is INVALID), what was
    claimed, and the resolver fees the first winning claim pays.  409 before
    the market is FINALIZED."""
    return await handlers.claims(call.database(), call.path.market_id)


class QuoteQuery(Query, frozen=True, kw_only=True):
    side: Literal["buy", "sell"]
    outcome: Literal["yes", "no"]
    amount: Amount
    wallet: Pubkey | None = None


def _quote_tags(call: Call[None, QuoteQuery]) -> list[str]:
    tags = market_tags(call.path.market_id)
    if call.query.wallet is not None:
        tags.append(wallet_tag(str(call.query.wallet)))
    return tags


@router.get(
    "/<market_id>/quote",
    path_type=MarketPath,
    query=QuoteQuery,
    response=views.Quote,
    errors=[404, 409],
    cache=_quote_tags,
)
async def market_quote(call: Call[None, QuoteQuery]) -> views.Quote:
    """What a buy or sell would do now, computed with the chain's exact LMSR math.

    `side=buy`: `amount` is the fee-inclusive lamport budget (`target_cost`);
    the answer's `lamports` is what the chain would take (<= budget) for
    `shares` share-units.  `side=sell`: `amount` is share-units; `lamports`
    is the net proceeds.  With `wallet`, a sell is checked against that
    wallet's position.  A trade the chain would reject is a 409 naming the
    program error: for the market's state (`InvalidMarketState`,
    `InsufficientLiquidity`) in `detail`; for the amount (`TradeTooSmall`,
    `InsufficientShares`, `UnderflowError`...) also in `errors[0].message`,
    on `amount`.
    """
    q = call.query
    return await quotes.quote(
        call.database(),
        call.path.market_id,
        side=q.side,
        outcome=q.outcome,
        amount=int(q.amount),
        wallet=str(q.wallet) if q.wallet is not None else None,
    )


# ---------------------------------------------------------------- metadata


class MarketMetadataBody(Body, frozen=True, kw_only=True):
    market_id: MarketId
    title: Title
    description: Description = ""
    category: Category | None = None
    tags: Tags = msgspec.field(default_factory=list)
    image_url: Url | None = None
    resolution_source: Source | None = None
    #: when the question is meant to be resolved (off chain only: the chain has no end time)
    end_time: DateTime | None = None


class MarketMetadataPatch(Body, frozen=True, kw_only=True):
    """Only the fields present change; null clears a nullable field."""

    title: Title | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    category: Category | UnsetType | None = UNSET
    tags: Tags | UnsetType = UNSET
    image_url: Url | UnsetType | None = UNSET
    resolution_source: Source | UnsetType | None = UNSET
    end_time: DateTime | UnsetType | None = UNSET


@router.post(
    "/",
    body=MarketMetadataBody,
    response=views.MarketMetadata,
    status=201,
    auth="session",
    errors=[403, 409],
)
async def register_metadata(call: Call[MarketMetadataBody, None]) -> views.MarketMetadata:
    """Register the off-chain metadata of a market you create.

    The market may already be on chain (then it must be yours and PROPOSED)
    or not yet: then it is a claim bound to your wallet, shown only if the
    market is indexed with you as its creator (other wallets' claims on the
    same id are dropped then).  403: someone else's market; 409: already
    registered by you (use PATCH) or past PROPOSED.
    """
    b = call.body
    metadata = MarketMetadataInput(
        title=b.title,
        description=b.description,
        category=b.category,
        tags=tuple(b.tags),
        image_url=b.image_url,
        resolution_source=b.resolution_source,
        end_time=handlers.aware_utc(b.end_time, "end_time"),
    )
    return await handlers.register_metadata(
        call.database(),
        call.ctx.bus,
        market_id=b.market_id,
        wallet=call.require_session().wallet,
        metadata=metadata,
    )


@router.patch(
    "/<market_id>",
    path_type=MarketPath,
    body=MarketMetadataPatch,
    response=views.MarketMetadata,
    auth="session",
    errors=[403, 404, 409],
)
async def update_metadata(call: Call[MarketMetadataPatch, None]) -> views.MarketMetadata:
    """Change your market's metadata while it is PROPOSED.

    404: no metadata registered; 403: not the creator; 409: past PROPOSED.
    """
    changes: dict[str, object] = {}
    for name in MarketMetadataPatch.__struct_fields__:
        value = getattr(call.body, name)
        if value is UNSET:
            continue
        if name == "tags":
            value = tuple(value)
        elif name == "end_time":
            value = handlers.aware_utc(value, "end_time")
        changes[name] = value
    return await handlers.update_metadata(
        call.database(),
        call.ctx.bus,
        ref=call.path.market_id,
        wallet=call.require_session().wallet,
        changes=changes,
    )
