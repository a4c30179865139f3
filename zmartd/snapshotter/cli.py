"""``zmartd snapshot --date YYYY-MM-DD [--market ID]``: snapshot one day by hand.

Connects to the configured database (the embedded server when ``database.dsn`` is
empty; migrations are applied first) and backend, snapshots every market with discussion
activity that day (or just ``--market``, by id or address) and, for a whole day, its root
document; prints one line per stored snapshot and exits 0 (1 when any snapshot failed or
could not be verified, 2 on bad arguments).  A day still in progress is snapshotted up to
now (partial; the scheduled run makes the complete one after midnight).  Safe next to a
running daemon: a day already complete is not made again, and the same content is
recorded once.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack
from datetime import date
from functools import partial
from pathlib import Path

import trio

from zmartd.config import Config, load_or_report

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--date", required=True, metavar="YYYY-MM-DD", help="the UTC day to snapshot"
    )
    parser.add_argument(
        "--market", metavar="ID", help="only this market (64-hex market id or base58 address)"
    )


def main(args: argparse.Namespace, path: Path) -> int:
    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        print(f"zmartd snapshot: --date: expected YYYY-MM-DD, got {args.date!r}", file=sys.stderr)
        return 2
    cfg = load_or_report(path)
    if cfg is None:
        return 1
    # lazy: start-up time (logging's dependencies only once this command runs)
    from zmartd.observability import configure_logging

    configure_logging(cfg.log.level, cfg.log.format)
    return trio.run(partial(_run, cfg, day, args.market))


async def _run(cfg: Config, day: date, market: str | None) -> int:
    # lazy: start-up time (this module's parser is built for every zmartd command)
    import structlog
    import trio_asyncio
    from prometheus_client import CollectorRegistry

    from zmartd.snapshotter.backends import make_backend
    from zmartd.snapshotter.core import Snapshotter
    from zmartd.snapshotter.metrics import SnapshotMetrics
    from zmartd.storage import markets
    from zmartd.storage.blobs import BlobStore
    from zmartd.storage.database import Database
    from zmartd.storage.embedded import EmbeddedPostgresError, database_dsn
    from zmartd.storage.migrate import MigrationError, migrate

    async with AsyncExitStack() as stack:
        try:
            dsn = await database_dsn(cfg, stack)
        except EmbeddedPostgresError as exc:
            print(f"zmartd snapshot: {exc}", file=sys.stderr)
            return 1
        async with trio_asyncio.open_loop():
            try:
                db = await Database.connect(
                    dsn, min_size=1, max_size=4, statement_timeout=cfg.database.statement_timeout
                )
            except Exception as exc:
                print(
                    f"zmartd snapshot: cannot connect to the database: {type(exc).__name__}: {exc}",
                    file=sys.stderr,
                )
                return 1
            backend = make_backend(cfg.snapshotter, cfg.daemon.data_dir)
            try:
                await migrate(db)
                market_id = None
                if market is not None:
                    found = await markets.get_market(
                        db, market
                    ) or await markets.get_market_by_address(db, market)
                    if found is None:
                        print(f"zmartd snapshot: no market {market}", file=sys.stderr)
                        return 2
                    market_id = found.market_id
                snap = Snapshotter(
                    db,
                    backend,
                    workdir=BlobStore.under(cfg.daemon.data_dir).workdir(),
                    metrics=SnapshotMetrics(CollectorRegistry()),
                    log=structlog.get_logger("zmartd.snapshot"),
                )
                try:
                    result = await snap.snapshot_day(day, market_id=market_id)
                except ValueError as exc:
                    print(f"zmartd snapshot: {exc}", file=sys.stderr)
                    return 2
            except (MigrationError, OSError) as exc:
                print(f"zmartd snapshot: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
            finally:
                with trio.CancelScope(shield=True):
                    await backend.aclose()
                await db.close()
    for anchor in result.made:
        print(
            f"{anchor.market_id}  {anchor.cid}  {anchor.size_bytes} bytes  "
            f"{anchor.post_count} posts"
        )
    if result.root is not None:
        print(f"root  {result.root.cid}  {result.root.size_bytes} bytes")
    where = (
        "served at /ipfs/<cid>"
        if backend.name == "local"
        else f"stored through the {backend.name} backend"
    )
    print(
        f"{day.isoformat()}: {len(result.made)} snapshot(s) made, {result.skipped} already "
        f"complete, {len(result.failed)} failed; {where}"
    )
    return 0 if result.ok else 1
