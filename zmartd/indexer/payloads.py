"""Bus events for applied changes, with ``data`` in exactly the REST shapes
(:mod:`zmartd.model.views`), so WebSocket clients apply them without a refetch."""

from __future__ import annotations

from datetime import UTC, datetime

from zmartd.bus import DomainEvent, MarketStateChanged, PositionChanged, TradeExecuted, VoteChanged
from zmartd.indexer.apply import Applied
from zmartd.model import views

__all__ = ["domain_events"]


def _iso(at: datetime | None) -> str:
    return (at or datetime.now(UTC)).isoformat()


def domain_events(applied: Applied) -> list[DomainEvent]:
    """One event per changed trade, vote, position and market (in that order:
    a client sees the trade before the market price it moved)."""
    out: list[DomainEvent] = []
    for t in applied.trades:
        out.append(
            TradeExecuted(
                market_id=t.market_id,
                wallet=t.wallet,
                slot=t.slot,
                at=_iso(t.block_time),
                data=views.to_builtins(views.trade_view(t)),
            )
        )
    for v in applied.votes:
        out.append(
            VoteChanged(
                kind=v.kind,
                market_id=v.market_id,
                wallet=v.wallet,
                at=_iso(v.updated_at),
                data=views.to_builtins(views.vote_view(v)),
            )
        )
    for p in applied.positions:
        out.append(
            PositionChanged(
                market_id=p.market_id,
                wallet=p.wallet,
                slot=p.slot,
                at=_iso(p.last_trade_at),
                data=views.to_builtins(views.position_view(p)),
            )
        )
    for m in applied.markets:
        out.append(
            MarketStateChanged(
                market_id=m.market_id,
                slot=m.slot,
                at=_iso(m.updated_at),
                data=views.to_builtins(views.market_view(m)),
            )
        )
    return out
