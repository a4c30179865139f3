"""``POST /v1/tx/buy`` under load, beside ``GET /v1/markets/{id}``, on the chain double.

Run from the repository root (needs the PostgreSQL of ``ZMARTD_TEST_PG``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``; a scratch database
is created and dropped)::

    .venv/bin/python bench/tx_buy.py                  # 10 s per measurement
    .venv/bin/python bench/tx_buy.py --seconds 3      # quicker
    BENCH_PROFILE=30 .venv/bin/python bench/tx_buy.py --clients 10   # + cProfile top 30

Three kinds of processes: the chain double (``zmartd devchain``, a slot every
50 ms) with a GlobalConfig and one ACTIVE market, indexed into the scratch
database; the REST API on hypercorn (``zmartd.api.server.serve``, rate limits
off) in this process; and the closed-loop httpx clients in a child process
(this script with ``--client``), so that neither the chain's simulations nor
the clients take the server's event loop.
For 10 and 100 concurrent clients it measures, in the same run, ``GET
/v1/markets/{id}`` and ``POST /v1/tx/buy`` (a few funded wallets, random
outcome and amount): req/s and p50/p99 latency.  For the buys it also splits
the server's time: the RPC round trips (simulation, blockhash, fees and block
height, run concurrently), the simulation call alone, and **the build itself**
= the handler's wall time minus its RPC round trips (the indexed reads, the
exact quote, PDAs, the message).  Last, the build's CPU part alone (quote +
instruction + v0 message + serialization, no I/O), serially.

The three share the machine's cores, so the server-side split under 100
clients includes waiting for the event loop (one request's build waits for the
others'); the serial CPU figure is the build's own cost.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
import trio
import trio_asyncio
from hypercorn.config import Config as HypercornConfig
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from tests.api.conftest import make_config, make_ctx
from zmartd.api.handlers import tx as tx_handlers
from zmartd.api.server import create_app, serve
from zmartd.chain import instructions as ix
from zmartd.chain.pda import PROGRAM_ID
from zmartd.chain.quoter import DEFAULT_FEES, MarketMath, quote_buy
from zmartd.chain.rpc import RpcClient
from zmartd.indexer.pipeline import Indexer
from zmartd.indexer.source import ChainSource
from zmartd.model.services import DATABASE, LOCAL_CHAIN
from zmartd.storage.database import Database
from zmartd.storage.migrate import migrate

SOL = 1_000_000_000
ADMIN_DSN = os.environ.get("ZMARTD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Timings:
    """Server-side wall times of the patched handler pieces, per request."""

    def __init__(self) -> None:
        self.handler: list[float] = []
        self.rpc: list[float] = []
        self.simulate: list[float] = []

    def clear(self) -> None:
        self.handler.clear()
        self.rpc.clear()
        self.simulate.clear()


def instrument(t: Timings) -> None:
    """Wrap the buy handler, its concurrent RPC round trips and the simulation."""

    def timed(fn: Callable[..., Awaitable[Any]], into: list[float]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return await fn(*args, **kw)
            finally:
                into.append(time.perf_counter() - start)

        return wrapper

    tx_handlers.buy = timed(tx_handlers.buy, t.handler)
    tx_handlers._gather = timed(tx_handlers._gather, t.rpc)
    # ``simulate`` is imported into the handler module; patch that binding.
    vars(tx_handlers)["simulate"] = timed(vars(tx_handlers)["simulate"], t.simulate)


async def closed_loop(
    url: str,
    clients: int,
    seconds: float,
    request: Callable[[httpx.AsyncClient, random.Random], Awaitable[int]],
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = trio.current_time() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        async def worker(seed: int) -> None:
            nonlocal errors
            rng = random.Random(seed)
            while trio.current_time() < deadline:
                start = time.perf_counter()
                status = await request(http, rng)
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    errors += 1

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i in range(clients):
                nursery.start_soon(worker, i)
        elapsed = time.perf_counter() - started
    return {
        "req/s": len(latencies) / elapsed,
        "p50 ms": _pct(latencies, 0.5) * 1e3,
        "p99 ms": _pct(latencies, 0.99) * 1e3,
        "errors": errors,
        "n": len(latencies),
    }


def cpu_build(market_id: bytes, payers: list[Keypair], fee_wallet: Any, n: int) -> float:
    """p99 ms of the build's CPU part alone: quote, instruction, message, bytes."""
    math = MarketMath(
        b_parameter=100 * SOL, shares_yes=10**11, shares_no=10**11, current_liquidity=SOL // 10
    )
    times = []
    rng = random.Random(1)
    for _ in range(n):
        start = time.perf_counter()
        amount = rng.randrange(10**7, 10**10)
        payer = payers[rng.randrange(len(payers))].pubkey()
        quote_buy(math, DEFAULT_FEES, True, amount)
        instruction = ix.buy_shares(
            user=payer,
            market_id=market_id,
            outcome=True,
            target_cost=amount,
            protocol_fee_wallet=fee_wallet,
        )
        message = MessageV0.try_compile(
            payer,
            [set_compute_unit_limit(80_000), set_compute_unit_price(10), instruction],
            [],
            Hash.default(),
        )
        base64.b64encode(bytes(VersionedTransaction.populate(message, [Signature.default()])))
        times.append(time.perf_counter() - start)
    return _pct(times, 0.99) * 1e3


async def run(args: argparse.Namespace) -> None:
    name = f"zmartd_bench_tx_{os.getpid()}"
    admin = await trio_asyncio.aio_as_trio(asyncpg.connect)(ADMIN_DSN)
    await trio_asyncio.aio_as_trio(admin.execute)(f'CREATE DATABASE "{name}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        db = await Database.connect(dsn, min_size=2, max_size=10, statement_timeout=30)
        try:
            await migrate(db)
            await measure(db, args)
        finally:
            await db.close()
    finally:
        await trio_asyncio.aio_as_trio(admin.execute)(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )
        await trio_asyncio.aio_as_trio(admin.close)()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _confirmed(rpc: RpcClient, signature: str) -> None:
    with trio.fail_after(20):
        while True:
            (status,) = await rpc.get_signature_statuses([signature])
            if (
                status is not None
                and status.err is None
                and str(status.confirmation_status).endswith(("Confirmed", "Finalized"))
            ):
                return
            assert status is None or status.err is None, status
            await trio.sleep(0.05)


async def _run_clients(
    url: str, kind: str, clients: int, seconds: float, market: str, payers: list[str]
) -> dict[str, float]:
    spec = json.dumps(
        {
            "url": url,
            "kind": kind,
            "clients": clients,
            "seconds": seconds,
            "market": market,
            "payers": payers,
        }
    )
    done = await trio.run_process([sys.executable, __file__, "--client", spec], capture_stdout=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


async def measure(db: Database, args: argparse.Namespace) -> None:
    port, ws_port = _free_port(), _free_port()
    rpc_url = f"http://127.0.0.1:{port}"
    chain_proc = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "zmartd",
            "devchain",
            "--seed",
            "none",
            "--port",
            str(port),
            "--ws-port",
            str(ws_port),
            "--slot-interval",
            "0.05",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with RpcClient(
            [rpc_url], commitment="confirmed", max_retries=40, backoff_initial=0.1, backoff_max=0.2
        ) as rpc:
            await rpc.get_slot()
            await _measure(db, args, rpc, rpc_url, ws_port)
    finally:
        chain_proc.terminate()
        with trio.move_on_after(10):
            await chain_proc.wait()


class _Chain:
    def __init__(self, rpc_url: str, ws_port: int) -> None:
        self.rpc_url = rpc_url
        self.ws_url = f"ws://127.0.0.1:{ws_port}"


async def _measure(
    db: Database, args: argparse.Namespace, rpc: RpcClient, rpc_url: str, ws_port: int
) -> None:
    pid = PROGRAM_ID
    sigs: list[str] = []

    async def fund(lamports: int) -> Keypair:
        kp = Keypair()
        await rpc.request("requestAirdrop", [str(kp.pubkey()), lamports])
        return kp

    async def send(payer: Keypair, instruction: Any) -> None:
        latest = await rpc.get_latest_blockhash()
        message = MessageV0.try_compile(payer.pubkey(), [instruction], [], latest.blockhash)
        signature = await rpc.send_transaction(VersionedTransaction(message, [payer]))
        await _confirmed(rpc, str(signature))
        sigs.append(str(signature))

    admin, treasury, creator, voter = [await fund(n * SOL) for n in (1000, 1, 1, 1)]
    market_id = (16).to_bytes(32, "big")
    await send(
        admin,
        ix.initialize_global_config(
            admin=admin.pubkey(),
            backend_authority=admin.pubkey(),
            protocol_fee_wallet=treasury.pubkey(),
            program_id=pid,
        ),
    )
    await send(
        creator,
        ix.create_market(
            creator=creator.pubkey(),
            market_id=market_id,
            b_parameter=100 * SOL,
            initial_liquidity=SOL // 10,
            ipfs_question_hash=b"Q" * 46,
            program_id=pid,
        ),
    )
    await send(
        voter,
        ix.submit_proposal_vote(
            user=voter.pubkey(), market_id=market_id, vote=True, program_id=pid
        ),
    )
    await send(
        admin,
        ix.aggregate_proposal_votes(
            backend_authority=admin.pubkey(),
            market_id=market_id,
            final_likes=1,
            final_dislikes=0,
            program_id=pid,
        ),
    )
    await send(
        admin, ix.approve_proposal(admin=admin.pubkey(), market_id=market_id, program_id=pid)
    )
    await send(
        creator, ix.activate_market(authority=creator.pubkey(), market_id=market_id, program_id=pid)
    )
    payers = [await fund(10_000 * SOL) for _ in range(20)]
    indexer = Indexer(db, ChainSource(rpc, pid), None, None, publish=False)
    for s in sigs:
        await indexer.ingest_signature(s)

    cfg = make_config(ratelimit={"enabled": False})
    ctx = make_ctx(cfg)
    ctx.services.provide(DATABASE, db)
    ctx.services.provide(LOCAL_CHAIN, _Chain(rpc_url, ws_port))
    app = create_app(ctx)
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = None
    hc.graceful_timeout = 0.2
    stop = trio.Event()
    timings = Timings()
    instrument(timings)
    wallets = [str(p.pubkey()) for p in payers]
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(partial(serve, app, hc, shutdown_trigger=stop.wait))
        url = urls[0]
        await _run_clients(url, "buy", 4, 1.0, market_id.hex(), wallets)  # warm-up
        print(f"load average {os.getloadavg()[0]:.2f}; {args.seconds:g} s per measurement")
        for clients in (int(n) for n in args.clients.split(",")):
            got = await _run_clients(url, "market", clients, args.seconds, market_id.hex(), wallets)
            print(
                f"{clients:>4} clients  GET /v1/markets/{{id}}  {got['req/s']:8.0f} req/s  "
                f"p50 {got['p50 ms']:7.1f} ms  p99 {got['p99 ms']:7.1f} ms  "
                f"errors {got['errors']}"
            )
            timings.clear()
            got = await _run_clients(url, "buy", clients, args.seconds, market_id.hex(), wallets)
            total = sum(timings.handler) or float("nan")
            build = [h - r for h, r in zip(timings.handler, timings.rpc, strict=False)]
            print(
                f"{clients:>4} clients  POST /v1/tx/buy        {got['req/s']:8.0f} req/s  "
                f"p50 {got['p50 ms']:7.1f} ms  p99 {got['p99 ms']:7.1f} ms  "
                f"errors {got['errors']}"
            )
            print(
                f"{'':>14}server: simulation {sum(timings.simulate) / total:5.1%} of the "
                f"handler's time, all RPC {sum(timings.rpc) / total:5.1%}; build itself "
                f"(handler - RPC) p50 {_pct(build, 0.5) * 1e3:.2f} ms, "
                f"p99 {_pct(build, 0.99) * 1e3:.2f} ms"
            )
        print(
            f"build CPU alone (quote + instruction + message), serially: "
            f"p99 {cpu_build(market_id, payers, treasury.pubkey(), 2000):.3f} ms"
        )
        stop.set()


def client_main(spec: dict[str, Any]) -> None:
    """``--client``: one closed loop, its result as JSON on stdout."""
    market, payers = spec["market"], spec["payers"]

    async def get_market(http: httpx.AsyncClient, rng: random.Random) -> int:
        return (await http.get(f"/v1/markets/{market}")).status_code

    async def post_buy(http: httpx.AsyncClient, rng: random.Random) -> int:
        body = {
            "market_id": market,
            "wallet": rng.choice(payers),
            "outcome": rng.choice(("YES", "NO")),
            "amount_lamports": rng.randrange(10**7, 10**10),
            "slippage_bps": 100,
        }
        return (await http.post("/v1/tx/buy", json=body)).status_code

    request = post_buy if spec["kind"] == "buy" else get_market
    result = trio.run(closed_loop, spec["url"], spec["clients"], spec["seconds"], request)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--clients", default="10,100", help="comma-separated concurrency levels (default 10,100)"
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(json.loads(args.client))
        return

    async def _main() -> None:
        async with trio_asyncio.open_loop():
            await run(args)

    if not os.environ.get("BENCH_PROFILE"):
        trio.run(_main)
        return
    import cProfile  # lazy: only when profiling
    import pstats  # lazy: only when profiling

    profile = cProfile.Profile()
    profile.runcall(trio.run, _main)
    pstats.Stats(profile).sort_stats("tottime").print_stats(int(os.environ["BENCH_PROFILE"]))


if __name__ == "__main__":
    main()
