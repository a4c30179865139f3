"""Poison transactions, disappearing transactions, reconciliation drift and
the leader lock, against a served devchain and the real PostgreSQL."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import pytest
import trio
from prometheus_client import CollectorRegistry
from solders.keypair import Keypair

from zmartd.chain import types as t
from zmartd.chain.events import decode_event_base64, event_log_line
from zmartd.chain.rpc import RpcClient
from zmartd.devchain.actor import Devchain
from zmartd.indexer.backfill import backfill
from zmartd.indexer.finality import finality_round
from zmartd.indexer.metrics import IndexerMetrics
from zmartd.indexer.pipeline import Indexer
from zmartd.indexer.reconcile import Reconciler
from zmartd.indexer.source import ChainSource
from zmartd.storage import chain as chain_store
from zmartd.storage import indexer as store
from zmartd.storage.database import Database

from .conftest import SOL, Driver, assert_db_matches_chain, make_indexer, rows, run_lifecycle


def _forge(doc: dict[str, Any]) -> dict[str, Any]:
    """The same transaction under a signature the chain never saw."""
    forged = copy.deepcopy(doc)
    forged["transaction"]["signatures"][0] = str(Keypair().sign_message(b"forged"))
    return forged


async def _lifecycle_docs(
    indexer: Indexer, rpc: RpcClient
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every program transaction as ``getTransaction`` serves it, and the first buy."""
    listed = await indexer.source.signatures(until=None)
    docs = [doc for doc in [await rpc.get_transaction(s.signature) for s in listed] if doc]
    buy = next(doc for doc in docs if "Instruction: BuyShares" in str(doc["meta"]["logMessages"]))
    return docs, buy


async def test_poison_transaction_is_parked_and_the_stream_moves_on(
    db: Database, chain: Devchain, rpc: RpcClient
) -> None:
    d = Driver(chain)
    run_lifecycle(d)
    indexer = make_indexer(db, rpc, chain)
    good, buy = await _lifecycle_docs(indexer, rpc)
    # corrupt the data of the zmart instruction of one buy: undecodable
    broken = copy.deepcopy(buy)
    broken["transaction"]["message"]["instructions"][0]["data"] = "1111"
    batch = [doc if doc is not buy else broken for doc in good]
    out = await indexer.ingest(batch, path="test", stream="test")
    assert out.dead == 1 and out.applied == len(good) - 1
    (dead,) = await chain_store.list_dead_letters(db)
    assert dead.signature == buy["transaction"]["signatures"][0]
    assert "undecodable" in dead.reason and dead.payload is not None
    cursor = await chain_store.get_cursor(db, "test")
    assert cursor is not None and cursor.slot == max(doc["slot"] for doc in good)
    # the real one arrives later (webhook/backfill): applied, nothing is missing
    out = await indexer.ingest([buy], path="test", stream=None)
    assert out.applied == 1
    await assert_db_matches_chain(db, chain)


async def test_unappliable_unit_is_split_and_only_the_poison_parked(
    db: Database, chain: Devchain, rpc: RpcClient
) -> None:
    d = Driver(chain)
    run_lifecycle(d)
    indexer = make_indexer(db, rpc, chain)
    good, buy = await _lifecycle_docs(indexer, rpc)
    # a trade event claiming a zero share count violates trades.shares > 0
    poison = _forge(buy)
    logs = poison["meta"]["logMessages"]
    i = next(i for i, line in enumerate(logs) if line.startswith("Program data: "))
    ev = decode_event_base64(logs[i].removeprefix("Program data: "))
    assert isinstance(ev, t.SharesBought)
    logs[i] = event_log_line(
        t.SharesBought(
            ev.market_id, ev.user, ev.outcome, 0, ev.cost, ev.new_price_yes, ev.timestamp
        )
    )
    out = await indexer.ingest([*good, poison], path="test", stream="test")
    assert out.dead == 1 and out.applied == len(good)
    (dead,) = await chain_store.list_dead_letters(db)
    assert dead.signature == poison["transaction"]["signatures"][0]
    assert "cannot apply" in dead.reason
    await assert_db_matches_chain(db, chain)


async def test_disappeared_transaction_is_reverted(
    db: Database, chain: Devchain, rpc: RpcClient
) -> None:
    d = Driver(chain)
    run_lifecycle(d)
    metrics = IndexerMetrics(CollectorRegistry())
    indexer = Indexer(
        db, ChainSource(rpc, chain.node.bank.program_id), None, metrics, publish=False
    )
    await backfill(indexer, reason="test")
    before = await store.chain_table_counts(db)
    buy = next(
        doc
        for doc in [
            await rpc.get_transaction(r["signature"])
            for r in await rows(db, "SELECT signature FROM trades ORDER BY id LIMIT 1")
        ]
        if doc
    )
    ghost = _forge(buy)  # "confirmed on a fork that was later abandoned"
    out = await indexer.ingest([ghost], path="test", stream=None)
    assert out.applied == 1
    assert (await store.chain_table_counts(db))["trades"] == before["trades"] + 1
    chain.node.advance_slot(8)  # everything is finalized now
    report = await finality_round(indexer, timeout=3600)  # too young to revert yet
    assert report.reverted == [] and report.marked_up_to < ghost["slot"]
    report = await finality_round(indexer, timeout=0)
    assert report.reverted == [ghost["transaction"]["signatures"][0]]
    assert metrics.reverted._value.get() == 1
    assert await store.chain_table_counts(db) == before
    (n,) = await rows(db, "SELECT count(*) AS n FROM trades WHERE NOT finalized")
    assert n["n"] == 0
    await assert_db_matches_chain(db, chain)


async def test_reconciliation_fixes_drift_and_alerts_on_repeats(
    db: Database, chain: Devchain, rpc: RpcClient
) -> None:
    d = Driver(chain)
    info = run_lifecycle(d)
    metrics = IndexerMetrics(CollectorRegistry())
    indexer = Indexer(
        db, ChainSource(rpc, chain.node.bank.program_id), None, metrics, publish=False
    )
    await backfill(indexer, reason="test")
    reconciler = Reconciler(indexer)
    assert (await reconciler.run_once()).total_drift == 0
    m1 = info["markets"][0]

    async def tamper() -> None:
        async def _run(con: Any) -> None:
            await con.execute("UPDATE markets SET current_liquidity = 1 WHERE market_id = $1", m1)
            await con.execute(
                "DELETE FROM positions WHERE market_id = $1 AND wallet = "
                "(SELECT min(wallet) FROM positions WHERE market_id = $1)",
                m1,
            )

        await db.run("test", _run)

    await tamper()
    report = await reconciler.run_once()
    assert report.drift == {"market_fields": 1, "position_missing": 1}
    assert report.drifted_markets == [m1] and report.alerts == []
    await assert_db_matches_chain(db, chain)
    await tamper()
    report = await reconciler.run_once()
    assert report.alerts == [m1] and metrics.drift_alert._value.get() == 1
    assert metrics.drift.labels("market_fields")._value.get() == 2
    report = await reconciler.run_once()
    assert report.total_drift == 0 and metrics.drift_alert._value.get() == 0


async def test_leader_lock_admits_one_instance(db: Database, module_dsn: str) -> None:
    other = await Database.connect(module_dsn, min_size=1, max_size=2, statement_timeout=10)
    waits = 0

    def waiting() -> None:
        nonlocal waits
        waits += 1

    try:
        async with store.leader_lock(db, key=4242):
            with trio.move_on_after(0.5) as scope:
                async with store.leader_lock(other, key=4242, retry_interval=0.05, on_wait=waiting):
                    pytest.fail("a second instance took the lock")
            assert scope.cancelled_caught and waits >= 3
        with trio.fail_after(5):
            async with store.leader_lock(other, key=4242, retry_interval=0.05):
                pass
    finally:
        await other.close()


async def test_missing_transaction_of_a_listing_is_an_error(
    db: Database, chain: Devchain, rpc: RpcClient
) -> None:
    """getTransaction refusing a listed signature must stop the backfill (and
    keep the watermark), never skip the transaction silently."""
    d = Driver(chain)
    d.init_config()
    user = d.fund()
    market = d.active_market(user, 9, [user])
    d.buy(user, market, True, SOL)

    class Flaky(ChainSource):
        async def transaction(self, signature: str) -> dict[str, Any] | None:
            return None

        async def transactions(self, signatures: Sequence[str]) -> list[dict[str, Any] | None]:
            return [None] * len(signatures)

    indexer = Indexer(db, Flaky(rpc, chain.node.bank.program_id), None, None, publish=False)
    with trio.fail_after(30), pytest.raises(RuntimeError, match="listed at confirmed"):
        await backfill(indexer, reason="test")
    assert await chain_store.get_cursor(db, "backfill") is None
