"""The monitor's Prometheus metrics, registered once per daemon registry
(actors restart; a metric family cannot be registered twice)."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["MonitorMetrics", "monitor_metrics"]


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.firing = Gauge(
            "zmartd_alerts_firing",
            "Alerts currently firing, by severity",
            ["severity"],
            registry=r,
        )
        self.notifications = Counter(
            "zmartd_alert_notifications_total",
            "Alert notices by channel and result (sent, or failed after all retries)",
            ["channel", "result"],
            registry=r,
        )
        self.delivery_attempts = Counter(
            "zmartd_alert_delivery_attempts_total",
            "Single delivery attempts by channel and result (retries included)",
            ["channel", "result"],
            registry=r,
        )
        self.finalizations = Counter(
            "zmartd_monitor_finalizations_total",
            "finalize_market intents stored for RESOLVING markets past their dispute window",
            registry=r,
        )
        self.cycles = Counter(
            "zmartd_monitor_cycles_total",
            "Monitor cycles by result",
            ["result"],
            registry=r,
        )


_BY_REGISTRY: WeakKeyDictionary[CollectorRegistry, MonitorMetrics] = WeakKeyDictionary()


def monitor_metrics(registry: CollectorRegistry) -> MonitorMetrics:
    found = _BY_REGISTRY.get(registry)
    if found is None:
        found = _BY_REGISTRY[registry] = MonitorMetrics(registry)
    return found
