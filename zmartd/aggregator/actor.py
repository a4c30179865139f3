"""The ``aggregator`` actor: every ``[aggregator] interval`` seconds, tally
the votes of open markets (in SQL) and turn them into intents for the
sender.  Leader-only (:mod:`zmartd.storage.leader`).

* **Proposals** (PROPOSED markets): when the tally differs from the counts
  last carried on chain, freeze it as an aggregation and submit
  ``aggregate_proposal_votes``; once counts are on chain that approve
  (:func:`~zmartd.aggregator.policy.approves`, thresholds from the indexed
  GlobalConfig) and ``min_votes`` is met, submit ``approve_proposal`` --
  signed by the admin key.  Without an admin key the step is reported as a
  human's (``/ready`` and the market's votes endpoint).
* **Disputes** (DISPUTED markets whose ``dispute_initiated_at +
  dispute_voting_period`` passed, in chain time): freeze the tally and submit
  ``finalize_market(Some(agree), Some(disagree))``, which finalizes and flips
  the outcome when the agree share reaches the threshold.
  ``aggregate_dispute_votes`` is never used: on success it returns the market
  to Resolving without flipping, on failure it finalizes with no outcome and
  turns every claim into a refund.

Markets are handled concurrently and independently: one market's error is
recorded as its outcome and never blocks the others.  Each cycle records
every market's outcome (``GET /v1/markets/{id}/votes``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import trio

from zmartd.aggregator.policy import U32_MAX, approval_bps, approves, dispute_flips
from zmartd.chain.rpc import RpcClient, RpcClientError
from zmartd.concurrency import cancel_on
from zmartd.context import ActorContext
from zmartd.model.services import chain_urls
from zmartd.sender.keys import configured_signers, effective_signers
from zmartd.sender.lifecycle import Signers
from zmartd.sender.metrics import SenderMetrics, sender_metrics
from zmartd.sender.service import SENDER, SenderService
from zmartd.services import ServiceUnavailable
from zmartd.storage import aggregator as store
from zmartd.storage import indexer as indexer_store
from zmartd.storage import intents as intents_store
from zmartd.storage.aggregator import Candidate
from zmartd.storage.database import Database
from zmartd.storage.indexer import GlobalConfigState
from zmartd.storage.intents import IntentRecord
from zmartd.storage.leader import lead, lock_key

__all__ = ["Aggregator", "run"]

#: markets handled at once within a cycle
CONCURRENCY: Final = 8
#: how long a cycle waits for one intent to become final before moving on
INTENT_WAIT: Final = 60.0
_OPEN: Final = ("pending", "signed")


class Aggregator:
    """One leader's aggregation cycles (see the module docstring)."""

    def __init__(
        self, ctx: ActorContext, db: Database, rpc: RpcClient, metrics: SenderMetrics
    ) -> None:
        self.ctx = ctx
        self.db = db
        self.rpc = rpc
        self.metrics = metrics
        self.cfg = ctx.config.aggregator
        self.cycles = 0
        self.failed_cycles = 0
        self.needs_admin: set[str] = set()

    # ------------------------------------------------------------------ plumbing

    def _sender(self) -> SenderService | None:
        """The local sender's service; None when this instance runs no sender (the
        leading sender, wherever it runs, finds stored intents on its next scan)."""
        try:
            return self.ctx.services.get_nowait(SENDER)
        except ServiceUnavailable:
            return None

    async def _wait(self, intent: IntentRecord) -> IntentRecord:
        """The intent once final (or as it stands after :data:`INTENT_WAIT`)."""
        sender = self._sender()
        if sender is not None:
            sender.wake()
            return await sender.wait(intent.id, INTENT_WAIT) or intent
        with trio.move_on_after(INTENT_WAIT):
            while not intent.final:
                await trio.sleep(0.5)
                found = await intents_store.get_intent(self.db, intent.id)
                if found is None:
                    break
                intent = found
        return intent

    async def _submit(
        self, *, kind: intents_store.IntentKind, market_id: str, args: dict[str, int], key: str
    ) -> IntentRecord:
        sender = self._sender()
        if sender is not None:
            return await sender.submit(kind=kind, market_id=market_id, args=args, key=key)
        intent, _ = await intents_store.submit_intent(
            self.db, kind=kind, market_id=market_id, args=args, key=key
        )
        return intent

    async def chain_time(self) -> int:
        """Unix time of the latest confirmed block (the clock the program sees)."""
        slot = await self.rpc.get_slot("confirmed")
        result, _ = await self.rpc.request("getBlockTime", [slot])
        return int(result)

    async def _outcome(
        self,
        c: Candidate,
        kind: str,
        outcome: str,
        detail: str,
        *,
        yes: int | None = None,
        no: int | None = None,
        aggregation_id: int | None = None,
        intent_id: int | None = None,
    ) -> None:
        await store.record_outcome(
            self.db,
            market_id=c.market_id,
            kind="proposal" if kind == "proposal" else "dispute",
            outcome=outcome,
            detail=detail,
            yes=c.yes if yes is None else yes,
            no=c.no if no is None else no,
            aggregation_id=aggregation_id,
            intent_id=intent_id,
        )
        self.metrics.aggregator_markets.labels(kind, outcome).inc()

    # ------------------------------------------------------------------ the cycle

    async def cycle(self) -> bool:
        """One pass over every open market; returns False when a market's step
        raised (its error is recorded as its outcome, the others go on)."""
        config = await indexer_store.read_global_config(self.db)
        if config is None:
            self.ctx.log.info("aggregator waits: the GlobalConfig is not indexed yet")
            return True
        signers = effective_signers(configured_signers(self.ctx.config), config.admin)
        now = await self.chain_time()
        failures: list[str] = []
        limiter = trio.CapacityLimiter(CONCURRENCY)
        self.needs_admin = set()

        async def guard(kind: str, c: Candidate, step: Callable[[], Awaitable[None]]) -> None:
            async with limiter:
                try:
                    await step()
                except Exception as exc:  # one market's failure must not stop the others
                    failures.append(c.market_id)
                    self.ctx.log.exception("aggregation step failed", market=c.market_id, kind=kind)
                    try:
                        await self._outcome(c, kind, "error", f"{type(exc).__name__}: {exc}")
                    except Exception:  # the database itself is failing
                        self.ctx.log.exception("could not record the failure")

        started = trio.current_time()
        proposals = await store.candidates(self.db, "proposal", self.cfg.vote_source)
        disputes = await store.candidates(self.db, "dispute", self.cfg.vote_source)
        self.metrics.aggregator_tally.observe(trio.current_time() - started)
        async with trio.open_nursery() as nursery:
            for c in proposals:
                nursery.start_soon(
                    guard, "proposal", c, lambda c=c: self._proposal(c, config, signers)
                )
            for c in disputes:
                nursery.start_soon(guard, "dispute", c, lambda c=c: self._dispute(c, config, now))
        self.cycles += 1
        if failures:
            self.failed_cycles += 1
        self.metrics.aggregator_cycles.labels("failed" if failures else "ok").inc()
        self.metrics.aggregator_error_rate.set(self.failed_cycles / self.cycles)
        if self.needs_admin:
            self.ctx.set_degraded(
                f"{len(self.needs_admin)} proposal(s) meet the approval threshold but no admin "
                "key is configured ([admin] keypair): approve_proposal must be sent by a human "
                f"(markets: {', '.join(sorted(self.needs_admin)[:5])})"
            )
        else:
            self.ctx.set_degraded(None)
        return not failures

    # ------------------------------------------------------------------ proposals

    async def _proposal(self, c: Candidate, config: GlobalConfigState, signers: Signers) -> None:
        if c.yes > U32_MAX or c.no > U32_MAX or c.yes + c.no > U32_MAX:
            await self._outcome(
                c, "proposal", "too_many_votes", "the counts do not fit the program's u32"
            )
            return
        on_chain = (c.chain_yes, c.chain_no)
        agg_id = c.last_aggregation_id
        if agg_id is not None and c.last_intent_id is not None:
            last = await intents_store.get_intent(self.db, c.last_intent_id)
            if last is not None and last.state in _OPEN:
                last = await self._wait(last)
            if last is not None and last.state in _OPEN:
                await self._outcome(
                    c,
                    "proposal",
                    "in_flight",
                    f"intent {last.id} is still being sent",
                    intent_id=last.id,
                )
                return
            if last is not None and last.state == "landed":
                on_chain = (int(last.args["likes"]), int(last.args["dislikes"]))
        if (c.yes, c.no) != on_chain:
            agg_id, yes, no, intent = await store.freeze_and_submit(
                self.db,
                kind="proposal",
                market_id=c.market_id,
                source=self.cfg.vote_source,
                intent_kind="aggregate_proposal_votes",
                args_for=lambda y, n: {"likes": y, "dislikes": n},
            )
            self.ctx.log.info(
                "proposal votes aggregated; sending the counts",
                market=c.market_id,
                likes=yes,
                dislikes=no,
                intent=intent.id,
            )
            intent = await self._wait(intent)
            if intent.state != "landed":
                what = "aggregate_failed" if intent.state == "failed" else "in_flight"
                await self._outcome(
                    c,
                    "proposal",
                    what,
                    intent.last_error or f"intent {intent.id} is {intent.state}",
                    yes=yes,
                    no=no,
                    aggregation_id=agg_id,
                    intent_id=intent.id,
                )
                return
            on_chain = (yes, no)
        likes, dislikes = on_chain
        threshold = config.proposal_approval_threshold
        bps = approval_bps(likes, likes + dislikes)
        counts = f"{likes} likes / {dislikes} dislikes on chain = {bps} bps"
        if not approves(likes, dislikes, threshold_bps=threshold, min_votes=self.cfg.min_votes):
            why = (
                f"fewer than min_votes ({self.cfg.min_votes})"
                if likes + dislikes < self.cfg.min_votes
                else f"below {threshold} bps"
            )
            await self._outcome(
                c,
                "proposal",
                "not_approved",
                f"{counts}: {why}",
                yes=likes,
                no=dislikes,
                aggregation_id=agg_id,
            )
            return
        if signers.admin is None:
            self.needs_admin.add(c.market_id)
            await self._outcome(
                c,
                "proposal",
                "needs_admin",
                f"{counts} >= {threshold}: approve_proposal needs the admin key "
                "([admin] keypair is unset); a human must send it",
                yes=likes,
                no=dislikes,
                aggregation_id=agg_id,
            )
            return
        intent = await self._submit(
            kind="approve_proposal",
            market_id=c.market_id,
            args={},
            key=f"approve_proposal:{c.market_id}:{agg_id or 'chain'}",
        )
        intent = await self._wait(intent)
        if intent.state == "landed":
            self.ctx.log.info(
                "proposal approved",
                market=c.market_id,
                likes=likes,
                dislikes=dislikes,
                approval_bps=bps,
                signature=intent.signature,
            )
            await self._outcome(
                c,
                "proposal",
                "approved",
                f"{counts} >= {threshold}",
                yes=likes,
                no=dislikes,
                aggregation_id=agg_id,
                intent_id=intent.id,
            )
        else:
            what = "approve_failed" if intent.state == "failed" else "in_flight"
            await self._outcome(
                c,
                "proposal",
                what,
                intent.last_error or f"intent {intent.id} is {intent.state}",
                yes=likes,
                no=dislikes,
                aggregation_id=agg_id,
                intent_id=intent.id,
            )

    # ------------------------------------------------------------------ disputes

    async def _dispute(self, c: Candidate, config: GlobalConfigState, now: int) -> None:
        if c.dispute_initiated_at is None:
            return
        ends = c.dispute_initiated_at.timestamp() + self.cfg.dispute_voting_period
        if now < ends:
            at = datetime.fromtimestamp(ends, UTC).isoformat()
            await self._outcome(c, "dispute", "voting_open", f"dispute voting ends at {at}")
            return
        if c.last_intent_id is not None:
            last = await intents_store.get_intent(self.db, c.last_intent_id)
            if last is not None and last.state in _OPEN:
                last = await self._wait(last)
            if last is not None and last.state != "failed":
                # sent (or still being sent): the indexer will show the market finalized
                await self._finalized(c, config, last, c.last_aggregation_id)
                return
        if c.yes + c.no == 0:
            await self._outcome(
                c,
                "dispute",
                "no_votes",
                "voting ended without votes; finalize_market needs at least one (a human decides)",
            )
            return
        if c.yes + c.no > U32_MAX:
            await self._outcome(
                c, "dispute", "too_many_votes", "the counts do not fit the program's u32"
            )
            return
        agg_id, yes, no, intent = await store.freeze_and_submit(
            self.db,
            kind="dispute",
            market_id=c.market_id,
            source=self.cfg.vote_source,
            intent_kind="finalize_market",
            args_for=lambda y, n: {"agree": y, "disagree": n},
        )
        self.ctx.log.info(
            "dispute votes tallied; finalizing",
            market=c.market_id,
            agree=yes,
            disagree=no,
            intent=intent.id,
        )
        await self._finalized(c, config, await self._wait(intent), agg_id)

    async def _finalized(
        self, c: Candidate, config: GlobalConfigState, intent: IntentRecord, agg_id: int | None
    ) -> None:
        agree, disagree = int(intent.args["agree"]), int(intent.args["disagree"])
        threshold = config.dispute_success_threshold
        flips = dispute_flips(agree, disagree, threshold_bps=threshold)
        counts = (
            f"{agree} agree / {disagree} disagree = "
            f"{approval_bps(agree, agree + disagree)} bps "
            f"({'>=' if flips else '<'} {threshold})"
        )
        if intent.state == "landed":
            result = "flipped" if flips else "kept"
            self.ctx.log.info(
                "disputed market finalized",
                market=c.market_id,
                agree=agree,
                disagree=disagree,
                outcome=result,
                signature=intent.signature,
            )
            await self._outcome(
                c,
                "dispute",
                "finalized",
                f"{counts}: outcome {result}",
                yes=agree,
                no=disagree,
                aggregation_id=agg_id,
                intent_id=intent.id,
            )
            return
        what = "finalize_failed" if intent.state == "failed" else "in_flight"
        await self._outcome(
            c,
            "dispute",
            what,
            intent.last_error or f"intent {intent.id} is {intent.state}",
            yes=agree,
            no=disagree,
            aggregation_id=agg_id,
            intent_id=intent.id,
        )


async def run(
    ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
) -> None:
    """The actor (see the module docstring)."""
    metrics = sender_metrics(ctx.metrics.registry)
    task_status.started()
    try:
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
                    ctx.log.info("another instance holds the aggregator lock; standing by")

                async def aggregate(db: Database) -> None:
                    ctx.log.info(
                        "aggregator lock acquired: this instance aggregates votes",
                        interval=ctx.config.aggregator.interval,
                        vote_source=ctx.config.aggregator.vote_source,
                    )
                    aggregator = Aggregator(ctx, db, rpc, metrics)
                    while True:
                        try:
                            await aggregator.cycle()
                        except RpcClientError as exc:
                            ctx.log.warning(
                                "aggregator cycle skipped: chain unreachable", error=str(exc)
                            )
                        await trio.sleep(ctx.config.aggregator.interval)

                await lead(ctx, lock_key("aggregator"), aggregate, on_wait=waiting)
    finally:
        ctx.set_degraded(None)
