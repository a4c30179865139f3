"""The supervisor tree, declared as data.

Each :class:`ActorDecl` says which actor exists, when it is enabled, which
configuration sections it depends on (a SIGHUP reload restarts exactly the
actors whose sections changed), whether ``/ready`` requires it, and how it
restarts.  Order matters: actors start in this order and stop in reverse,
so an actor may use the services of those declared before it while it
drains.  New actors are added here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from zmartd.aggregator import actor as aggregator_actor
from zmartd.api import server as http_server
from zmartd.config import Config
from zmartd.devchain import actor as devchain_actor
from zmartd.devchain import demo_metadata
from zmartd.indexer import actor as indexer_actor
from zmartd.monitor import actor as monitor_actor
from zmartd.sender import actor as sender_actor
from zmartd.snapshotter import actor as snapshotter_actor
from zmartd.storage import actor as storage_actor
from zmartd.supervisor import Restart
from zmartd.ws import actor as ws_actor

__all__ = ["TREE", "ActorDecl", "enabled_actors"]


@dataclass(frozen=True, slots=True)
class ActorDecl:
    name: str
    #: ``async def run(ctx, stopping, *, task_status)``
    run: Callable[..., Awaitable[None]]
    sections: tuple[str, ...]
    description: str
    enabled: Callable[[Config], bool] = lambda cfg: True
    required: Callable[[Config], bool] = lambda cfg: True
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: Callable[[Config], float] = lambda cfg: 5.0


TREE: tuple[ActorDecl, ...] = (
    ActorDecl(
        name="devchain",
        run=devchain_actor.run,
        sections=("chain", "devchain"),
        description="local chain double (JSON-RPC + PubSub) when chain.mode = 'local'; "
        "provides 'devchain'",
        enabled=lambda cfg: cfg.chain.mode == "local",
        shutdown_timeout=lambda cfg: 5.0,
    ),
    ActorDecl(
        name="storage",
        run=storage_actor.run,
        sections=("database",),
        description="PostgreSQL pool (embedded pgserver when no DSN); provides 'database'",
        required=lambda cfg: cfg.database.required,
        shutdown_timeout=lambda cfg: 5.0,
    ),
    ActorDecl(
        name="demo_metadata",
        run=demo_metadata.run,
        sections=("chain", "devchain"),
        description="registers titles/descriptions of the devchain's demo markets (local mode, "
        "seed = 'demo')",
        enabled=lambda cfg: cfg.chain.mode == "local" and cfg.devchain.seed == "demo",
        required=lambda cfg: False,
        restart=Restart.TEMPORARY,
    ),
    ActorDecl(
        name="indexer",
        run=indexer_actor.run,
        sections=("chain", "devchain", "database"),
        description="chain listener + indexer (PubSub, webhook inbox, backfill, finality, "
        "reconciliation) into PostgreSQL, leader-only via an advisory lock; provides 'indexer'",
        required=lambda cfg: cfg.chain.required,
        shutdown_timeout=lambda cfg: 5.0,
    ),
    ActorDecl(
        name="sender",
        run=sender_actor.run,
        sections=("chain", "devchain", "database", "sender", "admin"),
        description="transaction sender: executes stored intents exactly once (simulate, sign, "
        "rebroadcast, prove expiry), leader-only via an advisory lock; provides 'sender'",
        enabled=lambda cfg: cfg.sender.enabled,
        required=lambda cfg: False,
        shutdown_timeout=lambda cfg: 3.0,
    ),
    ActorDecl(
        name="aggregator",
        run=aggregator_actor.run,
        sections=("chain", "devchain", "database", "aggregator", "admin"),
        description="vote aggregator: tallies votes in SQL every [aggregator] interval and "
        "submits aggregate/approve/finalize intents to the sender, leader-only",
        enabled=lambda cfg: cfg.aggregator.enabled,
        required=lambda cfg: False,
        shutdown_timeout=lambda cfg: 3.0,
    ),
    ActorDecl(
        name="snapshotter",
        run=snapshotter_actor.run,
        sections=("snapshotter", "database", "daemon"),
        description="daily discussion snapshots with locally verified CIDs (catch-up, "
        "pruning), leader-only via an advisory lock",
        enabled=lambda cfg: cfg.snapshotter.enabled,
        required=lambda cfg: False,
        shutdown_timeout=lambda cfg: 5.0,
    ),
    ActorDecl(
        name="monitor",
        run=monitor_actor.run,
        sections=("chain", "devchain", "database", "monitor", "aggregator", "daemon"),
        description="market monitor: finalizes RESOLVING markets after the dispute window (chain "
        "time) through the sender, raises operator alerts (webhook, e-mail), leader-only",
        enabled=lambda cfg: cfg.monitor.enabled,
        required=lambda cfg: False,
        shutdown_timeout=lambda cfg: 3.0,
    ),
    ActorDecl(
        name="http",
        run=http_server.run,
        sections=(
            "http",
            "auth",
            "ratelimit",
            "redis",
            "metrics",
            "admin",
            "votes",
            "sender",
            "chain",
            "devchain",
        ),
        description="REST API and ops surface (/health, /ready, /metrics) on hypercorn",
        enabled=lambda cfg: cfg.http.enabled,
        required=lambda cfg: cfg.http.required,
        shutdown_timeout=lambda cfg: cfg.http.graceful_timeout + 1.0,
    ),
    ActorDecl(
        name="ws",
        run=ws_actor.run,
        sections=("ws", "redis"),
        description="WebSocket hub: channels, seq numbers + resume, heartbeats, Redis fan-out",
        enabled=lambda cfg: cfg.ws.enabled,
        required=lambda cfg: cfg.ws.required,
        shutdown_timeout=lambda cfg: 3.0,
    ),
)


def enabled_actors(cfg: Config, tree: Iterable[ActorDecl] = TREE) -> list[ActorDecl]:
    """The actors ``cfg`` enables, in start order (the daemon, ``zmartd tree``)."""
    return [decl for decl in tree if decl.enabled(cfg)]
