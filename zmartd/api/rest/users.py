"""``/v1/users``: profiles with stats and P&L, positions, trades, votes, and
``PATCH /v1/users/me``.

Any valid wallet has a profile: one that never signed in answers with
``registered: false`` and zero stats rather than 404.  The P&L rule is in
:mod:`zmartd.api.handlers.users`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType
from solders.pubkey import Pubkey

from zmartd.api.handlers import users as handlers
from zmartd.api.handlers import votes as vote_handlers
from zmartd.api.handlers.txactions import sells_work
from zmartd.api.pagination import Page, PageQuery
from zmartd.api.rest.markets import Text, Url
from zmartd.api.routing import Call, Router
from zmartd.api.validation import Body, Query
from zmartd.model import views

__all__ = ["PositionQuery", "ProfilePatch", "UserPath", "UserVoteQuery", "router"]

router = Router("users", prefix="/v1/users", tags=["users"])


DisplayName = Annotated[str, Text(50, min_length=1, description="unique, case-insensitively")]
Bio = Annotated[str, Text(500)]
Twitter = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9_]{1,15}$", description="handle without @")
]


class UserPath(Query, frozen=True, kw_only=True):
    wallet: Pubkey


class PositionQuery(PageQuery, frozen=True, kw_only=True):
    #: only positions still holding shares
    open: bool = False


class UserVoteQuery(PageQuery, frozen=True, kw_only=True):
    kind: Literal["proposal", "dispute"] | None = None


class ProfilePatch(Body, frozen=True, kw_only=True):
    """Only the fields present change; null clears one."""

    display_name: DisplayName | UnsetType | None = UNSET
    bio: Bio | UnsetType | None = UNSET
    avatar_url: Url | UnsetType | None = UNSET
    website_url: Url | UnsetType | None = UNSET
    twitter: Twitter | UnsetType | None = UNSET


@router.patch("/me", body=ProfilePatch, response=views.UserProfile, auth="session", errors=[409])
async def update_me(call: Call[ProfilePatch, None]) -> views.UserProfile:
    """Edit your profile; 409 when the display name is taken."""
    changes = {
        name: getattr(call.body, name)
        for name in ProfilePatch.__struct_fields__
        if getattr(call.body, name) is not UNSET
    }
    return await handlers.update_profile(call.database(), call.require_session().wallet, changes)


@router.get("/<pubkey:wallet>", path_type=UserPath, response=views.UserProfile)
async def get_user(call: Call[None, None]) -> views.UserProfile:
    """A wallet's profile and stats: volume, realized/unrealized P&L, markets created, win rate.

    P&L is in lamports by the average-cost method: realized = sell proceeds
    and settled payouts minus the average cost of the shares they took;
    unrealized = open shares at the last price minus their average cost.
    """
    return await handlers.profile(call.database(), str(call.path.wallet))


@router.get(
    "/<pubkey:wallet>/positions",
    path_type=UserPath,
    query=PositionQuery,
    response=Page[views.Position],
)
async def user_positions(call: Call[None, PositionQuery]) -> Page[views.Position]:
    """The wallet's positions, most recently traded first, valued at current prices.

    For the wallet's buttons: `claimable` (what `POST /v1/tx/claim` would pay, by
    the chain's claim math), `can_sell` (never on the deployed program, whose
    sells revert) and `can_withdraw` (the creator of a FINALIZED market whose
    liquidity is still there).
    """
    q = call.query
    return await handlers.positions(
        call.database(),
        str(call.path.wallet),
        open_only=q.open,
        limit=q.limit,
        cursor=q.cursor,
        sells_work=sells_work(call.ctx.config),
    )


@router.get(
    "/<pubkey:wallet>/trades", path_type=UserPath, query=PageQuery, response=Page[views.Trade]
)
async def user_trades(call: Call[None, PageQuery]) -> Page[views.Trade]:
    """The wallet's trades across markets, newest first."""
    return await handlers.trades(
        call.database(), str(call.path.wallet), limit=call.query.limit, cursor=call.query.cursor
    )


@router.get(
    "/<pubkey:wallet>/votes", path_type=UserPath, query=UserVoteQuery, response=Page[views.Vote]
)
async def user_votes(call: Call[None, UserVoteQuery]) -> Page[views.Vote]:
    """The wallet's proposal and dispute votes (or one `kind`), newest first."""
    q = call.query
    return await vote_handlers.user_votes(
        call.database(), str(call.path.wallet), kind=q.kind, limit=q.limit, cursor=q.cursor
    )
