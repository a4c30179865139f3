"""Discussions: threaded posts per market, soft-deleted by their author or an admin.

Posting needs a session and a market that exists; a reply names its parent
(``parent_id``), which must be a live post of the same market (404 / 409).
Content is 1..2,000 characters and not only whitespace.  Deleting is allowed
to the author and to admins (403 otherwise); a deleted post keeps its place
in the thread with ``content: null``.  An admin's deletion of someone else's
post is written to the admin audit log.  Both changes are published as
:class:`~zmartd.bus.DiscussionChanged`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Final

from zmartd.api import problems, text
from zmartd.api.handlers.markets import resolve
from zmartd.bus import Bus, DiscussionChanged
from zmartd.model import views
from zmartd.storage import audit
from zmartd.storage import discussions as store
from zmartd.storage.database import Database
from zmartd.storage.records import Page

__all__ = ["MAX_CONTENT", "delete", "post", "threads"]

MAX_CONTENT: Final = 2000


async def threads(
    db: Database, ref: str, *, limit: int, cursor: str | None
) -> Page[views.DiscussionThreadView]:
    market = await resolve(db, ref)
    page = await store.list_threads(db, market.market_id, limit=limit, cursor=cursor)
    return Page(items=tuple(views.thread_view(t) for t in page.items), next_cursor=page.next_cursor)


async def _publish(bus: Bus, view: views.Discussion) -> None:
    await bus.publish(
        "events",
        DiscussionChanged(
            market_id=view.market_id,
            wallet=view.wallet,
            at=datetime.now(UTC).isoformat(),
            data=views.to_builtins(view),
        ),
    )


async def post(
    db: Database,
    bus: Bus,
    *,
    ref: str,
    wallet: str,
    content: str,
    parent_id: int | None,
) -> views.Discussion:
    content = text.normalize(content)
    if not text.shows_something(content):
        # 400, not 422: the body is valid by the schema; this rule is one no schema states
        raise problems.bad_request("content must contain a visible character")
    market = await resolve(db, ref)
    record = await store.post(
        db, market_id=market.market_id, wallet=wallet, content=content, parent_id=parent_id
    )
    view = views.discussion_view(record)
    await _publish(bus, view)
    return view


async def delete(
    db: Database,
    bus: Bus,
    *,
    post_id: int,
    wallet: str,
    admin: bool,
    client_ip: str | None,
) -> None:
    """Soft-delete; 404 unknown or already deleted, 403 neither author nor admin."""
    existing = await store.get_post(db, post_id)
    if existing is None or existing.deleted:
        raise problems.not_found(f"no post {post_id}")
    moderating = existing.wallet != wallet
    if moderating and not admin:
        raise problems.forbidden("only the author or an admin may delete this post")
    # a concurrent delete between the read and here is a NotFound from storage (404)
    record = await store.delete_post(db, post_id=post_id, deleted_by=wallet, moderator=moderating)
    if moderating:
        try:
            ip = ip_address(client_ip) if client_ip else None
        except ValueError:
            ip = None
        await audit.record_admin_action(
            db,
            actor=wallet,
            action="discussion.delete",
            target_type="discussion",
            target_id=str(post_id),
            details={"market_id": record.market_id, "author": record.wallet},
            ip=ip,
        )
    await _publish(bus, views.discussion_view(record))
