"""The WebSocket hub with real trio-websocket clients on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
import trio.lowlevel
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
    serve_websocket,
)

from zmartd.bus import MarketStateChanged, PositionChanged, TradeExecuted
from zmartd.ws.hub import Hub, HubLimits
from zmartd.ws.replay import ReplayBuffers

MARKET = "ab" * 32
OTHER = "cd" * 32
WALLET = "7h3gXfBfYFueFVLYyfL5Qo1QGsf4GQUfW96FKVgnUsJS"
TOKENS = {"good": WALLET, "other": "B5LimwoBn4aAqFmJsV1KtrxDbtEjaZ9WeNrfDWmJc42Z"}


async def authenticate(token: str) -> str | None:
    return TOKENS.get(token)


@asynccontextmanager
async def running_hub(**limits: Any) -> AsyncIterator[tuple[Hub, str]]:
    replay_size = limits.pop("replay_size", 100)
    hub = Hub(
        HubLimits(**limits),
        ReplayBuffers(replay_size, 300, trio.current_time),
        authenticate=authenticate,
    )
    async with trio.open_nursery() as nursery:
        hub.attach(nursery)
        server = await nursery.start(
            partial(serve_websocket, hub.handle, "127.0.0.1", 0, None, handler_nursery=nursery)
        )
        yield hub, f"ws://127.0.0.1:{server.port}"
        nursery.cancel_scope.cancel()


async def recv(ws: WebSocketConnection, timeout: float = 5) -> dict[str, Any]:
    with trio.fail_after(timeout):
        msg: dict[str, Any] = json.loads(await ws.get_message())
        return msg


async def send(ws: WebSocketConnection, **msg: Any) -> None:
    await ws.send_message(json.dumps(msg))


def state_event(market: str = MARKET, state: int = 2) -> MarketStateChanged:
    return MarketStateChanged(
        market_id=market, at="2026-11-26T00:00:00Z", data={"id": market, "state": state}
    )


def trade_event(n: int, market: str = MARKET) -> TradeExecuted:
    return TradeExecuted(
        market_id=market,
        wallet=WALLET,
        slot=100 + n,
        at="2026-11-26T00:00:00Z",
        data={
            "id": f"t{n}",
            "outcome": "YES",
            "price_yes": 500_000_000 + n,
            "price_no": 500_000_000 - n,
        },
    )


async def test_welcome_subscribe_and_event_shapes() -> None:
    async with running_hub() as (hub, url), open_websocket_url(url) as ws:
        welcome = await recv(ws)
        assert welcome["type"] == "welcome" and welcome["data"]["client_id"]
        assert welcome["timestamp"].endswith("Z")
        await send(ws, action="subscribe", channel=f"market:{MARKET}")
        ack = await recv(ws)
        assert ack["type"] == "subscribed" and ack["seq"] == 0
        await hub.publish(state_event())
        await hub.publish(trade_event(1))
        await hub.publish(state_event(OTHER))  # another market: not delivered here
        got = [await recv(ws) for _ in range(3)]
        assert [(m["type"], m["seq"]) for m in got] == [
            ("market_state", 1),
            ("trade", 2),
            ("price", 3),
        ]
        assert all(m["channel"] == f"market:{MARKET}" and m["market_id"] == MARKET for m in got)
        assert got[1]["data"]["outcome"] == "YES"
        assert got[2]["data"] == {
            "market_id": MARKET,
            "price_yes": 500_000_001,
            "price_no": 499_999_999,
            "slot": 101,
        }
        await send(ws, action="ping")
        assert (await recv(ws))["type"] == "pong"


async def test_legacy_subscribe_form_and_global_channels() -> None:
    async with running_hub() as (hub, url), open_websocket_url(url) as ws:
        await recv(ws)
        await send(ws, action="subscribe", market_id=MARKET)
        assert (await recv(ws))["channel"] == f"market:{MARKET}"
        await send(ws, action="subscribe", channel="trades")
        await recv(ws)
        await send(ws, action="pong")  # the legacy keep-alive: accepted silently
        await hub.publish(trade_event(1, OTHER))
        msg = await recv(ws)
        assert (msg["channel"], msg["type"], msg["seq"]) == ("trades", "trade", 1)
        await send(ws, action="unsubscribe", channel="trades")
        assert (await recv(ws))["type"] == "unsubscribed"
        await hub.publish(trade_event(2, OTHER))
        await send(ws, action="ping")
        assert (await recv(ws))["type"] == "pong"  # nothing from trades came before it


async def test_resume_replays_exactly_what_was_missed_or_says_gap() -> None:
    async with running_hub(replay_size=5) as (hub, url):
        for n in range(1, 8):  # seqs 1..7 on market:, buffer keeps the last 5
            await hub.publish(state_event(state=n))
        async with open_websocket_url(url) as ws:
            await recv(ws)
            await send(ws, action="subscribe", channel=f"market:{MARKET}", since=4)
            assert (await recv(ws))["seq"] == 7
            assert [(await recv(ws))["seq"] for _ in range(3)] == [5, 6, 7]
            await hub.publish(state_event(state=8))
            assert (await recv(ws))["seq"] == 8
        async with open_websocket_url(url) as ws:
            await recv(ws)
            await send(ws, action="subscribe", channel=f"market:{MARKET}", since=1)
            assert (await recv(ws))["type"] == "subscribed"
            gap = await recv(ws)
            assert gap["type"] == "gap" and gap["seq"] == 8 and gap["data"]["since"] == 1
            await hub.publish(state_event(state=9))
            assert (await recv(ws))["seq"] == 9  # live delivery continues after the gap


async def test_user_channel_needs_the_wallets_own_session() -> None:
    channel = f"user:{WALLET}"
    async with running_hub() as (hub, url), open_websocket_url(url) as ws:
        await recv(ws)
        for token, code in [
            (None, "unauthorized"),
            ("bad", "unauthorized"),
            ("other", "forbidden"),
        ]:
            msg: dict[str, Any] = {"action": "subscribe", "channel": channel}
            if token:
                msg["token"] = token
            await ws.send_message(json.dumps(msg))
            err = await recv(ws)
            assert err["type"] == "error" and err["data"]["code"] == code
        await send(ws, action="subscribe", channel=channel, token="good")
        assert (await recv(ws))["type"] == "subscribed"
        await hub.publish(
            PositionChanged(market_id=MARKET, wallet=WALLET, at="x", data={"shares_yes": 5})
        )
        msg = await recv(ws)
        assert (msg["type"], msg["channel"]) == ("position", channel)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ('{"action": "dance"}', "unknown_action"),
        ('{"action": "subscribe"}', "invalid_message"),
        ('{"action": "subscribe", "channel": "market:xyz"}', "invalid_channel"),
        ('{"action": "subscribe", "channel": "markets", "extra": 1}', "invalid_message"),
        ('{"action": "subscribe", "channel": "markets", "since": -1}', "invalid_message"),
    ],
)
async def test_bad_input_gets_an_error_and_keeps_the_connection(frame: str, code: str) -> None:
    async with running_hub() as (_hub, url), open_websocket_url(url) as ws:
        await recv(ws)
        await ws.send_message(frame)
        err = await recv(ws)
        assert err["type"] == "error" and err["data"]["code"] == code
        await send(ws, action="ping")
        assert (await recv(ws))["type"] == "pong"


async def test_repeated_abuse_closes_with_1008() -> None:
    async with running_hub(max_errors=3) as (_hub, url), open_websocket_url(url) as ws:
        await recv(ws)
        for _ in range(4):
            await ws.send_message("garbage")
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(5):
            while True:
                await ws.get_message()
        assert closed.value.reason is not None and closed.value.reason.code == 1008


async def test_subscription_and_per_ip_limits() -> None:
    async with running_hub(max_subscriptions=2, max_connections_per_ip=2) as (_hub, url):
        async with open_websocket_url(url) as ws, open_websocket_url(url) as ws2:
            await recv(ws)
            await recv(ws2)
            for ch in ("markets", "trades"):
                await send(ws, action="subscribe", channel=ch)
                await recv(ws)
            await send(ws, action="subscribe", channel=f"market:{MARKET}")
            assert (await recv(ws))["data"]["code"] == "too_many_subscriptions"
            with pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket_url(url):
                    pass
            assert rejected.value.status_code == 429
        await trio.sleep(0.1)
        async with open_websocket_url(url) as ws3:  # slots freed on disconnect
            assert (await recv(ws3))["type"] == "welcome"


async def raw_client(port: int) -> trio.SocketStream:
    """A WebSocket client that completes the handshake and then goes silent:
    it never reads, so it answers no ping and drains nothing."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    await stream.send_all(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += await stream.receive_some(4096)
    assert response.startswith(b"HTTP/1.1 101")
    return stream


async def test_silent_client_is_closed_after_missed_heartbeats() -> None:
    async with running_hub(heartbeat_interval=0.2, heartbeat_misses=2) as (hub, url):
        port = int(url.rsplit(":", 1)[1])
        stream = await raw_client(port)
        await trio.sleep(0.05)
        assert hub.connections == 1
        with trio.fail_after(5):
            while hub.connections:
                await trio.sleep(0.05)
        await stream.aclose()


async def test_slow_consumer_is_closed_with_1013_and_resume_point() -> None:
    async with running_hub(send_queue=2) as (hub, url):
        port = int(url.rsplit(":", 1)[1])
        stream = await raw_client(port)
        # Subscribe (masked client frame), then never read again.
        payload = json.dumps({"action": "subscribe", "channel": "markets"}).encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await stream.send_all(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        with trio.fail_after(5):
            while not hub._by_channel.get("markets"):
                await trio.sleep(0.01)
        async with open_websocket_url(url) as fast:
            await recv(fast)
            await send(fast, action="subscribe", channel="markets")
            await recv(fast)
            big = "x" * 65536
            with trio.fail_after(20):
                n = 0
                while hub.connections > 1:
                    n += 1
                    await hub.publish(
                        MarketStateChanged(market_id=OTHER, at="x", data={"blob": big, "n": n})
                    )
                    # the fast client keeps up and is never affected
                    assert (await recv(fast))["data"]["n"] == n
                    await trio.lowlevel.checkpoint()
        await stream.aclose()


async def test_slow_consumer_close_reason_names_resume_point() -> None:
    async with (
        running_hub(send_queue=1) as (hub, url),
        open_websocket_url(url, message_queue_size=0) as ws,
    ):
        await recv(ws)
        await send(ws, action="subscribe", channel="markets")
        await recv(ws)
        await hub.publish(state_event())
        await recv(ws)  # seq 1 delivered and read
        big = "y" * 200_000
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(20):
            for n in range(500):
                await hub.publish(
                    MarketStateChanged(market_id=OTHER, at="x", data={"blob": big, "n": n})
                )
                await trio.lowlevel.checkpoint()
            await trio.sleep(1)
            while True:
                await ws.get_message()
        reason = closed.value.reason
        assert reason is not None and reason.code == 1013
        assert "resume_from markets=" in (reason.reason or "")


async def test_close_all_says_going_away() -> None:
    async with running_hub() as (hub, url), open_websocket_url(url) as ws:
        await recv(ws)
        await hub.close_all()
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(5):
            await ws.get_message()
        assert closed.value.reason is not None and closed.value.reason.code == 1001
        with pytest.raises(ConnectionRejected):
            async with open_websocket_url(url):
                pass


async def test_a_revoked_session_ends_its_user_subscription() -> None:
    """Regression: logout did not end the token's live ``user:<wallet>`` subscriptions."""
    channel = f"user:{WALLET}"
    TOKENS["short-lived"] = WALLET
    try:
        async with running_hub() as (hub, url), open_websocket_url(url) as ws:
            await recv(ws)
            await send(ws, action="subscribe", channel=channel, token="short-lived")
            assert (await recv(ws))["type"] == "subscribed"
            await send(ws, action="subscribe", channel="markets")
            assert (await recv(ws))["type"] == "subscribed"
            assert await hub.revalidate(WALLET) == 0  # still valid: nothing ends
            del TOKENS["short-lived"]  # the session is revoked
            assert await hub.revalidate(WALLET) == 1
            ended = await recv(ws)
            assert ended["type"] == "unsubscribed" and ended["channel"] == channel
            assert ended["data"]["reason"] == "session ended"
            await hub.publish(
                PositionChanged(market_id=MARKET, wallet=WALLET, at="x", data={"shares_yes": 5})
            )
            await hub.publish(state_event())  # the public subscription goes on
            assert (await recv(ws))["type"] == "market_state"
    finally:
        TOKENS.pop("short-lived", None)


async def test_the_actor_ends_sessions_on_logout_notices() -> None:
    from zmartd.bus import Bus, SessionEnded
    from zmartd.ws.actor import _end_sessions

    calls: list[str | None] = []

    class Recorder:
        async def revalidate(self, wallet: str | None = None) -> int:
            calls.append(wallet)
            return 0

    bus = Bus()
    topic = bus.topic("auth.sessions")
    sub = topic.subscribe("ws")
    async with trio.open_nursery() as nursery:
        recorder: Any = Recorder()
        nursery.start_soon(_end_sessions, sub, recorder, 0.2)
        topic.publish_nowait(SessionEnded(wallet=WALLET))
        with trio.fail_after(2):
            while WALLET not in calls or None not in calls:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
