"""Discussion snapshots: ``GET /v1/markets/{market_id}/snapshots`` and
``GET /v1/snapshots/{cid}``.  The content itself is at ``/ipfs/{cid}`` (local backend) or
on any IPFS gateway."""

from __future__ import annotations

from typing import Annotated

import msgspec

from zmartd.api.handlers import snapshots as handlers
from zmartd.api.pagination import Page, PageQuery
from zmartd.api.rest.markets import MarketPath
from zmartd.api.routing import Call, Router
from zmartd.api.validation import Query
from zmartd.model import views

__all__ = ["SnapshotPath", "router"]

router = Router("snapshots", prefix="/v1", tags=["snapshots"])

Cid = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{50,200})$",
        description="a CID (base32 CIDv1, or CIDv0)",
    ),
]


class SnapshotPath(Query, frozen=True, kw_only=True):
    cid: Cid


@router.get(
    "/markets/<market_id>/snapshots",
    path_type=MarketPath,
    query=PageQuery,
    response=Page[views.Snapshot],
    errors=[404],
)
async def market_snapshots(call: Call[None, PageQuery]) -> Page[views.Snapshot]:
    """The market's daily discussion snapshots, newest day first."""
    return await handlers.market_snapshots(
        call.database(), call.path.market_id, limit=call.query.limit, cursor=call.query.cursor
    )


@router.get("/snapshots/<cid>", path_type=SnapshotPath, response=views.Snapshot, errors=[404])
async def snapshot(call: Call[None, None]) -> views.Snapshot:
    """One snapshot (a market's day, or a day's root): metadata and links."""
    return await handlers.get(call.database(), call.path.cid)
