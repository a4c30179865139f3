"""The sender's and the aggregator's Prometheus metrics, registered once per
daemon registry (actors restart; a metric family cannot be registered twice)."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["SenderMetrics", "sender_metrics"]


class SenderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.intents = Gauge(
            "zmartd_sender_intents",
            "Stored intents by kind and state",
            ["kind", "state"],
            registry=r,
        )
        self.sends = Counter(
            "zmartd_sender_sends_total",
            "First sendTransaction of each signed transaction, by intent kind",
            ["kind"],
            registry=r,
        )
        self.rebroadcasts = Counter(
            "zmartd_sender_rebroadcasts_total",
            "Rebroadcasts of the same signed bytes, by intent kind",
            ["kind"],
            registry=r,
        )
        self.expiries = Counter(
            "zmartd_sender_expiries_total",
            "Signed transactions proven expired (never landed) and signed again, by kind",
            ["kind"],
            registry=r,
        )
        self.confirmation = Histogram(
            "zmartd_sender_confirmation_seconds",
            "From signing to confirmed, per transaction that landed",
            registry=r,
            buckets=(0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300),
        )
        self.failures = Counter(
            "zmartd_sender_failures_total",
            "Intents that failed, by program error name (or transaction error)",
            ["error"],
            registry=r,
        )
        self.leader = Gauge(
            "zmartd_sender_leader", "1 while this instance holds the sender lock", registry=r
        )
        self.aggregator_cycles = Counter(
            "zmartd_aggregator_cycles_total",
            "Aggregator cycles by result (ok, failed: a market's step raised unexpectedly)",
            ["result"],
            registry=r,
        )
        self.aggregator_markets = Counter(
            "zmartd_aggregator_market_outcomes_total",
            "Per-market outcomes of aggregator cycles",
            ["kind", "outcome"],
            registry=r,
        )
        self.aggregator_error_rate = Gauge(
            "zmartd_aggregator_failed_cycle_ratio",
            "Failed cycles / all cycles since start (target: 0, no unexplained failures)",
            registry=r,
        )
        self.aggregator_tally = Histogram(
            "zmartd_aggregator_tally_seconds",
            "Duration of one SQL tally of all open markets",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )


_BY_REGISTRY: WeakKeyDictionary[CollectorRegistry, SenderMetrics] = WeakKeyDictionary()


def sender_metrics(registry: CollectorRegistry) -> SenderMetrics:
    found = _BY_REGISTRY.get(registry)
    if found is None:
        found = _BY_REGISTRY[registry] = SenderMetrics(registry)
    return found
