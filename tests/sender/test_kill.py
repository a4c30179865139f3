"""``kill -9`` of the daemon at random points of the sender's lifecycle.

Real processes: the devchain runs on its own (``zmartd devchain``, demo seed,
fast slots, faults that keep transactions in flight: delayed landing, dropped
sends, short-lived blockhashes), and ``zmartd`` (rpc mode, real PostgreSQL)
is started, killed with SIGKILL after a random delay, and restarted, a dozen
times, while intents keep arriving.  At the end every intent must be
``landed`` and the chain must hold exactly one successful transaction
carrying each intent's instruction -- no intent lost, none executed twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.sender.conftest import AUTHORITY, NEW_LANG, aggregate_data
from tests.test_e2e_daemon import free_port
from zmartd.chain.pda import PROGRAM_ID, market_pda
from zmartd.chain.rpc import b58encode

pytestmark = pytest.mark.slow

KILLS = 12
INTENTS_PER_ROUND = 2


def sql(dsn: str, query: str, *args: Any) -> list[dict[str, Any]]:
    async def _run() -> list[dict[str, Any]]:
        con = await asyncpg.connect(dsn)
        try:
            return [dict(r) for r in await con.fetch(query, *args)]
        finally:
            await con.close()

    return asyncio.run(_run())


def rpc(url: str, method: str, *params: Any) -> Any:
    doc = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10
    ).json()
    assert "error" not in doc, doc
    return doc["result"]


def executions_on_chain(url: str) -> Counter[str]:
    """base58 instruction data -> successful transactions carrying it (new-lang)."""
    market = str(market_pda(NEW_LANG, PROGRAM_ID)[0])
    found: Counter[str] = Counter()
    for entry in rpc(
        url, "getSignaturesForAddress", market, {"limit": 1000, "commitment": "confirmed"}
    ):
        if entry["err"] is not None:
            continue
        tx = rpc(
            url,
            "getTransaction",
            entry["signature"],
            {"encoding": "json", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"},
        )
        for ins in tx["transaction"]["message"]["instructions"]:
            found[ins["data"]] += 1
    return found


def spawn(args: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "zmartd", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def test_kill_9_at_random_points_never_executes_an_intent_twice(
    tmp_path: Path, module_dsn: str
) -> None:
    rng = random.Random(int(os.environ.get("ZMARTD_KILL_SEED", "1404")))
    key_file = tmp_path / "authority.json"
    key_file.write_text(json.dumps(list(bytes(AUTHORITY))))
    key_file.chmod(0o600)
    chain_port, chain_ws = free_port(), free_port()
    (tmp_path / "chain.toml").write_text('[chain]\nkeypair_file = "authority.json"\n')
    chain_log = tmp_path / "devchain.log"
    chain = spawn(
        [
            "devchain",
            "--config",
            str(tmp_path / "chain.toml"),
            "--port",
            str(chain_port),
            "--ws-port",
            str(chain_ws),
            "--seed",
            "demo",
            "--slot-interval",
            "0.1",
        ],
        chain_log,
        tmp_path,
    )
    url = f"http://127.0.0.1:{chain_port}"
    http_port = free_port()
    config = tmp_path / "zmartd.toml"
    config.write_text(f"""
[daemon]
data_dir = "{tmp_path / "var"}"
[http]
port = {http_port}
[ws]
enabled = false
[database]
dsn = "{module_dsn}"
embedded = false
[chain]
mode = "rpc"
rpc_urls = ["{url}"]
ws_url = "ws://127.0.0.1:{chain_ws}"
keypair_file = "authority.json"
request_timeout = 2.0
reconcile_interval = 3600.0
[aggregator]
enabled = false
# the monitor would add its own intent (finalizing the demo's rain-paris)
[monitor]
enabled = false
[sender]
rebroadcast_interval = 0.5
[log]
format = "json"
""")
    daemon_log = tmp_path / "zmartd.log"
    daemon: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                rpc(url, "getHealth")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, chain_log.read_text()
                time.sleep(0.1)
        sql(module_dsn, "TRUNCATE intents, vote_aggregations, aggregator_outcomes CASCADE")
        # transactions stay in flight: they land 4 slots late, a blockhash lives 20 blocks
        # (2 s), and now and then sends are dropped
        rpc(url, "zmart_delayLanding", 4)
        rpc(url, "zmart_blockhashExpiry", 20)
        likes = iter(range(300, 400))
        expected: dict[str, int] = {}
        seen_states: Counter[str] = Counter()
        for round_no in range(KILLS + 1):
            for _ in range(INTENTS_PER_ROUND):
                n = next(likes)
                key = f"kill-test:{n}"
                sql(
                    module_dsn,
                    "INSERT INTO intents (kind, market_id, args, idempotency_key) "
                    "VALUES ('aggregate_proposal_votes', $1, $2::jsonb, $3)",
                    NEW_LANG.hex(),
                    json.dumps({"likes": n, "dislikes": 1}),
                    key,
                )
                expected[key] = n
            if rng.random() < 0.4:
                rpc(url, "zmart_dropSends", rng.randint(1, 3))
            daemon = spawn(["--config", str(config)], daemon_log, tmp_path)
            if round_no == KILLS:
                break  # the last run finishes the work
            time.sleep(rng.uniform(0.8, 4.0))
            daemon.kill()  # SIGKILL: no cleanup of any kind
            daemon.wait()
            for row in sql(module_dsn, "SELECT state, count(*) AS n FROM intents GROUP BY 1"):
                seen_states[row["state"]] += row["n"]
        # the kills caught intents in flight (stored but not landed), not only before or
        # after; which in-flight state they catch depends on the machine's speed
        assert seen_states["signed"] + seen_states["pending"] > 0, seen_states
        deadline = time.monotonic() + 90
        while True:
            rows = sql(
                module_dsn,
                "SELECT idempotency_key, state, signature, attempts, "
                "last_error FROM intents ORDER BY id",
            )
            if all(r["state"] == "landed" for r in rows) and len(rows) == len(expected):
                break
            assert daemon is not None and daemon.poll() is None, daemon_log.read_text()[-5000:]
            assert time.monotonic() < deadline, rows
            time.sleep(0.3)
        attempts = Counter(r["attempts"] for r in rows)
        print(
            f"states seen at the kills: {dict(seen_states)}; attempts per intent: {dict(attempts)}"
        )
        found = executions_on_chain(url)
        for key, n in expected.items():
            data = b58encode(aggregate_data(n, 1))
            assert found[data] == 1, (key, found[data], rows)
        # the logs show the public key, never the secret
        logs = daemon_log.read_text()
        assert str(AUTHORITY.pubkey()) in logs
        secret = bytes(AUTHORITY)
        for text in (str(AUTHORITY), json.dumps(list(secret)), secret[:32].hex()):
            assert text not in logs
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        chain.terminate()
        try:
            chain.wait(timeout=10)
        except subprocess.TimeoutExpired:
            chain.kill()
            chain.wait()
