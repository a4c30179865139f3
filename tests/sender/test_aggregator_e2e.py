"""The vote aggregator end to end: a real ``zmartd`` process (local mode: its
devchain seeded with the demo, real PostgreSQL), votes cast through the REST
API, and the results read back from the chain (``getAccountInfo`` decoded by
the codec) and through REST.

``min_votes`` is 14 here, so that new-lang can pass only with all 12 API votes
(the Quickstart test shows community-pick approved with the default 10):

* the demo's community-pick (10 likes / 2 dislikes on chain, never
  aggregated): its counts are aggregated on chain, but 12 < min_votes, so it
  stays PROPOSED (outcome ``not_approved``);
* 12 API likes on new-lang (1 like / 1 dislike on chain) -> 13 / 1 on chain
  -> APPROVED;
* world-cup's dispute (2 agree / 1 disagree = 66 % >= 60 %) -> FINALIZED with
  the proposed YES flipped to NO;
* sol-200 resolved (NO) and disputed now with 1 agree / 3 disagree API votes
  (25 %) -> FINALIZED with the original outcome (NO), once its voting period
  passed in chain time.

The market monitor is off here: it would finalize the demo's rain-paris
(its dispute window has passed), which is its own tests' subject.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio_asyncio
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.transaction import VersionedTransaction

from tests.sender.conftest import AUTHORITY
from tests.sender.test_kill import rpc, sql
from tests.test_e2e_daemon import free_port
from zmartd.chain import instructions as ix
from zmartd.chain.accounts import decode_account_as
from zmartd.chain.pda import PROGRAM_ID, market_pda
from zmartd.chain.types import MarketAccount, MarketState
from zmartd.model.demo import demo_keypair
from zmartd.storage import auth as auth_store
from zmartd.storage.database import Database

pytestmark = pytest.mark.slow


def market_id(slug: str) -> bytes:
    return hashlib.sha256(f"zmartd demo market {slug}".encode()).digest()


def on_chain(url: str, slug: str) -> MarketAccount:
    """The market account through JSON-RPC getAccountInfo, decoded by the codec."""
    address = str(market_pda(market_id(slug), PROGRAM_ID)[0])
    value = rpc(url, "getAccountInfo", address, {"encoding": "base64", "commitment": "confirmed"})[
        "value"
    ]
    return decode_account_as(MarketAccount, base64.b64decode(value["data"][0]))


def sessions(dsn: str, wallets: list[str]) -> list[str]:
    async def _run() -> list[str]:
        async with trio_asyncio.open_loop():
            db = await Database.connect(dsn, min_size=1, max_size=2, statement_timeout=10)
            try:
                return [
                    (await auth_store.create_session(db, wallet=w, ttl=timedelta(hours=1)))[0]
                    for w in wallets
                ]
            finally:
                await db.close()

    return trio.run(_run)


def wait_for(
    what: str, check: Any, timeout: float, proc: subprocess.Popen[bytes], log: Path
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"zmartd exited:\n{log.read_text()[-4000:]}"
        try:
            value = check()
        except (httpx.TransportError, KeyError, AssertionError):
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, (
            f"{what} not seen in {timeout}s\n" + log.read_text()[-6000:]
        )
        time.sleep(0.2)


def send(url: str, payer: Keypair, instruction: Any) -> None:
    blockhash = rpc(url, "getLatestBlockhash", {"commitment": "confirmed"})["value"]["blockhash"]
    from solders.hash import Hash

    message = MessageV0.try_compile(payer.pubkey(), [instruction], [], Hash.from_string(blockhash))
    tx = VersionedTransaction(message, [payer])
    rpc(url, "sendTransaction", base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"})


def test_votes_become_approvals_and_finalizations_on_chain(tmp_path: Path, module_dsn: str) -> None:
    sql(module_dsn, "TRUNCATE intents, vote_aggregations, aggregator_outcomes CASCADE")
    key_file = tmp_path / "authority.json"
    key_file.write_text(json.dumps(list(bytes(AUTHORITY))))
    key_file.chmod(0o600)
    http_port, chain_port, chain_ws = free_port(), free_port(), free_port()
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
mode = "local"
keypair_file = "authority.json"
[devchain]
port = {chain_port}
ws_port = {chain_ws}
slot_interval = 0.1
[votes]
# the voters are fresh demo wallets without trades: the anti-sybil policy (its own tests
# in tests/api/test_votes_api.py) would keep their votes out of the count
eligibility = "any"
max_per_address = 0
[aggregator]
interval = 1.0
min_votes = 14
dispute_voting_period = 30.0
[sender]
rebroadcast_interval = 0.5
[monitor]
enabled = false
[log]
format = "json"
""")
    log = tmp_path / "zmartd.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "zmartd", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    api = f"http://127.0.0.1:{http_port}"
    chain = f"http://127.0.0.1:{chain_port}"
    try:

        def market(slug: str) -> dict[str, Any]:
            r = httpx.get(f"{api}/v1/markets/{market_id(slug).hex()}", timeout=5)
            assert r.status_code == 200, r.text
            doc: dict[str, Any] = r.json()
            return doc

        wait_for(
            "ready", lambda: httpx.get(f"{api}/ready", timeout=2).status_code == 200, 90, proc, log
        )

        def outcome(market_hex: str, kind: str) -> dict[str, Any] | None:
            doc = httpx.get(f"{api}/v1/markets/{market_hex}/votes", timeout=5).json()
            found = [a for a in doc["aggregations"] if a["kind"] == kind]
            return found[0] if found else None

        # 1. community-pick's counts go on chain; too few votes for min_votes = 14
        pick_hex = market_id("community-pick").hex()
        wait_for(
            "community-pick aggregated",
            lambda: (o := outcome(pick_hex, "proposal")) and o["yes"] == 10 and o,
            60,
            proc,
            log,
        )
        pick = on_chain(chain, "community-pick")
        assert pick.state is MarketState.PROPOSED
        assert (pick.proposal_likes, pick.proposal_dislikes) == (10, 2)
        o = outcome(pick_hex, "proposal")
        assert o is not None and o["outcome"] == "not_approved"
        assert "fewer than min_votes (14)" in o["detail"]

        # 2. world-cup's seeded dispute votes (2 agree / 1 disagree) flip YES to NO
        wait_for(
            "world-cup finalized",
            lambda: on_chain(chain, "world-cup").state is MarketState.FINALIZED,
            60,
            proc,
            log,
        )
        cup = on_chain(chain, "world-cup")
        assert cup.proposed_outcome is True and cup.final_outcome is False
        assert (cup.dispute_agree, cup.dispute_disagree) == (2, 1)
        wait_for(
            "world-cup indexed", lambda: market("world-cup")["final_outcome"] == "NO", 30, proc, log
        )

        # 3. twelve API likes on new-lang -> counts on chain -> APPROVED
        assert on_chain(chain, "new-lang").state is MarketState.PROPOSED
        voters = [str(Keypair().pubkey()) for _ in range(16)]
        tokens = sessions(module_dsn, voters)
        new_lang = market_id("new-lang").hex()
        for token in tokens[:12]:
            r = httpx.post(
                f"{api}/v1/markets/{new_lang}/votes/proposal",
                json={"vote": "like"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )
            assert r.status_code == 200, r.text
        wait_for(
            "new-lang approved",
            lambda: on_chain(chain, "new-lang").state is MarketState.APPROVED,
            60,
            proc,
            log,
        )
        lang = on_chain(chain, "new-lang")
        assert (lang.proposal_likes, lang.proposal_dislikes) == (13, 1)
        wait_for(
            "new-lang indexed", lambda: market("new-lang")["status"] == "APPROVED", 30, proc, log
        )

        def aggregation(market_hex: str, kind: str) -> dict[str, Any] | None:
            doc = httpx.get(f"{api}/v1/markets/{market_hex}/votes", timeout=5).json()
            found = [a for a in doc["aggregations"] if a["kind"] == kind]
            return (
                found[0]
                if found and found[0]["outcome"] not in ("not_approved", "in_flight")
                else None
            )

        # the aggregator records its outcome once the sender confirmed the approval
        proposal = wait_for(
            "new-lang outcome", lambda: aggregation(new_lang, "proposal"), 30, proc, log
        )
        assert proposal["outcome"] == "approved" and (proposal["yes"], proposal["no"]) == (13, 1)
        assert proposal["intent"]["kind"] == "approve_proposal"
        assert proposal["intent"]["state"] == "landed" and proposal["intent"]["signature"]
        # the frozen API votes can no longer change
        r = httpx.post(
            f"{api}/v1/markets/{new_lang}/votes/proposal",
            json={"vote": "dislike"},
            headers={"Authorization": f"Bearer {tokens[0]}"},
            timeout=5,
        )
        assert r.status_code == 409

        # 4. sol-200 resolved NO and disputed now, 1 agree / 3 disagree (25 % < 60 %): kept
        sol = market_id("sol-200")
        # (the waits below read the mirror itself: the 30 s voting period must not be spent
        # waiting out a market detail the API's hot cache may still hold)
        send(
            chain,
            demo_keypair("dave"),
            ix.resolve_market(
                resolver=demo_keypair("dave").pubkey(),
                market_id=sol,
                proposed_outcome=False,
                ipfs_evidence_hash=b"Qm" + b"1" * 44,
            ),
        )
        wait_for(
            "sol-200 resolving (indexed)",
            lambda: sql(
                module_dsn, "SELECT 1 FROM markets WHERE market_id = $1 AND state = 3", sol.hex()
            ),
            30,
            proc,
            log,
        )
        rpc(chain, "zmart_warpClock", 2)  # a dispute needs now > resolution_proposed_at
        send(
            chain,
            demo_keypair("frank"),
            ix.initiate_dispute(initiator=demo_keypair("frank").pubkey(), market_id=sol),
        )
        wait_for(
            "sol-200 disputed (indexed)",
            lambda: sql(
                module_dsn, "SELECT 1 FROM markets WHERE market_id = $1 AND state = 4", sol.hex()
            ),
            30,
            proc,
            log,
        )
        for token, vote in zip(
            tokens[12:], ("agree", "disagree", "disagree", "disagree"), strict=True
        ):
            r = httpx.post(
                f"{api}/v1/markets/{sol.hex()}/votes/dispute",
                json={"vote": vote},
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )
            assert r.status_code == 200, r.text
        assert on_chain(chain, "sol-200").state is MarketState.DISPUTED  # voting still open
        rpc(chain, "zmart_warpClock", 31)
        wait_for(
            "sol-200 finalized",
            lambda: on_chain(chain, "sol-200").state is MarketState.FINALIZED,
            60,
            proc,
            log,
        )
        sol200 = on_chain(chain, "sol-200")
        assert sol200.proposed_outcome is False and sol200.final_outcome is False
        assert (sol200.dispute_agree, sol200.dispute_disagree) == (1, 3)
        wait_for(
            "sol-200 indexed",
            lambda: market("sol-200")["status"] == "FINALIZED",
            30,
            proc,
            log,
        )
        dispute = wait_for(
            "sol-200 outcome",
            lambda: (
                (a := aggregation(sol.hex(), "dispute")) and a["outcome"] != "voting_open" and a
            ),
            30,
            proc,
            log,
        )
        assert dispute["outcome"] == "finalized" and "outcome kept" in dispute["detail"]
        # nothing was ever sent twice, and aggregate_dispute_votes never
        intents = sql(module_dsn, "SELECT kind, state FROM intents")
        assert all(i["state"] == "landed" for i in intents), intents
        kinds = Counter(i["kind"] for i in intents)
        # one approval (new-lang), two finalizations; counts sent for community-pick once and
        # for new-lang at least once (a cycle may have caught the API votes half cast)
        assert kinds["approve_proposal"] == 1 and kinds["finalize_market"] == 2, kinds
        assert kinds["aggregate_proposal_votes"] >= 2 and set(kinds) == {
            "aggregate_proposal_votes",
            "approve_proposal",
            "finalize_market",
        }
        # secrets never reach the logs
        text = log.read_text()
        assert str(AUTHORITY.pubkey()) in text and str(AUTHORITY) not in text
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
