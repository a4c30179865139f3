"""Discussions: ``GET/POST /v1/markets/{market_id}/discussions`` and
``DELETE /v1/discussions/{post_id}``.

Threads page by their top-level post, newest first; each carries all its
replies oldest first (rebuild the tree with ``parent_id``).  Deleted posts
stay in place with ``content: null``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from zmartd.api.handlers import discussions as handlers
from zmartd.api.pagination import Page, PageQuery
from zmartd.api.rest.markets import MarketPath, Text
from zmartd.api.routing import Call, Router
from zmartd.api.validation import Body, Query
from zmartd.model import views

__all__ = ["PostBody", "PostPath", "ThreadQuery", "router"]

router = Router("discussions", prefix="/v1", tags=["discussions"])

PostId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class ThreadQuery(PageQuery, frozen=True, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=50, description="threads per page (1..50)")] = 20


class PostBody(Body, frozen=True, kw_only=True):
    content: Annotated[str, Text(handlers.MAX_CONTENT, min_length=1)]
    #: the post this one replies to (same market, not deleted)
    parent_id: PostId | None = None


class PostPath(Query, frozen=True, kw_only=True):
    post_id: PostId


@router.get(
    "/markets/<market_id>/discussions",
    path_type=MarketPath,
    query=ThreadQuery,
    response=Page[views.DiscussionThreadView],
    errors=[404],
)
async def market_discussions(call: Call[None, ThreadQuery]) -> Page[views.DiscussionThreadView]:
    """The market's discussion threads, newest first, with all their replies."""
    return await handlers.threads(
        call.database(), call.path.market_id, limit=call.query.limit, cursor=call.query.cursor
    )


@router.post(
    "/markets/<market_id>/discussions",
    path_type=MarketPath,
    body=PostBody,
    response=views.Discussion,
    status=201,
    auth="session",
    errors=[404, 409],
)
async def post_discussion(call: Call[PostBody, None]) -> views.Discussion:
    """Post in a market's discussion, or reply to a post (`parent_id`).

    1..2,000 characters, not only whitespace.  404: unknown market, or no
    such parent in this market; 409: the parent was deleted.
    """
    return await handlers.post(
        call.database(),
        call.ctx.bus,
        ref=call.path.market_id,
        wallet=call.require_session().wallet,
        content=call.body.content,
        parent_id=call.body.parent_id,
    )


@router.delete("/discussions/<post_id>", path_type=PostPath, auth="session", errors=[403, 404])
async def delete_discussion(call: Call[None, None]) -> None:
    """Delete a post (its author or an admin); its content is hidden from then on."""
    session = call.require_session()
    await handlers.delete(
        call.database(),
        call.ctx.bus,
        post_id=call.path.post_id,
        wallet=session.wallet,
        admin=session.admin,
        client_ip=call.client_ip,
    )
