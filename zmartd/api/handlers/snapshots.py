"""Discussion snapshots: a market's list (newest day first) and one snapshot's metadata
with its links (content on this server's gateway, IPFS URI, the day's root)."""

from __future__ import annotations

from zmartd.api import problems
from zmartd.api.handlers.markets import resolve
from zmartd.model import views
from zmartd.storage import anchors
from zmartd.storage.database import Database
from zmartd.storage.records import Page

__all__ = ["get", "market_snapshots"]


async def market_snapshots(
    db: Database, ref: str, *, limit: int, cursor: str | None
) -> Page[views.Snapshot]:
    market = await resolve(db, ref)
    page = await anchors.market_snapshots(db, market.market_id, limit=limit, cursor=cursor)
    return Page(
        items=tuple(views.snapshot_view(a) for a in page.items), next_cursor=page.next_cursor
    )


async def get(db: Database, cid: str) -> views.Snapshot:
    anchor = await anchors.anchor_by_cid(db, cid)
    if (
        anchor is None
        or anchor.period_start is None
        or anchor.kind not in ("discussions", "discussions_root")
    ):
        raise problems.not_found(f"no snapshot {cid}")
    root = None
    if anchor.kind == "discussions":
        complete = await anchors.complete_snapshot(
            db, kind="discussions_root", market_id=None, period_start=anchor.period_start
        )
        root = complete.cid if complete is not None else None
    return views.snapshot_view(anchor, root_cid=root)
