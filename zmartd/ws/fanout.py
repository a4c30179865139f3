"""Multi-instance fan-out through Redis (when ``[redis] url`` is set).

Several zmartd instances behind one nginx share a Redis.  An event is
sequenced once, by the instance whose bus produced it, with ``INCR`` on a
per-channel key, so every instance labels it with the same ``seq``; it is
then published on one pub/sub channel and every instance's hub (the
producer's included) delivers it from there.  There is a single delivery
path, so an instance never delivers an event twice, and all instances hand
clients identical sequence numbers -- a client can resume on any instance.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
import trio

from zmartd.ws.replay import Sequenced

__all__ = ["RedisSequencer", "RedisTransport", "WireEvent"]

log = structlog.get_logger("zmartd.ws.fanout")


class WireEvent(msgspec.Struct, frozen=True):
    channel: str
    seq: int
    frame: str


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(WireEvent).decode


class RedisSequencer:
    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def next(self, channel: str) -> int:
        seq: int = await self.redis.incr(f"{self.prefix}ws:seq:{channel}")
        return seq


class RedisTransport:
    """Publishes sequenced frames; :meth:`run` delivers everyone's to the hub."""

    def __init__(self, redis: Any, prefix: str, deliver: Any) -> None:
        self.redis = redis
        self.topic = f"{prefix}ws:events"
        self.deliver = deliver

    async def send(self, item: Sequenced) -> None:
        await self.redis.publish(self.topic, _encode(WireEvent(item.channel, item.seq, item.frame)))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with self.redis.pubsub(channels=[self.topic], ignore_subscribe_messages=True) as ps:
            task_status.started()
            async for message in ps:
                data = message["data"]
                try:
                    wire = _decode(data)
                except (msgspec.DecodeError, TypeError) as exc:
                    log.warning("ignoring malformed fan-out message", error=str(exc))
                    continue
                self.deliver(Sequenced(wire.channel, wire.seq, trio.current_time(), wire.frame))
