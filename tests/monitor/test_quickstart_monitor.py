"""The Quickstart: ``zmartd --config zmartd.toml.example`` as is (free ports and a
private data dir aside) finalizes the demo's rain-paris -- RESOLVING, its 72 h
dispute window passed on the chain double's clock -- on the monitor's first
cycles: in the log and in ``GET /v1/markets/{id}`` (state 5, FINALIZED)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from tests.test_e2e_daemon import Daemon, data_dir, example_config, free_port  # noqa: F401
from zmartd.config import load_config

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "zmartd.toml.example"


def test_quickstart_finalizes_the_demo_market_past_its_window(
    tmp_path: Path,
    data_dir: Path,  # noqa: F811
) -> None:
    cfg = load_config(EXAMPLE, env={})
    interval = cfg.monitor.interval
    port = free_port()
    daemon = Daemon(example_config(tmp_path, port, data_dir), port)
    market = hashlib.sha256(b"zmartd demo market rain-paris").hexdigest()
    try:
        daemon.wait_ready(120)
        ready = time.monotonic()

        def finalizing() -> list[dict[str, object]]:
            return [
                e
                for e in daemon.log_events()
                if e.get("event") == "dispute window passed: finalizing market"
            ]

        while not finalizing():
            # the monitor's first cycle starts once the GlobalConfig is indexed
            assert time.monotonic() - ready < interval + 5, daemon.logs()[-3000:]
            time.sleep(0.25)
        while True:
            doc = daemon.get(f"/v1/markets/{market}").json()
            if doc.get("status") == "FINALIZED":
                break
            # the sender and the indexer take a second; a market detail already in the
            # hot-read cache may be served up to [http] cache_ttl longer
            assert time.monotonic() - ready < interval + cfg.http.cache_ttl + 10, (
                doc.get("status"),
                daemon.logs()[-3000:],
            )
            time.sleep(0.25)
        assert doc["state"] == 5 and doc["final_outcome"] == "NO"
        assert doc["finalized_at"] is not None
        found = finalizing()
        assert {e["market"] for e in found} == {market}
        # one intent, stored by one cycle, whatever the number of cycles that saw the market
        assert len(found) == 1
    finally:
        daemon.stop()
