"""The vote aggregator's tally, against the real PostgreSQL.

Run from the repository root (needs the PostgreSQL of ``ZMARTD_TEST_PG``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``; a scratch
database is created and dropped)::

    .venv/bin/python bench/aggregator.py                     # 1,000,000 votes, 1,000 markets
    .venv/bin/python bench/aggregator.py --votes 100000      # quicker

It migrates the scratch database, creates ``--markets`` PROPOSED markets and
``--votes`` proposal votes spread over them (one per wallet per market, 80 %
cast through the API, 20 % on chain, 70 % likes), ``VACUUM ANALYZE``\\s, and
then times, in the same run and on the same table:

* **tally** -- :func:`zmartd.storage.aggregator.candidates`, the aggregator's
  real statement: likes and dislikes per open market with the configured
  source filter, joined with the markets and their last aggregation;
* **baseline** -- a plain ``SELECT count(*) FROM proposal_votes``.

Each is run ``--repeat`` times; the best and the median are reported.  The
target is a tally under one second for a million votes.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import os
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import trio
import trio_asyncio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zmartd.storage import aggregator as store
from zmartd.storage.database import Database
from zmartd.storage.migrate import migrate

ADMIN_DSN = os.environ.get("ZMARTD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

#: base58-safe identifiers from md5 (hex without "0", which base58 lacks)
_KEY = "translate(md5({}), '0', 'z')"

MARKETS_SQL = f"""
INSERT INTO markets (market_id, address, creator, state, b_parameter, initial_liquidity,
                     current_liquidity, shares_yes, shares_no, created_at, slot)
SELECT md5('m' || i) || md5('n' || i), {_KEY.format("'a' || i")}, {_KEY.format("'c' || i")},
       0, 100000000000, 100000000, 100000000, 100000000, 100000000, now(), 1
FROM generate_series(1, $1) AS i
"""

VOTES_SQL = f"""
INSERT INTO proposal_votes (market_id, wallet, vote, source, signature, slot)
SELECT md5('m' || m) || md5('n' || m), {_KEY.format("'w' || v")},
       (v % 10) < 7,
       CASE WHEN v % 5 = 0 THEN 'onchain' ELSE 'offchain' END,
       CASE WHEN v % 5 = 0 THEN {_KEY.format("'s' || v")} || {_KEY.format("'t' || v")} END,
       CASE WHEN v % 5 = 0 THEN 1 END
FROM generate_series(0, $1 - 1) AS v, LATERAL (SELECT 1 + v % $2 AS m) AS x
"""


def _with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await fn()
        times.append(time.perf_counter() - started)
    return times, result


async def run(markets: int, votes: int, repeat: int) -> int:
    name = f"zmartd_bench_agg_{secrets.token_hex(4)}"
    admin = await trio_asyncio.aio_as_trio(asyncpg.connect)(ADMIN_DSN)
    await trio_asyncio.aio_as_trio(admin.execute)(f'CREATE DATABASE "{name}"')
    dsn = _with_database(ADMIN_DSN, name)
    try:
        db = await Database.connect(dsn, min_size=1, max_size=2, statement_timeout=600)
        try:
            await migrate(db)

            async def load(con: asyncpg.Connection) -> None:
                await con.execute(MARKETS_SQL, markets)
                await con.execute(VOTES_SQL, votes, markets)

            started = time.perf_counter()
            await db.run("test", load)

            async def vacuum(con: asyncpg.Connection) -> None:
                await con.execute("VACUUM ANALYZE markets")
                await con.execute("VACUUM ANALYZE proposal_votes")

            await db.run("test", vacuum, transaction=False)
            print(
                f"loaded {markets:,} markets and {votes:,} votes in "
                f"{time.perf_counter() - started:.1f} s"
            )

            async def baseline() -> int:
                async def _count(con: asyncpg.Connection) -> int:
                    return int(await con.fetchval("SELECT count(*) FROM proposal_votes"))

                return await db.run("test", _count, transaction=False)

            async def tally() -> list[store.Candidate]:
                return await store.candidates(db, "proposal", "both")

            await tally()  # warm the cache and the prepared statement alike for both
            await baseline()
            count_times, counted = await timed(baseline, repeat)
            tally_times, rows = await timed(tally, repeat)
            assert counted == votes and len(rows) == markets
            assert sum(r.yes + r.no for r in rows) == votes
            only_chain = await store.candidates(db, "proposal", "chain")
            assert sum(r.yes + r.no for r in only_chain) == votes // 5 + (votes % 5 > 0)
            print(f"{'':<34}{'best':>10}{'median':>10}")
            print(
                f"{'plain count(*) over the table':<34}{min(count_times):>9.3f}s"
                f"{statistics.median(count_times):>9.3f}s"
            )
            print(
                f"{'aggregator tally (all markets)':<34}{min(tally_times):>9.3f}s"
                f"{statistics.median(tally_times):>9.3f}s"
            )
            ratio = statistics.median(tally_times) / statistics.median(count_times)
            print(
                f"tally / count(*): {ratio:.2f}x; "
                f"{'PASS' if statistics.median(tally_times) < 1.0 else 'FAIL'} (< 1 s)"
            )
            return 0 if statistics.median(tally_times) < 1.0 else 1
        finally:
            await db.close()
    finally:
        await trio_asyncio.aio_as_trio(admin.execute)(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )
        await trio_asyncio.aio_as_trio(admin.close)()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--markets", type=int, default=1000)
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    async def _main() -> int:
        async with trio_asyncio.open_loop():
            return await run(args.markets, args.votes, args.repeat)

    return trio.run(_main)


if __name__ == "__main__":
    raise SystemExit(main())
