"""The demo markets get their off-chain metadata in local mode, once."""

from __future__ import annotations

from pathlib import Path

import trio

from zmartd.app import Daemon
from zmartd.config import load_config
from zmartd.devchain.actor import DEVCHAIN
from zmartd.devchain.demo_metadata import demo_metadata
from zmartd.devchain.seed import DEMO_MARKETS
from zmartd.model.services import DATABASE
from zmartd.storage import markets as market_storage
from zmartd.tree import TREE


async def test_demo_markets_get_their_titles_once(tmp_path: Path, pg_dsn: str) -> None:
    config = tmp_path / "z.toml"
    config.write_text(
        f'[daemon]\ndata_dir = "{tmp_path}"\n[database]\ndsn = "{pg_dsn}"\n'
        '[devchain]\nport = 0\nws_port = 0\n[log]\nlevel = "warning"\n'
    )
    tree = tuple(d for d in TREE if d.name in ("devchain", "storage", "demo_metadata"))
    daemon = Daemon(load_config(config), None, tree)
    async with trio.open_nursery() as n:
        n.start_soon(daemon.run)
        with trio.fail_after(30):
            while (
                not daemon.supervisor.ready
                or daemon.supervisor.status("demo_metadata").state.value != "running"
            ):
                await trio.sleep(0.05)
        devchain = await daemon.services.get(DEVCHAIN)
        db = await daemon.services.get(DATABASE)
        items = demo_metadata(devchain.seed)
        assert len(items) == len(DEMO_MARKETS)
        for market_id, creator, meta in items:
            stored = await market_storage.get_metadata(db, market_id, creator)
            assert stored is not None and stored.title == meta.title
            assert stored.creator == creator and stored.category
        # A second import (e.g. the next start) inserts nothing and overwrites nothing.
        assert await market_storage.import_metadata(db, items) == 0
        await daemon.shutdown()
