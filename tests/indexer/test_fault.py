"""kill -9 at random points while trades keep landing: the database ends
equal to the chain, with no lost and no duplicated trade.

The indexer runs as a real subprocess (``python -m zmartd.indexer``, the same
actor the daemon supervises) against a devchain served by this test process
and the real PostgreSQL.  Defaults: the issue's 5,000 trades and 20 kills
(~40 s on 2 cores).  ``ZMARTD_FAULT_TRADES`` / ``ZMARTD_FAULT_KILLS`` /
``ZMARTD_FAULT_SEED`` change them; the seed is printed so a failure can be
replayed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import trio

from tests.conftest import ROOT
from zmartd.devchain.actor import Devchain
from zmartd.storage import indexer as store
from zmartd.storage.database import Database

from .conftest import SOL, Driver, assert_db_matches_chain, rows

TRADES = int(os.environ.get("ZMARTD_FAULT_TRADES", "5000"))
KILLS = int(os.environ.get("ZMARTD_FAULT_KILLS", "20"))
SEED = int(os.environ.get("ZMARTD_FAULT_SEED", str(random.randrange(1 << 30))))


def _config(tmp_path: Path, dsn: str, chain: Devchain) -> Path:
    path = tmp_path / "indexer.toml"
    path.write_text(f"""
[database]
dsn = "{dsn}"
[chain]
mode = "rpc"
rpc_urls = ["{chain.rpc_url}"]
ws_url = "{chain.ws_url}"
request_timeout = 5.0
reconcile_interval = 3600
[devchain]
seed = "none"
[http]
enabled = false
[ws]
enabled = false
[log]
level = "warning"
format = "json"
""")
    return path


async def test_kill_minus_nine_at_random_points(
    db: Database, chain: Devchain, module_dsn: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    print(f"fault test: {TRADES} trades, {KILLS} kills, seed {SEED}")
    d = Driver(chain)
    d.init_config()
    users = [d.fund(10_000 * SOL) for _ in range(16)]
    markets = [d.active_market(d.fund(), 100 + i, users[:1]) for i in range(4)]
    config = _config(tmp_path, module_dsn, chain)
    log = (tmp_path / "indexer.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "zmartd.indexer", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )

    done = trio.Event()
    failed = 0

    async def trader() -> None:
        """~170 trades/s in slot-sized groups, spread over the kill schedule,
        until TRADES buys have landed.  A buy may fail on chain (a search whose
        fill costs a little more than its budget raises SlippageExceeded,
        docs/chain.md §9.5): it lands as a failed transaction, which the indexer
        must record once and never apply, so it is counted, not an error.
        Every 50th buy is below the 10,000-lamport minimum (TradeTooSmall) so
        that failed transactions always cross the kills."""
        nonlocal failed
        per_slot, landed, n = 25, 0, 0
        while landed < TRADES:
            record = d.buy(
                users[rng.randrange(len(users))],
                markets[n % len(markets)],
                rng.random() < 0.5,
                9_999 if n % 50 == 49 else SOL // 2 + rng.randrange(SOL),
                confirm=False,
                expect_ok=False,
            )
            if record.err is None:
                landed += 1
            else:
                failed += 1
            n += 1
            if n % per_slot == 0:
                d.confirm()
                await trio.sleep(per_slot / 170)
        d.confirm()
        done.set()
        while True:  # the chain keeps producing slots
            await trio.sleep(0.1)
            d.confirm()

    kills = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trader)
        for _ in range(KILLS):
            proc = start()
            await trio.sleep(rng.uniform(0.2, 2.6))
            proc.send_signal(signal.SIGKILL)
            await trio.to_thread.run_sync(proc.wait)
            kills += 1
        await done.wait()
        proc = start()
        try:
            with trio.fail_after(120):
                while True:
                    counts = await store.chain_table_counts(db)
                    if counts["trades"] >= TRADES:
                        break
                    assert proc.poll() is None, (tmp_path / "indexer.log").read_text()[-3000:]
                    await trio.sleep(0.2)
            await trio.sleep(0.5)  # the last unit's account rows
        finally:
            proc.send_signal(signal.SIGTERM)
            await trio.to_thread.run_sync(proc.wait)
        nursery.cancel_scope.cancel()
    assert kills == KILLS
    print(f"fault test: {failed} buys failed on chain (recorded, not applied)")
    counts = await store.chain_table_counts(db)
    assert counts["trades"] == TRADES and counts["duplicate_trades"] == 0
    assert counts["dead_letters"] == 0
    assert counts["failed_transactions"] == failed
    await assert_db_matches_chain(db, chain)
    (points,) = await rows(db, "SELECT count(*) AS n FROM price_points WHERE source = 'trade'")
    assert points["n"] == TRADES
