"""Trades, price points, candles, positions and holders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from tests.storage.conftest import sql, truncate
from tests.storage.factories import T0, market, market_id, trade, wallet
from zmartd.storage import markets, positions, prices, trades
from zmartd.storage.database import Database
from zmartd.storage.positions import PositionState
from zmartd.storage.records import InvalidArgument, InvalidCursor, TradeRecord


async def test_trades_are_idempotent_and_paged_newest_first(db: Database) -> None:
    await truncate(db)
    await markets.upsert_markets(db, [market(0), market(1)])
    batch = [
        trade(
            n,
            market=n % 2,
            who=n % 3,
            side="sell" if n % 4 == 0 else "buy",
            outcome="NO" if n % 5 == 0 else "YES",
            at=T0 + timedelta(seconds=n // 2),
        )
        for n in range(40)
    ]
    assert await trades.insert_trades(db, batch) == 40
    assert await trades.insert_trades(db, batch[:10]) == 0  # replay: nothing new
    counts = await sql(
        db, "SELECT (SELECT count(*) FROM trades) AS t, (SELECT count(*) FROM price_points) AS p"
    )
    assert (counts[0]["t"], counts[0]["p"]) == (40, 40)

    seen: list[TradeRecord] = []
    cursor = None
    while True:
        page = await trades.list_market_trades(db, market_id(0), limit=6, cursor=cursor)
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == 20 and {t.market_id for t in seen} == {market_id(0)}
    assert [(t.block_time, t.id) for t in seen] == sorted(
        ((t.block_time, t.id) for t in seen), reverse=True
    )
    assert isinstance(seen[0].shares, int) and seen[0].outcome in ("YES", "NO")

    mine = await trades.list_user_trades(db, wallet(1), limit=200)
    assert len(mine.items) == len([n for n in range(40) if n % 3 == 1])
    assert mine.next_cursor is None
    with pytest.raises(InvalidCursor):
        await trades.list_user_trades(db, wallet(1), cursor=page.next_cursor or "x")
    with pytest.raises(InvalidArgument):
        await trades.list_market_trades(db, market_id(0), limit=1000)


async def test_candles_are_computed_in_sql(db: Database) -> None:
    await truncate(db)
    await markets.upsert_markets(db, [market(0)])
    start = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
    # minute 0: 0.50 -> 0.60 -> 0.55; minute 1: none; minute 2: 0.40; minute 3: 0.45, 0.70
    points = [
        (0, 500_000_000, 10),
        (20, 600_000_000, 20),
        (59, 550_000_000, 30),
        (125, 400_000_000, 40),
        (185, 450_000_000, 50),
        (186, 700_000_000, 60),
    ]
    await trades.insert_trades(
        db,
        [
            trade(i, price=p, amount=a, at=start + timedelta(seconds=s))
            for i, (s, p, a) in enumerate(points)
        ],
    )
    await prices.add_price_point(
        db,
        market_id(0),
        at=start - timedelta(minutes=5),
        price_yes=500_000_000,
        slot=1,
        source="create",
    )
    one = await prices.candles(
        db, market_id(0), interval="1m", start=start, end=start + timedelta(minutes=4)
    )
    assert [(c.start - start, c.open, c.high, c.low, c.close, c.volume, c.points) for c in one] == [
        (timedelta(0), 500_000_000, 600_000_000, 500_000_000, 550_000_000, 60, 3),
        (timedelta(minutes=2), 400_000_000, 400_000_000, 400_000_000, 400_000_000, 40, 1),
        (timedelta(minutes=3), 450_000_000, 700_000_000, 450_000_000, 700_000_000, 110, 2),
    ]
    five = await prices.candles(
        db,
        market_id(0),
        interval="5m",
        start=start - timedelta(minutes=10),
        end=start + timedelta(hours=1),
    )
    assert [(c.start, c.open, c.close, c.points) for c in five] == [
        (start - timedelta(minutes=5), 500_000_000, 500_000_000, 1),
        (start, 500_000_000, 700_000_000, 6),
    ]
    day = await prices.candles(
        db, market_id(0), interval="1d", start=start, end=start + timedelta(days=1)
    )
    assert day[0].start == datetime(2026, 2, 1, tzinfo=UTC)  # epoch-aligned buckets
    for kw in ({"interval": "2m"}, {"end": start}, {"end": start + timedelta(days=30)}):
        args = {"interval": "1m", "start": start, "end": start + timedelta(hours=1), **kw}
        with pytest.raises(InvalidArgument):
            await prices.candles(db, market_id(0), **args)  # type: ignore[arg-type]


def pos(m: int, who: int, yes: int, no: int, *, slot: int = 5, minutes: int = 0) -> PositionState:
    return PositionState(
        market_id=market_id(m),
        wallet=wallet(who),
        address=wallet(1000 + m * 100 + who),
        shares_yes=yes,
        shares_no=no,
        total_invested=yes + no,
        trades_count=1,
        last_trade_at=T0 + timedelta(minutes=minutes),
        slot=slot,
    )


async def test_positions_and_holders(db: Database) -> None:
    await truncate(db)
    await markets.upsert_markets(
        db,
        [
            market(m, state=5 if m == 2 else 2, final_outcome=True if m == 2 else None)
            for m in range(4)
        ],
    )
    await positions.upsert_positions(
        db,
        [
            pos(0, 1, 10, 0, minutes=1),
            pos(1, 1, 0, 0, minutes=3),
            pos(2, 1, 5, 0, minutes=2),
            pos(0, 2, 7, 7),
            pos(0, 3, 0, 30),
            pos(0, 4, 0, 0),
            pos(0, 5, 14, 0),
        ],
    )
    # stale slot skipped
    assert await positions.upsert_positions(db, [pos(0, 1, 99, 0, slot=4)]) == 0
    page = await positions.list_user_positions(db, wallet(1), limit=2)
    assert [p.market_id for p in page.items] == [market_id(1), market_id(2)]
    rest = await positions.list_user_positions(db, wallet(1), cursor=page.next_cursor)
    assert [p.market_id for p in rest.items] == [market_id(0)] and rest.next_cursor is None
    assert rest.items[0].shares_yes == 10 and rest.items[0].market_state == 2
    open_only = await positions.list_user_positions(db, wallet(1), open_only=True)
    assert {p.market_id for p in open_only.items} == {market_id(0), market_id(2)}
    one = await positions.get_position(db, market_id(2), wallet(1))
    assert one is not None and one.market_final_outcome is True
    assert await positions.get_position(db, market_id(3), wallet(1)) is None

    first = await positions.list_holders(db, market_id(0), limit=2)
    assert [(h.wallet, h.shares_yes + h.shares_no) for h in first.items] == [
        (wallet(3), 30),
        *sorted([(wallet(2), 14), (wallet(5), 14)])[:1],
    ]
    second = await positions.list_holders(db, market_id(0), limit=2, cursor=first.next_cursor)
    assert [h.wallet for h in first.items + second.items] == [
        wallet(3),
        *sorted([wallet(2), wallet(5)]),
        wallet(1),
    ]
    assert second.next_cursor is None  # wallet 4 holds nothing: not a holder
    with pytest.raises(Exception, match="positions_claim_consistent"):
        await sql(db, "UPDATE positions SET claimed_amount = 5, slot = 6 WHERE NOT has_claimed")


async def test_indexer_trades_carry_price_before_along_the_unit(db: Database) -> None:
    """write_trades with fees: price_before is the market's previous trade in
    the unit, else the newest stored one at or before it, else 0.5; replays
    insert nothing but still count as the previous trade."""
    await truncate(db)
    await markets.upsert_markets(db, [market(0), market(1)])

    def fee(t: trades.TradeEvent, base: int) -> trades.TradeFee:
        return trades.TradeFee(
            signature=t.signature,
            instruction_index=t.instruction_index,
            event_index=t.event_index,
            base_amount=base,
            protocol_fee=3,
            resolver_fee=2,
            lp_fee=1,
        )

    a1 = trade(1, market=0, price=510_000_000)
    b1 = trade(2, market=1, price=600_000_000)
    a2 = trade(3, market=0, price=520_000_000)
    a3 = trade(4, market=0, price=530_000_000)
    b2 = trade(5, market=1, price=610_000_000)
    a4 = trade(6, market=0, price=540_000_000)

    async def unit(ts: list[trades.TradeEvent], fees: list[trades.TradeFee]) -> int:
        async def _run(con: asyncpg.Connection) -> int:
            return await trades.write_trades(con, ts, fees)

        return await db.run("test", _run)

    assert await unit([a1, b1, a2], [fee(a1, 100), fee(b1, 200), fee(a2, 300)]) == 3
    # a replayed a2 sits between new trades: a3 follows it, b2 follows the stored b1
    assert (
        await unit([a2, a3, b2, a4], [fee(a2, 300), fee(a3, 400), fee(b2, 500), fee(a4, 600)]) == 3
    )
    rows = await sql(
        db,
        "SELECT t.signature, f.price_before, f.base_amount, f.protocol_fee "
        "FROM trades t JOIN trade_fees f ON f.trade_id = t.id ORDER BY t.id",
    )
    got = {r["signature"]: (r["price_before"], int(r["base_amount"])) for r in rows}
    assert got == {
        a1.signature: (500_000_000, 100),
        b1.signature: (500_000_000, 200),
        a2.signature: (510_000_000, 300),
        a3.signature: (520_000_000, 400),
        b2.signature: (600_000_000, 500),
        a4.signature: (530_000_000, 600),
    }
    assert all(r["protocol_fee"] == 3 for r in rows)
    counts = await sql(
        db, "SELECT (SELECT count(*) FROM trades) AS t, (SELECT count(*) FROM price_points) AS p"
    )
    assert (counts[0]["t"], counts[0]["p"]) == (6, 6)


async def test_bulk_writes_keep_u64_and_time_offsets_exact(db: Database) -> None:
    """Indexer writes travel as one JSON document (storage/bulk.py): u64
    extremes stay exact (no float on the way), and a block time with a
    non-UTC offset is the same instant."""
    await truncate(db)
    big = 2**64 - 1
    at = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    await markets.upsert_markets(db, [market(0)])
    t = trade(1, market=0, shares=big, amount=big - 1, at=at)
    fee = trades.TradeFee(
        signature=t.signature,
        instruction_index=0,
        event_index=0,
        base_amount=big,
        protocol_fee=big - 2,
        resolver_fee=0,
        lp_fee=1,
    )

    async def _run(con: asyncpg.Connection) -> int:
        return await trades.write_trades(con, [t], [fee])

    assert await db.run("test", _run) == 1
    (got,) = (await trades.list_market_trades(db, market_id(0))).items
    assert (got.shares, got.amount, got.block_time) == (big, big - 1, at)
    (row,) = await sql(db, "SELECT base_amount, protocol_fee, lp_fee FROM trade_fees")
    assert (int(row["base_amount"]), int(row["protocol_fee"]), int(row["lp_fee"])) == (
        big,
        big - 2,
        1,
    )
    await positions.upsert_positions(
        db,
        [
            PositionState(
                market_id=market_id(0),
                wallet=wallet(1),
                address=wallet(9),
                shares_yes=big,
                shares_no=0,
                total_invested=big,
                trades_count=2**32 - 1,
                last_trade_at=at,
                slot=3,
            )
        ],
    )
    p = await positions.get_position(db, market_id(0), wallet(1))
    assert p is not None and (p.shares_yes, p.total_invested, p.last_trade_at) == (big, big, at)
    # a naive datetime is UTC: Database sets the session's time zone, whatever
    # the server's default
    (tz,) = await sql(db, "SELECT current_setting('TimeZone') AS tz")
    assert tz["tz"] == "UTC"
    naive = trade(2, market=0, at=datetime(2026, 3, 2, 8, 0))
    assert await db.run("test", lambda con: trades.write_trades(con, [naive])) == 1
    (row,) = await sql(db, "SELECT block_time FROM trades WHERE signature = $1", naive.signature)
    assert row["block_time"] == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
