"""``/v1/tx/*`` against the chain double: build -> sign (solders, a test key) ->
submit -> confirmed -> indexed -> REST; the quote equals the chain's event to
the lamport; the returned transaction decoded independently; every refusal."""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import trio
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from tests.api import factories as fx
from tests.api.conftest import LiveApi, live_api, make_config
from tests.devchain import conftest as chain_fixtures
from tests.indexer import conftest as index_fixtures
from tests.indexer.conftest import SOL, Driver, make_indexer, rows
from zmartd.chain import instructions as ix
from zmartd.chain.events import parse_logs
from zmartd.chain.pda import market_pda
from zmartd.chain.quoter import DEFAULT_FEES, MarketMath, quote_buy
from zmartd.chain.rpc import RpcClient
from zmartd.chain.types import LiquidityWithdrawn, SharesBought, SharesSold, WinningsClaimed
from zmartd.devchain.actor import Devchain
from zmartd.indexer.pipeline import Indexer
from zmartd.model.services import LOCAL_CHAIN
from zmartd.storage.database import Database

# fixtures: the indexer tests' migrated schema and the served chain double
db = index_fixtures.db
module_dsn = index_fixtures.module_dsn
serve = chain_fixtures.serve

COMPUTE_BUDGET = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
GOLDEN = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "chain" / "borsh_golden.json").read_text()
)


@dataclass
class Env:
    api: LiveApi
    chain: Devchain
    d: Driver
    indexer: Indexer
    rpc: RpcClient

    @property
    def http(self) -> httpx.AsyncClient:
        return self.api.client

    async def index(self, *signatures: Signature | str) -> None:
        for s in signatures:
            await self.indexer.ingest_signature(str(s))

    async def index_all(self, records: list[Any]) -> None:
        await self.index(*(r.signature for r in records))

    async def buy(
        self,
        market: bytes,
        wallet: Pubkey,
        outcome: str = "YES",
        amount: int = SOL,
        slippage_bps: int = 100,
    ) -> httpx.Response:
        return await self.http.post(
            "/v1/tx/buy",
            json={
                "market_id": market.hex(),
                "wallet": str(wallet),
                "outcome": outcome,
                "amount_lamports": amount,
                "slippage_bps": slippage_bps,
            },
        )


#: buckets large enough for the loops here (the limits have their own test)
UNLIMITED = {
    f"writes_{scope}_{kind}": 1_000_000
    for scope in ("ip", "wallet")
    for kind in ("per_minute", "burst")
}


@asynccontextmanager
async def environment(
    db: Database,
    serve: Callable[..., Any],
    limits: dict[str, int] | None = None,
    **chain: Any,
) -> AsyncIterator[Env]:
    devchain: Devchain = await serve(confirmed_lag=1, **chain)
    d = Driver(devchain)
    cfg = make_config(
        sender={"rebroadcast_interval": 0.2}, ratelimit=UNLIMITED if limits is None else limits
    )
    async with (
        RpcClient([devchain.rpc_url], commitment="confirmed", timeout=10) as rpc,
        live_api(cfg, db) as api,
    ):
        api.ctx.services.provide(LOCAL_CHAIN, devchain)
        yield Env(api, devchain, d, make_indexer(db, rpc, devchain), rpc)


async def _setup_active(env: Env, seed: int = 1) -> tuple[bytes, list[Keypair]]:
    """Config + one ACTIVE market, all indexed."""
    d = env.d
    before = len(d.node.signatures_for_address(d.pid, "processed", limit=10**9))
    d.init_config()
    creator, *voters = (d.fund() for _ in range(3))
    market = d.active_market(creator, seed, voters)
    records = d.node.signatures_for_address(d.pid, "processed", limit=10**9)
    await env.index_all(list(reversed(records[: len(records) - before])))
    return market, [creator, *voters]


def _sign(body: dict[str, Any], key: Keypair) -> VersionedTransaction:
    unsigned = VersionedTransaction.from_bytes(base64.b64decode(body["transaction"]))
    return VersionedTransaction(unsigned.message, [key])


def _problem(r: httpx.Response, status: int, rule: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    doc = r.json()
    text = doc["errors"][0]["message"] if doc.get("errors") else doc["detail"]
    assert text.startswith(rule), text


async def test_buy_sign_submit_confirm_index_rest(
    db: Database,
    serve: Callable[..., Any],
) -> None:
    async with environment(db, serve, slot_interval=0.05) as env:
        market, _ = await _setup_active(env)
        alice = env.d.fund(10 * SOL)
        r = await env.buy(market, alice.pubkey(), "NO", SOL // 2)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) >= {
            "transaction",
            "quote",
            "blockhash",
            "last_valid_block_height",
            "expires_at",
        }
        q = body["quote"]
        assert q["max_cost"] == str(SOL // 2) and int(q["cost"]) <= SOL // 2
        assert int(q["fees"]["total"]) == sum(
            int(q["fees"][k]) for k in ("protocol", "resolver", "lp")
        )
        assert q["price_before"] == 500_000_000 and q["price_after"] > 500_000_000
        assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC)
        signed = _sign(body, alice)
        r = await env.http.post(
            "/v1/tx/submit", json={"transaction": base64.b64encode(bytes(signed)).decode()}
        )
        assert r.status_code == 202, r.text
        signature = r.json()["signature"]
        assert signature == str(signed.signatures[0])
        with trio.fail_after(10):
            while True:
                status = (await env.http.get(f"/v1/tx/{signature}")).json()["status"]
                if status in ("confirmed", "finalized"):
                    break
                assert status in ("pending", "processed"), status
                await trio.sleep(0.05)
        await env.index(signature)
        r = await env.http.get(f"/v1/users/{alice.pubkey()}/positions")
        assert r.status_code == 200, r.text
        (position,) = r.json()["items"]
        assert position["market_id"] == market.hex()
        assert position["shares_no"] == q["shares"] and position["shares_yes"] == "0"
        assert position["total_invested"] == q["cost"]
        # the chain's own event says the same, to the lamport
        record = env.chain.node.record(Signature.from_string(signature))
        assert record is not None and record.err is None
        (event,) = [e.event for e in parse_logs(record.logs, env.d.pid).events]
        assert isinstance(event, SharesBought)
        assert (str(event.shares), str(event.cost), event.new_price_yes) == (
            q["shares"],
            q["cost"],
            1_000_000_000 - q["price_after"],
        )


async def test_quotes_equal_events_over_random_buys(
    db: Database,
    serve: Callable[..., Any],
) -> None:
    """>= 200 accepted buys on three markets driven apart (fresh, skewed, lopsided):
    every quote equals its SharesBought to the lamport; refusals name a chain error."""
    rng = random.Random(16)
    async with environment(db, serve) as env:
        d, node = env.d, env.chain.node
        market, _ = await _setup_active(env, 1)
        markets = [market]
        for seed in (2, 3):
            creator, voter = d.fund(), d.fund()
            m = d.active_market(creator, seed, [voter])
            markets.append(m)
        records = node.signatures_for_address(d.pid, "processed", limit=10**9)
        await env.index(*(r.signature for r in reversed(records)))
        whales = [d.fund(10_000 * SOL) for _ in range(6)]
        # skew market 3 hard towards YES, market 2 a little
        await env.index_all(
            [
                d.buy(whales[0], markets[2], True, 300 * SOL),
                d.buy(whales[1], markets[1], True, 20 * SOL),
            ]
        )
        accepted = refused = 0
        while accepted < 200:
            market = rng.choice(markets)
            wallet = rng.choice(whales)
            outcome = rng.choice(("YES", "NO"))
            amount = int(10 ** rng.uniform(3.9, 11))
            r = await env.buy(market, wallet.pubkey(), outcome, amount)
            if r.status_code != 200:
                assert r.status_code == 409, r.text
                message = r.json()["errors"][0]["message"]
                assert re.split(r"[ :]", message)[0] in {
                    "TradeTooSmall",
                    "UnderflowError",
                    "SlippageImpossible",
                    "ExponentTooLarge",
                }, message
                refused += 1
                continue
            body = r.json()
            record = node.submit(_sign(body, wallet))
            assert record.err is None, (record.err, record.logs[-3:])
            node.advance_slot()
            await env.index(record.signature)
            (event,) = [e.event for e in parse_logs(record.logs, d.pid).events]
            assert isinstance(event, SharesBought)
            q = body["quote"]
            price = q["price_after"] if outcome == "YES" else 1_000_000_000 - q["price_after"]
            assert (event.shares, event.cost, event.new_price_yes, event.outcome) == (
                int(q["shares"]),
                int(q["cost"]),
                price,
                outcome == "YES",
            )
            # lamports that left the wallet: cost + fee (+ the position's rent the first time)
            i = record.account_keys.index(wallet.pubkey())
            spent = record.pre_balances[i] - record.post_balances[i] - record.fee
            assert spent - int(q["cost"]) in (0, node.bank.rent_exempt_minimum(182))
            accepted += 1
        assert refused > 0  # the dead zone and the minimum were met on the way


async def test_returned_transaction_decodes_independently(
    db: Database,
    serve: Callable[..., Any],
) -> None:
    async with environment(db, serve) as env:
        market, _ = await _setup_active(env)
        alice = env.d.fund()
        amount = 123_456_789
        body = (await env.buy(market, alice.pubkey(), "YES", amount)).json()
        tx = VersionedTransaction.from_bytes(base64.b64decode(body["transaction"]))
        message = tx.message
        assert isinstance(message, MessageV0) and not message.address_table_lookups
        assert message.header.num_required_signatures == 1
        assert tx.signatures == [Signature.default()]
        keys = message.account_keys
        assert keys[0] == alice.pubkey() and str(message.recent_blockhash) == body["blockhash"]
        programs = [keys[i.program_id_index] for i in message.instructions]
        assert programs == [COMPUTE_BUDGET, COMPUTE_BUDGET, env.d.pid]
        limit_ix, price_ix, core = message.instructions
        assert bytes(limit_ix.data) == b"\x02" + body["compute_unit_limit"].to_bytes(4, "little")
        assert bytes(price_ix.data) == b"\x03" + body["compute_unit_price"].to_bytes(8, "little")
        assert body["compute_unit_limit"] > body["simulated_units"] > 0
        # the golden buy_shares encoding: discriminator, bool, u64 LE
        (golden,) = [s for s in GOLDEN["samples"] if s["name"] == "buy_shares"]
        raw = bytes.fromhex(golden["hex"])
        g = golden["decoded"]
        assert raw == raw[:8] + bytes([g["outcome"]]) + int(g["target_cost"]).to_bytes(8, "little")
        assert bytes(core.data) == raw[:8] + b"\x01" + amount.to_bytes(8, "little")
        # accounts from the seeds, derived here without zmartd's PDA helpers
        pid = env.d.pid
        config = Pubkey.find_program_address([b"global-config"], pid)[0]
        market_key = Pubkey.find_program_address([b"market", market], pid)[0]
        position = Pubkey.find_program_address(
            [b"position", bytes(market_key), bytes(alice.pubkey())], pid
        )[0]
        system = Pubkey.from_string("11111111111111111111111111111111")
        assert [keys[i] for i in core.accounts] == [
            config,
            market_key,
            position,
            alice.pubkey(),
            env.d.treasury.pubkey(),
            system,
        ]
        writable = [message.is_maybe_writable(i) for i in core.accounts]
        assert writable == [False, True, True, True, True, False]


async def _pause(env: Env) -> None:
    d = env.d
    await env.index_all(
        [d.send(d.admin, ix.emergency_pause(admin=d.admin.pubkey(), program_id=d.pid))]
    )


async def test_buy_refusals(
    db: Database,
    serve: Callable[..., Any],
) -> None:
    async with environment(db, serve) as env:
        d = env.d
        alice = d.fund()
        unknown = bytes(32)
        r = await env.buy(unknown, alice.pubkey())
        assert r.status_code == 404, r.text
        # nothing indexed yet
        creator, voter = d.fund(), d.fund()
        d.init_config()
        proposed = (9).to_bytes(32, "big")
        records = [
            d.send(
                creator,
                ix.create_market(
                    creator=creator.pubkey(),
                    market_id=proposed,
                    b_parameter=100 * SOL,
                    initial_liquidity=SOL // 10,
                    ipfs_question_hash=b"QmQ".ljust(46, b"0"),
                    program_id=d.pid,
                ),
            )
        ]
        await env.index(records[0].signature)

        async def _forget_config(con: asyncpg.Connection) -> None:
            await con.execute("DELETE FROM global_config")

        saved = await db.run(
            "test.config", lambda con: con.fetch("SELECT * FROM global_config"), transaction=False
        )
        await db.run("test.forget", _forget_config)
        _problem(await env.buy(proposed, alice.pubkey()), 409, "ProgramNotInitialized")

        async def _restore(con: asyncpg.Connection) -> None:
            row = dict(saved[0])
            await con.execute(
                f"INSERT INTO global_config ({', '.join(row)}) VALUES "
                f"({', '.join(f'${i + 1}' for i in range(len(row)))})",
                *row.values(),
            )

        await db.run("test.restore", _restore)
        _problem(await env.buy(proposed, alice.pubkey()), 409, "InvalidMarketState")
        market = d.active_market(creator, 1, [voter])
        await env.index(
            *(
                r.signature
                for r in reversed(d.node.signatures_for_address(d.pid, "processed", limit=10**9))
            )
        )
        _problem(await env.buy(market, alice.pubkey(), amount=9_999), 409, "TradeTooSmall")
        # a wallet without lamports cannot pay: the simulation says so (not a program error)
        r = await env.buy(market, Keypair().pubkey())
        assert r.status_code == 409 and "simulation failed" in r.json()["detail"], r.text
        # the dead zone of a fresh market (docs/chain.md §9.7)
        _problem(await env.buy(market, alice.pubkey(), amount=10_000), 409, "UnderflowError")
        r = await env.buy(market, alice.pubkey(), slippage_bps=10_001)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "slippage_bps"
        # market ended (the creator's metadata end_time has passed)

        async def _ended(con: asyncpg.Connection) -> None:
            await con.execute(
                "INSERT INTO market_metadata (market_id, creator, title, description, end_time)"
                " VALUES ($1, $2, 'q', 'd', $3)",
                market.hex(),
                str(creator.pubkey()),
                datetime.now(UTC) - timedelta(minutes=1),
            )

        await db.run("test.ended", _ended)
        _problem(await env.buy(market, alice.pubkey()), 409, "MarketEnded")

        async def _reopen(con: asyncpg.Connection) -> None:
            await con.execute("UPDATE market_metadata SET end_time = NULL")

        await db.run("test.reopen", _reopen)
        # a buy that fills 0 shares (skewed market, budget below the fill granularity)
        await env.index_all([d.buy(d.fund(1000 * SOL), market, True, 500 * SOL)])
        row = (
            await db.run(
                "test.market",
                lambda con: con.fetch("SELECT * FROM markets WHERE market_id = $1", market.hex()),
                transaction=False,
            )
        )[0]
        math = MarketMath(
            b_parameter=int(row["b_parameter"]),
            shares_yes=int(row["shares_yes"]),
            shares_no=int(row["shares_no"]),
            current_liquidity=int(row["current_liquidity"]),
        )
        small = next(
            a
            for a in range(10_000, 10**8, 1_000)
            if quote_buy(math, DEFAULT_FEES, True, a).shares == 0
        )
        _problem(await env.buy(market, alice.pubkey(), "YES", small), 409, "SlippageImpossible")
        # a trade landed that the index has not seen: the simulation's event differs from
        # the quote, so no transaction is handed out with a stale quote
        d.buy(d.fund(100 * SOL), market, True, 3 * SOL)
        _problem(await env.buy(market, alice.pubkey()), 409, "IndexBehind")
        # the indexed state says ACTIVE, the chain has moved on: the simulation refuses
        d.node.warp_clock(10)
        d.send(
            creator,
            ix.resolve_market(
                resolver=creator.pubkey(),
                market_id=market,
                proposed_outcome=True,
                ipfs_evidence_hash=b"QmE".ljust(46, b"0"),
                program_id=d.pid,
            ),
        )
        _problem(await env.buy(market, alice.pubkey()), 409, "InvalidMarketState")
        await _pause(env)
        _problem(await env.buy(market, alice.pubkey()), 409, "ProtocolPaused")


async def test_submit_refusals_and_status(
    db: Database,
    serve: Callable[..., Any],
) -> None:
    async with environment(db, serve) as env:
        d, node = env.d, env.chain.node
        market, _ = await _setup_active(env)
        alice = d.fund()

        async def submit(raw: bytes | str) -> httpx.Response:
            text = raw if isinstance(raw, str) else base64.b64encode(raw).decode()
            return await env.http.post("/v1/tx/submit", json={"transaction": text})

        assert (await submit("not base64!")).status_code == 400
        assert (await submit(b"\x01garbage")).status_code == 400
        # another program (the System Program): refused
        other = VersionedTransaction(
            MessageV0.try_compile(
                alice.pubkey(),
                [
                    transfer(
                        TransferParams(
                            from_pubkey=alice.pubkey(), to_pubkey=d.admin.pubkey(), lamports=1
                        )
                    )
                ],
                [],
                node.blockhash,
            ),
            [alice],
        )
        r = await submit(bytes(other))
        assert r.status_code == 400 and "only zmart-core" in r.text
        body = (await env.buy(market, alice.pubkey())).json()
        # unsigned (as built) or signed by someone else: the signature does not verify
        assert (await submit(body["transaction"])).status_code == 400
        message = VersionedTransaction.from_bytes(base64.b64decode(body["transaction"])).message
        forged = VersionedTransaction.populate(message, [d.fund().sign_message(bytes(message))])
        r = await submit(bytes(forged))
        assert r.status_code == 400 and "does not verify" in r.text
        # preflight failure names the program error: the market resolves meanwhile
        d.node.warp_clock(10)
        d.send(
            alice,
            ix.resolve_market(
                resolver=alice.pubkey(),
                market_id=market,
                proposed_outcome=True,
                ipfs_evidence_hash=b"QmE".ljust(46, b"0"),
                program_id=d.pid,
            ),
        )
        _problem(await submit(bytes(_sign(body, alice))), 409, "InvalidMarketState")
        # expired blockhash
        node.advance_slot(200)
        r = await submit(bytes(_sign(body, alice)))
        _problem(r, 409, "BlockhashExpired")
        # status: a failed transaction names its program error; unknown is 404
        failed = d.buy(alice, market, True, SOL, expect_ok=False)
        node.advance_slot()
        doc = (await env.http.get(f"/v1/tx/{failed.signature}")).json()
        assert doc["status"] == "failed" and doc["error"] == "InvalidMarketState", doc
        r = await env.http.get(f"/v1/tx/{Signature.from_bytes(bytes(range(64)))}")
        assert r.status_code == 404


async def test_builds_and_submits_are_rate_limited(
    db: Database,
    serve: Callable[..., Any],
) -> None:
    """Builds spend the client IP's writes bucket (never the named wallet's: anyone
    could name it); submits spend the signer's once the signature verified."""
    limits = {
        "writes_ip_per_minute": 1,
        "writes_ip_burst": 4,
        "writes_wallet_per_minute": 1,
        "writes_wallet_burst": 1,
    }
    async with environment(db, serve, limits) as env:
        market, _ = await _setup_active(env)
        alice = env.d.fund()
        signed = []
        # 2 of the IP's 4 tokens; alice's wallet bucket (burst 1) is not charged: both pass
        for amount in (SOL, SOL + 1):
            body = (await env.buy(market, alice.pubkey(), "YES", amount)).json()
            signed.append(base64.b64encode(bytes(_sign(body, alice))).decode())
        # the signer's wallet bucket (burst 1): the second submit is refused, although
        # the IP bucket still has a token
        first = await env.http.post("/v1/tx/submit", json={"transaction": signed[0]})
        assert first.status_code == 202, first.text
        second = await env.http.post("/v1/tx/submit", json={"transaction": signed[1]})
        assert second.status_code == 429 and "Retry-After" in second.headers
        # the IP's bucket is empty now
        stranger = Keypair().pubkey()
        assert (await env.buy(bytes(32), stranger)).status_code == 429


async def _positions(env: Env, wallet: Keypair) -> dict[str, Any]:
    r = await env.http.get(f"/v1/users/{wallet.pubkey()}/positions")
    assert r.status_code == 200, r.text
    return {p["market_id"]: p for p in r.json()["items"]}


def _event(record: Any, pid: Pubkey) -> Any:
    (event,) = [e.event for e in parse_logs(record.logs, pid).events]
    return event


async def _land(env: Env, r: httpx.Response, key: Keypair) -> Any:
    """Sign the built transaction with ``key``, execute it, confirm, index."""
    assert r.status_code == 200, r.text
    record = env.chain.node.submit(_sign(r.json(), key))
    assert record.err is None, (record.err, record.logs[-3:])
    env.chain.node.advance_slot()
    await env.index(record.signature)
    return record


async def test_market_lifecycle_through_tx_endpoints(
    db: Database, serve: Callable[..., Any]
) -> None:
    """create-market -> proposal votes -> activate -> buys -> (sell refused) -> resolve ->
    dispute -> dispute votes -> claim -> withdraw, every user step built by /v1/tx, with
    each state's refusals on the way; payouts equal the chain's events."""
    async with environment(db, serve) as env:
        d, node = env.d, env.chain.node
        d.init_config()
        await env.index(*(r.signature for r in node.signatures_for_address(d.pid, "processed")))
        creator, v1, v2, stranger = (d.fund(100 * SOL) for _ in range(4))
        token = await fx.session(db, str(creator.pubkey()))

        async def post(path: str, wallet: Keypair | None = None, **body: Any) -> httpx.Response:
            if wallet is not None:
                body["wallet"] = str(wallet.pubkey())
            return await env.http.post(f"/v1/tx/{path}", json=body, headers=fx.headers(token))

        too_small = await post("create-market", b_parameter=SOL, initial_liquidity=SOL, title="q")
        _problem(too_small, 409, "InvalidBParameter")
        r = await post(
            "create-market",
            b_parameter=100 * SOL,
            initial_liquidity=SOL // 10,
            title="Will the tx API ship?",
            end_time=(datetime.now(UTC) + timedelta(days=1)).isoformat(),
        )
        created = r.json()
        market_hex = created["market_id"]
        m = {"market_id": market_hex}
        await _land(env, r, creator)
        shown = (await env.http.get(f"/v1/markets/{market_hex}")).json()
        assert shown["title"] == "Will the tx API ship?" and shown["status"] == "PROPOSED"
        account = node.get_account(market_pda(bytes.fromhex(market_hex), d.pid)[0], "confirmed")
        assert account is not None and created["question_hash"].encode() in bytes(account.data)
        _problem(await post("vote/dispute", v1, vote="agree", **m), 409, "InvalidStateForVoting")
        for voter in (v1, v2):
            await _land(env, await post("vote/proposal", voter, vote="like", **m), voter)
        _problem(await post("activate", creator, **m), 409, "InvalidStateTransition")
        market_id = bytes.fromhex(market_hex)
        await env.index_all(
            [
                d.send(
                    d.admin,
                    ix.aggregate_proposal_votes(
                        backend_authority=d.admin.pubkey(),
                        market_id=market_id,
                        final_likes=2,
                        final_dislikes=0,
                        program_id=d.pid,
                    ),
                ),
                d.send(
                    d.admin,
                    ix.approve_proposal(
                        admin=d.admin.pubkey(), market_id=market_id, program_id=d.pid
                    ),
                ),
            ]
        )
        _problem(await post("activate", stranger, **m), 409, "Unauthorized")
        await _land(env, await post("activate", creator, **m), creator)
        await _land(env, await post("buy", v1, outcome="YES", amount_lamports=2 * SOL, **m), v1)
        await _land(env, await post("buy", v2, outcome="NO", amount_lamports=SOL, **m), v2)
        _problem(await post("sell", v1, outcome="YES", shares=10**9, **m), 409, "SellsRevert")
        await _land(
            env, await post("buy", creator, outcome="YES", amount_lamports=SOL // 2, **m), creator
        )
        _problem(await post("claim", v1, **m), 409, "InvalidMarketState")
        _problem(await post("dispute", v2, **m), 409, "InvalidMarketState")
        node.warp_clock(10)
        evidence = "Qm" + "E" * 44
        await _land(env, await post("resolve", v2, outcome="YES", evidence=evidence, **m), v2)
        _problem(
            await post("resolve", v2, outcome="NO", evidence=evidence, **m),
            409,
            "InvalidMarketState",
        )
        node.warp_clock(10)
        await _land(env, await post("dispute", v2, **m), v2)
        await _land(env, await post("vote/dispute", v1, vote="disagree", **m), v1)
        await _land(env, await post("vote/dispute", v2, vote="agree", **m), v2)
        await env.index_all(
            [
                d.send(
                    d.admin,
                    ix.finalize_market(
                        backend_authority=d.admin.pubkey(),
                        market_id=market_id,
                        dispute_agree=1,
                        dispute_disagree=1,
                        program_id=d.pid,
                    ),
                )
            ]
        )
        (state,) = await rows(db, "SELECT state FROM markets WHERE market_id = $1", market_hex)
        assert state["state"] == 5  # FINALIZED
        _problem(await post("claim", v2, **m), 409, "NoWinnings")
        _problem(await post("claim", stranger, **m), 409, "NoWinnings")
        positions = await _positions(env, v1)
        r = await post("claim", v1, **m)
        payout = int(r.json()["payout"])
        assert positions[market_hex]["claimable"] == str(payout)
        assert positions[market_hex]["can_sell"] is positions[market_hex]["can_withdraw"] is False
        assert (await _positions(env, v2))[market_hex]["claimable"] == "0"
        assert (await _positions(env, creator))[market_hex]["can_withdraw"] is True
        event = _event(await _land(env, r, v1), d.pid)
        assert isinstance(event, WinningsClaimed) and event.amount == payout > 0
        _problem(await post("claim", v1, **m), 409, "AlreadyClaimed")
        assert (await _positions(env, v1))[market_hex]["claimable"] == "0"
        _problem(await post("withdraw-liquidity", v1, **m), 409, "Unauthorized")
        r = await post("withdraw-liquidity", creator, **m)
        payout = int(r.json()["payout"])
        event = _event(await _land(env, r, creator), d.pid)
        assert isinstance(event, LiquidityWithdrawn) and event.amount == payout > 0
        _problem(await post("withdraw-liquidity", creator, **m), 409, "InsufficientLiquidity")
        assert (await _positions(env, creator))[market_hex]["can_withdraw"] is False


async def test_sell_on_the_patched_program(db: Database, serve: Callable[..., Any]) -> None:
    """With the patched chain double (the one variant whose sells pay), a sell is
    built and its quote equals the SharesSold event."""
    devchain: Devchain = await serve(confirmed_lag=1, program_variant="patched")
    d = Driver(devchain)
    cfg = make_config(ratelimit=UNLIMITED, devchain={"program_variant": "patched"})
    async with (
        RpcClient([devchain.rpc_url], commitment="confirmed", timeout=10) as rpc,
        live_api(cfg, db) as api,
    ):
        api.ctx.services.provide(LOCAL_CHAIN, devchain)
        env = Env(api, devchain, d, make_indexer(db, rpc, devchain), rpc)
        market, _ = await _setup_active(env)
        alice, bob = d.fund(1000 * SOL), d.fund(1000 * SOL)
        await env.index_all(
            [d.buy(alice, market, True, 50 * SOL), d.buy(bob, market, False, 50 * SOL)]
        )
        position = (await _positions(env, alice))[market.hex()]
        assert position["can_sell"] is True and position["claimable"] == "0"
        held = int(position["shares_yes"])
        r = await env.http.post(
            "/v1/tx/sell",
            json={
                "market_id": market.hex(),
                "wallet": str(alice.pubkey()),
                "outcome": "YES",
                "shares": held // 100,
                "slippage_bps": 50,
            },
        )
        q = r.json()["quote"]
        assert q["side"] == "sell" and int(q["min_proceeds"]) == int(q["cost"]) * 9950 // 10_000
        event = _event(await _land(env, r, alice), d.pid)
        assert isinstance(event, SharesSold)
        assert (event.shares, event.proceeds) == (held // 100, int(q["cost"]))
        r = await env.http.post(
            "/v1/tx/sell",
            json={
                "market_id": market.hex(),
                "wallet": str(bob.pubkey()),
                "outcome": "YES",
                "shares": 10**9,
            },
        )
        _problem(r, 409, "InsufficientShares")


async def test_relay_rebroadcasts_until_landed_or_expired(
    db: Database, serve: Callable[..., Any]
) -> None:
    """A send the node drops is rebroadcast (same bytes) until it lands; one that
    never reaches the chain is reported expired once its blockhash passed."""
    async with environment(db, serve) as env:
        node = env.chain.node
        market, _ = await _setup_active(env)
        alice = env.d.fund()

        async def submit_buy(amount: int) -> str:
            body = (await env.buy(market, alice.pubkey(), "YES", amount)).json()
            raw = base64.b64encode(bytes(_sign(body, alice))).decode()
            r = await env.http.post("/v1/tx/submit", json={"transaction": raw})
            assert r.status_code == 202, r.text
            signature: str = r.json()["signature"]
            return signature

        async def status_of(signature: str) -> str:
            doc = (await env.http.get(f"/v1/tx/{signature}")).json()
            state: str = doc["status"]
            return state

        await env.rpc.request("zmart_dropSends", [1])  # the first send is lost
        signature = await submit_buy(SOL)
        assert await status_of(signature) == "pending"
        with trio.fail_after(10):
            while await status_of(signature) != "confirmed":
                node.advance_slot()
                await trio.sleep(0.1)
        assert node.record(Signature.from_string(signature)) is not None
        await env.index(signature)  # else the next quote is stale (IndexBehind)

        await env.rpc.request("zmart_dropSends", [10**6])  # this one never reaches the chain
        lost = await submit_buy(SOL + 1)
        assert await status_of(lost) == "pending"
        node.advance_slot(200)  # well past its blockhash's last valid height
        with trio.fail_after(10):
            while await status_of(lost) != "expired":
                await trio.sleep(0.1)
        assert node.record(Signature.from_string(lost)) is None


async def test_lifecycle_refusals(db: Database, serve: Callable[..., Any]) -> None:
    """The refusals the lifecycle test does not meet: a market id already on chain, a
    second on-chain vote (the simulation names the failure), a closed dispute window."""
    async with environment(db, serve) as env:
        d, node = env.d, env.chain.node
        market, (creator, voter, _) = await _setup_active(env)
        token = await fx.session(db, str(creator.pubkey()))
        r = await env.http.post(
            "/v1/tx/create-market",
            json={
                "market_id": market.hex(),
                "b_parameter": 100 * SOL,
                "initial_liquidity": SOL,
                "title": "again",
            },
            headers=fx.headers(token),
        )
        _problem(r, 409, "MarketExists")
        r = await env.http.post(
            "/v1/tx/create-market",
            json={"b_parameter": 100 * SOL, "initial_liquidity": SOL, "title": "no session"},
        )
        assert r.status_code == 401
        # a PROPOSED market the voter already voted on: the second vote cannot land
        proposed = (7).to_bytes(32, "big")
        await env.index_all(
            [
                d.send(
                    creator,
                    ix.create_market(
                        creator=creator.pubkey(),
                        market_id=proposed,
                        b_parameter=100 * SOL,
                        initial_liquidity=SOL // 10,
                        ipfs_question_hash=b"QmQ".ljust(46, b"0"),
                        program_id=d.pid,
                    ),
                ),
                d.send(
                    voter,
                    ix.submit_proposal_vote(
                        user=voter.pubkey(), market_id=proposed, vote=True, program_id=d.pid
                    ),
                ),
            ]
        )
        r = await env.http.post(
            "/v1/tx/vote/proposal",
            json={"market_id": proposed.hex(), "wallet": str(voter.pubkey()), "vote": "dislike"},
        )
        assert r.status_code == 409 and "simulation failed" in r.json()["detail"], r.text
        # resolved long ago (as indexed): the dispute window has closed
        node.warp_clock(10)
        await env.index_all(
            [
                d.send(
                    creator,
                    ix.resolve_market(
                        resolver=creator.pubkey(),
                        market_id=market,
                        proposed_outcome=True,
                        ipfs_evidence_hash=b"QmE".ljust(46, b"0"),
                        program_id=d.pid,
                    ),
                )
            ]
        )
        node.warp_clock(10)  # the program wants now > resolution_proposed_at
        r = await env.http.post(
            "/v1/tx/dispute", json={"market_id": market.hex(), "wallet": str(voter.pubkey())}
        )
        assert r.status_code == 200, r.text

        async def _long_ago(con: asyncpg.Connection) -> None:
            await con.execute(
                "UPDATE markets SET resolution_proposed_at = now() - interval '30 days' "
                "WHERE market_id = $1",
                market.hex(),
            )

        await db.run("test.long_ago", _long_ago)
        r = await env.http.post(
            "/v1/tx/dispute", json={"market_id": market.hex(), "wallet": str(voter.pubkey())}
        )
        _problem(r, 409, "DisputePeriodEnded")
