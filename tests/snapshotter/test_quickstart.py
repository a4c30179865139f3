"""The Quickstart, as an operator runs it: the example config (demo seed), the daemon as a
real process, ``zmartd snapshot --date <today>`` as another, and ``/ipfs/{cid}`` served
by the daemon.  PostgreSQL is the test server (a private schema) rather than the
embedded one, so that two processes share it without depending on pgserver's sharing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.storage.conftest import create_schema, schema_dsn
from tests.test_e2e_daemon import Daemon, example_config, free_port
from zmartd.snapshotter.cid import cid_of
from zmartd.snapshotter.document import SCHEMA

pytestmark = pytest.mark.slow


def _demo_posts(d: Daemon, timeout: float) -> dict[str, int]:
    """market id -> posts, once the demo discussions are written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert d.proc.poll() is None, d.logs()
        counts: dict[str, int] = {}
        for market in d.get("/v1/markets?limit=100").json()["items"]:
            threads = d.get(f"/v1/markets/{market['market_id']}/discussions").json()["items"]
            posts = sum(1 + len(t["replies"]) for t in threads)
            if posts:
                counts[market["market_id"]] = posts
        if sum(counts.values()) >= 6:
            return counts
        time.sleep(0.5)
    raise AssertionError(f"no demo posts within {timeout}s\n{d.logs()}")


def test_quickstart_snapshot_today(tmp_path: Path, pg_dsn: str) -> None:
    create_schema(pg_dsn, "s_quickstart")
    port = free_port()
    config = example_config(tmp_path, port, tmp_path / "var")
    text = config.read_text()
    text = re.sub(
        r'^dsn = ""$', f'dsn = "{schema_dsn(pg_dsn, "s_quickstart")}"', text, count=1, flags=re.M
    )
    config.write_text(text)
    d = Daemon(config, port)
    try:
        d.wait_ready(timeout=60)
        posts = _demo_posts(d, timeout=60)
        today = datetime.now(UTC).date().isoformat()
        out = subprocess.run(
            [sys.executable, "-m", "zmartd", "snapshot", "--date", today, "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr
        lines = [line.split() for line in out.stdout.splitlines() if "  b" in line]
        made = {parts[0]: parts[1] for parts in lines}
        assert set(posts) <= set(made) and "root" in made, out.stdout
        for market_id, cid in made.items():
            got = httpx.get(f"{d.base}/ipfs/{cid}", timeout=5)
            assert got.status_code == 200 and cid_of(got.content) == cid
            assert got.headers["etag"] == f'"{cid}"'
            doc = json.loads(got.content)
            if market_id != "root":
                assert doc["schema"] == SCHEMA and doc["counts"]["total"] == posts[market_id]
        listed = d.get(f"/v1/markets/{next(iter(posts))}/snapshots").json()["items"]
        assert listed and listed[0]["day"] == today and listed[0]["complete"] is False
    finally:
        d.stop()
