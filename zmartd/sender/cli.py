"""``zmartd intents``: what the sender did and has left to do, for operators.

    zmartd intents [--state pending|signed|landed|failed ...] [--limit N] [--json]
    zmartd intents retry ID

``retry`` re-queues a *failed* intent (its program error was fixed by a
human: e.g. the market needed more votes, the payer lamports); the running
sender picks it up at its next scan and signs it afresh.  Exit status 1: the
intent does not exist or is not failed; 2: bad configuration or database.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import trio
import trio_asyncio

from zmartd.config import ConfigError, load_config
from zmartd.storage import intents as store
from zmartd.storage.intents import IntentRecord
from zmartd.storage.records import NotFound, NotPermitted

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        action="append",
        choices=store.INTENT_STATES,
        help="only intents in this state (repeatable)",
    )
    parser.add_argument("--limit", type=int, default=50, help="newest N (default 50, max 1000)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    sub = parser.add_subparsers(dest="intents_command", metavar="SUBCOMMAND")
    retry = sub.add_parser("retry", help="re-queue a failed intent after fixing its cause")
    retry.add_argument("id", type=int, help="the intent id (first column of the list)")
    retry.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="configuration file (default: $ZMARTD_CONFIG or ./zmartd.toml)",
    )


def _row(i: IntentRecord) -> dict[str, Any]:
    return {
        "id": i.id,
        "kind": i.kind,
        "market_id": i.market_id,
        "args": i.args,
        "state": i.state,
        "attempts": i.attempts,
        "sends": i.sends,
        "signature": i.signature,
        "error_name": i.error_name,
        "last_error": i.last_error,
        "created_at": i.created_at.isoformat(),
        "updated_at": i.updated_at.isoformat(),
    }


def _print_table(items: list[IntentRecord]) -> None:
    print(f"{'ID':>6}  {'STATE':<7}  {'KIND':<24}  {'MARKET':<12}  {'ATT':>3}  SIGNATURE / ERROR")
    for i in items:
        note = i.signature or ""
        if i.state == "failed" or (i.state == "pending" and i.last_error):
            note = f"{i.error_name or ''} {i.last_error or ''}".strip()
        print(
            f"{i.id:>6}  {i.state:<7}  {i.kind:<24}  {i.market_id[:12]:<12}  "
            f"{i.attempts:>3}  {note}"
        )


async def _run(cfg: Any, args: argparse.Namespace) -> int:
    # lazy: start-up time (this module's parser is built for every zmartd command)
    from zmartd.storage.database import Database
    from zmartd.storage.embedded import database_dsn

    async with AsyncExitStack() as stack:
        dsn = await database_dsn(cfg, stack)
        async with trio_asyncio.open_loop():
            try:
                db = await Database.connect(
                    dsn, min_size=1, max_size=1, statement_timeout=cfg.database.statement_timeout
                )
            except Exception as exc:
                print(
                    f"zmartd intents: cannot connect to the database: {type(exc).__name__}: {exc}",
                    file=sys.stderr,
                )
                return 2
            try:
                if getattr(args, "intents_command", None) == "retry":
                    try:
                        intent = await store.retry_intent(db, args.id)
                    except (NotFound, NotPermitted) as exc:
                        print(f"zmartd intents retry: {exc}", file=sys.stderr)
                        return 1
                    print(
                        f"intent {intent.id} ({intent.kind}) re-queued; the sender signs it "
                        "again at its next scan"
                    )
                    return 0
                items = await store.list_intents(
                    db, states=tuple(args.state or ()), limit=args.limit
                )
            finally:
                await db.close()
    if args.json:
        for i in items:
            print(json.dumps(_row(i)))
    else:
        _print_table(items)
    return 0


def main(args: argparse.Namespace, config_path: Path) -> int:
    """Entry point used by ``zmartd intents``."""
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        print(f"zmartd intents: invalid configuration in {config_path}:", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 2
    if not 1 <= args.limit <= store.MAX_PAGE:
        print(f"zmartd intents: --limit must be 1..{store.MAX_PAGE}", file=sys.stderr)
        return 2
    return trio.run(partial(_run, cfg, args))
