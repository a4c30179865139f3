"""The ``sender`` actor: executes stored intents on chain, leader-only.

At start it logs the public keys it signs with (never a secret), takes the
sender's advisory lock (:mod:`zmartd.storage.leader`; one sender per
database, followers stand by) and then resumes every intent that is not
final from its stored state -- a stored signature is checked and
rebroadcast, never blindly re-signed (:mod:`zmartd.sender.lifecycle`).  New
intents are picked up when a local actor wakes it and by a scan every
:data:`SCAN_INTERVAL` seconds (intents stored by the CLI or another
instance).

An intent whose key is not configured (``approve_proposal`` without an
admin key) waits for a human: it is listed on ``/ready`` (as a problem that
does not make the instance unready) and in ``zmartd intents``.
"""

from __future__ import annotations

from typing import Final

import trio
from solders.pubkey import Pubkey

from zmartd.chain.accounts import decode_account_as
from zmartd.chain.borsh import DecodeError
from zmartd.chain.pda import global_config_pda
from zmartd.chain.rpc import RpcClient, RpcClientError
from zmartd.chain.types import GlobalConfig
from zmartd.concurrency import cancel_on
from zmartd.config import Config
from zmartd.context import ActorContext
from zmartd.model.services import chain_urls
from zmartd.sender.keys import configured_signers, effective_signers, uses_demo_key
from zmartd.sender.lifecycle import Executor, NeedsKey, SenderSettings, Signers
from zmartd.sender.metrics import SenderMetrics, sender_metrics
from zmartd.sender.service import SENDER, SenderService
from zmartd.storage import intents as store
from zmartd.storage.database import DATABASE, Database
from zmartd.storage.leader import lead, lock_key

__all__ = ["SCAN_INTERVAL", "check_keys", "run", "sender_settings"]

SCAN_INTERVAL: Final = 2.0


def sender_settings(cfg: Config) -> SenderSettings:
    s = cfg.sender
    return SenderSettings(
        rebroadcast_interval=s.rebroadcast_interval,
        poll_interval=min(0.4, s.rebroadcast_interval),
        compute_unit_margin=s.compute_unit_margin,
        priority_fee_percentile=s.priority_fee_percentile,
        max_priority_fee=s.max_priority_fee,
    )


async def chain_admin(rpc: RpcClient, program_id: Pubkey) -> GlobalConfig | None:
    """The program's GlobalConfig as the chain has it now (None before initialization)."""
    account = await rpc.get_account_info(global_config_pda(program_id)[0], commitment="confirmed")
    if account is None or account.owner != program_id:
        return None
    try:
        return decode_account_as(GlobalConfig, account.data, lenient=True)
    except DecodeError:
        return None


def _log_keys(ctx: ActorContext, signers: Signers) -> None:
    backend = str(signers.backend.pubkey()) if signers.backend else None
    admin = str(signers.admin.pubkey()) if signers.admin else None
    ctx.log.info(
        "sender keys (public keys only)",
        backend_authority=backend,
        admin=admin,
        demo_key=uses_demo_key(ctx.config),
    )


async def run(
    ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
) -> None:
    """The actor (see the module docstring)."""
    metrics = sender_metrics(ctx.metrics.registry)
    signers = configured_signers(ctx.config)
    _log_keys(ctx, signers)
    task_status.started()
    service: SenderService | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_on, stopping, nursery.cancel_scope)
            db = await ctx.services.get(DATABASE)
            service = SenderService(db, signers)
            ctx.services.provide(SENDER, service)
            rpc_urls, _ = await chain_urls(ctx)
            cfg = ctx.config.chain
            async with RpcClient(
                rpc_urls,
                timeout=cfg.request_timeout,
                max_retries=min(cfg.max_retries, 2),
                commitment="confirmed",
            ) as rpc:

                def waiting() -> None:
                    ctx.log.info("another instance holds the sender lock; standing by")

                async def send(db: Database) -> None:
                    assert service is not None
                    service.db = db  # the pool the storage actor provides now
                    service.leader = True
                    metrics.leader.set(1)
                    ctx.log.info("sender lock acquired: this instance sends transactions")
                    try:
                        executor = Executor(
                            db,
                            rpc,
                            signers,
                            program_id=cfg.program_id,
                            settings=sender_settings(ctx.config),
                            metrics=metrics,
                        )
                        await _schedule(ctx, service, executor, metrics)
                    finally:
                        service.leader = False
                        metrics.leader.set(0)

                await lead(ctx, lock_key("sender"), send, on_wait=waiting)
    finally:
        metrics.leader.set(0)
        ctx.set_degraded(None)
        if service is not None:
            service.leader = False
            ctx.services.withdraw(SENDER, service)


async def check_keys(ctx: ActorContext, service: SenderService, executor: Executor) -> None:
    """Once the chain's GlobalConfig can be read: let the backend key sign as
    admin when the chain names it the admin, and report configured keys that
    are not the program's (their transactions would all fail ``Unauthorized``)."""
    if service.keys_checked:
        return
    try:
        config = await chain_admin(executor.rpc, executor.program_id)
    except (RpcClientError, OSError):
        return
    if config is None:
        return  # not initialized yet: asked again at the next scan
    service.keys_checked = True
    signers = effective_signers(executor.signers, str(config.admin))
    if signers.admin is not None and executor.signers.admin is None:
        ctx.log.info(
            "the backend key is also the program's admin: it signs approvals",
            admin=str(config.admin),
        )
    executor.signers = service.signers = signers
    problems = []
    backend, admin = signers.backend, signers.admin
    if backend is not None and backend.pubkey() != config.backend_authority:
        problems.append(
            f"[chain] keypair {backend.pubkey()} is not the program's backend authority "
            f"{config.backend_authority}"
        )
    if admin is not None and admin.pubkey() != config.admin:
        problems.append(
            f"[admin] keypair {admin.pubkey()} is not the program's admin {config.admin}"
        )
    service.key_problem = "; ".join(problems) or None
    if service.key_problem:
        ctx.log.error("configured keys do not match the chain", problem=service.key_problem)
    service.needs_human.clear()


async def _schedule(
    ctx: ActorContext, service: SenderService, executor: Executor, metrics: SenderMetrics
) -> None:
    running: set[int] = set()

    async def worker(intent_id: int) -> None:
        try:
            await executor.drive(intent_id)
        except NeedsKey as exc:
            service.needs_human[intent_id] = str(exc)
            await store.record_error(service.db, intent_id, str(exc))
            ctx.log.warning("intent waits for a human", intent=intent_id, reason=str(exc))
        finally:
            running.discard(intent_id)
            service.notify_progress()

    async with trio.open_nursery() as nursery:
        while True:
            await check_keys(ctx, service, executor)
            for intent_id in await store.open_intent_ids(service.db):
                if intent_id not in running and intent_id not in service.needs_human:
                    running.add(intent_id)
                    nursery.start_soon(worker, intent_id)
            counts = await store.count_by_kind_state(service.db)
            for kind in store.INTENT_KINDS:
                for state in store.INTENT_STATES:
                    metrics.intents.labels(kind, state).set(counts.get((kind, state), 0))
            problems = [service.key_problem] if service.key_problem else []
            if service.needs_human:
                first = next(iter(service.needs_human.values()))
                problems.append(f"{len(service.needs_human)} intent(s) wait for a human: {first}")
            ctx.set_degraded("; ".join(problems) or None)
            with trio.move_on_after(SCAN_INTERVAL):
                await service.wakeup.wait()
            service.wakeup = trio.Event()
