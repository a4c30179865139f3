"""The ``ws`` actor: runs the hub on its own port (``[ws]``), proxied by nginx.

It consumes the bus ``events`` topic, serves trio-websocket connections and,
on stop, refuses new connections and closes every client with 1001 "going
away" (the existing web client reconnects on any code but 1000).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import trio
from trio_websocket import serve_websocket

from zmartd.bus import DomainEvent, SessionEnded
from zmartd.context import ActorContext
from zmartd.model.services import DATABASE, WS_URL
from zmartd.model.sessions import resolve_session
from zmartd.ws import legacy
from zmartd.ws.fanout import RedisSequencer, RedisTransport
from zmartd.ws.hub import Authenticator, Hub, HubLimits
from zmartd.ws.replay import ReplayBuffers

__all__ = ["build_hub", "run"]


def build_hub(ctx: ActorContext, authenticate: Authenticator | None = None) -> Hub:
    cfg = ctx.config.ws
    limits = HubLimits(
        max_subscriptions=cfg.max_subscriptions,
        max_connections_per_ip=cfg.max_connections_per_ip,
        send_queue=cfg.send_queue,
        heartbeat_interval=cfg.heartbeat_interval,
        heartbeat_misses=cfg.heartbeat_misses,
    )
    replay = ReplayBuffers(cfg.replay_buffer_size, cfg.replay_buffer_age, trio.current_time)
    return Hub(
        limits,
        replay,
        authenticate=authenticate,
        trusted_proxies=ctx.config.http.trusted_proxies,
        legacy=legacy.adapt if cfg.legacy_firehose else None,
    )


async def run(
    ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
) -> None:
    cfg = ctx.config.ws
    hub = build_hub(ctx, _session_authenticator(ctx))
    async with AsyncExitStack() as stack, trio.open_nursery() as nursery:
        hub.attach(nursery)
        redis_url = ctx.config.redis.url.reveal() if ctx.config.redis.url else ""
        if redis_url:
            import coredis

            redis = await stack.enter_async_context(coredis.Redis.from_url(redis_url))
            prefix = ctx.config.redis.key_prefix
            hub.sequencer = RedisSequencer(redis, prefix)
            transport = RedisTransport(redis, prefix, hub.deliver)
            hub.transport = transport
            await nursery.start(transport.run)
        events = ctx.bus.topic("events")
        subscription = events.subscribe("ws")
        stack.callback(events.unsubscribe, subscription)
        nursery.start_soon(_pump, subscription, hub)
        sessions = ctx.bus.topic("auth.sessions")
        ended = sessions.subscribe("ws")
        stack.callback(sessions.unsubscribe, ended)
        nursery.start_soon(_end_sessions, ended, hub, cfg.heartbeat_interval)
        server = await nursery.start(
            partial(
                serve_websocket,
                hub.handle,
                cfg.host,
                cfg.port,
                None,
                max_message_size=cfg.max_message_bytes,
                handler_nursery=nursery,
            )
        )
        url = f"ws://{cfg.host}:{server.port}"
        ctx.services.provide(WS_URL, url)
        ctx.log.info("ws listening", url=url)
        task_status.started()
        await stopping.wait()
        ctx.services.withdraw(WS_URL)
        await hub.close_all()
        nursery.cancel_scope.cancel()


async def _pump(subscription: Any, hub: Hub) -> None:
    async for event in subscription:
        if isinstance(event, DomainEvent):
            await hub.publish(event)


async def _end_sessions(ended: Any, hub: Hub, interval: float) -> None:
    """End ``user:`` subscriptions whose session is gone: at once for a logout on this
    instance, and by a re-check of every held token each ``interval`` (logouts on other
    instances, expiry)."""
    while True:
        with trio.move_on_after(interval):
            async for notice in ended:
                if isinstance(notice, SessionEnded):
                    await hub.revalidate(notice.wallet)
        await hub.revalidate()


def _session_authenticator(ctx: ActorContext) -> Authenticator:
    """Session tokens from Sign-In With Solana, checked by the API's auth rules
    against storage (the database is looked up per call: the storage actor can
    restart independently of this one)."""

    async def authenticate(token: str) -> str | None:
        db = ctx.services.get_nowait(DATABASE)
        session = await resolve_session(db, ctx.config, token)
        return session.wallet if session is not None else None

    return authenticate
