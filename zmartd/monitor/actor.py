"""The ``monitor`` actor: every ``[monitor] interval`` seconds, compare the
mirror with the chain's clock and act.  Leader-only (:mod:`zmartd.storage.leader`).

* **Finalization**: a RESOLVING market whose dispute window (the indexed
  GlobalConfig's ``dispute_period`` from ``resolution_proposed_at``) has
  passed gets one ``finalize_market(None, None)`` intent.  Its idempotency
  key names the market and the resolution it finalizes, so restarts, a
  second instance or overlapping cycles can never store (or send) it twice.
* **Alerts** (:mod:`zmartd.storage.alerts`): ACTIVE markets past their
  ``end_time`` with no resolution proposed, disputes still open past their
  voting period + grace, markets in one state longer than its maximum,
  sender intents that fail, the indexer falling behind the chain, actors the
  supervisor keeps restarting.  Each condition is one alert; it is notified
  (webhook, e-mail) when it starts, again every ``repeat_after`` while it
  lasts, and once more when it clears.

"Now" is the block time of the chain's latest confirmed slot (what the
program's ``Clock`` says), never this server's clock: a skewed server clock
must neither finalize early (the program would reject it) nor late.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Final

import trio

from zmartd.chain.rpc import RpcClient, RpcClientError
from zmartd.concurrency import cancel_on
from zmartd.context import ActorContext
from zmartd.model.services import chain_urls
from zmartd.monitor.channels import Channel, Kind, channels_for, notice_body, retrying
from zmartd.monitor.metrics import MonitorMetrics, monitor_metrics
from zmartd.sender.service import SENDER
from zmartd.services import ServiceUnavailable
from zmartd.storage import alerts as alerts_store
from zmartd.storage import indexer as indexer_store
from zmartd.storage import intents as intents_store
from zmartd.storage import monitor as store
from zmartd.storage.alerts import AlertRecord, Observation
from zmartd.storage.database import Database
from zmartd.storage.leader import lead, lock_key
from zmartd.storage.monitor import DueMarket

__all__ = ["Monitor", "run"]

#: notices delivered at once, and how many may wait
DELIVERY_WORKERS: Final = 4
OUTBOX_SIZE: Final = 1000

_STATE_NAMES: Final = {
    0: "PROPOSED",
    1: "APPROVED",
    2: "ACTIVE",
    3: "RESOLVING",
    4: "DISPUTED",
    5: "FINALIZED",
    6: "CANCELLED",
}


def finalize_key(market_id: str, resolution_proposed_at: datetime) -> str:
    """The idempotency key of the finalization of this resolution of the market."""
    return f"finalize_market:{market_id}:{int(resolution_proposed_at.timestamp())}"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


class Monitor:
    """One leader's monitor cycles (see the module docstring)."""

    def __init__(
        self,
        ctx: ActorContext,
        db: Database,
        rpc: RpcClient,
        metrics: MonitorMetrics,
        program_id: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.db = db
        self.rpc = rpc
        self.metrics = metrics
        self.cfg = ctx.config.monitor
        self.program_id = program_id
        self.channels: list[Channel] = channels_for(self.cfg)
        self._outbox, self._inbox = trio.open_memory_channel[tuple[AlertRecord, Kind]](OUTBOX_SIZE)
        #: (alert id, notice kind) queued or being delivered
        self.in_flight: set[tuple[int, Kind]] = set()
        #: consecutive cycles that saw the indexer behind (a starting indexer's backfill is
        #: behind on the first one; only a lag that persists is worth an alert)
        self.lagging = 0

    async def chain_time(self) -> tuple[int, int]:
        """(slot, unix time) of the latest confirmed block: the program's clock."""
        slot = await self.rpc.get_slot("confirmed")
        result, _ = await self.rpc.request("getBlockTime", [slot])
        return slot, int(result)

    # ------------------------------------------------------------------ the cycle

    async def cycle(self) -> None:
        slot, unix = await self.chain_time()
        now = datetime.fromtimestamp(unix, UTC)
        await self.finalize_due(now)
        observed = await self.observations(now, slot)
        await self.alert(observed)

    async def finalize_due(self, now: datetime) -> None:
        config = await indexer_store.read_global_config(self.db)
        if config is None:
            self.ctx.log.info("monitor waits: the GlobalConfig is not indexed yet")
            return
        due = await store.due_finalizations(self.db, now=now, dispute_period=config.dispute_period)
        if not due:
            return
        for m in due:
            intent, created = await intents_store.submit_intent(
                self.db,
                kind="finalize_market",
                market_id=m.market_id,
                args={},
                key=finalize_key(m.market_id, m.since),
            )
            if not created:
                continue  # stored by an earlier cycle (or instance): the sender has it
            self.metrics.finalizations.inc()
            self._wake_sender()
            self.ctx.log.info(
                "dispute window passed: finalizing market",
                market=m.market_id,
                resolution_proposed_at=_iso(m.since),
                dispute_period=config.dispute_period,
                chain_time=_iso(now),
                intent=intent.id,
            )

    def _wake_sender(self) -> None:
        """Have the local sender pick the intent up at once (without a local
        sender, the leading one finds it on its next scan)."""
        with contextlib.suppress(ServiceUnavailable):
            self.ctx.services.get_nowait(SENDER).wake()

    async def observations(self, now: datetime, slot: int) -> list[Observation]:
        cfg = self.cfg
        out: list[Observation] = []

        def market_details(m: DueMarket, **extra: object) -> dict[str, object]:
            d: dict[str, object] = {
                "market_id": m.market_id,
                "state": _STATE_NAMES.get(m.state, str(m.state)),
                "creator": m.creator,
            }
            if m.resolver is not None:
                d["resolver"] = m.resolver
            if m.title is not None:
                d["title"] = m.title
            d.update(extra)
            return d

        for m in await store.needs_resolution(self.db, now=now, grace=cfg.resolution_grace):
            out.append(
                Observation(
                    key=f"needs_resolution:{m.market_id}",
                    severity="warning",
                    title=f"market {m.title or m.market_id[:12]} needs resolution",
                    details=market_details(m, end_time=_iso(m.since)),
                )
            )
        voting = self.ctx.config.aggregator.dispute_voting_period
        for m in await store.overdue_disputes(self.db, now=now, after=voting + cfg.dispute_grace):
            out.append(
                Observation(
                    key=f"dispute_overdue:{m.market_id}",
                    severity="critical",
                    title=f"dispute of market {m.title or m.market_id[:12]} not aggregated",
                    details=market_details(m, dispute_initiated_at=_iso(m.since)),
                )
            )
        maxima = {
            0: cfg.stuck_proposed,
            1: cfg.stuck_approved,
            3: cfg.stuck_resolving,
            4: cfg.stuck_disputed,
        }
        for m in await store.stuck_markets(self.db, now=now, maxima=maxima):
            state = _STATE_NAMES.get(m.state, str(m.state))
            out.append(
                Observation(
                    key=f"stuck:{m.market_id}:{m.state}",
                    severity="warning",
                    title=f"market {m.title or m.market_id[:12]} stuck in {state}",
                    details=market_details(m, since=_iso(m.since)),
                )
            )
        for i in await store.failing_intents(self.db, attempts=cfg.intent_failures):
            out.append(
                Observation(
                    key=f"intent_failing:{i.id}",
                    severity="critical" if i.state == "failed" else "warning",
                    title=f"{i.kind} intent {i.id} is {i.state} after {i.attempts} attempt(s)",
                    details={
                        "intent": i.id,
                        "kind": i.kind,
                        "market_id": i.market_id,
                        "state": i.state,
                        "attempts": i.attempts,
                        "last_error": i.last_error,
                    },
                )
            )
        lag = await self.indexer_lag()
        self.lagging = self.lagging + 1 if lag is not None and lag >= cfg.indexer_lag_slots else 0
        if lag is not None and self.lagging >= 2:
            out.append(
                Observation(
                    key="indexer_lag",
                    severity="critical",
                    title=f"indexer is {lag} slots behind the chain",
                    details={"lag_slots": lag, "chain_slot": slot},
                )
            )
        for status in self.ctx.statuses():
            if status.restarts >= cfg.actor_restarts:
                out.append(
                    Observation(
                        key=f"actor_restarts:{status.name}",
                        severity="critical",
                        title=f"actor {status.name} restarted {status.restarts} times",
                        details={
                            "actor": status.name,
                            "restarts": status.restarts,
                            "last_error": status.last_error,
                        },
                    )
                )
        return out

    async def indexer_lag(self) -> int | None:
        """Slots between the newest program transaction on chain and the
        indexer's watermark (0 when it has seen it; None when unknown)."""
        if self.program_id is None:
            return None
        result, _ = await self.rpc.request(
            "getSignaturesForAddress",
            [self.program_id, {"limit": 1, "commitment": "confirmed"}],
        )
        if not result:
            return 0
        newest = int(result[0]["slot"])
        indexed = await store.indexed_slot(self.db)
        return max(0, newest - (indexed if indexed is not None else 0))

    # ------------------------------------------------------------------ alerts

    async def alert(self, observed: list[Observation]) -> None:
        for obs in observed:
            alert, due = await alerts_store.observe(
                self.db, obs, repeat_after=self.cfg.repeat_after
            )
            if due == "new":
                self.ctx.log.warning(
                    "alert", key=alert.dedup_key, severity=alert.severity, title=alert.title
                )
                await self._queue(alert, "firing")
            elif due == "repeat":
                await self._queue(alert, "repeat")
        for alert in await alerts_store.resolve_absent(self.db, [o.key for o in observed]):
            self.ctx.log.info("alert resolved", key=alert.dedup_key, title=alert.title)
            await self._queue(alert, "resolved")
        for severity, n in (await alerts_store.firing_by_severity(self.db)).items():
            self.metrics.firing.labels(severity).set(n)

    async def _queue(self, alert: AlertRecord, kind: Kind) -> None:
        """Hand the notice to the delivery workers (:meth:`deliveries`), so that a
        slow or dead channel -- retries, timeouts -- never delays the next cycle's
        finalizations.  Without a channel the notice is recorded at once.  An alert
        whose notice is still in flight is not queued twice (its ``notified_at``
        stays unset until it is sent, which also makes a crash re-send it)."""
        if not self.channels:
            await alerts_store.record_notified(self.db, alert.id, sent=(), failed=0)
            return
        if (alert.id, kind) in self.in_flight:
            return
        try:
            self._outbox.send_nowait((alert, kind))
        except trio.WouldBlock:
            self.ctx.log.warning("alert notice dropped: delivery queue full", key=alert.dedup_key)
            return
        self.in_flight.add((alert.id, kind))

    async def deliveries(self, workers: int = DELIVERY_WORKERS) -> None:
        """Deliver queued notices, ``workers`` at a time, until cancelled."""

        async def worker(inbox: trio.MemoryReceiveChannel[tuple[AlertRecord, Kind]]) -> None:
            async with inbox:
                async for alert, kind in inbox:
                    try:
                        await self.notify(alert, kind)
                    except Exception:  # the database failing: retried on a later cycle
                        self.ctx.log.exception("recording an alert notice failed")
                    finally:
                        self.in_flight.discard((alert.id, kind))

        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(worker, self._inbox.clone())

    async def notify(self, alert: AlertRecord, kind: Kind) -> None:
        """Send the notice to every channel concurrently; record who took it."""
        body = notice_body(alert, kind, instance=self.ctx.config.daemon.instance_name)
        sent: list[str] = []
        failed = 0

        async def one(channel: Channel) -> None:
            nonlocal failed

            def counted(ok: bool, error: str | None) -> None:
                self.metrics.delivery_attempts.labels(channel.name, "ok" if ok else "error").inc()
                if error is not None:
                    self.ctx.log.warning(
                        "alert delivery attempt failed",
                        channel=channel.name,
                        key=alert.dedup_key,
                        error=error,
                    )

            ok = await retrying(
                lambda: channel.deliver(alert, kind, body),
                retries=self.cfg.retries,
                backoff=self.cfg.retry_backoff,
                on_result=counted,
            )
            self.metrics.notifications.labels(channel.name, "sent" if ok else "failed").inc()
            if ok:
                sent.append(channel.name)
            else:
                failed += 1

        async with trio.open_nursery() as nursery:
            for channel in self.channels:
                nursery.start_soon(one, channel)
        await alerts_store.record_notified(self.db, alert.id, sent=sorted(sent), failed=failed)


async def run(
    ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
) -> None:
    """The actor (see the module docstring)."""
    metrics = monitor_metrics(ctx.metrics.registry)
    task_status.started()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancel_on, stopping, nursery.cancel_scope)
        rpc_urls, _ = await chain_urls(ctx)
        cfg = ctx.config.chain
        async with RpcClient(
            rpc_urls,
            timeout=cfg.request_timeout,
            max_retries=cfg.max_retries,
            commitment="confirmed",
        ) as rpc:

            def waiting() -> None:
                ctx.log.info("another instance holds the monitor lock; standing by")

            async def watch(db: Database) -> None:
                mon = Monitor(ctx, db, rpc, metrics, program_id=str(ctx.config.chain.program_id))
                async with trio.open_nursery() as deliveries:
                    deliveries.start_soon(mon.deliveries)
                    ctx.log.info(
                        "monitor lock acquired: this instance watches markets",
                        interval=mon.cfg.interval,
                        channels=[c.name for c in mon.channels] or "none (alerts are only stored)",
                    )
                    while True:
                        try:
                            await mon.cycle()
                            metrics.cycles.labels("ok").inc()
                        except RpcClientError as exc:
                            metrics.cycles.labels("skipped").inc()
                            ctx.log.warning(
                                "monitor cycle skipped: chain unreachable", error=str(exc)
                            )
                        await trio.sleep(mon.cfg.interval)

            await lead(ctx, lock_key("monitor"), watch, on_wait=waiting)
