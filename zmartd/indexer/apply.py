"""Apply :class:`~zmartd.indexer.effects.Effects` in ONE database transaction.

This is where exactly-once is decided.  Inside one ``Database.run``
crossing, in this order:

1. claim the exactly-once keys of every transaction of the unit
   (``processed_transactions``, ``ON CONFLICT DO NOTHING RETURNING``); a
   transaction whose keys were already claimed is a replay (webhook +
   PubSub + backfill overlap) and contributes no event effects;
2. upsert the account-derived rows (markets, positions, global config) --
   idempotent by their slot guard, so they are written even for replays;
3. insert the event-derived rows of the *new* transactions only (trades
   with price points and fees, on-chain votes, events, failed
   transactions, creation price points) -- each of these is also unique on
   its event key, a second line of defence;
4. advance the stream's watermark (slot + signature) and delete the
   webhook inbox rows the unit came from;
5. read back, in REST shapes, what changed (for the bus events).

If the process dies anywhere before COMMIT, nothing of the unit exists and
it is applied again after restart; after COMMIT, every replay is a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from zmartd.indexer.effects import Effects
from zmartd.storage import chain as chain_store
from zmartd.storage import indexer as store
from zmartd.storage.database import Database
from zmartd.storage.markets import write_markets
from zmartd.storage.positions import write_positions
from zmartd.storage.records import MarketRecord, PositionRecord, TradeRecord, VoteRecord
from zmartd.storage.trades import write_trades
from zmartd.storage.votes import write_chain_votes

__all__ = ["Applied", "apply_effects", "revert_and_refresh"]


@dataclass
class Applied:
    """What one unit of work changed."""

    new_signatures: set[str] = field(default_factory=set)
    replayed: int = 0
    events: int = 0
    markets: list[MarketRecord] = field(default_factory=list)
    positions: list[PositionRecord] = field(default_factory=list)
    trades: list[TradeRecord] = field(default_factory=list)
    votes: list[VoteRecord] = field(default_factory=list)


async def apply_effects(
    db: Database,
    eff: Effects,
    *,
    stream: str | None,
    inbox_ids: Sequence[int] = (),
    read_back: bool = True,
) -> Applied:
    """Write ``eff`` as one transaction (see the module docstring)."""

    async def _unit(con: asyncpg.Connection) -> Applied:
        out = Applied()
        all_keys = [k for _, keys in eff.keys for k in keys]
        claimed = await chain_store.write_claims(con, all_keys)
        new = {
            sig
            for sig, keys in eff.keys
            if any((k.signature, k.instruction_index, k.event_index) in claimed for k in keys)
        }
        out.new_signatures = new
        out.replayed = len(eff.keys) - len(new)

        markets = eff.markets
        await write_markets(con, markets)  # keeps a stored question CID the account lost
        await write_positions(con, eff.positions)
        if eff.config is not None:
            await store.write_global_config(con, eff.config)

        # every trade of the unit (a replay inserts nothing but is still the
        # previous trade of its market for price_before)
        await write_trades(con, eff.trades, eff.fees)
        trades = [x for x in eff.trades if x.signature in new]
        votes = [v for v in eff.votes if v.signature in new]
        await write_chain_votes(con, votes)
        events = [e for e in eff.events if e.signature in new]
        out.events = await store.write_chain_events(con, events)
        await store.write_failed_transactions(con, [f for f in eff.failed if f.signature in new])
        created = {e.market_id for e in events if e.name == "MarketCreated"}
        await store.write_creation_points(con, [c for c in eff.creations if c[0] in created])

        if stream is not None and eff.newest is not None:
            slot, signature, block_time = eff.newest
            await chain_store.write_cursor(
                con, stream, slot=slot, signature=signature, block_time=block_time
            )
        await store.delete_inbox(con, inbox_ids)

        if read_back and new:
            touched = {e.market_id for e in events if e.market_id is not None}
            touched.update(
                m.market_id
                for m in markets
                if any(p.market_id == m.market_id for p in eff.positions) or m.market_id in touched
            )
            out.markets = await store.read_market_records(con, touched)
            wallets = {(t.market_id, t.wallet) for t in trades}
            wallets.update(
                (e.market_id, e.wallet)
                for e in events
                if e.name == "WinningsClaimed" and e.market_id and e.wallet
            )
            out.positions = await store.read_position_records(con, wallets)
            out.trades = await store.read_trade_records(
                con, [(t.signature, t.instruction_index, t.event_index) for t in trades]
            )
            out.votes = await store.read_vote_records(
                con, [(v.kind, v.market_id, v.wallet) for v in votes]
            )
        return out

    return await db.run("indexer.apply_effects", _unit)


async def revert_and_refresh(
    db: Database, signatures: Sequence[str], refreshed: Effects
) -> Applied:
    """Undo disappeared transactions and write the re-read account state,
    in one transaction; returns the corrected markets and positions."""

    async def _unit(con: asyncpg.Connection) -> Applied:
        out = Applied()
        affected = await store.revert_signatures(con, signatures)
        await write_markets(con, refreshed.markets)
        await write_positions(con, refreshed.positions)
        ids = set(affected["markets"])
        wallets = set(affected["wallets"])
        out.markets = await store.read_market_records(con, ids)
        keys = {
            (p.market_id, p.wallet)
            for p in refreshed.positions
            if p.market_id in ids and p.wallet in wallets
        }
        out.positions = await store.read_position_records(con, keys)
        return out

    return await db.run("indexer.revert_and_refresh", _unit)
