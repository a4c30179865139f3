"""The Quickstart: ``zmartd --config zmartd.toml.example`` as is (free ports and a
private data dir aside) approves the demo's community-pick proposal -- on
chain, in the log and in ``GET /v1/markets/{id}`` -- within its first
aggregator cycles, with no key configured (local mode uses the demo's public
admin key)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from tests.test_e2e_daemon import Daemon, example_config, free_port
from zmartd.model.demo import demo_keypair

pytestmark = pytest.mark.slow


def test_quickstart_approves_the_demo_proposal(
    tmp_path: Path, data_dir: Path, daemon_factory: list[Daemon]
) -> None:
    port = free_port()
    daemon = Daemon(example_config(tmp_path, port, data_dir), port)
    daemon_factory.append(daemon)
    daemon.wait_ready(120)
    ready = time.monotonic()
    market = hashlib.sha256(b"zmartd demo market community-pick").hexdigest()
    while True:
        status = daemon.get(f"/v1/markets/{market}").json().get("status")
        if status == "APPROVED":
            break
        assert time.monotonic() - ready < 45, daemon.logs()[-5000:]
        time.sleep(0.25)
    events = daemon.log_events()
    approved = [e for e in events if e.get("event") == "proposal approved"]
    assert [e["market"] for e in approved] == [market]
    assert approved[0]["likes"] == 10 and approved[0]["dislikes"] == 2
    keys = [e for e in events if e.get("event") == "sender keys (public keys only)"]
    assert keys and keys[0]["backend_authority"] == str(demo_keypair("admin").pubkey())
    votes = daemon.get(f"/v1/markets/{market}/votes").json()
    [proposal] = [a for a in votes["aggregations"] if a["kind"] == "proposal"]
    assert proposal["outcome"] == "approved" and proposal["intent"]["state"] == "landed"
    metrics = daemon.get("/metrics").text
    assert 'zmartd_sender_sends_total{kind="approve_proposal"} 1.0' in metrics
    assert "zmartd_sender_confirmation_seconds_count" in metrics
    assert 'zmartd_aggregator_market_outcomes_total{kind="proposal",outcome="approved"}' in metrics
    assert "zmartd_aggregator_failed_cycle_ratio 0.0" in metrics
