"""Indexer latency and backfill throughput, against the real PostgreSQL.

Run from the repository root (needs the PostgreSQL of ``ZMARTD_TEST_PG``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``; a scratch
database is created and dropped)::

    .venv/bin/python bench/indexer.py                    # 100,000 transactions
    .venv/bin/python bench/indexer.py --backfill 20000   # quicker

1. **Live latency**: a devchain producing a slot every 50 ms, the indexer
   (PubSub → getTransaction → getMultipleAccounts → one DB transaction → bus)
   and the REST API on hypercorn, in this process.  For each trade, from
   the moment the node *confirms* it (an observer on the node) to (a) its
   ``TradeExecuted`` event on the bus -- the hand-off to the WebSocket hub,
   whose own fan-out is measured by ``bench/ws.py`` -- and (b) the trade
   being returned by ``GET /v1/markets/{id}/trades`` (polled every 2 ms).
2. **Backfill throughput**: N buys on the devchain, then a backfill from an
   empty database in units of ``UNIT_SIZE`` (1,000) transactions (decode, account reads over
   JSON-RPC, one DB transaction per unit with the watermark).  Transactions
   are handed to the pipeline from the node's memory (the JSON the node
   would serve), so the figure is the pipeline into PostgreSQL, not the
   devchain's HTTP rate (``bench/devchain.py`` measures that).  Baseline: a
   plain ``COPY`` of the same trade rows into an identical table, in the
   same run.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
from pathlib import Path

# ``python bench/indexer.py`` puts bench/ first on sys.path; keep it off so that
# no bench module can ever shadow a library module (bench/http.py once did).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import cProfile
import gc
import os
import secrets
import signal
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec
import trio
import trio_asyncio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.signature import Signature
from solders.transaction import VersionedTransaction

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zmartd.api.cache import HotCache, run_invalidator
from zmartd.api.ratelimit import RateLimiter
from zmartd.api.server import create_app
from zmartd.bus import Bus, TradeExecuted
from zmartd.chain import instructions as ix
from zmartd.chain.rpc import RpcClient
from zmartd.config import parse_config
from zmartd.context import ActorContext, Health
from zmartd.devchain.actor import DevchainSettings, serve_devchain
from zmartd.devchain.node import Node, TxRecord
from zmartd.devchain.rpc_server import JsonRpc
from zmartd.indexer import actor
from zmartd.indexer.backfill import backfill
from zmartd.indexer.pipeline import Indexer
from zmartd.indexer.source import ChainSource
from zmartd.model.services import DATABASE
from zmartd.observability import Metrics
from zmartd.runtime import tune_gc
from zmartd.services import Services
from zmartd.storage.database import Database
from zmartd.storage.indexer import refresh_statistics
from zmartd.storage.migrate import migrate

SOL = 1_000_000_000
ADMIN_DSN = os.environ.get("ZMARTD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


class Chain:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.pid = node.bank.program_id
        self.admin = self.fund()
        self.treasury = self.fund()
        self.send(
            self.admin,
            ix.initialize_global_config(
                admin=self.admin.pubkey(),
                backend_authority=self.admin.pubkey(),
                protocol_fee_wallet=self.treasury.pubkey(),
                program_id=self.pid,
            ),
        )

    def fund(self, lamports: int = 10_000 * SOL) -> Keypair:
        kp = Keypair()
        self.node.faucet_transfer(kp.pubkey(), lamports)
        return kp

    def send(self, payer: Keypair, instruction: Any, advance: bool = True) -> TxRecord:
        message = MessageV0.try_compile(payer.pubkey(), [instruction], [], self.node.blockhash)
        record = self.node.submit(VersionedTransaction(message, [payer]), verify=False)
        assert record.err is None, record.logs[-3:]
        if advance:
            self.node.advance_slot()
        return record

    def market(self, seed: int) -> bytes:
        m = seed.to_bytes(32, "big")
        creator = self.fund()
        self.send(
            creator,
            ix.create_market(
                creator=creator.pubkey(),
                market_id=m,
                b_parameter=100 * SOL,
                initial_liquidity=SOL // 10,
                ipfs_question_hash=b"Qm".ljust(46, b"0"),
                program_id=self.pid,
            ),
        )
        self.send(
            creator,
            ix.submit_proposal_vote(
                user=creator.pubkey(), market_id=m, vote=True, program_id=self.pid
            ),
        )
        self.send(
            self.admin,
            ix.aggregate_proposal_votes(
                backend_authority=self.admin.pubkey(),
                market_id=m,
                final_likes=1,
                final_dislikes=0,
                program_id=self.pid,
            ),
        )
        self.send(
            self.admin,
            ix.approve_proposal(admin=self.admin.pubkey(), market_id=m, program_id=self.pid),
        )
        self.send(
            creator,
            ix.activate_market(authority=creator.pubkey(), market_id=m, program_id=self.pid),
        )
        return m

    def buy(self, user: Keypair, m: bytes, n: int, advance: bool = True) -> TxRecord:
        return self.send(
            user,
            ix.buy_shares(
                user=user.pubkey(),
                market_id=m,
                outcome=n % 2 == 0,
                target_cost=SOL + n % 1000,
                protocol_fee_wallet=self.treasury.pubkey(),
                program_id=self.pid,
            ),
            advance,
        )


def _dsn(name: str) -> str:
    return urlunsplit(urlsplit(ADMIN_DSN)._replace(path=f"/{name}"))


async def _admin(sql: str) -> None:
    con = await asyncpg.connect(ADMIN_DSN)
    try:
        await con.execute(sql)
    finally:
        await con.close()


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


class Confirmations:
    """Node observer: when each transaction reached ``confirmed``."""

    def __init__(self) -> None:
        self.at: dict[Signature, float] = {}

    def on_slot(self, info: Any, root: int) -> None:
        return None

    def on_accounts(self, level: Any, slot: int, accounts: Any) -> None:
        return None

    def on_transaction(self, level: str, record: TxRecord) -> None:
        if level == "confirmed":
            self.at.setdefault(record.signature, time.perf_counter())


async def bench_latency(db: Database, trades: int) -> dict[str, float]:
    settings = DevchainSettings(
        port=0, ws_port=0, seed="none", slot_interval=0.05, finalized_lag=32
    )
    stopping = trio.Event()
    async with trio.open_nursery() as nursery:
        chain = await nursery.start(serve_devchain, settings, stopping)
        c = Chain(chain.node)
        market = c.market(1)
        user = c.fund()
        confirmations = Confirmations()
        chain.node.subscribe(confirmations)
        cfg = parse_config(
            {"http": {"port": 0}, "ratelimit": {"enabled": False}}, base_dir=Path("/tmp"), env={}
        )
        ctx = ActorContext(
            name="bench",
            config=cfg,
            bus=Bus(),
            metrics=Metrics(),
            services=Services(),
            health=Health(),
            statuses=lambda: [],
            facts=lambda: {},
        )
        ctx.services.provide(DATABASE, db)
        events = ctx.bus.topic("events").subscribe("bench", capacity=100_000)
        cache_events = ctx.bus.topic("events").subscribe("bench.cache", capacity=100_000)
        cache = HotCache(cfg.http.cache_max_entries, cfg.http.cache_ttl)
        app = create_app(ctx, limiter=RateLimiter.from_config(cfg), cache=cache)
        nursery.start_soon(run_invalidator, cache, cache_events, None)
        hc = HypercornConfig()
        hc.bind = ["127.0.0.1:0"]
        hc.accesslog = None
        urls = await nursery.start(serve, app, hc)
        rpc = RpcClient([chain.rpc_url], commitment="confirmed")
        indexer = Indexer(db, ChainSource(rpc, c.pid), ctx.bus, None)
        service = actor.IndexerService()
        nursery.start_soon(actor.serve_indexer, ctx, indexer, service, chain.ws_url)
        while service.backfills < 1:  # noqa: ASYNC110 - polled on purpose
            await trio.sleep(0.05)
        bus_ms: list[float] = []
        rest_ms: list[float] = []
        async with httpx.AsyncClient(base_url=urls[0], timeout=10) as http:
            for n in range(trades):
                record = c.buy(user, market, n, advance=False)
                sig = str(record.signature)
                while record.signature not in confirmations.at:  # noqa: ASYNC110
                    await trio.sleep(0.001)
                confirmed = confirmations.at[record.signature]
                with trio.fail_after(10):
                    while True:
                        ev = await events.receive()
                        if isinstance(ev, TradeExecuted) and ev.data["signature"] == sig:
                            bus_ms.append(time.perf_counter() - confirmed)
                            break
                    while True:
                        r = await http.get(
                            f"/v1/markets/{market.hex()}/trades", params={"limit": 1}
                        )
                        r.raise_for_status()
                        items = r.json()["items"]
                        if items and items[0]["signature"] == sig:
                            rest_ms.append(time.perf_counter() - confirmed)
                            break
                        await trio.sleep(0.002)
        await rpc.aclose()
        stopping.set()
        nursery.cancel_scope.cancel()
    return {
        "trades": trades,
        "bus_p50": _pct(bus_ms, 0.5),
        "bus_p99": _pct(bus_ms, 0.99),
        "rest_p50": _pct(rest_ms, 0.5),
        "rest_p99": _pct(rest_ms, 0.99),
    }


class NodeTransport(httpx.AsyncBaseTransport):
    """The devchain's JSON-RPC handler as an httpx transport, with replay.

    The indexer's real RPC client (request encoding, JSON-RPC batches,
    response parsing) talks to the node without sockets or an HTTP server.
    Every answer is kept by call (method + params); with ``replay`` set, a
    call asked before is answered with the kept bytes.  The benchmark runs
    the backfill once to warm up, then times a second run whose calls are
    all replays: in production the node is another machine, so its work of
    building the answers is not the indexer's (``misses`` proves the timed
    run never reached the node).
    """

    def __init__(self, rpc: JsonRpc) -> None:
        self.rpc = rpc
        self.replay = False
        self.misses = 0
        self._answers: dict[bytes, bytes] = {}

    def _answer(self, call: dict[str, Any]) -> bytes:
        key = msgspec.json.encode([call.get("method"), call.get("params")])
        kept = self._answers.get(key) if self.replay else None
        if kept is None:
            self.misses += self.replay
            answer = self.rpc.call({**call, "id": None})
            del answer["id"]
            kept = self._answers[key] = msgspec.json.encode(answer)
        # splice the caller's id into the kept '{...}' object
        return b'{"id":' + msgspec.json.encode(call.get("id")) + b"," + kept[1:]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        doc = msgspec.json.decode(await request.aread())
        if isinstance(doc, list):
            body = b"[" + b",".join(self._answer(c) for c in doc) + b"]"
        else:
            body = self._answer(doc)
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})


async def bench_backfill(db: Database, n: int, profile: str | None = None) -> dict[str, float]:
    settings = DevchainSettings(
        port=0, ws_port=0, seed="none", slot_interval=3600, finalized_lag=32
    )
    stopping = trio.Event()
    async with trio.open_nursery() as nursery:
        chain = await nursery.start(serve_devchain, settings, stopping)
        c = Chain(chain.node)
        markets = [c.market(10 + i) for i in range(20)]
        users = [c.fund() for _ in range(200)]
        t0 = time.perf_counter()
        for i in range(n):
            c.buy(
                users[i % len(users)],
                markets[i % len(markets)],
                i // len(markets),
                advance=i % 50 == 49,
            )
        c.node.advance_slot(2)
        made = time.perf_counter() - t0
        # The chain double lives in this process only for the benchmark (a
        # real node is another machine): keep its 100k transactions out of
        # the garbage collector's full scans, which would otherwise be
        # charged to the indexer.
        gc.collect()
        gc.freeze()
        transport = NodeTransport(chain.rpc)
        async with RpcClient([chain.rpc_url], commitment="confirmed", transport=transport) as rpc:
            t0 = time.perf_counter()
            warm = Indexer(db, ChainSource(rpc, c.pid), None, None, publish=False)
            await backfill(warm, reason="bench warm-up")
            warm_s = time.perf_counter() - t0
            await wipe(db)
            # the warm-up left the node's answers and caches in this process:
            # out of the collector's scans as well, like the chain above
            gc.collect()
            gc.freeze()
            transport.replay = True
            indexer = Indexer(db, ChainSource(rpc, c.pid), None, None, publish=False)
            profiler = cProfile.Profile() if profile else None
            t0 = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            p = await backfill(indexer, reason="bench")
            elapsed = time.perf_counter() - t0
            if profiler is not None and profile is not None:
                profiler.disable()
                profiler.dump_stats(profile)
                print(f"backfill profile written to {profile} (python -m pstats {profile})")
        stopping.set()
        nursery.cancel_scope.cancel()

    async def copy_baseline(con: asyncpg.Connection) -> float:
        rows = await con.fetch(
            "SELECT market_id, wallet, side, outcome, shares, amount, price_yes, block_time, "
            "slot, signature, instruction_index, event_index FROM trades"
        )
        await con.execute(
            "CREATE TEMP TABLE copy_trades (LIKE trades INCLUDING DEFAULTS "
            "INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING INDEXES)"
        )
        cols = [
            "market_id",
            "wallet",
            "side",
            "outcome",
            "shares",
            "amount",
            "price_yes",
            "block_time",
            "slot",
            "signature",
            "instruction_index",
            "event_index",
        ]
        start = time.perf_counter()
        await con.copy_records_to_table(
            "copy_trades", records=[tuple(r) for r in rows], columns=cols
        )
        return time.perf_counter() - start

    copy_s = await db.run("test", copy_baseline)
    return {
        "transactions": p.total,
        "events": p.events,
        "make_s": made,
        "seconds": elapsed,
        "warm_s": warm_s,
        "node_misses": transport.misses,
        "events_per_s": p.events / elapsed,
        "copy_s": copy_s,
        "copy_rows_per_s": p.applied / copy_s,
    }


async def wipe(db: Database) -> None:
    """Empty the tables the indexer writes (TRUNCATE: no dead rows or index
    bloat left for the next run to wade through)."""

    async def _wipe(con: asyncpg.Connection) -> None:
        await con.execute(
            "TRUNCATE trade_fees, price_points, trades, chain_events, positions, proposal_votes, "
            "markets, processed_transactions, chain_cursors, global_config, failed_transactions "
            "CASCADE"
        )

    await db.run("test", _wipe)
    # as a fresh database: planner statistics of empty tables, not of the
    # previous run's 100k rows
    await refresh_statistics(db)


async def main(args: argparse.Namespace) -> None:
    name = f"zmartd_bench_{secrets.token_hex(4)}"
    await trio_asyncio.aio_as_trio(_admin)(f'CREATE DATABASE "{name}"')
    try:
        db = await Database.connect(_dsn(name), min_size=2, max_size=8, statement_timeout=300)
        try:
            await migrate(db)
            lat = await bench_latency(db, args.trades)
            print(
                f"live latency, {lat['trades']} trades: confirmed -> bus event "
                f"p50 {lat['bus_p50']:.1f} ms p99 {lat['bus_p99']:.1f} ms; "
                f"confirmed -> REST p50 {lat['rest_p50']:.1f} ms p99 {lat['rest_p99']:.1f} ms"
            )
            await wipe(db)
            bf = await bench_backfill(db, args.backfill, args.profile)
            print(
                f"backfill: {bf['transactions']:.0f} transactions ({bf['events']:.0f} events) "
                f"in {bf['seconds']:.1f} s = {bf['events_per_s']:.0f} events/s "
                f"(chain built in {bf['make_s']:.1f} s; warm-up run with the node answering "
                f"{bf['warm_s']:.1f} s; node calls in the timed run: {bf['node_misses']}); "
                f"plain COPY of the same "
                f"{bf['transactions'] - 1:.0f} trade rows: {bf['copy_s']:.2f} s = "
                f"{bf['copy_rows_per_s']:.0f} rows/s; ratio "
                f"{bf['events_per_s'] / bf['copy_rows_per_s']:.3f}"
            )
        finally:
            with trio.CancelScope(shield=True):
                await db.close()
    finally:
        with trio.CancelScope(shield=True):
            await trio_asyncio.aio_as_trio(_admin)(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trades", type=int, default=300, help="live trades (latency)")
    parser.add_argument("--backfill", type=int, default=100_000, help="backfill transactions")
    parser.add_argument(
        "--profile", metavar="FILE", help="write a cProfile of the backfill (slows it down) to FILE"
    )
    ns = parser.parse_args()
    tune_gc()  # as every zmartd entry point does

    async def _entry() -> None:
        # SIGTERM (and Ctrl-C) cancel the run; the database is dropped anyway
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        print("SIGTERM: stopping, dropping the benchmark database")
                        nursery.cancel_scope.cancel()

                nursery.start_soon(stop_on_signal)
                await main(ns)
                nursery.cancel_scope.cancel()

    trio.run(_entry)
