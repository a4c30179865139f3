"""The indexer's Prometheus metrics, registered once per daemon registry
(actors restart; a metric family cannot be registered twice)."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["IndexerMetrics", "indexer_metrics"]


class IndexerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.transactions = Counter(
            "zmartd_indexer_transactions_total",
            "Program transactions seen, by ingest path and result (applied, replay, failed_tx)",
            ["path", "result"],
            registry=r,
        )
        self.events = Counter("zmartd_indexer_events_total", "zmart events applied", registry=r)
        self.dead_letters = Counter(
            "zmartd_indexer_dead_letters_total",
            "Transactions parked in dead_letters (undecodable or unappliable)",
            registry=r,
        )
        self.webhook_rejected = Counter(
            "zmartd_indexer_webhook_rejected_total",
            "Webhook deliveries not applied as sent, by reason: not_found (no such "
            "transaction at confirmed), mismatch (the payload differs from the chain's "
            "transaction; the chain's is applied)",
            ["reason"],
            registry=r,
        )
        self.reverted = Counter(
            "zmartd_indexer_reverted_total",
            "Confirmed transactions that disappeared before finalization and were reverted",
            registry=r,
        )
        self.drift = Counter(
            "zmartd_reconcile_drift_total",
            "Rows found different from the chain by reconciliation, by kind",
            ["kind"],
            registry=r,
        )
        self.drift_alert = Gauge(
            "zmartd_reconcile_drift_alert",
            "Markets that drifted in two reconciliations in a row (should be 0)",
            registry=r,
        )
        self.lag = Histogram(
            "zmartd_indexer_apply_seconds",
            "Time from notification to commit, live path",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.backfill_remaining = Gauge(
            "zmartd_indexer_backfill_remaining",
            "Transactions left in the running backfill",
            registry=r,
        )
        self.watermark = Gauge(
            "zmartd_indexer_watermark_slot", "Slot of the contiguous backfill watermark", registry=r
        )
        self.leader = Gauge(
            "zmartd_indexer_leader", "1 while this instance holds the indexer lock", registry=r
        )


_BY_REGISTRY: WeakKeyDictionary[CollectorRegistry, IndexerMetrics] = WeakKeyDictionary()


def indexer_metrics(registry: CollectorRegistry) -> IndexerMetrics:
    found = _BY_REGISTRY.get(registry)
    if found is None:
        found = _BY_REGISTRY[registry] = IndexerMetrics(registry)
    return found
