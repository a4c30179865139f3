"""What every actor receives: the configuration it was started with and the
daemon's shared machinery (bus, metrics, services, health).

An actor is ``async def run(ctx, stopping, *, task_status)``.  It is started
afresh (with a new context, hence the current configuration) after every
crash and after every reload that changed one of its config sections, so it
never has to watch the configuration itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from zmartd.bus import Bus
from zmartd.config import Config
from zmartd.observability import Metrics
from zmartd.services import Services
from zmartd.supervisor import ChildState, ChildStatus

__all__ = ["ActorContext", "Health", "Readiness", "readiness"]


@dataclass
class Health:
    """Per-actor *degraded* reasons, beside the supervisor's own states.

    An actor that is alive but cannot do its job (storage while the database
    is unreachable) reports it here instead of crashing in a loop; ``/ready``
    treats a degraded required actor like a stopped one. Whoever derives
    something from readiness (the daemon's "zmartd ready", systemd's
    ``READY=1`` later) subscribes with :meth:`on_change`, because a change
    here is not a supervisor status change.
    """

    degraded: dict[str, str] = field(default_factory=dict)
    #: singleton actors' roles on this instance: "leader" or "standby" (``/health``)
    roles: dict[str, str] = field(default_factory=dict)
    _listeners: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def set_degraded(self, actor: str, reason: str | None) -> None:
        before = self.degraded.get(actor)
        if reason is None:
            self.degraded.pop(actor, None)
        else:
            self.degraded[actor] = reason
        if before != reason:
            for listener in tuple(self._listeners):
                listener()

    def set_role(self, actor: str, role: str | None) -> None:
        """Record whether a leader-only actor leads on this instance (None: forget)."""
        if role is None:
            self.roles.pop(actor, None)
        else:
            self.roles[actor] = role

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (synchronously) whenever an actor's degraded reason changes."""
        self._listeners.append(listener)


@dataclass(frozen=True, slots=True)
class Readiness:
    """The verdict of :func:`readiness` and the per-actor facts behind it."""

    ready: bool
    #: one entry per supervised actor: its status plus ``degraded`` and ``ok``
    actors: list[dict[str, Any]]


def readiness(statuses: Iterable[ChildStatus], health: Health) -> Readiness:
    """The one readiness rule: ready when every *required* actor is running and
    not degraded. Optional actors are reported but never make zmartd unready.
    ``/ready``, ``/health``, ``/metrics`` and the daemon's ready event all use it."""
    actors = []
    ready = True
    for status in statuses:
        entry = status.as_dict()
        degraded = health.degraded.get(status.name)
        entry["degraded"] = degraded
        ok = status.state is ChildState.RUNNING and degraded is None
        entry["ok"] = ok
        if status.required and not ok:
            ready = False
        actors.append(entry)
    return Readiness(ready=ready, actors=actors)


@dataclass
class ActorContext:
    name: str
    config: Config
    bus: Bus
    metrics: Metrics
    services: Services
    health: Health
    #: current statuses of all supervised actors (for /health, /ready)
    statuses: Callable[[], list[ChildStatus]]
    #: extra facts for /health (version, uptime, config generation, ...)
    facts: Callable[[], dict[str, Any]]

    @property
    def log(self) -> Any:
        return structlog.get_logger(f"zmartd.{self.name}")

    def set_degraded(self, reason: str | None) -> None:
        self.health.set_degraded(self.name, reason)

    def leading(self, leads: bool) -> None:
        """For :func:`zmartd.storage.leader.leader_lock`'s ``on_lead``: this actor leads
        (or stands by) on this instance, as ``/health`` and ``/ready`` show."""
        self.health.set_role(self.name, "leader" if leads else "standby")
