"""The Grafana dashboard references only metrics that /metrics actually exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from zmartd.indexer.metrics import indexer_metrics
from zmartd.observability import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "zmartd-dashboard.json"


def exposed() -> set[str]:
    """Every sample name the daemon's registry can expose (families registered by the
    daemon and by the actors that add their own)."""
    metrics = Metrics()
    indexer_metrics(metrics.registry)
    names: set[str] = set()
    registry: CollectorRegistry = metrics.registry
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{s}" for s in ("bucket", "sum", "count"))
    return names


def test_every_dashboard_metric_exists() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\bzmartd_[a-z0-9_]+", e)}
    assert used, "the dashboard should chart something"
    missing = used - exposed()
    assert not missing, f"the dashboard references metrics /metrics never exposes: {missing}"
