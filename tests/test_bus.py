"""The bus: typed topics, fan-out, and the two backpressure policies."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio

from zmartd.bus import (
    TOPICS,
    ActorStatus,
    Bus,
    ChainGap,
    ConfigReloaded,
    Policy,
    ProgramLogs,
)


def reload(i: int) -> ConfigReloaded:
    return ConfigReloaded(changed_sections=("http",), generation=i)


async def test_fan_out_delivers_every_message_to_every_subscriber_in_order() -> None:
    bus = Bus()
    topic = bus.topic("chain.logs")
    a = topic.subscribe("indexer")
    b = topic.subscribe("audit")
    for slot in range(5):
        await bus.publish("chain.logs", ProgramLogs(signature=f"s{slot}", slot=slot))
    for sub in (a, b):
        assert [sub.receive_nowait().slot for _ in range(5)] == [0, 1, 2, 3, 4]
        with pytest.raises(trio.WouldBlock):
            sub.receive_nowait()


async def test_block_policy_applies_backpressure(autojump_clock: Any) -> None:
    bus = Bus()
    topic = bus.topic("chain.gaps")
    sub = topic.subscribe("indexer", capacity=2)
    published: list[int] = []

    async def producer() -> None:
        for i in range(4):
            await topic.publish(ChainGap(from_slot=i, to_slot=i + 1, reason="test"))
            published.append(i)

    async with trio.open_nursery() as n:
        n.start_soon(producer)
        await trio.sleep(1)
        assert published == [0, 1]  # third publish waits for the slow consumer
        assert (await sub.receive()).from_slot == 0
        await trio.sleep(1)
        assert published == [0, 1, 2]
        got = [(await sub.receive()).from_slot for _ in range(3)]
    assert got == [1, 2, 3]
    assert sub.dropped == 0


async def test_drop_oldest_never_blocks_and_counts() -> None:
    drops: list[tuple[str, str]] = []
    bus = Bus(on_drop=lambda topic, sub: drops.append((topic, sub)))
    topic = bus.topic("daemon.config")
    slow = topic.subscribe("slow", capacity=2)
    fast = topic.subscribe("fast", capacity=100)
    with trio.fail_after(1):
        for i in range(10):
            await topic.publish(reload(i))
    assert [slow.receive_nowait().generation for _ in range(2)] == [8, 9]
    assert slow.dropped == 8
    assert drops == [("daemon.config", "slow")] * 8
    assert [fast.receive_nowait().generation for _ in range(10)] == list(range(10))
    assert fast.dropped == 0


async def test_wrong_message_type_is_rejected() -> None:
    bus = Bus()
    with pytest.raises(TypeError, match="carries ProgramLogs"):
        await bus.publish("chain.logs", reload(1))
    with pytest.raises(KeyError, match="unknown bus topic"):
        bus.topic("nope")


async def test_unsubscribed_and_closed_subscribers_stop_receiving() -> None:
    bus = Bus()
    topic = bus.topic("daemon.actors")
    async with topic.subscription("temp") as sub:
        await topic.publish(ActorStatus(name="http", state="running", restarts=0))
        assert sub.receive_nowait().name == "http"
    assert topic.subscribers == ()
    gone = topic.subscribe("gone")
    gone.close()
    await topic.publish(ActorStatus(name="http", state="running", restarts=0))
    assert topic.subscribers == ()


async def test_iteration_ends_when_subscription_closes() -> None:
    topic = Bus().topic("daemon.config")
    sub = topic.subscribe("x")
    await topic.publish(reload(1))
    received = []
    async with trio.open_nursery() as n:

        async def consume() -> None:
            async for msg in sub:
                received.append(msg.generation)

        n.start_soon(consume)
        await trio.sleep(0.01)
        sub._send.close()
    assert received == [1]


def test_every_topic_is_documented_and_messages_round_trip_tagged() -> None:
    for spec in TOPICS.values():
        assert spec.capacity >= 1 and spec.why
        assert spec.policy in (Policy.BLOCK, Policy.DROP_OLDEST)
    msg = ProgramLogs(
        signature="sig", slot=7, err={"InstructionError": [0, {"Custom": 6015}]}, logs=("a", "b")
    )
    raw = msgspec.json.encode(msg)
    assert b'"type":"ProgramLogs"' in raw
    decoded = msgspec.json.decode(raw, type=ProgramLogs | ChainGap)
    assert decoded == msg
