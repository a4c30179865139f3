"""The legacy firehose on the hub alone: shapes, one frame per event, the switch on
the first subscribe, and the bounded queue."""

from __future__ import annotations

from functools import partial
from typing import Any

import trio
from trio_websocket import ConnectionClosed, open_websocket_url, serve_websocket

from tests.ws.test_hub import MARKET, OTHER, WALLET, recv, send
from zmartd.bus import MarketStateChanged, TradeExecuted
from zmartd.ws import legacy
from zmartd.ws.hub import Hub, HubLimits
from zmartd.ws.replay import ReplayBuffers


def trade(n: int, market: str) -> TradeExecuted:
    return TradeExecuted(
        market_id=market,
        wallet=WALLET,
        slot=n,
        at="2026-11-26T00:00:00Z",
        data={
            "id": n,
            "market_id": market,
            "wallet": WALLET,
            "side": "buy",
            "outcome": "NO",
            "shares": "1500000000",
            "amount": "700000000",
            "price_yes": 450_000_000,
            "price_no": 550_000_000,
            "block_time": "2026-11-26T00:00:00Z",
            "slot": n,
            "signature": "sig",
            "finalized": False,
        },
    )


def state(market: str) -> MarketStateChanged:
    return MarketStateChanged(
        market_id=market,
        at="2026-11-26T00:00:00Z",
        data={
            "market_id": market,
            "state": 2,
            "status": "ACTIVE",
            "price_yes": 600_000_000,
            "price_no": 400_000_000,
            "shares_yes": "10",
            "shares_no": "5",
            "title": "Q?",
            "total_volume": "9",
        },
    )


def _hub(**limits: Any) -> Hub:
    return Hub(HubLimits(**limits), ReplayBuffers(100, 300, trio.current_time), legacy=legacy.adapt)


async def test_firehose_shapes_and_switch() -> None:
    hub = _hub()
    async with trio.open_nursery() as n:
        hub.attach(n)
        server = await n.start(
            partial(serve_websocket, hub.handle, "127.0.0.1", 0, None, handler_nursery=n)
        )
        async with open_websocket_url(f"ws://127.0.0.1:{server.port}/") as ws:
            assert (await recv(ws))["type"] == "welcome"
            await hub.publish(trade(1, MARKET))
            await hub.publish(state(OTHER))
            got = await recv(ws)
            assert got["type"] == "trade" and got["market_id"] == MARKET
            assert got["data"] == {
                "id": 1,
                "tradeId": 1,
                "trader": WALLET,
                "user_wallet": WALLET,
                "outcome": "NO",
                "shares": "1500000000",
                "cost": "700000000",
                "trade_type": "buy",
                "price": 0.45,
                "created_at": "2026-11-26T00:00:00Z",
                "tx_signature": "sig",
            }
            got = await recv(ws)  # exactly one trade frame per event, then the state
            assert got["type"] == "market_state" and got["market_id"] == OTHER
            assert got["data"]["priceYes"] == 0.6 and got["data"]["priceNo"] == 0.4
            assert got["data"]["totalShares"] == "15" and got["data"]["state"] == 2
            await send(ws, action="pong")
            await send(ws, action="subscribe", channel=f"market:{OTHER}")
            assert (await recv(ws))["type"] == "subscribed"
            await hub.publish(trade(2, MARKET))  # not OTHER: nothing for this client now
            await hub.publish(state(OTHER))
            got = await recv(ws)
            assert got["type"] == "market_state" and got["channel"] == f"market:{OTHER}"
        n.cancel_scope.cancel()


async def test_firehose_is_bounded_by_the_send_queue() -> None:
    hub = _hub(send_queue=4)
    async with trio.open_nursery() as n:
        hub.attach(n)
        server = await n.start(
            partial(serve_websocket, hub.handle, "127.0.0.1", 0, None, handler_nursery=n)
        )
        async with open_websocket_url(f"ws://127.0.0.1:{server.port}") as ws:
            await recv(ws)
            for i in range(50):  # never read: the queue overflows without awaiting
                await hub.publish(trade(i, MARKET))
            with trio.fail_after(5):
                try:
                    while True:
                        await ws.get_message()
                except ConnectionClosed as exc:
                    assert exc.reason is not None and exc.reason.code == 1013
        n.cancel_scope.cancel()
