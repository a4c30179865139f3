"""Legacy ``/api/markets``: the original frontend's market calls (R1-R9, D2, D4, D5,
D9, D10 in docs/legacy-api.md), each an adapter over the ``/v1`` handlers.

The literal segments (``categories``, ``trending``, ``activity``) are routes of
their own, so they are never taken for a market id.  Any path id that names no
market (64-hex or base58, or anything else) is a 404 -- except ``related``,
which the frontend's sidebar expects to answer ``related: []``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from zmartd.api.cache import MARKETS
from zmartd.api.compat import shapes, signature
from zmartd.api.compat.paging import MAX_WINDOW, window
from zmartd.api.compat.routing import LegacyQuery, legacy_router
from zmartd.api.handlers import discussions as discussion_handlers
from zmartd.api.handlers import feeds
from zmartd.api.handlers import markets as handlers
from zmartd.api.handlers import votes as vote_handlers
from zmartd.api.pagination import Page
from zmartd.api.rest.markets import Category, StateParam, Text, market_tags, state_index
from zmartd.api.routing import Call
from zmartd.api.validation import Body, Query
from zmartd.model import views
from zmartd.storage.feeds import MAX_FEED
from zmartd.storage.markets import MAX_PAGE as MARKET_PAGE
from zmartd.storage.trades import MAX_PAGE as TRADE_PAGE

__all__ = ["router"]

router = legacy_router("legacy-markets", "/api/markets")

Offset = Annotated[int, msgspec.Meta(ge=0, le=MAX_WINDOW - 1)]


def Limit(default_max: int) -> object:
    return msgspec.Meta(ge=1, le=default_max, description=f"1..{default_max}")


class LegacyMarketPath(Query, frozen=True, kw_only=True):
    #: 64-hex market id or base58 account address (anything else: 404)
    id: Annotated[str, msgspec.Meta(max_length=128)]


class LegacyMarketListQuery(LegacyQuery, frozen=True, kw_only=True, forbid_unknown_fields=False):
    state: StateParam | None = None
    category: Category | None = None
    limit: Annotated[int, Limit(MARKET_PAGE)] = 20
    offset: Offset = 0


class LegacyMarketList(msgspec.Struct, frozen=True, kw_only=True):
    markets: list[shapes.LegacyMarket]
    #: markets matching the filters, all pages
    count: int
    offset: int
    limit: int


@router.get(
    "",
    query=LegacyMarketListQuery,
    response=LegacyMarketList,
    cache=[MARKETS],
    summary="Markets, newest first (R1, R2)",
    v1="GET /v1/markets",
)
async def list_markets(call: Call[None, LegacyMarketListQuery]) -> LegacyMarketList:
    """`state` is the integer 0..6 or its name; `count` is the total."""
    q = call.query
    db = call.database()
    state = state_index(q.state)

    async def fetch(limit: int, cursor: str | None) -> Page[views.Market]:
        return await handlers.list_markets(
            db,
            state=state,
            category=q.category,
            creator=None,
            tag=None,
            q=None,
            sort="newest",
            limit=limit,
            cursor=cursor,
        )

    rows = await window(fetch, offset=q.offset, limit=q.limit, page_size=MARKET_PAGE)
    total = await feeds.count_markets(db, state=state, category=q.category)
    return LegacyMarketList(
        markets=[shapes.market(m) for m in rows], count=total, offset=q.offset, limit=q.limit
    )


class LegacyCategoryList(msgspec.Struct, frozen=True, kw_only=True):
    categories: list[shapes.LegacyCategory]
    count: int


@router.get(
    "/categories",
    response=LegacyCategoryList,
    cache=[MARKETS],
    summary="The five most used categories (R6)",
    v1=None,
)
async def categories(call: Call[None, None]) -> LegacyCategoryList:
    """`trend` is the growth of the category's market count over the last 7 days."""
    rows = await feeds.categories(call.database(), limit=5)
    items = [shapes.category(c, before, recent) for c, before, recent in rows]
    return LegacyCategoryList(categories=items, count=len(items))


class LegacyTrendingQuery(LegacyQuery, frozen=True, kw_only=True, forbid_unknown_fields=False):
    limit: Annotated[int, Limit(MAX_FEED)] = 10


class LegacyTrendingList(msgspec.Struct, frozen=True, kw_only=True):
    trending: list[shapes.LegacyTrending]
    count: int


@router.get(
    "/trending",
    query=LegacyTrendingQuery,
    response=LegacyTrendingList,
    cache=[MARKETS],
    summary="ACTIVE markets by 24 h volume (R7)",
    v1=None,
)
async def trending(call: Call[None, LegacyTrendingQuery]) -> LegacyTrendingList:
    """`change24h` is the YES price change over 24 h in percentage points, `volume24h`
    the SOL traded in 24 h (both from indexed trades)."""
    rows = await feeds.trending(call.database(), limit=call.query.limit)
    return LegacyTrendingList(trending=[shapes.trending(t) for t in rows], count=len(rows))


class LegacyActivityQuery(LegacyQuery, frozen=True, kw_only=True, forbid_unknown_fields=False):
    limit: Annotated[int, Limit(MAX_FEED)] = 20


class LegacyActivityList(msgspec.Struct, frozen=True, kw_only=True):
    activities: list[shapes.LegacyActivity]
    count: int


@router.get(
    "/activity",
    query=LegacyActivityQuery,
    response=LegacyActivityList,
    cache=[MARKETS],
    summary="Newest trades, creations and resolutions (R8)",
    v1=None,
)
async def activity(call: Call[None, LegacyActivityQuery]) -> LegacyActivityList:
    """Everything newest first: trades, market creations and final resolutions."""
    rows = await feeds.activity(call.database(), limit=call.query.limit)
    return LegacyActivityList(activities=[shapes.activity(a) for a in rows], count=len(rows))


@router.get(
    "/<id>",
    path_type=LegacyMarketPath,
    response=shapes.LegacyMarket,
    errors=[404],
    cache=lambda call: market_tags(call.path.id),
    summary="One market (R3)",
    v1="GET /v1/markets/{market_id}",
)
async def get_market(call: Call[None, None]) -> shapes.LegacyMarket:
    """By 64-hex id or base58 address; 404 when unknown."""
    return shapes.market(await handlers.get(call.database(), call.path.id))


class LegacyTradeQuery(LegacyQuery, frozen=True, kw_only=True, forbid_unknown_fields=False):
    limit: Annotated[int, Limit(TRADE_PAGE)] = 50
    offset: Offset = 0


class LegacyTradeList(msgspec.Struct, frozen=True, kw_only=True):
    trades: list[shapes.LegacyTrade]
    #: trades in this answer
    count: int
    market_id: str


@router.get(
    "/<id>/trades",
    path_type=LegacyMarketPath,
    query=LegacyTradeQuery,
    response=LegacyTradeList,
    errors=[404],
    summary="The market's trades, newest first (R4, D2)",
    v1="GET /v1/markets/{market_id}/trades",
)
async def market_trades(call: Call[None, LegacyTradeQuery]) -> LegacyTradeList:
    """`outcome` is "YES"/"NO", `shares` share-units, `cost` lamports."""
    db = call.database()
    market = await handlers.resolve(db, call.path.id)

    async def fetch(limit: int, cursor: str | None) -> Page[views.Trade]:
        return await handlers.trades(db, market.market_id, limit=limit, cursor=cursor)

    rows = await window(
        fetch, offset=call.query.offset, limit=call.query.limit, page_size=TRADE_PAGE
    )
    return LegacyTradeList(
        trades=[shapes.trade(t) for t in rows], count=len(rows), market_id=market.market_id
    )


class LegacyHistoryQuery(LegacyQuery, frozen=True, kw_only=True, forbid_unknown_fields=False):
    limit: Annotated[int, Limit(1000)] = 50


class LegacyPriceHistory(msgspec.Struct, frozen=True, kw_only=True):
    market_id: str
    price_history: list[shapes.LegacyPricePoint]
    count: int


@router.get(
    "/<id>/price-history",
    path_type=LegacyMarketPath,
    query=LegacyHistoryQuery,
    response=LegacyPriceHistory,
    errors=[404],
    cache=lambda call: market_tags(call.path.id),
    summary="The newest YES/NO price points, oldest first (R5)",
    v1="GET /v1/markets/{market_id}/prices",
)
async def price_history(call: Call[None, LegacyHistoryQuery]) -> LegacyPriceHistory:
    """`yes`/`no` in percent 0..100: the market's creation price and every trade's."""
    market, points = await feeds.price_points(call.database(), call.path.id, limit=call.query.limit)
    return LegacyPriceHistory(
        market_id=market.market_id,
        price_history=[shapes.price_point(p) for p in points],
        count=len(points),
    )


class LegacyRelatedList(msgspec.Struct, frozen=True, kw_only=True):
    related: list[shapes.LegacyRelated]
    count: int


class LegacyRelatedQuery(LegacyQuery, frozen=True, kw_only=True, forbid_unknown_fields=False):
    limit: Annotated[int, Limit(MAX_FEED)] = 3


@router.get(
    "/<id>/related",
    path_type=LegacyMarketPath,
    query=LegacyRelatedQuery,
    response=LegacyRelatedList,
    cache=[MARKETS],
    summary="Other ACTIVE markets, same category first (R9)",
    v1=None,
)
async def related_markets(call: Call[None, LegacyRelatedQuery]) -> LegacyRelatedList:
    """An unknown market has no related markets (200, `related: []`)."""
    category, rows = await feeds.related(call.database(), call.path.id, limit=call.query.limit)
    return LegacyRelatedList(related=[shapes.related(r, category) for r in rows], count=len(rows))


# ---------------------------------------------------------------- discussions (D4, D5)


@router.get(
    "/<id>/discussions",
    path_type=LegacyMarketPath,
    response=list[shapes.LegacyDiscussion],
    errors=[404],
    summary="Discussion threads, newest first (D4)",
    v1="GET /v1/markets/{market_id}/discussions",
)
async def discussions(call: Call[None, None]) -> list[shapes.LegacyDiscussion]:
    """A bare array of top-level posts (the 50 newest threads) with their `replies`."""
    page = await discussion_handlers.threads(call.database(), call.path.id, limit=50, cursor=None)
    return [shapes.discussion(t.root, t.replies) for t in page.items]


class LegacyPostBody(Body, frozen=True, kw_only=True):
    content: Annotated[str, Text(discussion_handlers.MAX_CONTENT, min_length=1)]
    parentId: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None


@router.post(
    "/<id>/discussions",
    path_type=LegacyMarketPath,
    body=LegacyPostBody,
    response=shapes.LegacyDiscussion,
    status=201,
    errors=[401, 404, 409],
    summary="Post in a market's discussion (D5; wallet signature)",
    v1="POST /v1/markets/{market_id}/discussions",
)
async def post_discussion(call: Call[LegacyPostBody, None]) -> shapes.LegacyDiscussion:
    """Needs `Authorization: Signature ...` (single use)."""
    wallet = await signature.authenticate(call)
    view = await discussion_handlers.post(
        call.database(),
        call.ctx.bus,
        ref=call.path.id,
        wallet=wallet,
        content=call.body.content,
        parent_id=call.body.parentId,
    )
    return shapes.discussion(view)


# ---------------------------------------------------------------- votes (D9, D10)


class LegacyProposalVote(Body, frozen=True, kw_only=True):
    approve: bool


class LegacyDisputeVote(Body, frozen=True, kw_only=True):
    supportDispute: bool


@router.post(
    "/<id>/vote",
    path_type=LegacyMarketPath,
    body=LegacyProposalVote,
    response=shapes.LegacyVote,
    errors=[401, 404, 409],
    summary="Approve or reject a PROPOSED market (D9; wallet signature)",
    v1="POST /v1/markets/{market_id}/votes/proposal",
)
async def proposal_vote(call: Call[LegacyProposalVote, None]) -> shapes.LegacyVote:
    """Needs `Authorization: Signature ...` (single use); cast or change your vote."""
    wallet = await signature.authenticate(call)
    return shapes.vote(
        await vote_handlers.cast(
            call.database(),
            call.ctx.bus,
            kind="proposal",
            ref=call.path.id,
            wallet=wallet,
            vote=call.body.approve,
        )
    )


@router.post(
    "/<id>/dispute/vote",
    path_type=LegacyMarketPath,
    body=LegacyDisputeVote,
    response=shapes.LegacyVote,
    errors=[401, 404, 409],
    summary="Support or oppose a dispute (D10; wallet signature)",
    v1="POST /v1/markets/{market_id}/votes/dispute",
)
async def dispute_vote(call: Call[LegacyDisputeVote, None]) -> shapes.LegacyVote:
    """Needs `Authorization: Signature ...` (single use); cast or change your vote."""
    wallet = await signature.authenticate(call)
    return shapes.vote(
        await vote_handlers.cast(
            call.database(),
            call.ctx.bus,
            kind="dispute",
            ref=call.path.id,
            wallet=wallet,
            vote=call.body.supportDispute,
        )
    )
