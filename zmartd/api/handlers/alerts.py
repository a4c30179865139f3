"""Operator alerts for ``GET /v1/admin/alerts`` (the storage rows as views)."""

from __future__ import annotations

from zmartd.model import views
from zmartd.storage import alerts as store
from zmartd.storage.database import Database
from zmartd.storage.records import Page

__all__ = ["list_alerts"]


async def list_alerts(
    db: Database, *, state: str | None, severity: str | None, limit: int, cursor: str | None
) -> Page[views.Alert]:
    page = await store.list_alerts(db, state=state, severity=severity, limit=limit, cursor=cursor)
    return Page(items=tuple(views.alert_view(a) for a in page.items), next_cursor=page.next_cursor)
