"""WebSocket hub fan-out: N concurrent subscribers, events broadcast at a fixed rate.

Measures, for zmartd's hub (``zmartd.ws.hub.Hub``: per-channel seq, replay
buffer, bounded per-connection queues) and for a **bare trio-websocket
broadcast server** measured in the same run on the same machine (the
baseline: one task per connection writing the same frame, nothing else):

* deliveries/s (frames received by all clients per second),
* event → client latency p50/p99 (the publisher stamps ``time.time()`` into
  each event; client and server share the machine's clock),
* server RSS per 1,000 connections.

The server runs in its own process (one core); the clients run in this
process.  With 10,000 clients on a 2-core machine the *client* side is
expensive, so the event rate is kept modest; both servers face the same
clients, which is what makes the ratio meaningful.

Run (about a minute; raises the open-files limit itself)::

    .venv/bin/python bench/ws.py                 # --clients 10000 --rate 2 --seconds 15
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from functools import partial
from typing import Any

import trio
import trio_websocket
from trio_websocket import ConnectionClosed, connect_websocket_url, serve_websocket


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, 200_000) if hard != resource.RLIM_INFINITY else 200_000
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --------------------------------------------------------------------------- servers


async def wait_for_go() -> None:
    """Publishing starts when the driver writes a line to stdin, i.e. once every
    client is connected: the benchmark measures steady-state fan-out, not a
    connection storm (trio-websocket handshakes stall behind a busy fan-out)."""
    await trio.to_thread.run_sync(sys.stdin.readline)


async def serve_bare(rate: float, payload: int) -> None:
    """Baseline: broadcast one frame to every connection, nothing more."""
    queues: set[trio.MemorySendChannel[str]] = set()

    async def handler(request: Any) -> None:
        ws = await request.accept()
        send, recv = trio.open_memory_channel[str](256)
        queues.add(send)
        try:
            async with trio.open_nursery() as n:

                async def pump() -> None:
                    async for frame in recv:
                        await ws.send_message(frame)

                n.start_soon(pump)
                try:
                    while True:
                        await ws.get_message()
                except ConnectionClosed:
                    n.cancel_scope.cancel()
        finally:
            queues.discard(send)

    async def publisher() -> None:
        await wait_for_go()
        n = 0
        while True:
            await trio.sleep(1 / rate)
            n += 1
            frame = json.dumps(
                {
                    "type": "market_state",
                    "seq": n,
                    "ts": time.time(),
                    "data": {"blob": "x" * payload},
                }
            )
            for q in tuple(queues):
                with contextlib.suppress(trio.WouldBlock):
                    q.send_nowait(frame)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(serve_websocket, handler, "127.0.0.1", 0, None, handler_nursery=nursery)
        )
        print(server.port, flush=True)
        nursery.start_soon(publisher)


async def serve_hub(rate: float, payload: int) -> None:
    from zmartd.bus import MarketStateChanged
    from zmartd.ws.hub import Hub, HubLimits
    from zmartd.ws.replay import ReplayBuffers

    hub = Hub(
        HubLimits(max_connections_per_ip=1_000_000, send_queue=256),
        ReplayBuffers(1000, 300, trio.current_time),
    )

    async def publisher() -> None:
        await wait_for_go()
        market = "ab" * 32
        while True:
            await trio.sleep(1 / rate)
            await hub.publish(
                MarketStateChanged(
                    market_id=market,
                    at="2026-01-01T00:00:00Z",
                    data={"ts": time.time(), "blob": "x" * payload},
                )
            )

    async with trio.open_nursery() as nursery:
        hub.attach(nursery)
        server = await nursery.start(
            partial(serve_websocket, hub.handle, "127.0.0.1", 0, None, handler_nursery=nursery)
        )
        print(server.port, flush=True)
        nursery.start_soon(publisher)


# --------------------------------------------------------------------------- clients


async def run_clients(
    url: str, kind: str, clients: int, seconds: float, server: subprocess.Popen[str]
) -> dict[str, Any]:
    import psutil

    server_proc = psutil.Process(server.pid)
    rss_before = server_proc.memory_info().rss
    latencies: list[float] = []
    counts = {"frames": 0}
    connected = 0
    measuring = trio.Event()
    done = trio.Event()
    limiter = trio.CapacityLimiter(200)

    failures = {"connect": 0}

    async def connect(nursery: trio.Nursery) -> Any:
        # A connection attempt can stall when the listen backlog overflows under
        # a burst of handshakes; retry instead of waiting for TCP's long timeouts.
        for _ in range(5):
            with trio.move_on_after(10):
                try:
                    ws = await connect_websocket_url(nursery, url, message_queue_size=64)
                except (OSError, ConnectionClosed, trio_websocket.HandshakeError):
                    failures["connect"] += 1
                    await trio.sleep(0.5)
                    continue
                if kind == "hub":
                    await ws.get_message()  # welcome
                    await ws.send_message(
                        '{"action":"subscribe","channel":"market:' + "ab" * 32 + '"}'
                    )
                return ws
            failures["connect"] += 1
        raise RuntimeError("could not connect after 5 attempts")

    async def client(i: int, nursery: trio.Nursery) -> None:
        nonlocal connected
        async with limiter:
            ws = await connect(nursery)
        connected += 1
        try:
            while not done.is_set():
                raw = await ws.get_message()
                if not measuring.is_set():
                    continue
                msg = json.loads(raw)
                ts = msg.get("ts") or msg.get("data", {}).get("ts")
                if ts is None:
                    continue
                counts["frames"] += 1
                if i % 10 == 0:  # sample latencies from a tenth of the clients
                    latencies.append(time.time() - ts)
        except ConnectionClosed:
            pass

    async with trio.open_nursery() as nursery:
        for i in range(clients):
            nursery.start_soon(client, i, nursery)
        t0 = time.monotonic()
        while connected < clients:
            await trio.sleep(0.2)
            if int(time.monotonic() - t0) % 15 == 0:
                print(
                    f"  {kind}: {connected}/{clients} connected, {failures['connect']} retried",
                    file=sys.stderr,
                    flush=True,
                )
            if time.monotonic() - t0 > 180:
                raise RuntimeError(f"only {connected}/{clients} clients connected")
        connect_seconds = time.monotonic() - t0
        rss_after = server_proc.memory_info().rss
        assert server.stdin is not None
        server.stdin.write("go\n")
        server.stdin.flush()
        await trio.sleep(2)
        measuring.set()
        start = time.monotonic()
        await trio.sleep(seconds)
        elapsed = time.monotonic() - start
        frames = counts["frames"]
        done.set()
        nursery.cancel_scope.cancel()
    latencies.sort()
    return {
        "kind": kind,
        "clients": clients,
        "connect_s": round(connect_seconds, 1),
        "connect_retries": failures["connect"],
        "deliveries_per_s": frames / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
        "rss_mib_per_1000": (rss_after - rss_before) / clients * 1000 / 2**20,
    }


def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "serve",
            kind,
            "--rate",
            str(args.rate),
            "--payload",
            str(args.payload),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        return trio.run(
            run_clients, f"ws://127.0.0.1:{port}", kind, args.clients, args.seconds, proc
        )
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "serve"])
    parser.add_argument("kind", nargs="?", default="hub", choices=["hub", "bare"])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=2.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--payload", type=int, default=200, help="bytes of filler per event")
    args = parser.parse_args()
    raise_nofile()
    if args.mode == "serve":
        trio.run(serve_hub if args.kind == "hub" else serve_bare, args.rate, args.payload)
        return
    print(
        f"{args.clients} clients, {args.rate:g} events/s, {args.seconds:g} s measured, "
        f"cores={os.cpu_count()}"
    )
    results = [measure("bare", args), measure("hub", args)]
    for r in results:
        print(
            f"{r['kind']:>5}: {r['deliveries_per_s']:9.0f} deliveries/s  "
            f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
            f"RSS {r['rss_mib_per_1000']:5.1f} MiB/1000 conns  (connect {r['connect_s']} s)"
        )
    bare, hub = results
    print(
        f"ratio hub/bare deliveries/s: {hub['deliveries_per_s'] / bare['deliveries_per_s']:.2f}"
        f"   (goal >= 0.5; hub p99 goal < 1000 ms)"
    )


if __name__ == "__main__":
    main()
