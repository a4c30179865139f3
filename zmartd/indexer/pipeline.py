"""The one pipeline every ingest path feeds: decode → fetch touched accounts →
effects → one DB transaction → bus events.

Live notifications, webhook deliveries and backfill batches all end in
:meth:`Indexer.ingest`.  Units are applied one at a time (``self.lock``), in
the order they reach the lock; fetching transactions and accounts happens
before, concurrently.  A unit that the database refuses (a constraint
violation: the transaction references a market that does not exist, ...)
is split into single transactions so that only the poison one is parked in
``dead_letters``; an undecodable transaction is parked without being
applied.  Either way the stream moves on.  Transport errors are not
poison: they propagate, nothing was committed, and the caller retries.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog
import trio
from solders.pubkey import Pubkey

from zmartd.bus import Bus
from zmartd.chain.transactions import (
    DecodedTransaction,
    TransactionFormatError,
    decode_transaction,
)
from zmartd.indexer.apply import Applied, apply_effects
from zmartd.indexer.effects import AccountSnapshot, Effects, FeeBps, build_effects, touched_accounts
from zmartd.indexer.metrics import IndexerMetrics
from zmartd.indexer.payloads import domain_events
from zmartd.indexer.source import ChainSource
from zmartd.storage import chain as chain_store
from zmartd.storage import indexer as store
from zmartd.storage.database import Database

__all__ = ["POISON", "Indexer", "Outcome", "Prepared"]

log = structlog.get_logger("zmartd.indexer")

#: Database errors caused by the data of a unit (retrying cannot help).
POISON: tuple[type[Exception], ...] = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
)


@dataclass
class Outcome:
    """What one :meth:`Indexer.ingest` did."""

    applied: int = 0
    replayed: int = 0
    dead: int = 0
    events: int = 0


#: transactions decoded between two trio checkpoints
_DECODE_SLICE = 16


def _fingerprint(doc: Any) -> Any:
    """What must agree between a delivered transaction and the chain's: the signed
    transaction itself, its slot, its error and its logs (which carry the events)."""
    if not isinstance(doc, Mapping):
        return None
    meta = doc.get("meta")
    if not isinstance(meta, Mapping):
        meta = {}
    return (doc.get("slot"), doc.get("transaction"), meta.get("err"), meta.get("logMessages"))


def _signature_of(raw: Mapping[str, Any]) -> tuple[str | None, int | None]:
    try:
        doc = raw.get("result", raw) if "transaction" not in raw else raw
        sig = doc["transaction"]["signatures"][0]
        return (sig if isinstance(sig, str) else None), doc.get("slot")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None, None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A unit decoded and with its accounts read, ready for :meth:`Indexer.apply`."""

    txs: list[DecodedTransaction]
    docs: list[Mapping[str, Any]]
    #: transactions parked as undecodable while preparing
    dead: int
    snapshot: AccountSnapshot | None
    #: the effects, built while preparing with the fee bps then in force
    #: (:meth:`Indexer.apply` rebuilds them if a unit in between changed those)
    effects: Effects | None = None
    built_with: FeeBps | None = None


class Indexer:
    """State shared by the ingest paths of one leader instance."""

    def __init__(
        self,
        db: Database,
        source: ChainSource,
        bus: Bus | None,
        metrics: IndexerMetrics | None,
        *,
        publish: bool = True,
    ) -> None:
        self.db = db
        self.source = source
        self.bus = bus
        self.metrics = metrics
        self.publish = publish and bus is not None
        self.program_id: Pubkey = source.program_id
        self.bps = FeeBps()
        self.lock = trio.Lock()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.recent_limit = 50_000

    async def load_state(self) -> None:
        config = await store.read_global_config(self.db)
        if config is not None:
            self.bps = FeeBps(
                config.protocol_fee_bps,
                config.resolver_reward_bps,
                config.liquidity_provider_fee_bps,
            )

    # ------------------------------------------------------------------ bookkeeping

    def seen(self, signature: str) -> bool:
        """Applied (or parked) by this instance recently: a duplicate to skip."""
        return signature in self._recent

    def _remember(self, signatures: Sequence[str]) -> None:
        for sig in signatures:
            self._recent[sig] = None
            self._recent.move_to_end(sig)
        while len(self._recent) > self.recent_limit:
            self._recent.popitem(last=False)

    def _count(self, path: str, result: str, n: int = 1) -> None:
        if self.metrics is not None and n:
            self.metrics.transactions.labels(path, result).inc(n)

    async def _dead(self, signature: str, slot: int | None, reason: str, raw: Any) -> None:
        log.warning(
            "transaction parked in dead_letters",
            signature=signature,
            slot=slot,
            reason=reason[:300],
        )
        if self.metrics is not None:
            self.metrics.dead_letters.inc()
        await chain_store.record_dead_letter(
            self.db, signature=signature, slot=slot, reason=reason, payload=raw
        )
        self._remember([signature])

    async def confirm_hints(self, items: Sequence[store.InboxItem]) -> list[dict[str, Any]]:
        """The chain's own version of each webhook delivery, for applying.

        A webhook body is a hint, never chain data: anyone holding the webhook secret
        could post a transaction with a forged signature or forged events, and it would
        be shown (trades, prices, WebSocket) until finality reverted it. So every
        delivered signature is fetched with ``getTransaction`` at confirmed (batched);
        a delivery the node does not know after the usual wait, or whose body differs
        from the node's transaction, is recorded in ``dead_letters`` with the reason
        and counted in ``zmartd_indexer_webhook_rejected_total``. A forged body is not
        applied; the real transaction, when there is one, is.
        """
        docs = await self.source.transactions([i.signature for i in items])
        out: list[dict[str, Any]] = []
        for item, doc in zip(items, docs, strict=True):
            if doc is None:
                doc = await self.fetch(item.signature, attempts=8)
            if doc is None:
                await self._reject_hint(
                    item,
                    "not_found",
                    "webhook delivery: no such transaction at confirmed (getTransaction)",
                )
                continue
            if item.body is not None and _fingerprint(item.body) != _fingerprint(doc):
                await self._reject_hint(
                    item,
                    "mismatch",
                    "webhook delivery differs from the "
                    "chain's transaction; the chain's was applied",
                )
            out.append(doc)
        return out

    async def _reject_hint(self, item: store.InboxItem, reason: str, text: str) -> None:
        # Not remembered as seen: the real transaction (if any) still applies when the
        # live feed or a backfill brings it.
        log.warning("webhook delivery rejected", signature=item.signature, reason=reason)
        if self.metrics is not None:
            self.metrics.webhook_rejected.labels(reason).inc()
        await chain_store.record_dead_letter(
            self.db, signature=item.signature, slot=item.slot, reason=text, payload=item.body
        )

    # ------------------------------------------------------------------ the pipeline

    async def decode(
        self, raws: Sequence[Mapping[str, Any]]
    ) -> tuple[list[DecodedTransaction], list[Mapping[str, Any]], int]:
        """Decoded transactions in chain order, their raw documents, and how
        many were parked as undecodable."""
        good: list[tuple[DecodedTransaction, Mapping[str, Any]]] = []
        dead = 0
        for n, raw in enumerate(raws, 1):
            if n % _DECODE_SLICE == 0:
                # Decoding a backfill page takes ~20 ms of CPU; let the unit
                # being applied meanwhile take its database answers promptly.
                await trio.lowlevel.checkpoint()
            sig, slot = _signature_of(raw)
            try:
                tx = decode_transaction(raw, program_id=self.program_id)
            except TransactionFormatError as exc:
                dead += 1
                if sig is not None:
                    await self._dead(sig, slot, f"undecodable transaction: {exc}", raw)
                else:
                    log.warning("webhook/rpc element without a signature ignored", error=str(exc))
                continue
            if tx.problems:
                dead += 1
                reason = "; ".join(f"{p.where}: {p.message}" for p in tx.problems)
                await self._dead(str(tx.signature), tx.slot, f"undecodable: {reason}", raw)
                continue
            good.append((tx, raw))
        good.sort(key=lambda p: (p[0].slot, p[0].index_within_block or 0))
        return [g[0] for g in good], [g[1] for g in good], dead

    async def snapshot(self, txs: Sequence[DecodedTransaction]) -> AccountSnapshot | None:
        keys = touched_accounts(txs)
        return await self.source.accounts(sorted(keys, key=bytes)) if keys else None

    async def prepare(self, raws: Sequence[Mapping[str, Any]]) -> Prepared:
        """The part of a unit that needs no lock: decode (parking what cannot
        be decoded), read the touched accounts and build the effects.
        Backfill prepares the next page while the database applies the
        current one, so only the writing is left inside the lock."""
        txs, docs, dead = await self.decode(raws)
        snap = await self.snapshot(txs)
        bps = self.bps
        return Prepared(txs, docs, dead, snap, build_effects(txs, snap, bps=bps), bps)

    async def ingest(
        self,
        raws: Sequence[Mapping[str, Any]],
        *,
        path: str,
        stream: str | None,
        inbox_ids: Sequence[int] = (),
        cursor: tuple[int, str] | None = None,
    ) -> Outcome:
        """Apply raw ``getTransaction``/raw-webhook documents as one unit.

        ``cursor`` (slot, signature) is where the stream's watermark moves when
        the unit itself has no newer transaction (backfill pages whose
        transactions were all known already).
        """
        return await self.apply(
            await self.prepare(raws), path=path, stream=stream, inbox_ids=inbox_ids, cursor=cursor
        )

    async def apply(
        self,
        unit: Prepared,
        *,
        path: str,
        stream: str | None,
        inbox_ids: Sequence[int] = (),
        cursor: tuple[int, str] | None = None,
    ) -> Outcome:
        """Build the effects of a prepared unit and write them as one DB
        transaction (units go through ``self.lock`` one at a time)."""
        out = Outcome(dead=unit.dead)
        txs, docs, snap = unit.txs, unit.docs, unit.snapshot
        async with self.lock:
            if unit.effects is not None and unit.built_with == self.bps:
                eff = dataclasses.replace(unit.effects)  # apply() may move .newest
            else:
                eff = build_effects(txs, snap, bps=self.bps)
            if cursor is not None and (eff.newest is None or cursor[0] >= eff.newest[0]):
                eff.newest = (cursor[0], cursor[1], None)
            try:
                applied = await apply_effects(
                    self.db, eff, stream=stream, inbox_ids=inbox_ids, read_back=self.publish
                )
            except POISON as exc:
                if len(txs) <= 1:
                    if txs:
                        await self._dead(
                            str(txs[0].signature),
                            txs[0].slot,
                            f"cannot apply: {type(exc).__name__}: {exc}",
                            docs[0],
                        )
                        out.dead += 1
                    # still move the watermark and drain the inbox
                    rest = Effects(bps=self.bps, newest=eff.newest)
                    await apply_effects(self.db, rest, stream=stream, inbox_ids=inbox_ids)
                    return out
                return await self._split(
                    txs,
                    docs,
                    snap,
                    path=path,
                    stream=stream,
                    inbox_ids=inbox_ids,
                    newest=eff.newest,
                    outcome=out,
                )
            self.bps = eff.bps
            await self._after(applied, eff, path, out)
        return out

    async def _after(self, applied: Applied, eff: Effects, path: str, out: Outcome) -> None:
        out.applied += len(applied.new_signatures)
        out.replayed += applied.replayed
        out.events += applied.events
        failed = sum(1 for f in eff.failed if f.signature in applied.new_signatures)
        self._count(path, "applied", len(applied.new_signatures) - failed)
        self._count(path, "failed_tx", failed)
        self._count(path, "replay", applied.replayed)
        if self.metrics is not None and applied.events:
            self.metrics.events.inc(applied.events)
        self._remember([s for s, _ in eff.keys])
        if self.publish and self.bus is not None:
            for event in domain_events(applied):
                await self.bus.publish("events", event)

    async def _split(
        self,
        txs: Sequence[DecodedTransaction],
        docs: Sequence[Mapping[str, Any]],
        snap: AccountSnapshot | None,
        *,
        path: str,
        stream: str | None,
        inbox_ids: Sequence[int],
        newest: tuple[int, str, datetime | None] | None,
        outcome: Outcome,
    ) -> Outcome:
        """Apply a refused unit transaction by transaction (lock held)."""
        for tx, doc in zip(txs, docs, strict=True):
            eff = build_effects([tx], snap, bps=self.bps)
            try:
                applied = await apply_effects(self.db, eff, stream=None, read_back=self.publish)
            except POISON as exc:
                outcome.dead += 1
                await self._dead(
                    str(tx.signature), tx.slot, f"cannot apply: {type(exc).__name__}: {exc}", doc
                )
                continue
            self.bps = eff.bps
            await self._after(applied, eff, path, outcome)
        rest = Effects(bps=self.bps, newest=newest)
        await apply_effects(self.db, rest, stream=stream, inbox_ids=inbox_ids)
        return outcome

    async def fetch(
        self, signature: str, *, attempts: int = 20, delay: float = 0.1
    ) -> dict[str, Any] | None:
        """``getTransaction`` at confirmed, waiting a little for a node that
        notified before it can serve the transaction."""
        for i in range(attempts):
            doc = await self.source.transaction(signature)
            if doc is not None:
                return doc
            await trio.sleep(min(delay * (1.5**i), 1.0))
        return None

    async def ingest_signature(
        self, signature: str, *, path: str = "live", received: float | None = None
    ) -> Outcome:
        """The live path: one notified signature → one unit."""
        if self.seen(signature):
            self._count(path, "replay")
            return Outcome(replayed=1)
        doc = await self.fetch(signature)
        if doc is None:
            log.warning(
                "notified transaction not found at confirmed; backfill will retry",
                signature=signature,
            )
            return Outcome()
        out = await self.ingest([doc], path=path, stream="live")
        if self.metrics is not None and received is not None:
            self.metrics.lag.observe(time.perf_counter() - received)
        return out
