"""Reconciliation: compare every market and position account with the
database, fix what drifted, count it, and alert on repeated drift.

Runs every ``chain.reconcile_interval`` seconds.  ``getProgramAccounts``
(with its context slot) lists the accounts; a row counts as drifted when it
is missing, or differs in any chain field while the stored row is not newer
than the listing (a newer stored row just means the live path was faster).
Drift is fixed by writing the listed state through the same storage writes
(slot-guarded), counted in ``zmartd_reconcile_drift_total{kind}``, and a
market that drifts in two rounds in a row is logged as an error and
counted in the ``zmartd_reconcile_drift_alert`` gauge: that is an indexer
bug or a lost stream, not a race.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
import msgspec
import structlog

from zmartd.chain.accounts import market_filters, position_filters
from zmartd.indexer.apply import Applied
from zmartd.indexer.effects import AccountSnapshot, build_effects
from zmartd.indexer.payloads import domain_events
from zmartd.indexer.pipeline import Indexer
from zmartd.storage import indexer as store
from zmartd.storage.markets import write_markets
from zmartd.storage.positions import PositionState, write_positions
from zmartd.storage.records import MarketChainState

__all__ = ["ReconcileReport", "Reconciler"]

log = structlog.get_logger("zmartd.indexer.reconcile")

#: fields not compared: bookkeeping, and the question CID the account no longer holds
_SKIP_MARKET = frozenset({"slot", "finalized", "ipfs_question_hash"})
_SKIP_POSITION = frozenset({"slot", "finalized"})
_BATCH = 1000


@dataclass
class ReconcileReport:
    slot: int = 0
    markets: int = 0
    positions: int = 0
    drift: dict[str, int] = field(default_factory=dict)
    drifted_markets: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)

    @property
    def total_drift(self) -> int:
        return sum(self.drift.values())


def _differs(a: msgspec.Struct, b: msgspec.Struct, skip: frozenset[str]) -> list[str]:
    return [f for f in a.__struct_fields__ if f not in skip and getattr(a, f) != getattr(b, f)]


class Reconciler:
    """Keeps the previous round's drifted markets for the twice-in-a-row alert."""

    def __init__(self, indexer: Indexer) -> None:
        self.indexer = indexer
        self.previous: set[str] = set()

    async def run_once(self) -> ReconcileReport:
        ix = self.indexer
        markets_snap = await ix.source.program_accounts(market_filters())
        positions_snap = await ix.source.program_accounts(position_filters())
        snap = AccountSnapshot(
            slot=min(markets_snap.slot, positions_snap.slot),
            accounts={**markets_snap.accounts, **positions_snap.accounts},
        )
        chain = build_effects([], snap, bps=ix.bps)
        report = ReconcileReport(
            slot=snap.slot, markets=len(chain.markets), positions=len(chain.positions)
        )
        stored_m = await store.read_chain_markets(ix.db)
        stored_p = await store.read_chain_positions(ix.db)

        fix_m: list[MarketChainState] = []
        drifted: set[str] = set()

        def count(kind: str) -> None:
            report.drift[kind] = report.drift.get(kind, 0) + 1
            if ix.metrics is not None:
                ix.metrics.drift.labels(kind).inc()

        for m in chain.markets:
            have = stored_m.get(m.market_id)
            if have is None:
                count("market_missing")
            elif have.slot > m.slot:
                continue
            elif fields := _differs(have, m, _SKIP_MARKET):
                count("market_fields")
                log.warning("market drifted from the chain", market_id=m.market_id, fields=fields)
            else:
                continue
            drifted.add(m.market_id)
            if have is not None and have.ipfs_question_hash:
                m = msgspec.structs.replace(m, ipfs_question_hash=have.ipfs_question_hash)
            fix_m.append(m)
        on_chain = {m.market_id for m in chain.markets}
        for market_id in stored_m.keys() - on_chain:
            count("market_extra")
            drifted.add(market_id)
            log.error("market in the database but not on chain", market_id=market_id)

        fix_p: list[PositionState] = []
        for p in chain.positions:
            have_p = stored_p.get((p.market_id, p.wallet))
            if have_p is None:
                count("position_missing")
            elif have_p.slot > p.slot:
                continue
            elif _differs(have_p, p, _SKIP_POSITION):
                count("position_fields")
            else:
                continue
            drifted.add(p.market_id)
            fix_p.append(p)

        if fix_m or fix_p:
            await self._fix(fix_m, fix_p)
        report.drifted_markets = sorted(drifted)
        report.alerts = sorted(drifted & self.previous)
        self.previous = drifted
        if ix.metrics is not None:
            ix.metrics.drift_alert.set(len(report.alerts))
        for market_id in report.alerts:
            log.error("ALERT: market drifted in two reconciliations in a row", market_id=market_id)
        log.info(
            "reconciliation done",
            slot=report.slot,
            markets=report.markets,
            positions=report.positions,
            drift=report.drift or None,
        )
        return report

    async def _fix(self, markets: list[MarketChainState], positions: list[PositionState]) -> None:
        ix = self.indexer

        async def _unit(con: asyncpg.Connection) -> None:
            await write_markets(con, markets)
            for i in range(0, len(positions), _BATCH):
                await write_positions(con, positions[i : i + _BATCH])

        async with ix.lock:
            await ix.db.run("indexer.reconcile_fix", _unit)
        if ix.publish and ix.bus is not None:

            async def _read(con: asyncpg.Connection) -> Applied:
                out = Applied()
                out.markets = await store.read_market_records(con, [m.market_id for m in markets])
                out.positions = await store.read_position_records(
                    con, [(p.market_id, p.wallet) for p in positions][:_BATCH]
                )
                return out

            for event in domain_events(
                await ix.db.run("indexer.reconcile_read_back", _read, transaction=False)
            ):
                await ix.bus.publish("events", event)
