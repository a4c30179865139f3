"""Logging and Prometheus metrics, configured in one place.

Logs are structured (structlog): JSON lines by default, because zmartd runs
under systemd/journald on a VPS and JSON is what log shippers want; a human
console format when the log stream is a terminal or ``log.format =
"console"``.  Third-party libraries log through the standard ``logging``
module (hypercorn, httpx, asyncpg); their records go through the same
renderer so that the stream never mixes two formats.

Metrics live in a per-daemon :class:`prometheus_client.CollectorRegistry`
(not the global one) so that tests can run several daemons in one process.
Every label set is bounded: actor names and bus topics come from declared
data, never from requests.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from zmartd import __version__
from zmartd.supervisor import ChildState, ChildStatus

__all__ = ["Metrics", "configure_logging"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """(Re)configure logging for the whole process; safe to call on reload.

    ``fmt`` is ``"json"``, ``"console"`` or ``"auto"`` (console when
    ``stream`` is a TTY).  Logs go to stderr: stdout belongs to the
    commands that print results (``check-config``, ``tree``, ``config dump``).
    """
    stream = stream if stream is not None else sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if use_console:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([] if use_console else [structlog.processors.format_exc_info]),
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level, logging.INFO))
    # hypercorn's access log is noisy and carries client IPs; keep it at warning.
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


_STATE_VALUES = {state: i for i, state in enumerate(ChildState)}


class Metrics:
    """The daemon's metric families (one registry per daemon instance)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Info("zmartd_build", "zmartd version", registry=r)
        self.build_info.info({"version": __version__})
        self.actor_up = Gauge(
            "zmartd_actor_up",
            "1 when the actor is running (ready), else 0",
            ["actor"],
            registry=r,
        )
        self.actor_state = Gauge(
            "zmartd_actor_state",
            "Current state of the actor, one series per state (1 = in that state)",
            ["actor", "state"],
            registry=r,
        )
        self.actor_restarts = Counter(
            "zmartd_actor_restarts_total",
            "Restarts of the actor after a failure",
            ["actor"],
            registry=r,
        )
        self.config_reloads = Counter(
            "zmartd_config_reloads_total",
            "Successful configuration reloads (SIGHUP)",
            registry=r,
        )
        self.config_reload_failures = Counter(
            "zmartd_config_reload_failures_total",
            "Configuration reloads rejected because the new file was invalid",
            registry=r,
        )
        self.bus_published = Counter(
            "zmartd_bus_published_total",
            "Messages published per bus topic",
            ["topic"],
            registry=r,
        )
        self.bus_dropped = Counter(
            "zmartd_bus_dropped_total",
            "Messages dropped (drop_oldest policy) per topic and subscriber",
            ["topic", "subscriber"],
            registry=r,
        )
        self.http_requests = Counter(
            "zmartd_http_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "zmartd_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.http_shed = Counter(
            "zmartd_http_shed_total",
            "HTTP requests refused with 503 by load shedding: past http.max_in_flight, and "
            "new connections past the connection cap (never reach the per-route "
            "counters: they are answered before routing)",
            registry=r,
        )
        self.http_connections = Gauge(
            "zmartd_http_connections",
            "Client connections being served (idle keep-alive ones included, until "
            "http.keep_alive_timeout closes them; those refused past the cap excluded)",
            registry=r,
        )
        self.http_cache = Counter(
            "zmartd_http_cache_total",
            "Answers of cacheable routes by hot-cache result (hit, miss, stale = served "
            "past its TTL because the database was down)",
            ["result"],
            registry=r,
        )
        self.db_unit_latency = Histogram(
            "zmartd_db_unit_duration_seconds",
            "Database units of work (one bridge crossing, usually one transaction) by name",
            ["unit"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
        )
        self.db_unit_errors = Counter(
            "zmartd_db_unit_errors_total",
            "Database units of work that raised, by name and exception type",
            ["unit", "error"],
            registry=r,
        )
        self.ready = Gauge("zmartd_ready", "1 when every required actor is running", registry=r)
        self._restarts_seen: dict[str, int] = {}

    def observe_actor(self, status: ChildStatus) -> None:
        """Mirror one actor status change into the metric families."""
        name = status.name
        self.actor_up.labels(name).set(1 if status.state is ChildState.RUNNING else 0)
        for state in ChildState:
            self.actor_state.labels(name, state.value).set(1 if state is status.state else 0)
        seen = self._restarts_seen.get(name, 0)
        if status.restarts > seen:
            self.actor_restarts.labels(name).inc(status.restarts - seen)
        self._restarts_seen[name] = status.restarts

    def observe_db_unit(self, unit: str, seconds: float, error: BaseException | None) -> None:
        """Record one database unit of work (:meth:`zmartd.storage.database.Database.run`)."""
        self.db_unit_latency.labels(unit).observe(seconds)
        if error is not None:
            self.db_unit_errors.labels(unit, type(error).__name__).inc()

    def on_bus_publish(self, topic: str) -> None:
        self.bus_published.labels(topic).inc()

    def on_bus_drop(self, topic: str, subscriber: str) -> None:
        self.bus_dropped.labels(topic, subscriber).inc()
