"""The ``indexer`` actor: leader lock, then every ingest path around one
:class:`~zmartd.indexer.pipeline.Indexer`.

Tasks (all in one nursery, all feeding the same pipeline):

* **listener** -- PubSub ``logsSubscribe`` → bus ``chain.logs`` / ``chain.gaps``;
* **live** -- drains ``chain.logs``: whatever queued since the last unit is
  fetched concurrently and applied as one unit (one transaction when idle,
  so latency stays low; bigger units under load, so throughput keeps up);
* **backfill** -- at start (after the subscription is confirmed, so nothing
  falls between the two), after every reported gap, and on request; its
  progress is logged and shown on ``/ready`` while it has work;
* **webhooks** -- drains the durable ``webhook_inbox`` that ``POST
  /v1/webhooks/helius`` fills (woken at once in-process, polled otherwise);
* **finality** -- confirmed → finalized, reverting transactions that vanish;
* **reconcile** -- every ``chain.reconcile_interval`` seconds.

Only one instance per database indexes: the actor first takes a session
advisory lock (:func:`zmartd.storage.leader.leader_lock`); followers wait
for it (and stay ready: they serve the API from the leader's writes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import trio

from zmartd.bus import ChainGap, ProgramLogs, Subscription
from zmartd.chain.rpc import RpcClient, RpcClientError
from zmartd.concurrency import cancel_on
from zmartd.context import ActorContext
from zmartd.indexer.backfill import BackfillProgress, backfill
from zmartd.indexer.finality import finality_round
from zmartd.indexer.listener import run_listener
from zmartd.indexer.metrics import indexer_metrics
from zmartd.indexer.pipeline import Indexer
from zmartd.indexer.reconcile import Reconciler
from zmartd.indexer.source import ChainSource
from zmartd.model.services import INDEXER, chain_urls
from zmartd.storage import indexer as store
from zmartd.storage.database import Database
from zmartd.storage.leader import lead

__all__ = ["IndexerService", "run", "serve_indexer"]

#: seconds between finality passes, and before a missing transaction is reverted
FINALITY_INTERVAL = 2.0
DISAPPEAR_TIMEOUT = 60.0
#: a backfill with more transactions than this makes /ready report it (and 503)
READY_BACKFILL_THRESHOLD = 500
LIVE_BATCH = 100
WEBHOOK_BATCH = 200


@dataclass
class IndexerService:
    """Provided as the ``indexer`` service: lets the webhook route wake the
    inbox consumer, and exposes the running backfill's progress."""

    wakeup: trio.Event = field(default_factory=trio.Event)
    backfill_requested: trio.Event = field(default_factory=trio.Event)
    progress: BackfillProgress | None = None
    leader: bool = False
    backfills: int = 0

    def wake(self) -> None:
        self.wakeup.set()

    def request_backfill(self) -> None:
        self.backfill_requested.set()


async def run(
    ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
) -> None:
    """The actor (see the module docstring)."""
    service = IndexerService()
    ctx.services.provide(INDEXER, service)
    metrics = indexer_metrics(ctx.metrics.registry)
    # Not ready until the first catch-up is done (a follower clears this when
    # it finds the lock taken), so /ready never flaps from 200 to 503 at start.
    ctx.set_degraded("starting: waiting for the database, the chain and the first backfill")
    task_status.started()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_on, stopping, nursery.cancel_scope)
            rpc_urls, ws_url = await chain_urls(ctx)
            cfg = ctx.config.chain
            async with RpcClient(
                rpc_urls,
                timeout=cfg.request_timeout,
                max_retries=cfg.max_retries,
                commitment="confirmed",
            ) as rpc:
                source = ChainSource(rpc, cfg.program_id)

                def waiting() -> None:
                    ctx.set_degraded(None)
                    ctx.log.info("another instance holds the indexer lock; standing by")

                async def index(db: Database) -> None:
                    service.leader = True
                    metrics.leader.set(1)
                    ctx.log.info("indexer lock acquired: this instance indexes")
                    try:
                        indexer = Indexer(db, source, ctx.bus, metrics)
                        await indexer.load_state()
                        await serve_indexer(ctx, indexer, service, ws_url)
                    finally:
                        service.leader = False
                        metrics.leader.set(0)

                await lead(ctx, store.LEADER_LOCK_KEY, index, on_wait=waiting)
    finally:
        service.leader = False
        metrics.leader.set(0)
        ctx.set_degraded(None)
        ctx.services.withdraw(INDEXER, service)


async def serve_indexer(
    ctx: ActorContext, indexer: Indexer, service: IndexerService, ws_url: str
) -> None:
    """Run every ingest path until cancelled."""
    logs = ctx.bus.topic("chain.logs").subscribe("indexer")
    gaps = ctx.bus.topic("chain.gaps").subscribe("indexer")
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_listener, ctx.bus, ws_url, indexer.program_id)
            service.request_backfill()
            nursery.start_soon(_backfills, ctx, indexer, service)
            nursery.start_soon(_live, indexer, logs)
            nursery.start_soon(_gaps, ctx, gaps, service)
            nursery.start_soon(_webhooks, ctx, indexer, service)
            nursery.start_soon(_finality, ctx, indexer)
            nursery.start_soon(_reconcile, ctx, indexer, service)
    finally:
        ctx.bus.topic("chain.logs").unsubscribe(logs)
        ctx.bus.topic("chain.gaps").unsubscribe(gaps)


async def _live(indexer: Indexer, logs: Subscription[ProgramLogs]) -> None:
    while True:
        notes = [await logs.receive()]
        while len(notes) < LIVE_BATCH:
            try:
                notes.append(logs.receive_nowait())
            except trio.WouldBlock:
                break
        received = time.perf_counter()
        sigs = list(dict.fromkeys(n.signature for n in notes if not indexer.seen(n.signature)))
        if not sigs:
            continue
        if len(sigs) == 1:
            await indexer.ingest_signature(sigs[0], received=received)
            continue
        docs = await indexer.source.transactions(sigs)
        found = [d for d in docs if d is not None]
        for sig, doc in zip(sigs, docs, strict=True):
            if doc is None and (late := await indexer.fetch(sig)) is not None:
                found.append(late)  # not served at once: fetched with retries
        await indexer.ingest(found, path="live", stream="live")
        if indexer.metrics is not None:
            indexer.metrics.lag.observe(time.perf_counter() - received)


async def _gaps(ctx: ActorContext, gaps: Subscription[ChainGap], service: IndexerService) -> None:
    async for gap in gaps:
        ctx.log.info(
            "live feed gap: backfilling",
            from_slot=gap.from_slot,
            to_slot=gap.to_slot,
            reason=gap.reason,
        )
        service.request_backfill()


async def _backfills(ctx: ActorContext, indexer: Indexer, service: IndexerService) -> None:
    initial = True
    delay = 1.0
    while True:
        await service.backfill_requested.wait()
        service.backfill_requested = trio.Event()
        progress = BackfillProgress(reason="start" if initial else "gap")
        service.progress = progress

        def show(p: BackfillProgress, first: bool = initial) -> None:
            if p.finished:
                return
            if first or p.total - p.done > READY_BACKFILL_THRESHOLD:
                ctx.set_degraded(p.describe())

        if initial:
            ctx.set_degraded(progress.describe())
        try:
            await backfill(indexer, reason=progress.reason, progress=progress, on_progress=show)
        except (RpcClientError, OSError) as exc:
            ctx.set_degraded(f"backfill failed (chain unreachable?): {exc}")
            ctx.log.warning("backfill failed; retrying", error=str(exc), retry_in=delay)
            await trio.sleep(delay)
            delay = min(delay * 2, 30.0)
            service.request_backfill()
            continue
        delay = 1.0
        initial = False
        service.backfills += 1
        ctx.set_degraded(None)


async def _webhooks(ctx: ActorContext, indexer: Indexer, service: IndexerService) -> None:
    while True:
        with trio.move_on_after(1.0):
            await service.wakeup.wait()
        service.wakeup = trio.Event()
        while True:
            items = await store.take_inbox(indexer.db, WEBHOOK_BATCH)
            if not items:
                break
            known = await store.processed_signatures(indexer.db, [i.signature for i in items])
            fresh = []
            for item in items:
                if item.signature in known or indexer.seen(item.signature):
                    continue
                known.add(item.signature)  # a later duplicate in this batch is skipped
                fresh.append(item)
            docs = await indexer.confirm_hints(fresh) if fresh else []
            await indexer.ingest(
                docs, path="webhook", stream="webhook", inbox_ids=[i.id for i in items]
            )


async def _finality(ctx: ActorContext, indexer: Indexer) -> None:
    while True:
        await trio.sleep(FINALITY_INTERVAL)
        try:
            await finality_round(indexer, timeout=DISAPPEAR_TIMEOUT)
        except (RpcClientError, OSError) as exc:
            ctx.log.warning("finality pass failed", error=str(exc))


async def _reconcile(ctx: ActorContext, indexer: Indexer, service: IndexerService) -> None:
    reconciler = Reconciler(indexer)
    while True:
        await trio.sleep(ctx.config.chain.reconcile_interval)
        if service.backfills == 0:
            continue  # compare only once the first catch-up is done
        try:
            await reconciler.run_once()
        except (RpcClientError, OSError) as exc:
            ctx.log.warning("reconciliation failed", error=str(exc))
