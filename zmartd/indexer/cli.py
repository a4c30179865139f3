"""``zmartd backfill --from-slot N | --signature SIG``: a one-shot backfill.

Connects to the configured database (the embedded server when
``database.dsn`` is empty; migrations are applied first) and chain
(``chain_endpoints``: in local mode the devchain ports of a running daemon),
re-scans the program's history from slot ``N`` (or from signature ``SIG``,
which is processed too) up to the newest confirmed transaction, prints a
summary and exits (0 on success, 1 on error).  It is safe next to a running
indexer: every effect is exactly-once, and the contiguous watermark only
moves when the re-scan reaches down to it.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import trio

from zmartd.config import Config, chain_endpoints, load_or_report

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument(
        "--from-slot",
        type=int,
        metavar="N",
        help="re-scan every program transaction at or after slot N",
    )
    start.add_argument(
        "--signature",
        metavar="SIG",
        help="re-scan from this transaction signature (inclusive) to the newest",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="transactions per database transaction (default: the "
        "backfill's unit size, zmartd.indexer.backfill.UNIT_SIZE)",
    )


def main(args: argparse.Namespace, path: Path) -> int:
    cfg = load_or_report(path)
    if cfg is None:
        return 1
    if args.from_slot is not None and args.from_slot < 0:
        print("zmartd backfill: --from-slot must be >= 0", file=sys.stderr)
        return 2
    if args.batch_size is not None and args.batch_size < 1:
        print("zmartd backfill: --batch-size must be >= 1", file=sys.stderr)
        return 2
    # lazy: start-up time (logging's dependencies only once this command runs)
    from zmartd.observability import configure_logging

    configure_logging(cfg.log.level, cfg.log.format)
    return trio.run(partial(_run, cfg, args.from_slot, args.signature, args.batch_size))


async def _run(cfg: Config, from_slot: int | None, signature: str | None, batch: int | None) -> int:
    # lazy: start-up time (this module's parser is built for every zmartd command)
    import trio_asyncio
    from solders.signature import Signature

    from zmartd.chain.rpc import RpcClient, RpcClientError
    from zmartd.indexer.backfill import UNIT_SIZE, backfill
    from zmartd.indexer.pipeline import Indexer
    from zmartd.indexer.source import ChainSource
    from zmartd.storage.database import Database
    from zmartd.storage.embedded import EmbeddedPostgresError, database_dsn
    from zmartd.storage.migrate import MigrationError, migrate

    if signature is not None:
        try:
            Signature.from_string(signature)
        except ValueError:
            print(f"zmartd backfill: {signature!r} is not a transaction signature", file=sys.stderr)
            return 2
    endpoints = chain_endpoints(cfg)
    async with AsyncExitStack() as stack:
        try:
            dsn = await database_dsn(cfg, stack)
        except EmbeddedPostgresError as exc:
            print(f"zmartd backfill: {exc}", file=sys.stderr)
            return 1
        async with trio_asyncio.open_loop():
            try:
                db = await Database.connect(
                    dsn, min_size=1, max_size=4, statement_timeout=cfg.database.statement_timeout
                )
            except Exception as exc:
                print(
                    f"zmartd backfill: cannot connect to the database: {type(exc).__name__}: {exc}",
                    file=sys.stderr,
                )
                return 1
            try:
                await migrate(db)
                async with RpcClient(
                    list(endpoints.rpc_urls),
                    timeout=cfg.chain.request_timeout,
                    max_retries=cfg.chain.max_retries,
                ) as rpc:
                    indexer = Indexer(
                        db, ChainSource(rpc, cfg.chain.program_id), None, None, publish=False
                    )
                    await indexer.load_state()
                    p = await backfill(
                        indexer,
                        reason="cli",
                        from_slot=from_slot,
                        from_signature=signature,
                        batch_size=batch or UNIT_SIZE,
                    )
            except (MigrationError, RpcClientError, OSError, RuntimeError) as exc:
                print(f"zmartd backfill: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
            finally:
                await db.close()
    print(
        f"backfill done: {p.total} transactions listed, {p.applied} applied, "
        f"{p.skipped} already indexed, {p.dead} parked in dead_letters, {p.events} events"
    )
    return 0
