"""Command line: ``zmartd [--config PATH] [COMMAND]``.

Commands (``run`` is the default)::

    zmartd --config zmartd.toml              run the daemon
    zmartd run --config zmartd.toml          the same
    zmartd check-config --config FILE        validate; print the effective config (secrets redacted)
    zmartd config dump --config FILE         the effective config as TOML (secrets redacted)
    zmartd tree --config FILE                the supervisor tree and bus topics
    zmartd migrate --config FILE             apply pending database migrations
    zmartd migrate --status --config FILE    list applied/pending migrations, change nothing
    zmartd migrate --dry-run --config FILE   say what would be applied, change nothing
    zmartd devchain [--config FILE] [--port N] [--ws-port N] [--seed demo|none] [--state FILE]
                                             run the local chain double (JSON-RPC + PubSub)
    zmartd backfill --from-slot N | --signature SIG [--batch-size N] --config FILE
                                             re-scan the chain history into the database once
    zmartd intents [--state STATE] --config FILE  list the sender's intents (newest first)
    zmartd intents retry ID --config FILE    re-queue a failed intent after fixing its cause
    zmartd --version

Results go to stdout, diagnostics to stderr; exit status 0 means success.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from zmartd import __version__
from zmartd.config import Config, dump_toml, load_or_report
from zmartd.runtime import tune_gc

__all__ = ["main"]

DEFAULT_CONFIG = "zmartd.toml"


def _add_config_arg(parser: argparse.ArgumentParser, *, top: bool) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        default=(os.environ.get("ZMARTD_CONFIG", DEFAULT_CONFIG) if top else argparse.SUPPRESS),
        help="configuration file (default: $ZMARTD_CONFIG or ./zmartd.toml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zmartd",
        description="ZMART backend daemon",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"zmartd {__version__}")
    _add_config_arg(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in (
        ("run", "run the daemon (default)"),
        ("check-config", "validate the config and print it (secrets redacted)"),
        ("tree", "print the supervisor tree"),
    ):
        _add_config_arg(sub.add_parser(name, help=help_text, description=help_text), top=False)
    migrate_help = (
        "apply pending database migrations (the embedded PostgreSQL is started "
        "when database.dsn is empty)"
    )
    migrate = sub.add_parser("migrate", help=migrate_help, description=migrate_help)
    _add_config_arg(migrate, top=False)
    mode = migrate.add_mutually_exclusive_group()
    mode.add_argument(
        "--status",
        action="store_true",
        help="list every migration as applied/pending/changed/missing",
    )
    mode.add_argument(
        "--dry-run", action="store_true", help="check the database and list what would be applied"
    )
    devchain = sub.add_parser(
        "devchain",
        help="run the local chain double (JSON-RPC + PubSub)",
        description="run the local chain double (JSON-RPC + PubSub)",
    )
    _add_config_arg(devchain, top=False)
    # lazy: start-up time (each command's own module is imported when its parser is built)
    from zmartd.devchain.cli import add_arguments as add_devchain_arguments

    add_devchain_arguments(devchain)
    backfill_help = "re-scan the chain history into the database once, then exit"
    backfill = sub.add_parser("backfill", help=backfill_help, description=backfill_help)
    _add_config_arg(backfill, top=False)
    # lazy: start-up time (see above)
    from zmartd.indexer.cli import add_arguments as add_backfill_arguments

    add_backfill_arguments(backfill)
    intents_help = "list the transaction sender's intents, or re-queue a failed one"
    intents = sub.add_parser("intents", help=intents_help, description=intents_help)
    _add_config_arg(intents, top=False)
    # lazy: start-up time (see above)
    from zmartd.sender.cli import add_arguments as add_intents_arguments

    add_intents_arguments(intents)
    snapshot_help = (
        "snapshot one UTC day's discussions (every active market, or --market) "
        "through the configured backend, then exit"
    )
    snapshot = sub.add_parser("snapshot", help=snapshot_help, description=snapshot_help)
    _add_config_arg(snapshot, top=False)
    # lazy: start-up time (see above)
    from zmartd.snapshotter.cli import add_arguments as add_snapshot_arguments

    add_snapshot_arguments(snapshot)
    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    _add_config_arg(
        config_sub.add_parser("dump", help="print the effective config as TOML"), top=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    tune_gc()
    path = Path(args.config)
    if command == "run":
        # lazy: start-up time, here and below (only the chosen command's modules load)
        from zmartd.app import main_sync

        return main_sync(path)
    if command == "check-config":
        return _check_config(path)
    if command == "config":
        return _config_dump(path)
    if command == "tree":
        return _tree(path)
    if command == "migrate":
        return _migrate(path, status=args.status, dry_run=args.dry_run)
    if command == "devchain":
        # lazy: start-up time
        from zmartd.devchain.cli import main as devchain_main

        return devchain_main(args, path)
    if command == "intents":
        # lazy: start-up time
        from zmartd.sender.cli import main as intents_main

        return intents_main(args, path)
    if command == "backfill":
        # lazy: start-up time
        from zmartd.indexer.cli import main as backfill_main

        return backfill_main(args, path)
    if command == "snapshot":
        # lazy: start-up time
        from zmartd.snapshotter.cli import main as snapshot_main

        return snapshot_main(args, path)
    raise AssertionError(command)  # pragma: no cover - argparse rejects others


def _check_config(path: Path) -> int:
    cfg = load_or_report(path)
    if cfg is None:
        return 1
    sys.stdout.write(dump_toml(cfg))
    print(f"zmartd: {path}: configuration is valid", file=sys.stderr)
    return 0


def _config_dump(path: Path) -> int:
    cfg = load_or_report(path)
    if cfg is None:
        return 1
    sys.stdout.write(dump_toml(cfg))
    return 0


def _tree(path: Path) -> int:
    # lazy: start-up time (the tree imports every actor; other commands need none)
    from zmartd.app import policy_from
    from zmartd.bus import TOPICS
    from zmartd.tree import TREE, enabled_actors

    cfg = load_or_report(path)
    if cfg is None:
        return 1
    p = policy_from(cfg)
    print(f"zmartd {__version__}")
    print(
        f"└── root supervisor  one_for_one, at most {p.max_restarts} restarts in "
        f"{p.restart_window:g}s (then exit 1), backoff {p.backoff_initial:g}s..{p.backoff_max:g}s "
        f"±{p.backoff_jitter:.0%}"
    )
    enabled = enabled_actors(cfg)
    width = max((len(d.name) for d in TREE), default=0)
    for i, decl in enumerate(enabled):
        branch = "└──" if i == len(enabled) - 1 else "├──"
        required = "required" if decl.required(cfg) else "optional"
        print(
            f"    {branch} {decl.name:<{width}}  {decl.restart.value:<9}  {required}  "
            f"stop≤{decl.shutdown_timeout(cfg):g}s  [{', '.join(decl.sections)}]  "
            f"{decl.description}"
        )
    disabled = [d.name for d in TREE if not d.enabled(cfg)]
    if disabled:
        print(f"disabled by config: {', '.join(disabled)}")
    print("bus topics:")
    for spec in TOPICS.values():
        print(
            f"    {spec.name:<14} {spec.message_type.__name__:<15} capacity {spec.capacity:<5} "
            f"{spec.policy.value:<11} ({spec.why})"
        )
    return 0


def _migrate(path: Path, *, status: bool, dry_run: bool) -> int:
    from functools import partial

    # lazy: start-up time (trio and logging are only needed by this command)
    import trio

    from zmartd.observability import configure_logging

    cfg = load_or_report(path)
    if cfg is None:
        return 1
    configure_logging(cfg.log.level, cfg.log.format)
    return trio.run(partial(_migrate_async, cfg, status=status, dry_run=dry_run))


async def _migrate_async(cfg: Config, *, status: bool, dry_run: bool) -> int:
    """Connect like the storage actor (embedded server when no DSN), then migrate."""
    from contextlib import AsyncExitStack

    # lazy: start-up time (asyncpg and the storage layer only for this command)
    import trio_asyncio

    from zmartd.storage.database import Database
    from zmartd.storage.embedded import EmbeddedPostgresError, database_dsn
    from zmartd.storage.migrate import MigrationError, migrate, migration_status

    async with AsyncExitStack() as stack:
        try:
            dsn = await database_dsn(cfg, stack)
        except EmbeddedPostgresError as exc:
            print(f"zmartd migrate: {exc}", file=sys.stderr)
            return 1
        async with trio_asyncio.open_loop():
            try:
                db = await Database.connect(
                    dsn,
                    min_size=1,
                    max_size=1,
                    statement_timeout=cfg.database.statement_timeout,
                )
            except Exception as exc:
                print(
                    f"zmartd migrate: cannot connect to the database: {type(exc).__name__}: {exc}",
                    file=sys.stderr,
                )
                return 1
            try:
                if status:
                    rows = await migration_status(db)
                    for row in rows:
                        when = row.applied_at.isoformat() if row.applied_at else ""
                        print(f"{row.label:<40} {row.state:<8} {when}".rstrip())
                    bad = [r for r in rows if r.state in ("changed", "missing")]
                    return 1 if bad else 0
                report = await migrate(db, dry_run=dry_run)
            except MigrationError as exc:
                print(f"zmartd migrate: {exc}", file=sys.stderr)
                return 1
            finally:
                await db.close()
    verb = "would apply" if dry_run else "applied"
    for mig in report.applied:
        print(f"{verb} {mig.label}")
    total = len(report.applied) + len(report.already_applied)
    if dry_run and report.applied:
        print(
            f"{len(report.applied)} pending, {len(report.already_applied)} applied; "
            "nothing was changed"
        )
    else:
        print(f"database is up to date ({total} migrations applied)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
