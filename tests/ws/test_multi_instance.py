"""Two hubs sharing the machine's Redis, and the ws actor inside a daemon."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import coredis
import trio
from trio_websocket import ConnectionClosed, open_websocket_url, serve_websocket

from tests.ws.test_hub import MARKET, recv, send, state_event, trade_event
from zmartd.app import Daemon
from zmartd.config import load_config
from zmartd.model.services import DATABASE, WS_URL
from zmartd.tree import ActorDecl
from zmartd.ws import actor as ws_actor
from zmartd.ws.fanout import RedisSequencer, RedisTransport
from zmartd.ws.hub import Hub, HubLimits
from zmartd.ws.replay import ReplayBuffers


async def test_event_produced_on_a_reaches_clients_on_b_in_order(
    redis_url: str, redis_prefix: str
) -> None:
    async with coredis.Redis.from_url(redis_url) as redis, trio.open_nursery() as n:
        hubs = []
        urls = []
        for _ in range(2):
            hub = Hub(
                HubLimits(),
                ReplayBuffers(100, 300, trio.current_time),
                sequencer=RedisSequencer(redis, redis_prefix),
            )
            transport = RedisTransport(redis, redis_prefix, hub.deliver)
            hub.transport = transport
            hub.attach(n)
            await n.start(transport.run)
            server = await n.start(
                partial(serve_websocket, hub.handle, "127.0.0.1", 0, None, handler_nursery=n)
            )
            hubs.append(hub)
            urls.append(f"ws://127.0.0.1:{server.port}")
        a, b = hubs
        async with open_websocket_url(urls[0]) as on_a, open_websocket_url(urls[1]) as on_b:
            for ws in (on_a, on_b):
                await recv(ws)
                await send(ws, action="subscribe", channel=f"market:{MARKET}")
                await recv(ws)
            for i in range(20):
                await a.publish(trade_event(i))  # trade + price per event
            await b.publish(state_event())
            seen_b = [await recv(on_b) for _ in range(41)]
            seen_a = [await recv(on_a) for _ in range(41)]
        assert [m["seq"] for m in seen_b] == list(range(1, 42))
        assert [(m["seq"], m["type"]) for m in seen_a] == [(m["seq"], m["type"]) for m in seen_b]
        assert [m["data"]["id"] for m in seen_b if m["type"] == "trade"] == [
            f"t{i}" for i in range(20)
        ]
        assert seen_b[-1]["type"] == "market_state"
        # A client may resume on the other instance with the same numbers.
        async with open_websocket_url(urls[1]) as again:
            await recv(again)
            await send(again, action="subscribe", channel=f"market:{MARKET}", since=38)
            assert (await recv(again))["seq"] == 41
            assert [(await recv(again))["seq"] for _ in range(3)] == [39, 40, 41]
        n.cancel_scope.cancel()


async def test_ws_actor_in_daemon_delivers_bus_events_and_closes_1001(tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text(
        f'[daemon]\ndata_dir = "{tmp_path}"\n[ws]\nport = 0\n[log]\nlevel = "warning"\n'
    )
    tree = (ActorDecl("ws", ws_actor.run, sections=("ws", "redis"), description="hub"),)
    daemon = Daemon(load_config(config), None, tree)
    async with trio.open_nursery() as n:
        n.start_soon(daemon.run)
        url: str = await daemon.services.get(WS_URL)
        async with open_websocket_url(url) as ws:
            await recv(ws)
            await send(ws, action="subscribe", channel="markets")
            await recv(ws)
            await daemon.bus.publish("events", state_event())
            msg: dict[str, Any] = await recv(ws)
            assert (msg["type"], msg["seq"], msg["channel"]) == ("market_state", 1, "markets")
            n.start_soon(daemon.shutdown)
            try:
                with trio.fail_after(5):
                    json.loads(await ws.get_message())
                raise AssertionError("expected the server to close")
            except ConnectionClosed as closed:
                assert closed.reason is not None and closed.reason.code == 1001


async def test_user_channel_accepts_a_real_siws_session(tmp_path: Path, pg_dsn: str) -> None:
    """The ws actor checks session tokens against storage, like the REST API."""
    from datetime import timedelta

    from zmartd.storage import auth as auth_storage
    from zmartd.tree import TREE

    wallet = "7h3gXfBfYFueFVLYyfL5Qo1QGsf4GQUfW96FKVgnUsJS"
    config = tmp_path / "z.toml"
    config.write_text(
        f'[daemon]\ndata_dir = "{tmp_path}"\n[database]\ndsn = "{pg_dsn}"\n'
        '[ws]\nport = 0\n[log]\nlevel = "warning"\n'
    )
    tree = tuple(d for d in TREE if d.name in ("storage", "ws"))
    daemon = Daemon(load_config(config), None, tree)
    async with trio.open_nursery() as n:
        n.start_soon(daemon.run)
        db = await daemon.services.get(DATABASE)
        token, _ = await auth_storage.create_session(db, wallet=wallet, ttl=timedelta(hours=1))
        url: str = await daemon.services.get(WS_URL)
        async with open_websocket_url(url) as ws:
            await recv(ws)
            await send(ws, action="subscribe", channel=f"user:{wallet}", token="nope")
            assert (await recv(ws))["data"]["code"] == "unauthorized"
            await send(ws, action="subscribe", channel=f"user:{wallet}", token=token)
            assert (await recv(ws))["type"] == "subscribed"
            await auth_storage.revoke_session(db, token)
            await send(ws, action="subscribe", channel=f"user:{wallet}", token=token)
            assert (await recv(ws))["data"]["code"] == "unauthorized"
        await daemon.shutdown()
