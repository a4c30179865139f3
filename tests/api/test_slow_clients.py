"""Clients that hold connections: partial heads, stalled bodies, idle
keep-alive, and the connection-leak attack -- on zmartd's own server, with
raw sockets, hundreds of them, against the default connection cap (512)."""

from __future__ import annotations

from typing import Any

import trio

from tests.api import factories as fx
from tests.api.conftest import make_config
from tests.api.rawhttp import RawConnection, Served, head, serve_zmartd
from zmartd.config import Config
from zmartd.storage.database import Database

HEALTH = b"GET /health HTTP/1.1\r\nHost: zmart.test\r\n\r\n"
PARTIAL_HEAD = b"GET /health HTTP/1.1\r\nHost: zmart.te"


def _config(**http: float) -> Config:
    return make_config(http={"host": "127.0.0.1", "port": 0, **http}, ratelimit=fx.LIMITS)


async def _health(served: Served) -> int:
    conn = await RawConnection.open(served.port)
    try:
        await conn.send(HEALTH)
        return (await conn.answer()).status
    finally:
        await conn.aclose()


async def _until_no_connections(served: Served, timeout: float) -> float:
    """Seconds until the daemon reports no open connection (fails after ``timeout``)."""
    start = trio.current_time()
    with trio.fail_after(timeout):
        while served.connections():
            await trio.sleep(0.05)
    return trio.current_time() - start


async def test_600_partial_heads_are_cut_off_at_the_header_timeout() -> None:
    # keep-alive (5 s) longer than the head's deadline: the head deadline does it
    cfg = _config(header_timeout=1.5, keep_alive_timeout=5)
    assert cfg.http.max_connections == 512
    async with serve_zmartd(cfg, None) as served:
        conns = [await RawConnection.open(served.port) for _ in range(600)]
        for conn in conns:
            await conn.send(PARTIAL_HEAD)
        drip = await RawConnection.open(served.port)  # a byte every 0.4 s: still too slow

        async def trickle() -> None:
            try:
                for byte in HEALTH[:-4]:
                    await drip.send(bytes([byte]))
                    await trio.sleep(0.4)
            except trio.BrokenResourceError:
                pass  # cut off

        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle)
            closed = [False] * len(conns)

            async def watch(i: int) -> None:
                closed[i] = await conns[i].closed_by_server(4.0)

            for i in range(len(conns)):
                nursery.start_soon(watch, i)
            assert await drip.closed_by_server(4.0)
            assert trio.current_time() - started < 3.0
        # every one was closed by the server (the 88 past the cap with a 503)
        assert sum(closed) == len(conns)
        await _until_no_connections(served, 2.0)
        assert await _health(served) == 200  # fresh clients are served again
        for conn in [*conns, drip]:
            await conn.aclose()


async def test_a_stalled_body_is_cut_off_at_the_body_timeout(db: Database) -> None:
    async with serve_zmartd(_config(body_timeout=1.0), db) as served:
        conn = await RawConnection.open(served.port)
        await conn.send(head("POST", "/v1/auth/nonce", length=100) + b'{"wallet": ')
        started = trio.current_time()
        assert await conn.closed_by_server(3.0)
        assert 0.9 < trio.current_time() - started < 2.5
        await _until_no_connections(served, 1.0)
        # a body that keeps coming, slower than the deadline in total, is fine
        conn = await RawConnection.open(served.port)
        body = b'{"wallet": "11111111111111111111111111111111"}'
        await conn.send(head("POST", "/v1/auth/nonce", body))
        for i in range(0, len(body), 16):
            await conn.send(body[i : i + 16])
            await trio.sleep(0.4)
        assert (await conn.answer()).status == 201
        await conn.aclose()


async def test_a_head_in_progress_gets_the_header_timeout_not_the_keep_alive() -> None:
    async with serve_zmartd(_config(header_timeout=2.0, keep_alive_timeout=0.5), None) as served:
        conn = await RawConnection.open(served.port)
        await conn.send(HEALTH)
        assert (await conn.answer()).status == 200
        await conn.send(HEALTH[:10])  # the next head begins
        for byte in HEALTH[10:]:  # and takes 1.2 s: over keep-alive, under the head's
            await trio.sleep(1.2 / len(HEALTH))
            await conn.send(bytes([byte]))
        assert (await conn.answer()).status == 200
        await conn.aclose()


async def test_idle_keep_alive_connections_are_closed_and_stop_counting() -> None:
    async with serve_zmartd(_config(keep_alive_timeout=1.0), None) as served:
        conns = [await RawConnection.open(served.port) for _ in range(50)]
        for conn in conns:
            await conn.send(HEALTH)
        for conn in conns:
            assert (await conn.answer()).status == 200
        assert served.connections() == 50
        await trio.sleep(0.5)
        for conn in conns[:10]:  # still usable within the timeout
            await conn.send(HEALTH)
            assert (await conn.answer()).status == 200
        waited = await _until_no_connections(served, 3.0)
        assert waited > 0.3  # the ten just used got a fresh second
        for conn in conns:
            assert await conn.closed_by_server(0.1)
            await conn.aclose()


async def _limited(limit: trio.CapacityLimiter, fn: Any, *args: Any) -> None:
    async with limit:
        await fn(*args)


async def test_the_connection_leak_attack_leaks_nothing(db: Database) -> None:
    """The attack on the connection cap: 600 times, ``POST
    /v1/webhooks/helius`` head, 20 ms, body ``[]``, read the 401, ``GET
    /health`` on the same connection, close.  Each such connection used to
    stay open on the server (CLOSE-WAIT); after 512 of them every request --
    /health included -- got 503.  Run as reported, then with the body sent
    only once the 401 has arrived: the 20 ms made the answer come first only
    when the server was quick, this makes it come first every time."""
    cfg = _config(keep_alive_timeout=60)  # only the client's close ends them
    assert cfg.http.max_connections == 512
    probes: list[int] = []
    async with serve_zmartd(cfg, db) as served:

        async def attack(statuses: list[tuple[int, int]], answer_first: bool) -> None:
            conn = await RawConnection.open(served.port)
            try:
                await conn.send(head("POST", "/v1/webhooks/helius", b"[]"))
                if answer_first:
                    first = (await conn.answer()).status
                    await conn.send(b"[]")
                else:
                    await trio.sleep(0.02)
                    await conn.send(b"[]")
                    first = (await conn.answer()).status
                await conn.send(HEALTH)
                statuses.append((first, (await conn.answer()).status))
            finally:
                await conn.aclose()

        async def probe(done: trio.Event) -> None:
            while not done.is_set():
                probes.append(await _health(served))
                await trio.sleep(0.05)

        for answer_first in (False, True):
            statuses: list[tuple[int, int]] = []
            done = trio.Event()
            async with trio.open_nursery() as outer:
                outer.start_soon(probe, done)
                limit = trio.CapacityLimiter(20)
                async with trio.open_nursery() as nursery:
                    for _ in range(600):
                        nursery.start_soon(_limited, limit, attack, statuses, answer_first)
                done.set()
            assert statuses == [(401, 200)] * 600
            await _until_no_connections(served, 2.0)  # back to the baseline: none
        assert probes and set(probes) == {200}
        assert await _health(served) == 200
        shed = served.ctx.metrics.registry.get_sample_value("zmartd_http_shed_total")
        assert shed == 0


async def test_idle_keep_alive_connections_do_not_hold_a_graceful_stop() -> None:
    """After an answer the connection is idle and hypercorn closes it as soon
    as a stop begins; it used to look busy forever, so every stop waited the
    whole ``graceful_timeout`` for it."""
    cfg = _config(graceful_timeout=5.0, keep_alive_timeout=60)
    stopped = trio.Event()
    async with serve_zmartd(cfg, None, graceful_timeout=5.0, stopped=stopped) as served:
        conn = await RawConnection.open(served.port)
        await conn.send(HEALTH)
        assert (await conn.answer()).status == 200
        started = trio.current_time()
    assert stopped.is_set() and trio.current_time() - started < 1.0
    assert await conn.closed_by_server(0.1)
    await conn.aclose()
