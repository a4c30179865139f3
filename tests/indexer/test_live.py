"""The indexer's live paths against a served devchain and the real PostgreSQL:
PubSub + gap backfill, and Helius raw webhooks delivered 3x in shuffled order
through the real HTTP route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from prometheus_client import CollectorRegistry

from tests.api.conftest import live_api, make_config, make_ctx
from zmartd.api.rest import webhooks
from zmartd.chain.rpc import RpcClient
from zmartd.devchain.actor import Devchain
from zmartd.indexer import actor
from zmartd.indexer.metrics import IndexerMetrics
from zmartd.indexer.pipeline import Indexer
from zmartd.indexer.source import ChainSource
from zmartd.model.services import INDEXER
from zmartd.storage import indexer as store
from zmartd.storage.database import Database

from .conftest import SOL, Driver, assert_db_matches_chain, rows, run_lifecycle


def _value(metrics: IndexerMetrics, path: str, result: str) -> float:
    return float(metrics.transactions.labels(path, result)._value.get())


async def _until(pred: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    with trio.fail_after(timeout):
        while not await pred():
            await trio.sleep(0.05)


async def test_live_feed_and_gap_backfill(db: Database, chain: Devchain, rpc: RpcClient) -> None:
    d = Driver(chain)
    run_lifecycle(d)  # history before the indexer starts: the start backfill takes it
    ctx = make_ctx(make_config())
    metrics = IndexerMetrics(CollectorRegistry())
    indexer = Indexer(db, ChainSource(rpc, chain.node.bank.program_id), ctx.bus, metrics)
    service = actor.IndexerService()
    events = ctx.bus.topic("events").subscribe("test", capacity=100_000)
    users = [d.fund() for _ in range(3)]
    market = d.active_market(d.fund(), 7, users[:1])

    async def db_trades() -> int:
        return len(await rows(db, "SELECT id FROM trades"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor.serve_indexer, ctx, indexer, service, chain.ws_url)
        await _until(lambda: _true(service.backfills >= 1))
        base = await db_trades()
        # live: one trade per slot, each notified and applied on its own
        for i in range(5):
            d.buy(users[i % 3], market, i % 2 == 0, SOL + i)
            await _until(partial(_ge_trades, db_trades, base + i + 1))
        assert _value(metrics, "live", "applied") == 5
        # gap: cut PubSub; these trades land (and confirm) before it can reconnect
        chain.pubsub.drop_connections()
        for i in range(6):
            d.buy(users[i % 3], market, i % 2 == 1, 2 * SOL + i, confirm=False)
        d.confirm()
        d.confirm()

        async def clock() -> None:  # a live chain keeps producing slots
            while True:
                await trio.sleep(0.1)
                d.confirm()

        nursery.start_soon(clock)
        await _until(lambda: _ge(db_trades(), base + 11))
        await _until(lambda: _true(service.backfills >= 2))
        gap = service.progress
        assert gap is not None and gap.reason == "gap" and gap.applied == 6
        # live again after the reconnect
        d.buy(users[0], market, True, 3 * SOL)
        await _until(lambda: _ge(db_trades(), base + 12))
        assert _value(metrics, "live", "applied") == 6
        nursery.cancel_scope.cancel()
    counts = await assert_db_matches_chain(db, chain)
    assert (
        counts["trades"] == base + 12
        and (await store.chain_table_counts(db))["duplicate_trades"] == 0
    )
    # bus events carry REST shapes
    seen: list[Any] = []
    while True:
        try:
            seen.append(events.receive_nowait())
        except trio.WouldBlock:
            break
    trades = [e for e in seen if type(e).__name__ == "TradeExecuted"]
    assert len(trades) == base + 12
    assert {"id", "market_id", "wallet", "side", "outcome", "shares", "amount", "price_yes"} <= set(
        trades[-1].data
    )
    assert any(type(e).__name__ == "MarketStateChanged" for e in seen)
    assert any(type(e).__name__ == "PositionChanged" for e in seen)
    assert any(type(e).__name__ == "VoteChanged" for e in seen)


async def _true(value: bool) -> bool:
    return value


async def _ge(n: Awaitable[int], target: int) -> bool:
    return await n >= target


async def _ge_trades(count: Callable[[], Awaitable[int]], target: int) -> bool:
    return await _ge(count(), target)


async def test_webhooks_duplicated_and_shuffled(db: Database, serve: Callable[..., Any]) -> None:
    secret = "Bearer test-secret-0123456789abcdef"
    cfg = make_config(chain={"webhook_secret": secret})
    async with live_api(cfg, db, routers=[webhooks.router]) as api:
        chain: Devchain = await serve(
            confirmed_lag=1,
            webhook_url=f"{api.url}/v1/webhooks/helius",
            webhook_auth_header=secret,
            webhook_duplicates=3,
            webhook_shuffle=True,
        )
        async with RpcClient([chain.rpc_url], commitment="confirmed") as rpc:
            indexer = Indexer(db, ChainSource(rpc, chain.node.bank.program_id), api.ctx.bus, None)
            service = actor.IndexerService()
            api.ctx.services.provide(INDEXER, service)
            await _until(lambda: _true(chain.webhooks is not None))
            emitter = chain.webhooks
            assert emitter is not None
            d = Driver(chain)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(actor._webhooks, api.ctx, indexer, service)
                run_lifecycle(d)

                async def drained() -> bool:
                    counts = await store.chain_table_counts(db)
                    return (
                        emitter.stats.delivered == emitter.stats.queued > 0
                        and counts["webhook_inbox"] == 0
                    )

                await _until(drained)
                nursery.cancel_scope.cancel()
            assert emitter.stats.failed == 0
            counts = await assert_db_matches_chain(db, chain)
            assert emitter.stats.queued == 3 * (counts["events"] + counts["failed"])
            assert (await store.chain_table_counts(db))["duplicate_trades"] == 0


async def test_webhook_route_auth_and_body(db: Database) -> None:
    secret = "Bearer s3cret-s3cret-s3cret"
    sig = "5" * 87 + "1"
    async with live_api(
        make_config(chain={"webhook_secret": secret}), db, routers=[webhooks.router]
    ) as api:
        body = [
            {
                "signature": "4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi4cKZqwRk5Mx2bNgwPQTHx"
                "oTHVcQmwWTJmkzXcAwKsAaZz"
            }
        ]
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": secret + "x"}):
            r = await api.client.post("/v1/webhooks/helius", json=body, headers=headers)
            assert r.status_code == 401, r.text
        assert (await store.chain_table_counts(db))["webhook_inbox"] == 0
        for bad in (b"{", b'{"x": 1}', b'[{"signature": "nope"}]', b"[1]"):
            r = await api.client.post(
                "/v1/webhooks/helius",
                content=bad,
                headers={"Authorization": secret, "Content-Type": "application/json"},
            )
            assert r.status_code == 400, (bad, r.text)
        r = await api.client.post(
            "/v1/webhooks/helius", json=body, headers={"Authorization": secret}
        )
        assert r.status_code == 200 and r.json() == {"accepted": 1}
        items = await store.take_inbox(db)
        assert [(i.signature, i.body) for i in items] == [(body[0]["signature"], None)]
    async with live_api(make_config(), db, routers=[webhooks.router]) as api:
        r = await api.client.post(
            "/v1/webhooks/helius", json=[{"signature": sig}], headers={"Authorization": ""}
        )
        assert r.status_code == 401  # no secret configured: webhooks refused


async def test_forged_webhook_payloads_are_never_applied(
    db: Database, serve: Callable[..., Any]
) -> None:
    """Regression (attacker's probe): a copy of a real buy with a random signature and a
    forged SharesBought event of 9*10^15 lamports, posted with the right secret, showed
    in REST and on WebSockets until finality reverted it. Deliveries are now only hints:
    the forged one is dead-lettered (not_found), and a real signature carrying forged
    logs applies the chain's own transaction (mismatch)."""
    import copy
    import dataclasses

    from solders.signature import Signature

    from zmartd.chain.events import decode_event_base64, encode_event_base64
    from zmartd.chain.types import SharesBought

    secret = "Bearer test-secret-forgery-0123456789"
    cfg = make_config(chain={"webhook_secret": secret})
    async with live_api(cfg, db, routers=[webhooks.router]) as api:
        chain: Devchain = await serve(confirmed_lag=1)
        d = Driver(chain)
        d.init_config()
        users = [d.fund() for _ in range(2)]
        market = d.active_market(d.fund(), 41, users[:1])
        record = d.buy(users[0], market, True, SOL)
        signature = str(record.signature)
        async with RpcClient([chain.rpc_url], commitment="confirmed") as rpc:
            with trio.fail_after(10):
                while (
                    real := await rpc.get_transaction(signature, commitment="confirmed")
                ) is None:
                    await trio.sleep(0.05)
            metrics = IndexerMetrics(CollectorRegistry())
            indexer = Indexer(
                db, ChainSource(rpc, chain.node.bank.program_id), api.ctx.bus, metrics
            )
            service = actor.IndexerService()
            api.ctx.services.provide(INDEXER, service)

            def forge(doc: dict[str, Any], new_signature: str | None) -> dict[str, Any]:
                fake = copy.deepcopy(doc)
                if new_signature is not None:
                    fake["transaction"]["signatures"][0] = new_signature
                logs = fake["meta"]["logMessages"]
                for i, line in enumerate(logs):
                    if line.startswith("Program data: "):
                        event = decode_event_base64(line.removeprefix("Program data: "))
                        if isinstance(event, SharesBought):
                            forged = dataclasses.replace(
                                event, cost=9 * 10**15, new_price_yes=990_000_000
                            )
                            logs[i] = "Program data: " + encode_event_base64(forged)
                return fake

            forged_sig = str(Signature.from_bytes(bytes(range(64))))
            headers = {"Authorization": secret}
            for body in ([forge(real, forged_sig)], [forge(real, None)]):
                r = await api.client.post("/v1/webhooks/helius", json=body, headers=headers)
                assert r.status_code == 200, r.text
            async with trio.open_nursery() as nursery:
                nursery.start_soon(actor._webhooks, api.ctx, indexer, service)

                async def drained() -> bool:
                    return (await store.chain_table_counts(db))["webhook_inbox"] == 0

                await _until(drained)
                nursery.cancel_scope.cancel()
        trades = await rows(db, "SELECT signature, amount FROM trades")
        assert [t["signature"] for t in trades] == [signature]  # only the real buy
        assert all(int(t["amount"]) < 9 * 10**15 for t in trades)
        dead = await rows(db, "SELECT signature, reason FROM dead_letters ORDER BY signature")
        reasons = {row["signature"]: row["reason"] for row in dead}
        assert "no such transaction" in reasons[forged_sig]
        assert "differs from the chain" in reasons[signature]
        assert metrics.webhook_rejected.labels("not_found")._value.get() == 1
        assert metrics.webhook_rejected.labels("mismatch")._value.get() == 1
