"""The hot queries use indexes on realistically sized tables (no Seq Scan on big tables).

The plans checked are those of the real storage functions: a proxy connection
runs ``EXPLAIN (FORMAT JSON)`` on every query a function sends, with the same
arguments, before running it.  Data (20k markets with metadata, 30k trades and
price points, 15k positions) goes in with COPY; on the 2-core development VM
seeding costs ~80-150 us per row (index and domain-check maintenance), so 100k
trades would add ~10 s to the suite without changing any plan: the
assertions are that indexes are used, not how big the tables are.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import trio_asyncio
from solders.pubkey import Pubkey

from tests.storage.conftest import sql
from zmartd.storage import markets, positions, prices, trades
from zmartd.storage.database import Database
from zmartd.storage.migrate import migrate

N_MARKETS, N_TRADES, N_POSITIONS, N_WALLETS = 20_000, 30_000, 15_000, 2_000
BIG = {"markets", "market_metadata", "trades", "price_points", "positions"}
NOW = datetime.now(UTC)


def key(tag: str, n: int) -> bytes:
    return hashlib.sha256(f"{tag}{n}".encode()).digest()


WALLETS = [str(Pubkey(key("w", n))) for n in range(N_WALLETS)]
MARKET_IDS = [key("m", n).hex() for n in range(N_MARKETS)]


class Explaining:
    """A connection proxy that EXPLAINs each query before running it."""

    def __init__(self, con: Any, plans: list[tuple[str, Any]]) -> None:
        self._con = con
        self._plans = plans

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    async def _explain(self, query: str, args: tuple[Any, ...]) -> None:
        plan = await self._con.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
        self._plans.append((query, plan))

    async def fetch(self, query: str, *args: Any) -> Any:
        await self._explain(query, args)
        return await self._con.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        await self._explain(query, args)
        return await self._con.fetchrow(query, *args)


class ExplainingDatabase:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.cursors = db.cursors
        self.plans: list[tuple[str, Any]] = []

    async def run(self, name: str, fn: Any, *, transaction: bool = True) -> Any:
        return await self.db.run(
            name, lambda con: fn(Explaining(con, self.plans)), transaction=transaction
        )


def nodes(plan: Any) -> list[dict[str, Any]]:
    import json

    out: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        out.append(node)
        for child in node.get("Plans", []):
            walk(child)

    for root in json.loads(plan) if isinstance(plan, str) else plan:
        walk(root["Plan"])
    return out


async def seed(db: Database) -> None:
    rng = random.Random(11)

    async def _run(con: Any) -> None:
        # Bulk seeding without per-row foreign-key triggers (the rows are consistent by
        # construction); this is what a backfill with verified data may do too.
        await con.execute("SET LOCAL session_replication_role = replica")
        t0 = datetime(2025, 1, 1, tzinfo=UTC)
        market_rows = []
        meta_rows = []
        for n, mid in enumerate(MARKET_IDS):
            state = rng.randrange(7)
            market_rows.append(
                (
                    mid,
                    str(Pubkey(key("a", n))),
                    WALLETS[n % N_WALLETS],
                    state,
                    10**11,
                    10**11,
                    rng.randrange(10**12),
                    10**8,
                    10**8,
                    rng.randrange(10**13),
                    t0 + timedelta(minutes=n),
                    1,
                    True if state in (3, 4, 5) else None,
                    t0 if state == 6 else None,
                )
            )
            meta_rows.append(
                (
                    mid,
                    WALLETS[n % N_WALLETS],
                    f"Market {n} {rng.choice(['btc', 'eth', 'sol'])}",
                    f"description {n}",
                    rng.choice(["crypto", "sports", "politics", "weather"]),
                    NOW + timedelta(minutes=rng.randrange(-50_000, 50_000)),
                )
            )
        await con.copy_records_to_table(
            "markets",
            records=market_rows,
            columns=[
                "market_id",
                "address",
                "creator",
                "state",
                "b_parameter",
                "initial_liquidity",
                "current_liquidity",
                "shares_yes",
                "shares_no",
                "total_volume",
                "created_at",
                "slot",
                "proposed_outcome",
                "cancelled_at",
            ],
        )
        await con.copy_records_to_table(
            "market_metadata",
            records=meta_rows,
            columns=["market_id", "creator", "title", "description", "category", "end_time"],
        )
        await con.execute(
            "UPDATE market_metadata SET title = 'zebra crossing election' WHERE market_id = $1",
            MARKET_IDS[5],
        )
        trade_rows = []
        for n in range(N_TRADES):
            trade_rows.append(
                (
                    MARKET_IDS[rng.randrange(N_MARKETS)],
                    WALLETS[rng.randrange(N_WALLETS)],
                    "buy",
                    "YES",
                    10**9,
                    10**8,
                    rng.randrange(10**9 + 1),
                    t0 + timedelta(seconds=n * 30),
                    n,
                    hashlib.sha512(b"%d" % n).hexdigest()[:88].translate(str.maketrans("0", "z")),
                    0,
                    0,
                )
            )
        await con.copy_records_to_table(
            "trades",
            records=trade_rows,
            columns=[
                "market_id",
                "wallet",
                "side",
                "outcome",
                "shares",
                "amount",
                "price_yes",
                "block_time",
                "slot",
                "signature",
                "instruction_index",
                "event_index",
            ],
        )
        await con.execute(
            "INSERT INTO price_points (market_id, at, price_yes, volume, source, trade_id, slot) "
            "SELECT market_id, block_time, price_yes, amount, 'trade', id, slot FROM trades"
        )
        pos_rows: dict[tuple[int, int], tuple[Any, ...]] = {}
        while len(pos_rows) < N_POSITIONS:
            m, w = rng.randrange(N_MARKETS), rng.randrange(N_WALLETS)
            pos_rows[(m, w)] = (
                MARKET_IDS[m],
                WALLETS[w],
                str(Pubkey(key(f"p{m}:", w))),
                rng.randrange(3) * 10**9,
                rng.randrange(3) * 10**9,
                10**9,
                1,
                t0 + timedelta(seconds=rng.randrange(10**7)),
                1,
            )
        await con.copy_records_to_table(
            "positions",
            records=list(pos_rows.values()),
            columns=[
                "market_id",
                "wallet",
                "address",
                "shares_yes",
                "shares_no",
                "total_invested",
                "trades_count",
                "last_trade_at",
                "slot",
            ],
        )
        await con.execute("ANALYZE markets, market_metadata, trades, price_points, positions")

    await db.run("test", _run)


@pytest.fixture
async def big(module_dsn: str) -> AsyncIterator[ExplainingDatabase]:
    async with trio_asyncio.open_loop():
        db = await Database.connect(module_dsn, min_size=1, max_size=2, statement_timeout=60)
        try:
            await migrate(db)
            if (await sql(db, "SELECT count(*) AS n FROM markets"))[0]["n"] == 0:
                await seed(db)
            yield ExplainingDatabase(db)
        finally:
            await db.close()


def check(edb: ExplainingDatabase, *, uses: str) -> None:
    """No Seq Scan on a big table in any plan, and ``uses`` (an index) appears in one."""
    assert edb.plans, "the function sent no query"
    used: set[str] = set()
    for query, plan in edb.plans:
        for node in nodes(plan):
            if node["Node Type"] == "Seq Scan":
                assert node.get("Relation Name") not in BIG, (query, node["Relation Name"])
            if "Index Name" in node:
                used.add(node["Index Name"])
    assert uses in used, (uses, used)
    edb.plans.clear()


@pytest.mark.parametrize(
    ("sort", "index"),
    [
        ("newest", "markets_newest"),
        ("volume", "markets_volume"),
        ("liquidity", "markets_liquidity"),
        ("closing_soon", "market_metadata_closing"),
    ],
)
async def test_market_list_pages(big: ExplainingDatabase, sort: str, index: str) -> None:
    d = cast(Database, big)
    page = await markets.list_markets(d, sort=sort, limit=20)  # type: ignore[arg-type]
    check(big, uses=index)
    assert len(page.items) == 20 and page.next_cursor is not None
    second = await markets.list_markets(
        d,
        sort=sort,  # type: ignore[arg-type]
        limit=20,
        cursor=page.next_cursor,
    )
    check(big, uses=index)
    assert not {m.market_id for m in page.items} & {m.market_id for m in second.items}


async def test_market_filters_and_detail(big: ExplainingDatabase) -> None:
    d = cast(Database, big)
    await markets.list_markets(d, state=2, limit=20)
    check(big, uses="markets_state_newest")
    await markets.list_markets(d, creator=WALLETS[7], limit=20)
    check(big, uses="markets_creator_newest")
    found = await markets.list_markets(d, q="zebra", limit=20)
    check(big, uses="market_metadata_search")
    assert [m.market_id for m in found.items] == [MARKET_IDS[5]]
    got = await markets.get_market(d, MARKET_IDS[123])
    check(big, uses="markets_pkey")
    assert got is not None and got.title is not None


async def test_trades_candles_positions(big: ExplainingDatabase) -> None:
    d = cast(Database, big)
    await trades.list_market_trades(d, MARKET_IDS[1], limit=50)
    check(big, uses="trades_market_time")
    page = await trades.list_user_trades(d, WALLETS[3], limit=20)
    check(big, uses="trades_wallet_time")
    await trades.list_user_trades(d, WALLETS[3], limit=20, cursor=page.next_cursor)
    check(big, uses="trades_wallet_time")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    await prices.candles(
        d, MARKET_IDS[1], interval="1h", start=start, end=start + timedelta(days=60)
    )
    check(big, uses="price_points_market_at")
    await positions.list_user_positions(d, WALLETS[3], limit=50)
    check(big, uses="positions_wallet")
    await positions.list_holders(d, MARKET_IDS[1], limit=50)
    check(big, uses="positions_holders")
