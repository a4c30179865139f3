"""The admin API: ``GET /v1/admin/alerts`` (admin session).

The rest of ``/v1/admin`` (market moderation, audit log, ...) is added by
the admin API's own routes; this module holds what the market monitor
offers operators.
"""

from __future__ import annotations

from typing import Literal

from zmartd.api.handlers import alerts as handlers
from zmartd.api.pagination import Page, PageQuery
from zmartd.api.routing import Call, Router
from zmartd.model import views

__all__ = ["AlertQuery", "router"]

router = Router("admin", prefix="/v1/admin", tags=["admin"])


class AlertQuery(PageQuery, frozen=True, kw_only=True):
    #: only alerts in this state
    state: Literal["firing", "resolved"] | None = None
    #: only alerts of this severity
    severity: Literal["info", "warning", "critical"] | None = None


@router.get("/alerts", query=AlertQuery, response=Page[views.Alert], auth="admin")
async def list_alerts(call: Call[None, AlertQuery]) -> Page[views.Alert]:
    """The market monitor's alerts, newest first, optionally filtered by state
    and severity.  One alert per condition: ``count`` and ``last_seen`` show
    how long it persisted, ``notified`` which channels took its last notice."""
    q = call.query
    return await handlers.list_alerts(
        call.database(), state=q.state, severity=q.severity, limit=q.limit, cursor=q.cursor
    )
