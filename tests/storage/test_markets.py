"""Markets: chain upserts with the slot guard, metadata rules, list filters/sorts/cursors."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio
import trio.lowlevel

from tests.storage.conftest import sql, truncate
from tests.storage.factories import T0, B, market, market_id, wallet
from zmartd.storage import markets
from zmartd.storage.database import Database
from zmartd.storage.markets import MarketMetadataInput
from zmartd.storage.records import (
    InvalidArgument,
    InvalidCursor,
    MarketMetadataRecord,
    MarketRecord,
    NotPermitted,
)


async def all_pages(db: Database, limit: int, **kw: object) -> list[MarketRecord]:
    out: list[MarketRecord] = []
    cursor = None
    while True:
        page = await markets.list_markets(db, limit=limit, cursor=cursor, **kw)  # type: ignore[arg-type]
        out.extend(page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


async def test_upsert_detail_and_slot_guard(db: Database) -> None:
    await truncate(db)
    big = 2**64 - 1
    state = market(1, state=0, slot=5, volume=big, ipfs_question_hash="Qm" + "a" * 44)
    assert await markets.upsert_markets(db, [state]) == 1
    got = await markets.get_market(db, market_id(1))
    assert got is not None and got.total_volume == big and isinstance(got.b_parameter, int)
    assert got.state == 0 and got.title is None and got.tags == ()
    assert await markets.get_market_by_address(db, got.address) == got
    assert await markets.get_market(db, "00" * 32) is None
    assert await markets.get_market(db, "not-hex") is None  # bad key: just not found

    # a newer state applies; an older one (out-of-order delivery) is skipped
    newer = market(1, state=2, slot=9, activated_at=T0)
    older = market(1, state=1, slot=7)
    assert await markets.upsert_markets(db, [newer]) == 1
    assert await markets.upsert_markets(db, [older]) == 0
    got = await markets.get_market(db, market_id(1))
    assert got is not None and (got.state, got.slot) == (2, 9)
    # in one batch the newest state per market wins
    assert (
        await markets.upsert_markets(
            db, [market(1, state=3, slot=12), older, market(1, state=2, slot=11)]
        )
        == 1
    )
    got = await markets.get_market(db, market_id(1))
    assert got is not None and got.state == 3
    # and the trigger makes a regression impossible even for raw SQL
    with pytest.raises(Exception, match="slot may not move backwards"):
        await sql(db, "UPDATE markets SET slot = 1")


def store(meta: MarketMetadataInput) -> markets.MetadataDecision:
    """A decision that stores ``meta`` whatever it sees (the rules are the handler's)."""
    return lambda market, existing: meta


async def test_metadata_is_edited_in_one_unit_and_constrained_by_the_table(
    db: Database,
) -> None:
    await truncate(db)
    mid = market_id(2)
    meta = MarketMetadataInput(
        title="Will it rain?",
        description="In Paris",
        category="weather",
        tags=("rain", "paris"),
        end_time=T0 + timedelta(days=3),
    )
    # before the market is on chain: nothing to show
    saved, shown = await markets.edit_metadata(
        db, market_id=mid, creator=wallet(0), decide=store(meta)
    )
    assert saved.title == "Will it rain?" and saved.tags == ("rain", "paris") and shown is None
    # the table's constraints, whatever the handler decided
    with pytest.raises(InvalidArgument, match="title"):
        await markets.edit_metadata(
            db, market_id=mid, creator=wallet(0), decide=store(MarketMetadataInput(title=""))
        )
    with pytest.raises(InvalidArgument, match="category"):
        await markets.edit_metadata(
            db,
            market_id=mid,
            creator=wallet(0),
            decide=store(MarketMetadataInput(title="x", category="Bad Cat")),
        )

    # a decision that refuses writes nothing
    def refuse(market: MarketRecord | None, existing: MarketMetadataRecord | None) -> Any:
        assert market is None and existing is not None and existing.title == "Will it rain?"
        raise NotPermitted("no")

    # another wallet's claim on the same id is its own row, and blocks nothing
    squat = MarketMetadataInput(title="Squatted", resolution_source="https://evil.example")
    theirs, _ = await markets.edit_metadata(
        db, market_id=mid, creator=wallet(9), decide=store(squat)
    )
    assert theirs.creator == wallet(9)

    with pytest.raises(NotPermitted):
        await markets.edit_metadata(db, market_id=mid, creator=wallet(0), decide=refuse)
    again = await markets.get_metadata(db, mid, wallet(0))
    assert again is not None and again.creator == wallet(0) and again.title == "Will it rain?"
    # on chain: the decision sees the market, and the market as now shown comes back
    await markets.upsert_markets(db, [market(2, state=0, creator=0)])
    seen: list[MarketRecord | None] = []

    def edit(market: MarketRecord | None, existing: MarketMetadataRecord | None) -> Any:
        seen.append(market)
        return MarketMetadataInput(title="Will it rain tomorrow?", category="weather")

    edited, shown = await markets.edit_metadata(db, market_id=mid, creator=wallet(0), decide=edit)
    assert (
        seen[0] is not None and seen[0].creator == wallet(0) and seen[0].title == ("Will it rain?")
    )
    assert edited.title == "Will it rain tomorrow?" and edited.updated_at >= saved.updated_at
    assert shown is not None and shown.title == "Will it rain tomorrow?"
    got = await markets.get_market(db, mid)
    assert got is not None and got.title == "Will it rain tomorrow?" and got.category == "weather"
    counts = await markets.category_counts(db)
    assert [(c.category, c.markets) for c in counts] == [("weather", 1)]
    # indexing the market dropped wallet 9's claim
    assert await markets.get_metadata(db, mid, wallet(9)) is None


async def seed_list(db: Database) -> list[int]:
    await truncate(db)
    rng = random.Random(7)
    states = [
        market(
            n,
            state=n % 7,
            volume=rng.randrange(0, 10**12),
            creator=n % 3,
            liquidity=rng.choice([B, 2 * B, 3 * B]),
        )  # many ties: tie-break matters
        for n in range(60)
    ]
    await markets.upsert_markets(db, states)
    now = datetime.now(UTC)
    # metadata straight into the table: most of these markets are no longer PROPOSED
    for n in range(0, 60, 2):
        await sql(
            db,
            "INSERT INTO market_metadata (market_id, creator, title, category, tags, end_time) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            market_id(n),
            wallet(n % 3),
            f"Market {n} about {'elections' if n % 4 == 0 else 'football'}",
            "politics" if n % 4 == 0 else "sports",
            [f"t{n % 5}"],
            now + timedelta(hours=(n * 37) % 50 - 10),
        )
    return list(range(60))


async def test_sorts_and_filters_page_through_everything(db: Database) -> None:
    await seed_list(db)
    everything = await all_pages(db, 7)
    assert len(everything) == 60 and len({m.market_id for m in everything}) == 60
    assert [m.created_at for m in everything] == sorted(
        (m.created_at for m in everything), reverse=True
    )

    by_volume = await all_pages(db, 9, sort="volume")
    assert [(m.total_volume, m.market_id) for m in by_volume] == sorted(
        ((m.total_volume, m.market_id) for m in everything), reverse=True
    )
    by_liq = await all_pages(db, 4, sort="liquidity")
    assert [(m.current_liquidity, m.market_id) for m in by_liq] == sorted(
        ((m.current_liquidity, m.market_id) for m in everything), reverse=True
    )
    closing = await all_pages(db, 3, sort="closing_soon")
    now = datetime.now(UTC)
    expected = sorted(
        (m.end_time, m.market_id) for m in everything if m.end_time is not None and m.end_time > now
    )
    assert [(m.end_time, m.market_id) for m in closing] == expected and expected

    active = await all_pages(db, 5, state=2)
    assert {m.market_id for m in active} == {m.market_id for m in everything if m.state == 2}
    mine = await all_pages(db, 5, creator=wallet(1))
    assert {m.market_id for m in mine} == {
        m.market_id for m in everything if m.creator == wallet(1)
    }
    politics = await all_pages(db, 5, category="politics")
    assert {m.market_id for m in politics} == {market_id(n) for n in range(0, 60, 4)}
    tagged = await all_pages(db, 5, tag="t0")
    assert {m.market_id for m in tagged} == {market_id(n) for n in range(0, 60, 2) if n % 5 == 0}
    # full-text: stemming ('election' finds 'elections'), combined with another filter
    found = await all_pages(db, 5, q="election", sort="volume")
    assert {m.market_id for m in found} == {market_id(n) for n in range(0, 60, 4)}
    both = await all_pages(db, 50, q="football", state=2)
    assert {m.market_id for m in both} == {
        market_id(n) for n in range(0, 60, 2) if n % 4 and n % 7 == 2
    }
    assert (await markets.list_markets(db, q="zzzunknownzzz")).items == ()


async def test_cursors_are_validated(db: Database) -> None:
    await seed_list(db)
    page = await markets.list_markets(db, limit=5)
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursor, match="belongs to"):
        await markets.list_markets(db, sort="volume", cursor=page.next_cursor)
    flipped = (
        page.next_cursor[:-3]
        + ("A" if page.next_cursor[-3] != "A" else "B")
        + page.next_cursor[-2:]
    )
    for bad in (flipped, "!!!", "", "AAAA", "x" * 600):
        with pytest.raises(InvalidCursor):
            await markets.list_markets(db, cursor=bad)
    wrong_types = db.cursors.encode("markets:newest", (123, "abc"))
    with pytest.raises(InvalidCursor, match="out of range"):
        await markets.list_markets(db, cursor=wrong_types)
    for kw in (
        {"limit": 0},
        {"limit": 101},
        {"state": 7},
        {"state": True},
        {"sort": "random"},
        {"q": "x" * 201},
    ):
        with pytest.raises(InvalidArgument):
            await markets.list_markets(db, **kw)


@pytest.mark.parametrize("sort", ["newest", "volume"])
async def test_paging_while_rows_are_inserted(db: Database, sort: str) -> None:
    """No duplicates and no pre-existing row skipped while another task inserts markets."""
    await truncate(db)
    rng = random.Random(3)
    existing = [
        market(n, volume=rng.randrange(10**9), created=T0 + timedelta(seconds=2 * n))
        for n in range(200)
    ]
    await markets.upsert_markets(db, existing)
    seen: list[str] = []
    done = trio.Event()

    async def inserter() -> None:
        n = 1000
        while not done.is_set():
            # new rows anywhere in the order: before, between and after existing keys
            await markets.upsert_markets(
                db,
                [
                    market(
                        n,
                        volume=rng.randrange(10**9),
                        created=T0 + timedelta(seconds=rng.randrange(-10, 410)),
                    )
                ],
            )
            n += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(inserter)
        cursor = None
        while True:
            page = await markets.list_markets(
                db,
                sort=sort,  # type: ignore[arg-type]
                limit=13,
                cursor=cursor,
            )
            seen.extend(m.market_id for m in page.items)
            await trio.sleep(0.005)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        done.set()
    assert len(seen) == len(set(seen))
    assert {m.market_id for m in existing} <= set(seen)
    inserted = await sql(db, "SELECT count(*) AS n FROM markets")
    assert inserted[0]["n"] > 200  # the inserter really ran during the paging


async def test_a_state_without_the_question_cid_keeps_the_stored_one(db: Database) -> None:
    """The account loses the question CID at resolution (docs/chain.md §11.22):
    a newer state without one keeps the stored CID; a new CID replaces it."""
    await truncate(db)
    cid = "Qm" + "q" * 44
    await markets.upsert_markets(db, [market(1, slot=1, ipfs_question_hash=cid)])
    await markets.upsert_markets(db, [market(1, state=3, slot=2)])
    got = await markets.get_market(db, market_id(1))
    assert got is not None and (got.state, got.ipfs_question_hash) == (3, cid)
    other = "Qm" + "r" * 44
    await markets.upsert_markets(db, [market(1, state=3, slot=3, ipfs_question_hash=other)])
    got = await markets.get_market(db, market_id(1))
    assert got is not None and got.ipfs_question_hash == other
