"""Platform numbers for ``GET /v1/stats`` (cached by the route: they scan tables)."""

from __future__ import annotations

from zmartd.model import views
from zmartd.storage import stats as store
from zmartd.storage.database import Database

__all__ = ["platform"]


async def platform(db: Database) -> views.PlatformStats:
    return views.platform_stats_view(await store.platform_stats(db))
