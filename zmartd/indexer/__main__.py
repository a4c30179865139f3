"""``python -m zmartd.indexer --config FILE``: the indexer actor alone.

The same :func:`zmartd.indexer.actor.run` the daemon supervises, without
the rest of the tree: for a dedicated indexer process beside API-only
instances, and for the crash tests (it starts in about a second, where the
whole daemon imports the HTTP stack first).  Needs ``[database] dsn`` (no
embedded server) and a reachable chain (``chain_endpoints``).  SIGTERM or
SIGINT stops it cleanly; SIGKILL at any point is safe (exactly-once).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio
import trio_asyncio

from zmartd.bus import Bus
from zmartd.config import Config, load_or_report
from zmartd.context import ActorContext, Health
from zmartd.indexer import actor
from zmartd.model.services import DATABASE
from zmartd.observability import Metrics, configure_logging
from zmartd.runtime import tune_gc
from zmartd.services import Services
from zmartd.storage.database import Database

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zmartd.indexer", description="run the chain indexer alone"
    )
    parser.add_argument("-c", "--config", required=True, type=Path)
    args = parser.parse_args(argv)
    cfg = load_or_report(args.config, "python -m zmartd.indexer")
    if cfg is None:
        return 2
    if not cfg.database.dsn:
        print("python -m zmartd.indexer: [database] dsn is required", file=sys.stderr)
        return 2
    configure_logging(cfg.log.level, cfg.log.format)
    tune_gc()
    return trio.run(_run, cfg)


async def _run(cfg: Config) -> int:
    stopping = trio.Event()
    async with trio_asyncio.open_loop():
        db = await Database.connect(
            cfg.database.dsn.reveal(),
            min_size=1,
            max_size=4,
            statement_timeout=cfg.database.statement_timeout,
        )
        try:
            ctx = ActorContext(
                name="indexer",
                config=cfg,
                bus=Bus(),
                metrics=Metrics(),
                services=Services(),
                health=Health(),
                statuses=lambda: [],
                facts=lambda: {},
            )
            ctx.services.provide(DATABASE, db)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_signals, stopping)
                await nursery.start(actor.run, ctx, stopping)
                await stopping.wait()
                nursery.cancel_scope.deadline = trio.current_time() + 5.0
        finally:
            await db.close()
    return 0


async def _signals(stopping: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            stopping.set()
            return


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
