"""What every actor receives: the configuration it was started with and the
daemon's shared machinery (bus, metrics, services, health).

An actor is ``async def run(ctx, stopping, *, task_status)``.  It is started
afresh (with a new context, hence the current configuration) after every
crash and after every reload that changed one of its config sections, so it
never has to watch the configuration itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from zmartd.bus import Bus
from zmartd.config import Config
from zmartd.observability import Metrics
from zmartd.services import Services
from zmartd.supervisor import ChildStatus

__all__ = ["ActorContext", "Health"]


@dataclass
class Health:
    """Per-actor *degraded* reasons, beside the supervisor's own states.

    An actor that is alive but cannot do its job (storage while the database
    is unreachable) reports it here instead of crashing in a loop; ``/ready``
    treats a degraded required actor like a stopped one.
    """

    degraded: dict[str, str] = field(default_factory=dict)

    def set_degraded(self, actor: str, reason: str | None) -> None:
        if reason is None:
            self.degraded.pop(actor, None)
        else:
            self.degraded[actor] = reason


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
