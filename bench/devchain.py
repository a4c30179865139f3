"""Devchain throughput and latency, against a bare JSON-RPC echo server
measured in the same run.

Run from the repository root::

    .venv/bin/python bench/devchain.py                  # ~30 s
    .venv/bin/python bench/devchain.py --txs 2000 --markets 2000   # quicker

What is measured (servers in their own processes, the client here):

1. **Echo baseline**: requests/s of a minimal JSON-RPC server on the very
   same stack (hypercorn + the devchain's ASGI app shape + msgspec), which
   parses the request and answers a constant.  It is the ceiling the HTTP
   stack and this client allow on this machine.
2. **sendTransaction -> confirmed**: N pre-signed System transfers sent with
   preflight (each is simulated, then executed: two bank runs), from C
   concurrent connections, one request per transaction and then in JSON-RPC
   batches; throughput counts from the first send until the last signature
   is *confirmed* (polled with getSignatureStatuses).  ``ratio`` = tx/s
   divided by echo req/s for the same request shape.
3. **getProgramAccounts** with 10,000 market accounts (488 bytes each, plus
   positions that the filters must skip): latency of the full list
   (dataSize + discriminator memcmp, base64) and of a state-filtered subset.

Why this baseline: a sendTransaction costs at least one HTTP round trip of
the same size, so "what fraction of the bare stack's rate survives the
node's work" is the machine-independent number; absolute tx/s move with
whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

ROOT = Path(__file__).resolve().parent.parent
SOL = 1_000_000_000


# --------------------------------------------------------------------------- echo server


def echo_app() -> Any:
    """The devchain's ASGI shape with no node behind it."""
    from zmartd.devchain.rpc_server import asgi_app

    class Echo:
        def handle(self, body: bytes) -> bytes:
            doc = msgspec.json.decode(body)
            if isinstance(doc, list):
                return msgspec.json.encode(
                    [{"jsonrpc": "2.0", "result": "ok", "id": d.get("id")} for d in doc]
                )
            return msgspec.json.encode({"jsonrpc": "2.0", "result": "ok", "id": doc.get("id")})

    return asgi_app(Echo())  # type: ignore[arg-type]


async def serve_echo(port: int) -> None:
    from zmartd.devchain.rpc_server import serve_http

    never = trio.Event()
    await serve_http(echo_app(), "127.0.0.1", port, shutdown_trigger=never.wait)


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def spawn(args: Sequence[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_up(url: str, timeout: float = 20) -> None:
    async with httpx.AsyncClient() as http:
        with trio.fail_after(timeout):
            while True:
                try:
                    await http.post(url, json={"jsonrpc": "2.0", "id": 0, "method": "getHealth"})
                    return
                except httpx.TransportError:
                    await trio.sleep(0.05)


async def rpc(http: httpx.AsyncClient, url: str, method: str, params: list[Any]) -> Any:
    r = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    doc = r.json()
    if "error" in doc:
        raise RuntimeError(f"{method}: {doc['error']}")
    return doc["result"]


async def _connection(port: int, bodies: Any, errors: list[bytes]) -> None:
    """One keep-alive HTTP/1.1 connection sending requests back to back.  A
    hand-rolled client: httpx's per-request overhead on this machine is
    larger than the servers' and would flatten the comparison."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    buf = b""
    try:
        for body in bodies:
            head = (
                b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            await stream.send_all(head + body)
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    headers = buf[:end].lower()
                    at = headers.find(b"content-length:")
                    size = int(headers[at + 15 :].split(b"\r\n")[0])
                    if len(buf) >= end + 4 + size:
                        response = buf[end + 4 : end + 4 + size]
                        buf = buf[end + 4 + size :]
                        break
                data = await stream.receive_some(1 << 16)
                if not data:
                    raise RuntimeError("server closed the connection")
                buf += data
            if b'"error"' in response:
                errors.append(response)
    finally:
        await stream.aclose()


async def blast(url: str, bodies: list[bytes], concurrency: int) -> float:
    """POST every body from ``concurrency`` connections; returns elapsed seconds."""
    port = int(url.rsplit(":", 1)[1])
    it = iter(bodies)
    errors: list[bytes] = []
    started = time.perf_counter()
    async with trio.open_nursery() as n:
        for _ in range(concurrency):
            n.start_soon(_connection, port, it, errors)
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} requests answered with an error: {errors[0][:300]!r}")
    return elapsed


def send_body(tx: VersionedTransaction, rid: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "sendTransaction",
        "params": [
            base64.b64encode(bytes(tx)).decode(),
            {"encoding": "base64", "preflightCommitment": "processed"},
        ],
    }


async def wait_confirmed(url: str, signatures: list[str], timeout: float = 120) -> float:
    """Poll until every signature is confirmed; returns the perf_counter time."""
    pending = list(signatures)
    async with httpx.AsyncClient(timeout=30) as http:
        with trio.fail_after(timeout):
            while pending:
                still: list[str] = []
                for i in range(0, len(pending), 256):
                    chunk = pending[i : i + 256]
                    res = await rpc(http, url, "getSignatureStatuses", [chunk])
                    for sig, st in zip(chunk, res["value"], strict=True):
                        if st is None or st["confirmationStatus"] == "processed":
                            still.append(sig)
                        elif st["err"] is not None:
                            raise RuntimeError(f"{sig} failed: {st['err']}")
                pending = still
                if pending:
                    await trio.sleep(0.01)
    return time.perf_counter()


# --------------------------------------------------------------------------- phases


async def bench_echo(url: str, n: int, concurrency: int, batch: int) -> dict[str, float]:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "sendTransaction",
            "params": ["A" * 400, {"encoding": "base64"}],
        }
    ).encode()
    batch_body = json.dumps([json.loads(body)] * batch).encode()
    single = await blast(url, [body] * n, concurrency)
    batched = await blast(url, [batch_body] * (n // batch), concurrency)
    return {"single": n / single, "batched": (n // batch) * batch / batched}


async def make_txs(url: str, n: int, payers: int) -> list[VersionedTransaction]:
    keys = [Keypair() for _ in range(payers)]
    async with httpx.AsyncClient(timeout=30) as http:
        for kp in keys:
            await rpc(http, url, "zmart_airdrop", [str(kp.pubkey()), 1000 * SOL])
        await rpc(http, url, "zmart_advanceSlots", [2])
        latest = await rpc(http, url, "getLatestBlockhash", [{"commitment": "processed"}])
    blockhash = Hash.from_string(latest["value"]["blockhash"])
    dest = Keypair().pubkey()
    txs = []
    for i in range(n):
        kp = keys[i % payers]
        ix = transfer(
            TransferParams(from_pubkey=kp.pubkey(), to_pubkey=dest, lamports=1_000_000 + i)
        )
        txs.append(
            VersionedTransaction(MessageV0.try_compile(kp.pubkey(), [ix], [], blockhash), [kp])
        )
    return txs


async def bench_send(url: str, n: int, concurrency: int, batch: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for mode in ("single", "batched"):
        txs = await make_txs(url, n, payers=concurrency)
        sigs = [str(tx.signatures[0]) for tx in txs]
        if mode == "single":
            bodies = [msgspec.json.encode(send_body(tx, i)) for i, tx in enumerate(txs)]
        else:
            bodies = [
                msgspec.json.encode(
                    [send_body(tx, i + j) for j, tx in enumerate(txs[i : i + batch])]
                )
                for i in range(0, n, batch)
            ]
        started = time.perf_counter()
        await blast(url, bodies, concurrency)
        sent = time.perf_counter()
        done = await wait_confirmed(url, sigs)
        out[mode] = n / (done - started)
        out[f"{mode}_send_only"] = n / (sent - started)
    return out


def market_bytes(rng_seed: int, state: int) -> bytes:
    from zmartd.chain.accounts import encode_account
    from zmartd.chain.types import MarketAccount, MarketState

    market_id = rng_seed.to_bytes(32, "little")
    zero = Pubkey.default()
    value = MarketAccount(
        market_id=market_id,
        creator=zero,
        state=MarketState(state),
        b_parameter=100 * SOL,
        initial_liquidity=SOL,
        current_liquidity=SOL,
        shares_yes=10**8,
        shares_no=10**8,
        total_volume=0,
        created_at=1,
        approved_at=0,
        activated_at=0,
        resolution_proposed_at=0,
        resolved_at=0,
        finalized_at=0,
        resolver=zero,
        proposed_outcome=None,
        final_outcome=None,
        ipfs_evidence_hash=bytes(46),
        dispute_initiated_at=0,
        dispute_initiator=zero,
        accumulated_protocol_fees=0,
        accumulated_resolver_fees=0,
        accumulated_lp_fees=0,
        proposal_likes=0,
        proposal_dislikes=0,
        proposal_total_votes=0,
        resolution_agree=0,
        resolution_disagree=0,
        resolution_total_votes=0,
        dispute_agree=0,
        dispute_disagree=0,
        dispute_total_votes=0,
        was_disputed=False,
        is_cancelled=False,
        cancelled_at=None,
        is_locked=False,
        reserved=bytes(119),
        bump=255,
    )
    return encode_account(value)


async def bench_gpa(url: str, markets: int, runs: int) -> dict[str, float]:
    from zmartd.chain.pda import PROGRAM_ID
    from zmartd.chain.rpc import b58encode

    program = str(PROGRAM_ID)
    async with httpx.AsyncClient(timeout=120) as http:
        calls = []
        for i in range(markets + markets // 2):
            is_market = i < markets
            data = market_bytes(i, i % 7) if is_market else bytes(182)
            calls.append(
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "zmart_setAccount",
                    "params": [
                        str(Keypair().pubkey()),
                        {
                            "lamports": 4_287_360,
                            "data": base64.b64encode(data).decode(),
                            "owner": program,
                        },
                    ],
                }
            )
        for i in range(0, len(calls), 500):
            r = await http.post(url, content=msgspec.json.encode(calls[i : i + 500]))
            assert all("result" in d for d in r.json())
        await rpc(http, url, "zmart_advanceSlots", [40])  # everything finalized
        disc = market_bytes(0, 0)[:8]
        base = [{"dataSize": 488}, {"memcmp": {"offset": 0, "bytes": b58encode(disc)}}]
        out: dict[str, float] = {}
        for name, filters in (
            ("all", base),
            ("state=Active", [*base, {"memcmp": {"offset": 72, "bytes": b58encode(b"\x02")}}]),
        ):
            times = []
            count = 0
            for _ in range(runs):
                started = time.perf_counter()
                r = await http.post(
                    url,
                    content=msgspec.json.encode(
                        {
                            "jsonrpc": "2.0",
                            "id": 1,
                            "method": "getProgramAccounts",
                            "params": [
                                program,
                                {
                                    "encoding": "base64",
                                    "commitment": "confirmed",
                                    "filters": filters,
                                },
                            ],
                        }
                    ),
                )
                count = len(r.json()["result"])
                times.append(time.perf_counter() - started)
            out[f"{name}_count"] = count
            out[f"{name}_median_ms"] = statistics.median(times) * 1000
            out[f"{name}_max_ms"] = max(times) * 1000
    return out


async def main(args: argparse.Namespace) -> None:
    echo_port, chain_port, ws_port = free_port(), free_port(), free_port()
    echo = spawn(["bench/devchain.py", "--echo-server", str(echo_port)])
    chain = spawn(
        [
            "-m",
            "zmartd.devchain.cli",
            "--port",
            str(chain_port),
            "--ws-port",
            str(ws_port),
            "--seed",
            "none",
            "--slot-interval",
            str(args.slot_interval),
        ]
    )
    try:
        echo_url, chain_url = f"http://127.0.0.1:{echo_port}", f"http://127.0.0.1:{chain_port}"
        await wait_up(echo_url)
        await wait_up(chain_url)
        print(
            f"devchain bench: {args.txs} txs, concurrency {args.concurrency}, batch "
            f"{args.batch}, slot interval {args.slot_interval}s, {args.markets} markets",
            flush=True,
        )
        e = await bench_echo(echo_url, args.txs, args.concurrency, args.batch)
        s = await bench_send(chain_url, args.txs, args.concurrency, args.batch)
        g = await bench_gpa(chain_url, args.markets, args.runs)
    finally:
        for proc in (echo, chain):
            proc.terminate()
            proc.wait(10)
    print(
        f"{'request shape':<34}{'echo req/s':>12}{'send->confirmed tx/s':>22}{'ratio':>8}"
        f"{'send-only tx/s':>16}"
    )
    for mode, label in (("single", "one tx per request"), ("batched", f"batches of {args.batch}")):
        print(
            f"{label:<34}{e[mode]:>12.0f}{s[mode]:>22.0f}{s[mode] / e[mode]:>8.2f}"
            f"{s[mode + '_send_only']:>16.0f}"
        )
    print(
        f"getProgramAccounts, {args.markets} markets (+{args.markets // 2} positions), "
        f"base64, {args.runs} runs:"
    )
    for name in ("all", "state=Active"):
        print(
            f"  {name:<14} {int(g[name + '_count']):>6} accounts  median "
            f"{g[name + '_median_ms']:.0f} ms  max {g[name + '_max_ms']:.0f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--echo-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--txs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--slot-interval", type=float, default=0.4)
    parser.add_argument("--markets", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    ns = parser.parse_args()
    if ns.echo_server:
        trio.run(serve_echo, ns.echo_server)
    else:
        trio.run(main, ns)
