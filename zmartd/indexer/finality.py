"""Confirmed → finalized, and transactions that disappear.

The indexer ingests at ``confirmed``.  Periodically it asks the node for the
finalized slot and checks the statuses of the applied-but-not-finalized
signatures at or below it:

* found → nothing to do; every row at or below the finalized slot is then
  flagged ``finalized`` in one transaction;
* not found (the fork they were on was abandoned) for longer than
  ``timeout`` seconds since they were applied → their event effects are
  deleted and the accounts they touched re-read from the chain, in one
  database transaction, and the corrected markets/positions are published
  as correction events (a ``MarketStateChanged``/``PositionChanged`` with the
  re-read REST shape);
* not found but younger than ``timeout`` → finalization stops just below
  their slot until the next round (a status can lag the finalized slot).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from zmartd.chain.accounts import market_filters, position_filters
from zmartd.indexer.apply import revert_and_refresh
from zmartd.indexer.effects import AccountSnapshot, build_effects
from zmartd.indexer.payloads import domain_events
from zmartd.indexer.pipeline import Indexer
from zmartd.storage import indexer as store

__all__ = ["FinalityReport", "finality_round"]

log = structlog.get_logger("zmartd.indexer.finality")


@dataclass
class FinalityReport:
    finalized_slot: int
    marked_up_to: int
    rows_marked: int
    reverted: list[str]


async def finality_round(indexer: Indexer, *, timeout: float = 60.0) -> FinalityReport:
    """One pass (see the module docstring)."""
    finalized = await indexer.source.slot("finalized")
    pending = await store.pending_finality(indexer.db, finalized, limit=5000)
    statuses = (
        (
            await indexer.source.rpc.get_signature_statuses(
                [p.signature for p in pending], search_transaction_history=True
            )
        )
        if pending
        else []
    )
    now = datetime.now(UTC)
    gone: list[str] = []
    hold = finalized
    for p, status in zip(pending, statuses, strict=True):
        if status is not None:
            continue
        if (now - p.processed_at).total_seconds() >= timeout:
            gone.append(p.signature)
        else:
            hold = min(hold, p.slot - 1)
    if gone:
        await _revert(indexer, gone)
    marked = await store.mark_all_finalized(indexer.db, hold) if hold >= 0 else 0
    return FinalityReport(
        finalized_slot=finalized, marked_up_to=hold, rows_marked=marked, reverted=gone
    )


async def _revert(indexer: Indexer, signatures: list[str]) -> None:
    started = time.perf_counter()
    # Every market and position account is re-read (disappearing transactions
    # are rare; this is simple and cannot miss one): once their event rows are
    # deleted, the accounts are the only truth left.
    markets = await indexer.source.program_accounts(market_filters())
    positions = await indexer.source.program_accounts(position_filters())
    snap = AccountSnapshot(
        slot=min(markets.slot, positions.slot), accounts={**markets.accounts, **positions.accounts}
    )
    async with indexer.lock:
        eff = build_effects([], snap, bps=indexer.bps)
        applied = await revert_and_refresh(indexer.db, signatures, eff)
    if indexer.metrics is not None:
        indexer.metrics.reverted.inc(len(signatures))
    log.warning(
        "reverted transactions that disappeared before finalization",
        signatures=signatures,
        markets=[m.market_id for m in applied.markets],
        seconds=round(time.perf_counter() - started, 3),
    )
    if indexer.publish and indexer.bus is not None:
        for event in domain_events(applied):
            await indexer.bus.publish("events", event)
