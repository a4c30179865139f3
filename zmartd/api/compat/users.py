"""Legacy ``/api/users/{wallet}``: the portfolio (R10, a bare array), one position
(D1), the wallet's trades (D3) and stats (D8) -- adapters over the ``/v1`` user
handlers."""

from __future__ import annotations

from typing import Annotated

import msgspec
from solders.pubkey import Pubkey

from zmartd.api.compat import shapes
from zmartd.api.compat.paging import MAX_WINDOW, window
from zmartd.api.compat.routing import LegacyQuery, legacy_router
from zmartd.api.handlers import feeds
from zmartd.api.handlers import users as handlers
from zmartd.api.pagination import Page
from zmartd.api.rest.users import UserPath
from zmartd.api.routing import Call
from zmartd.api.validation import Query
from zmartd.model import views
from zmartd.storage.positions import MAX_PAGE as POSITION_PAGE
from zmartd.storage.trades import MAX_PAGE as TRADE_PAGE

__all__ = ["router"]

router = legacy_router("legacy-users", "/api/users")


@router.get(
    "/<wallet>/positions",
    path_type=UserPath,
    response=list[shapes.LegacyPosition],
    summary="The wallet's positions, a bare array (R10)",
    v1="GET /v1/users/{wallet}/positions",
)
async def positions(call: Call[None, None]) -> list[shapes.LegacyPosition]:
    """Most recently traded first (up to 1,000); `[]` when the wallet has none."""
    db = call.database()
    wallet = str(call.path.wallet)

    async def fetch(limit: int, cursor: str | None) -> Page[views.Position]:
        return await handlers.positions(db, wallet, open_only=False, limit=limit, cursor=cursor)

    rows = await window(fetch, offset=0, limit=MAX_WINDOW, page_size=POSITION_PAGE)
    return [shapes.position(p) for p in rows]


class LegacyPositionPath(Query, frozen=True, kw_only=True):
    wallet: Pubkey
    market_id: Annotated[str, msgspec.Meta(max_length=128)]


@router.get(
    "/<wallet>/positions/<market_id>",
    path_type=LegacyPositionPath,
    response=shapes.LegacyPosition,
    errors=[404],
    summary="The wallet's position in one market (D1)",
    v1="GET /v1/users/{wallet}/positions",
)
async def position(call: Call[None, None]) -> shapes.LegacyPosition:
    """404 when the market is unknown or the wallet holds no position in it."""
    return shapes.position(
        await feeds.position(call.database(), str(call.path.wallet), call.path.market_id)
    )


class LegacyUserTradeQuery(LegacyQuery, frozen=True, kw_only=True, forbid_unknown_fields=False):
    limit: Annotated[int, msgspec.Meta(ge=1, le=TRADE_PAGE)] = 50
    offset: Annotated[int, msgspec.Meta(ge=0, le=MAX_WINDOW - 1)] = 0


class LegacyUserTrades(msgspec.Struct, frozen=True, kw_only=True):
    trades: list[shapes.LegacyTrade]
    count: int
    wallet: str


@router.get(
    "/<wallet>/trades",
    path_type=UserPath,
    query=LegacyUserTradeQuery,
    response=LegacyUserTrades,
    summary="The wallet's trades, newest first (D3)",
    v1="GET /v1/users/{wallet}/trades",
)
async def trades(call: Call[None, LegacyUserTradeQuery]) -> LegacyUserTrades:
    db = call.database()
    wallet = str(call.path.wallet)

    async def fetch(limit: int, cursor: str | None) -> Page[views.Trade]:
        return await handlers.trades(db, wallet, limit=limit, cursor=cursor)

    rows = await window(
        fetch, offset=call.query.offset, limit=call.query.limit, page_size=TRADE_PAGE
    )
    return LegacyUserTrades(trades=[shapes.trade(t) for t in rows], count=len(rows), wallet=wallet)


@router.get(
    "/<wallet>/stats",
    path_type=UserPath,
    response=shapes.LegacyUserStats,
    summary="The wallet's trading stats (D8)",
    v1="GET /v1/users/{wallet}",
)
async def stats(call: Call[None, None]) -> shapes.LegacyUserStats:
    """Volume and P&L in lamports (decimal strings), win rate in percent."""
    profile = await handlers.profile(call.database(), str(call.path.wallet))
    assert profile.stats is not None  # profile() always computes them
    return shapes.user_stats(profile.stats)
