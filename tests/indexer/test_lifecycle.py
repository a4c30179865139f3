"""A scripted market lifecycle on the double, backfilled into the real
PostgreSQL: the rows equal the projection of the double's own state; a second
backfill and a replay of every transaction change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from solders.signature import Signature

from zmartd.chain import instructions as ix
from zmartd.chain.rpc import RpcClient
from zmartd.devchain.actor import Devchain
from zmartd.indexer import backfill as backfill_module
from zmartd.indexer.backfill import backfill
from zmartd.indexer.effects import FeeBps, _pre_fee
from zmartd.storage import chain as chain_store
from zmartd.storage import indexer as store
from zmartd.storage.database import Database

from .conftest import SOL, Driver, assert_db_matches_chain, make_indexer, rows, run_lifecycle


async def test_lifecycle_backfill_equals_chain(
    db: Database, chain: Devchain, rpc: RpcClient
) -> None:
    d = Driver(chain)
    info = run_lifecycle(d)
    indexer = make_indexer(db, rpc, chain)
    progress = await backfill(indexer, reason="test", batch_size=7)
    assert progress.total == progress.done > 20 and progress.dead == 0
    counts = await assert_db_matches_chain(db, chain)
    assert counts == {
        "markets": 2,
        "positions": 3,
        "trades": 4,
        "votes": 5,
        "events": 22,
        "failed": 1,
    }
    # the reverted sell is recorded with its program error and has no effect
    (failed,) = await rows(db, "SELECT * FROM failed_transactions")
    assert failed["signature"] == info["sell"] and failed["instructions"] == ["sell_shares"]
    assert "InstructionError" in failed["err"] and failed["failed_instruction_index"] == 0
    # fees: the protocol share equals what the fee wallet received; the last buy
    # ran under the updated LP bps (400)
    fees = await rows(
        db,
        "SELECT t.signature, t.amount, f.* FROM trade_fees f "
        "JOIN trades t ON t.id = f.trade_id ORDER BY t.id",
    )
    assert len(fees) == 4
    for f in fees:
        rec = chain.node.record(Signature.from_string(f["signature"]))
        assert rec is not None
        i = rec.account_keys.index(d.treasury.pubkey())
        assert int(f["protocol_fee"]) == rec.post_balances[i] - rec.pre_balances[i]
        base, total_fee = int(f["base_amount"]), int(f["amount"]) - int(f["base_amount"])
        assert int(f["protocol_fee"]) + int(f["resolver_fee"]) + int(f["lp_fee"]) == total_fee
        assert base > 0
    assert int(fees[-1]["lp_fee"]) * 900 // 400 >= int(fees[-1]["resolver_fee"]) * 900 // 200 - 2
    assert fees[0]["price_before"] == 500_000_000
    assert (
        fees[1]["price_before"]
        == (await rows(db, "SELECT price_yes FROM trades ORDER BY id LIMIT 1"))[0]["price_yes"]
    )
    # question CID kept although the account now holds the evidence CID
    m1 = (await rows(db, "SELECT * FROM markets WHERE market_id = $1", info["markets"][0]))[0]
    assert m1["ipfs_question_hash"].startswith("QmQ") and m1["ipfs_evidence_hash"].startswith("QmE")
    assert m1["state"] == 5 and m1["final_outcome"] is True
    cfg = (await rows(db, "SELECT * FROM global_config"))[0]
    assert cfg["liquidity_provider_fee_bps"] == 400
    cursor = await chain_store.get_cursor(db, "backfill")
    assert cursor is not None and cursor.slot > 0
    before = await store.chain_table_counts(db)
    assert before["duplicate_trades"] == 0
    # again: nothing new to list; then a full re-scan and a replay of everything
    again = await backfill(indexer, reason="again")
    assert again.total == 0
    rescan = await backfill(indexer, reason="rescan", from_slot=0)
    assert rescan.total == progress.total and rescan.applied == 0
    docs = [
        await rpc.get_transaction(s["signature"])
        for s in await rows(db, "SELECT DISTINCT signature FROM processed_transactions")
    ]
    out = await indexer.ingest([doc for doc in docs if doc], path="test", stream=None)
    assert out.applied == 0 and out.replayed == len(docs)
    assert await store.chain_table_counts(db) == before
    await assert_db_matches_chain(db, chain)


async def test_cli_backfill(db: Database, chain: Devchain, module_dsn: str, tmp_path: Path) -> None:
    from zmartd import cli

    run_lifecycle(Driver(chain))
    path = tmp_path / "z.toml"
    path.write_text(
        f'[database]\ndsn = "{module_dsn}"\n[chain]\nmode = "rpc"\n'
        f'rpc_urls = ["{chain.rpc_url}"]\n[log]\nlevel = "warning"\n'
    )
    code = await trio.to_thread.run_sync(
        cli.main, ["backfill", "--signature", "nope", "--config", str(path)]
    )
    assert code == 2
    code = await trio.to_thread.run_sync(
        cli.main, ["backfill", "--from-slot", "0", "--config", str(path)]
    )
    assert code == 0
    await assert_db_matches_chain(db, chain)
    # from slot 0 covers everything: the contiguous watermark moved
    cursor = await chain_store.get_cursor(db, "backfill")
    assert cursor is not None and cursor.slot == chain.node.commitment_slot("confirmed") - 1


async def test_backfill_refreshes_planner_statistics_as_the_tables_double(
    db: Database, chain: Devchain, rpc: RpcClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stale statistics made a backfill slow down as it went (a PK probe
    planned as a scan); the backfill ANALYZEs at ANALYZE_FIRST applied
    transactions and each time that doubles."""
    monkeypatch.setattr(backfill_module, "ANALYZE_FIRST", 4)
    d = Driver(chain)
    run_lifecycle(d)

    async def analyzed() -> int:
        found = await rows(
            db,
            "SELECT analyze_count FROM pg_stat_user_tables "
            "WHERE relname = 'processed_transactions' "
            "AND schemaname = current_schema()",
        )
        return int(found[0]["analyze_count"])

    before = await analyzed()
    progress = await backfill(make_indexer(db, rpc, chain), reason="test", batch_size=3)
    assert progress.applied > 16 + 3  # thresholds 4, 8 and 16 crossed before a later page
    refreshed = await analyzed() - before
    assert 3 <= refreshed <= (progress.applied // 4).bit_length()  # 4, 8, 16, ... only


async def test_unit_prepared_before_a_fee_change_is_rebuilt(
    db: Database, chain: Devchain, rpc: RpcClient
) -> None:
    """Backfill prepares the next unit while the previous one is applied;
    a unit whose effects were built before a ConfigUpdated in the previous
    unit is rebuilt with the new bps when applied."""
    d = Driver(chain)
    d.init_config()
    alice = d.fund()
    m = d.active_market(d.fund(), 3, [alice])
    indexer = make_indexer(db, rpc, chain)
    await backfill(indexer, reason="before the change")
    update = d.send(
        d.admin,
        ix.update_global_config(
            admin=d.admin.pubkey(),
            protocol_fee_bps=300,
            resolver_reward_bps=200,
            liquidity_provider_fee_bps=400,
            proposal_approval_threshold=7000,
            dispute_success_threshold=6000,
        ),
    )
    buy = d.buy(alice, m, True, SOL)
    docs = [await rpc.get_transaction(str(r.signature)) for r in (update, buy)]
    assert all(docs)
    first = await indexer.prepare([docs[0]])  # type: ignore[list-item]
    second = await indexer.prepare([docs[1]])  # type: ignore[list-item]
    assert second.built_with == FeeBps()  # built under the old (default) fees
    await indexer.apply(first, path="test", stream=None)
    await indexer.apply(second, path="test", stream=None)
    (fee,) = await rows(
        db, "SELECT t.amount, f.* FROM trade_fees f JOIN trades t ON t.id = f.trade_id"
    )
    assert int(fee["base_amount"]) == _pre_fee(int(fee["amount"]), 900)
    assert int(fee["amount"]) - int(fee["base_amount"]) == (
        int(fee["protocol_fee"]) + int(fee["resolver_fee"]) + int(fee["lp_fee"])
    )
    await assert_db_matches_chain(db, chain)
