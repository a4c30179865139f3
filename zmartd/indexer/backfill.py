"""Backfill: walk ``getSignaturesForAddress`` from the newest signature back
to the watermark, then apply oldest → newest in batches.

The ``backfill`` watermark is *contiguous*: every program transaction up to
and including it has been applied (or parked).  It only moves in the same
database transaction as the effects of the batch it ends, and batches go in
chain order, so after a crash the next backfill resumes exactly after the
last committed batch.  The live path (PubSub, webhooks) applies transactions
out of band and keeps its own ``live`` watermark; the backfill skips what
they already applied (one ``processed_transactions`` lookup per page), so
an overlap costs a signature listing, not a refetch.

Batches are applied as one unit each (one DB transaction with multi-row
``unnest`` writes), which is what makes a 100k-transaction catch-up fast;
the live path uses units of one transaction, which keeps its latency low.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
import trio

from zmartd.concurrency import one_error
from zmartd.indexer.pipeline import Indexer, Prepared
from zmartd.indexer.source import SignatureInfo
from zmartd.storage import chain as chain_store
from zmartd.storage import indexer as store

__all__ = ["ANALYZE_FIRST", "STREAM", "UNIT_SIZE", "BackfillProgress", "backfill"]

log = structlog.get_logger("zmartd.indexer.backfill")

STREAM = "backfill"
#: Transactions applied by one backfill before the planner statistics of the
#: tables it fills are refreshed; again each time that number doubles
#: (:func:`zmartd.storage.indexer.refresh_statistics`).
ANALYZE_FIRST = 2_000
#: transactions per unit (one DB transaction).  A unit reads and writes each
#: account it touched once, whatever its size, so larger units write fewer
#: position/market rows per transaction: 100k backfilled in 32.8 s at 250,
#: 25.5 s at 500, 22.6 s at 1,000 (docs/benchmarks.md).  A unit the database
#: refuses is retried transaction by transaction, so larger units make a
#: poison transaction costlier to isolate (up to 1,000 single retries).
UNIT_SIZE = 1_000


@dataclass
class BackfillProgress:
    """Live numbers of a running backfill (logs, ``/ready``, tests)."""

    reason: str = ""
    listed: int = 0
    total: int = 0
    done: int = 0
    applied: int = 0
    skipped: int = 0
    dead: int = 0
    events: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished: bool = False

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None

    def describe(self) -> str:
        if self.total == 0 and not self.finished:
            return f"backfill ({self.reason}): listing signatures, {self.listed} so far"
        eta = self.eta
        return (
            f"backfill ({self.reason}): {self.done}/{self.total} transactions, "
            f"{self.rate:.0f}/s, ETA {eta:.0f} s"
            if eta is not None
            else f"backfill ({self.reason}): {self.done}/{self.total} transactions"
        )


@dataclass(frozen=True, slots=True)
class _Page:
    page: list[SignatureInfo]
    #: how many of the page's signatures were applied already (live path)
    known: int
    unit: Prepared


async def _prepare_page(indexer: Indexer, page: list[SignatureInfo]) -> _Page:
    """Skip what is applied already, fetch the rest, decode and read accounts."""
    known = await store.processed_signatures(indexer.db, [s.signature for s in page])
    todo = [s for s in page if s.signature not in known]
    docs = []
    if todo:
        fetched = await indexer.source.transactions([s.signature for s in todo])
        for info, doc in zip(todo, fetched, strict=True):
            if doc is None:  # listed at confirmed, so it must exist: retry harder
                doc = await indexer.fetch(info.signature, attempts=6)
            if doc is None:
                raise RuntimeError(
                    f"backfill: transaction {info.signature} listed at "
                    f"confirmed but not returned by getTransaction"
                )
            docs.append(doc)
    return _Page(page, len(page) - len(todo), await indexer.prepare(docs))


async def backfill(
    indexer: Indexer,
    *,
    reason: str,
    from_slot: int | None = None,
    from_signature: str | None = None,
    batch_size: int = UNIT_SIZE,
    progress: BackfillProgress | None = None,
    on_progress: Callable[[BackfillProgress], None] | None = None,
) -> BackfillProgress:
    """Fill everything after the watermark (or from ``from_slot`` /
    ``from_signature``, for an on-demand re-scan) up to the newest confirmed
    signature.  The watermark only advances when the range is contiguous
    with it."""
    p = progress or BackfillProgress(reason=reason)
    p.reason = reason
    cursor = await chain_store.get_cursor(indexer.db, STREAM)
    until = cursor.signature if cursor is not None else None
    # The watermark may only move when nothing between it and this scan's
    # lower bound is left out.
    contiguous = True
    if from_signature is not None:
        until, contiguous = from_signature, False
    elif from_slot is not None:
        until = None
        contiguous = from_slot == 0 or (cursor is not None and from_slot <= cursor.slot)

    last_log = time.perf_counter()

    def listed(n: int) -> None:
        p.listed = n
        if on_progress is not None:
            on_progress(p)

    sigs = await indexer.source.signatures(until=until, min_slot=from_slot, on_page=listed)
    if from_signature is not None:
        sigs.insert(0, SignatureInfo(from_signature, -1, False))
    p.total = len(sigs)
    p.listed = len(sigs)
    if indexer.metrics is not None:
        indexer.metrics.backfill_remaining.set(p.total)
    if sigs:
        log.info(
            "backfill started",
            reason=reason,
            transactions=len(sigs),
            from_slot=sigs[0].slot,
            to_slot=sigs[-1].slot,
        )
    stream = STREAM if contiguous else None

    analyze_at = ANALYZE_FIRST

    async def apply_pages(receive: trio.MemoryReceiveChannel[_Page]) -> None:
        nonlocal last_log, analyze_at
        async with receive:
            async for ready in receive:
                if p.applied >= analyze_at:
                    # the tables have doubled since the planner last looked
                    await store.refresh_statistics(indexer.db)
                    analyze_at *= 2
                last = ready.page[-1]
                cursor_at = (last.slot, last.signature) if last.slot >= 0 else None
                out = await indexer.apply(
                    ready.unit, path="backfill", stream=stream, cursor=cursor_at
                )
                p.done += len(ready.page)
                p.applied += out.applied
                p.skipped += ready.known + out.replayed
                p.dead += out.dead
                p.events += out.events
                if indexer.metrics is not None:
                    indexer.metrics.backfill_remaining.set(p.total - p.done)
                    if stream is not None and last.slot >= 0:
                        indexer.metrics.watermark.set(last.slot)
                if on_progress is not None:
                    on_progress(p)
                now = time.perf_counter()
                if now - last_log >= 2.0:
                    last_log = now
                    log.info(
                        "backfill progress",
                        reason=reason,
                        done=p.done,
                        total=p.total,
                        rate=round(p.rate),
                        eta=round(p.eta or 0, 1),
                    )

    async def prepare_pages(send: trio.MemorySendChannel[_Page]) -> None:
        async with send:
            for start in range(0, len(sigs), batch_size):
                page = sigs[start : start + batch_size]
                await send.send(await _prepare_page(indexer, page))

    # The next page is listed against processed_transactions, fetched,
    # decoded and its accounts read while the database applies this one:
    # the Python side (decoding) and PostgreSQL (writing) then work at the
    # same time.  One page ahead is enough to keep both busy and bounds
    # memory; pages are still applied strictly in chain order.
    send, receive = trio.open_memory_channel[_Page](1)
    # A page that cannot be prepared (transport error, a listed transaction
    # that getTransaction does not return) is the backfill's own failure.
    with one_error():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(prepare_pages, send)
            await apply_pages(receive)
    p.finished = True
    if indexer.metrics is not None:
        indexer.metrics.backfill_remaining.set(0)
    if on_progress is not None:
        on_progress(p)
    if p.total:
        log.info(
            "backfill finished",
            reason=reason,
            transactions=p.total,
            applied=p.applied,
            skipped=p.skipped,
            dead=p.dead,
            events=p.events,
            seconds=round(time.perf_counter() - p.started, 2),
        )
    return p
