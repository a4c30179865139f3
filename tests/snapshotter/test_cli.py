"""``zmartd snapshot --date ... [--market ...]`` as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import trio

from tests.snapshotter.conftest import add_post, reset
from tests.snapshotter.test_core import D0, at
from tests.storage.factories import address, market_id
from zmartd.snapshotter.cid import cid_of
from zmartd.storage import anchors
from zmartd.storage.blobs import BlobStore
from zmartd.storage.database import Database


async def _zmartd(config: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-m", "zmartd", "snapshot", "-c", str(config), *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


@pytest.mark.slow
async def test_snapshot_command(db: Database, module_dsn: str, tmp_path: Path) -> None:
    await reset(db, 1, 2)
    await add_post(db, 1, at(D0, 9), "cli one")
    await add_post(db, 2, at(D0, 9), "cli two")
    config = tmp_path / "zmartd.toml"
    config.write_text(
        f'[daemon]\ndata_dir = "{tmp_path / "var"}"\n'
        f'[database]\ndsn = "{module_dsn}"\n[log]\nlevel = "warning"\n'
    )
    done = await _zmartd(config, "--date", D0.isoformat())
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    made = await anchors.list_anchors(db, limit=10)
    assert len(made) == 3
    store = BlobStore.under(tmp_path / "var")
    for anchor in made:
        assert anchor.cid in out
        path = store.path(anchor.cid)
        assert path is not None and cid_of(path.read_bytes()) == anchor.cid
    assert "2 snapshot(s) made" in out

    again = await _zmartd(config, "--date", D0.isoformat(), "--market", address(1))
    assert again.returncode == 0 and "0 snapshot(s) made, 1 already complete" in (
        again.stdout.decode()
    )
    assert len(await anchors.list_anchors(db, limit=10)) == 3

    bad = await _zmartd(config, "--date", "2026-13-01")
    assert bad.returncode == 2 and b"expected YYYY-MM-DD" in bad.stderr
    future = await _zmartd(config, "--date", "2999-01-01")
    assert future.returncode == 2 and b"has not started yet" in future.stderr
    unknown = await _zmartd(config, "--date", D0.isoformat(), "--market", market_id(9))
    assert unknown.returncode == 2 and b"no market" in unknown.stderr
    assert at(D0) + timedelta(days=1) == made[0].period_end
