"""The snapshotter's Prometheus metrics, registered once per registry (actors restart; a
metric family cannot be registered twice; the CLI uses a registry of its own)."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["SnapshotMetrics", "snapshot_metrics"]


class SnapshotMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.made = Counter(
            "zmartd_snapshots_total",
            "Snapshots stored, CID-verified and anchored, by kind (discussions, discussions_root)",
            ["kind"],
            registry=r,
        )
        self.bytes = Counter(
            "zmartd_snapshot_bytes_total", "Bytes of the snapshots anchored", registry=r
        )
        self.failures = Counter(
            "zmartd_snapshot_failures_total",
            "Snapshots not anchored, by reason: cid_mismatch (the backend reported another "
            "CID than ours: an alert), backend (the backend failed or was unreachable)",
            ["reason"],
            registry=r,
        )
        self.pruned = Counter(
            "zmartd_snapshots_pruned_total",
            "Snapshots unpinned/deleted after the retention period",
            registry=r,
        )
        self.last_success = Gauge(
            "zmartd_snapshot_last_success_timestamp_seconds",
            "Unix time of the last day whose snapshots and root were all anchored",
            registry=r,
        )
        self.leader = Gauge(
            "zmartd_snapshotter_leader",
            "1 while this instance holds the snapshotter lock",
            registry=r,
        )


_BY_REGISTRY: WeakKeyDictionary[CollectorRegistry, SnapshotMetrics] = WeakKeyDictionary()


def snapshot_metrics(registry: CollectorRegistry) -> SnapshotMetrics:
    found = _BY_REGISTRY.get(registry)
    if found is None:
        found = _BY_REGISTRY[registry] = SnapshotMetrics(registry)
    return found
