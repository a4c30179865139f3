"""``GET /v1/stats``: platform numbers (cached; dropped with the market lists
on every trade or market change, and by ``http.cache_ttl`` otherwise)."""

from __future__ import annotations

from zmartd.api.cache import MARKETS
from zmartd.api.handlers import stats as handlers
from zmartd.api.routing import Call, Router
from zmartd.model import views

__all__ = ["router"]

router = Router("stats", prefix="/v1", tags=["stats"])


@router.get("/stats", response=views.PlatformStats, cache=[MARKETS])
async def platform_stats(call: Call[None, None]) -> views.PlatformStats:
    """Markets (per status), volume, liquidity, trades, traders and users."""
    return await handlers.platform(call.database())
