"""The original frontend's WebSocket use, end to end: it dials the hub's URL with no
path, never subscribes, sends {"action":"pong"} every 30 s, and must receive
``trade`` events (with ``trader``...) for trades made on the chain double, as the
indexer sees them."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import trio
from prometheus_client import CollectorRegistry
from trio_websocket import open_websocket_url, serve_websocket

from tests.api.conftest import make_config, make_ctx
from zmartd.bus import DomainEvent
from zmartd.chain.rpc import RpcClient
from zmartd.devchain.actor import Devchain
from zmartd.indexer import actor
from zmartd.indexer.metrics import IndexerMetrics
from zmartd.indexer.pipeline import Indexer
from zmartd.indexer.source import ChainSource
from zmartd.storage.database import Database
from zmartd.ws import legacy
from zmartd.ws.hub import Hub, HubLimits
from zmartd.ws.replay import ReplayBuffers

from .conftest import SOL, Driver


async def _pump(subscription: Any, hub: Hub) -> None:
    async for event in subscription:
        if isinstance(event, DomainEvent):
            await hub.publish(event)


async def test_never_subscribed_client_gets_chain_trades(
    db: Database, chain: Devchain, rpc: RpcClient
) -> None:
    d = Driver(chain)
    d.init_config()
    user = d.fund()
    market = d.active_market(d.fund(), 41, [d.fund()])
    ctx = make_ctx(make_config())
    indexer = Indexer(
        db,
        ChainSource(rpc, chain.node.bank.program_id),
        ctx.bus,
        IndexerMetrics(CollectorRegistry()),
    )
    hub = Hub(
        HubLimits(heartbeat_interval=0.3, heartbeat_misses=2),
        ReplayBuffers(100, 300, trio.current_time),
        legacy=legacy.adapt,
    )
    events = ctx.bus.topic("events").subscribe("ws", capacity=10_000)
    async with trio.open_nursery() as nursery:
        hub.attach(nursery)
        server = await nursery.start(
            partial(serve_websocket, hub.handle, "127.0.0.1", 0, None, handler_nursery=nursery)
        )
        nursery.start_soon(_pump, events, hub)
        nursery.start_soon(actor.serve_indexer, ctx, indexer, actor.IndexerService(), chain.ws_url)
        async with open_websocket_url(f"ws://127.0.0.1:{server.port}") as ws:
            welcome = json.loads(await ws.get_message())
            assert welcome["type"] == "welcome" and welcome["data"]["client_id"]
            d.buy(user, market, True, 2 * SOL)
            with trio.fail_after(20):
                while True:
                    msg = json.loads(await ws.get_message())
                    if msg["type"] == "trade":
                        break
                    assert msg["type"] == "market_state", msg
                    assert isinstance(msg["data"], dict) and msg["market_id"]
            assert msg["market_id"] == market.hex() and msg["timestamp"]
            data = msg["data"]
            assert data["trader"] == str(user.pubkey()) and data["outcome"] == "YES"
            assert data["trade_type"] == "buy" and data["id"]
            assert data["shares"].isdigit() and int(data["shares"]) > 0
            assert data["cost"].isdigit() and 0 < int(data["cost"]) <= 2 * SOL
            # pongs every "30 s" (here: several heartbeat intervals) keep it open and
            # get no answer; the next trade still arrives
            for _ in range(4):
                await ws.send_message(json.dumps({"action": "pong"}))
                await trio.sleep(0.3)
            d.buy(user, market, False, SOL)
            with trio.fail_after(20):
                while (msg := json.loads(await ws.get_message()))["type"] != "trade":
                    assert msg["type"] == "market_state", msg
            assert msg["data"]["outcome"] == "NO" and not ws.closed
            # the first subscribe switches to the channel protocol: no firehose anymore
            await ws.send_message(json.dumps({"action": "subscribe", "channel": "trades"}))
            with trio.fail_after(5):
                while (msg := json.loads(await ws.get_message()))["type"] != "subscribed":
                    assert msg["type"] == "market_state", msg
            d.buy(user, market, True, SOL)
            with trio.fail_after(20):
                msg = json.loads(await ws.get_message())
            assert msg["type"] == "trade" and msg["channel"] == "trades"
            assert msg["data"]["wallet"] == str(user.pubkey())  # the /v1 shape
        nursery.cancel_scope.cancel()
