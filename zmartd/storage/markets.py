"""Markets: the chain mirror (``markets``) joined with the creator's metadata
(``market_metadata``).

Reads serve the market list (filters, sorts, keyset pagination) and the
detail page; writes are the indexer's account upserts (slot-guarded: a stale
account state never overwrites a newer one) and the creator's metadata, which
stays editable while the market is PROPOSED (or not yet on chain).

Every public coroutine is one ``Database.run`` crossing; ``write_*`` functions
run on the asyncio side inside a caller's unit of work, so the indexer can put
them in the same transaction as its watermark.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from zmartd.storage.bulk import recordset, write_newest
from zmartd.storage.cursors import TEXT, TIME, U64
from zmartd.storage.database import Database
from zmartd.storage.records import (
    CategoryCount,
    InvalidArgument,
    MarketChainState,
    MarketMetadataRecord,
    MarketRecord,
    Page,
    check_limit,
    from_row,
    rejected,
    sql_columns,
)

__all__ = [
    "MAX_PAGE",
    "MarketMetadataInput",
    "MarketSort",
    "MetadataDecision",
    "category_counts",
    "edit_metadata",
    "get_market",
    "get_market_by_address",
    "get_metadata",
    "list_markets",
    "upsert_markets",
    "write_markets",
]

MAX_PAGE = 100
MAX_QUERY_LEN = 200

MarketSort = Literal["newest", "volume", "closing_soon", "liquidity"]

# sort -> (key expression, direction, key type in the cursor)
_SORTS: dict[str, tuple[str, str, type[int] | type[datetime]]] = {
    "newest": ("m.created_at", "DESC", datetime),
    "volume": ("m.total_volume", "DESC", int),
    "liquidity": ("m.current_liquidity", "DESC", int),
    "closing_soon": ("md.end_time", "ASC", datetime),
}
_KEY_CAST = {datetime: "timestamptz", int: "numeric"}

# The market as shown: the chain mirror's columns, when the row last changed, and the
# metadata's -- derived from MarketRecord, so a field added to the record is selected.
_CHAIN_FIELDS = tuple(MarketChainState.__struct_fields__)
_SHOWN_METADATA = tuple(
    f for f in MarketRecord.__struct_fields__ if f not in _CHAIN_FIELDS and f != "updated_at"
)
_COLUMNS = ", ".join(
    [f"m.{f}" for f in (*_CHAIN_FIELDS, "updated_at")] + [f"md.{f}" for f in _SHOWN_METADATA]
)


def _market(row: Mapping[str, Any]) -> MarketRecord:
    return from_row(MarketRecord, row)


class MarketMetadataInput(msgspec.Struct, frozen=True, kw_only=True):
    """What a creator registers for a market (checked again by table constraints)."""

    title: str
    description: str = ""
    category: str | None = None
    tags: tuple[str, ...] = ()
    image_url: str | None = None
    resolution_source: str | None = None
    end_time: datetime | None = None


# ---------------------------------------------------------------- reads


async def list_markets(
    db: Database,
    *,
    state: int | None = None,
    category: str | None = None,
    creator: str | None = None,
    tag: str | None = None,
    q: str | None = None,
    sort: MarketSort = "newest",
    limit: int = 20,
    cursor: str | None = None,
) -> Page[MarketRecord]:
    """One page of markets, newest/volume/liquidity first or closing soonest first.

    Keyset pagination on ``(sort key, market_id)``: a page never repeats or
    skips a row that existed when paging started, even while markets are
    inserted.  ``closing_soon`` lists only markets with an ``end_time`` still
    in the future.  ``q`` is a full-text query (web-search syntax) over title,
    category and description.
    """
    if sort not in _SORTS:
        raise InvalidArgument(f"sort must be one of {sorted(_SORTS)}, got {sort!r}")
    check_limit(limit, MAX_PAGE)
    if state is not None and (isinstance(state, bool) or state not in range(7)):
        raise InvalidArgument(f"state must be an integer 0..6, got {state!r}")
    if q is not None and len(q) > MAX_QUERY_LEN:
        raise InvalidArgument(f"q is longer than {MAX_QUERY_LEN} characters")
    key_expr, direction, key_type = _SORTS[sort]
    kind = f"markets:{sort}"

    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if state is not None:
        where.append(f"m.state = {arg(state)}::smallint")
    if creator is not None:
        where.append(f"m.creator = {arg(creator)}::text")
    if category is not None:
        where.append(f"md.category = {arg(category)}::text")
    if tag is not None:
        where.append(f"md.tags @> ARRAY[{arg(tag)}::text]")
    if q is not None and q.strip():
        where.append(f"md.search @@ websearch_to_tsquery('english', {arg(q)}::text)")
    if sort == "closing_soon":
        where.append("md.end_time > now()")
    if cursor is not None:
        last_key, last_id = db.cursors.decode(
            cursor, kind, (U64 if key_type is int else TIME, TEXT)
        )
        op = "<" if direction == "DESC" else ">"
        where.append(
            f"({key_expr}, m.market_id) {op} "
            f"({arg(last_key)}::{_KEY_CAST[key_type]}, {arg(last_id)}::text)"
        )
    join = "JOIN" if sort == "closing_soon" else "LEFT JOIN"
    sql = (
        f"SELECT {_COLUMNS}, {key_expr} AS sort_key FROM markets m "
        f"{join} market_metadata md ON md.market_id = m.market_id "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + f"ORDER BY {key_expr} {direction}, m.market_id {direction} "
        f"LIMIT {arg(limit + 1)}"
    )

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(sql, *args)
        return rows

    rows = await db.run("markets.list_markets", _run, transaction=False)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        key = last["sort_key"]
        next_cursor = db.cursors.encode(
            kind, (int(key) if key_type is int else key, last["market_id"])
        )
    items = []
    for row in rows:
        data = dict(row)
        del data["sort_key"]
        items.append(_market(data))
    return Page(items=tuple(items), next_cursor=next_cursor)


async def _get_one(db: Database, column: str, value: str) -> MarketRecord | None:
    sql = (
        f"SELECT {_COLUMNS} FROM markets m LEFT JOIN market_metadata md "
        f"ON md.market_id = m.market_id WHERE m.{column} = $1::text"
    )

    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        return await con.fetchrow(sql, value)

    row = await db.run(f"markets.get_by_{column}", _run, transaction=False)
    return None if row is None else _market(row)


async def get_market(db: Database, market_id: str) -> MarketRecord | None:
    """The market with this 64-hex ``market_id``, or None."""
    return await _get_one(db, "market_id", market_id)


async def get_market_by_address(db: Database, address: str) -> MarketRecord | None:
    """The market whose account (PDA) is ``address`` (base58), or None."""
    return await _get_one(db, "address", address)


async def get_metadata(db: Database, market_id: str, creator: str) -> MarketMetadataRecord | None:
    """``creator``'s registration for ``market_id``: the market's metadata when it is
    indexed with that creator, else the claim still waiting for it; or None."""

    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        return await con.fetchrow(
            f"SELECT {_META_COLUMNS} FROM market_metadata "
            "WHERE market_id = $1::text AND creator = $2::text "
            f"UNION ALL SELECT {_META_COLUMNS} FROM market_metadata_claims "
            "WHERE market_id = $1::text AND creator = $2::text LIMIT 1",
            market_id,
            creator,
        )

    row = await db.run("markets.get_metadata", _run, transaction=False)
    return None if row is None else _metadata(row)


async def category_counts(db: Database, *, limit: int = 20) -> tuple[CategoryCount, ...]:
    """Categories by number of markets on chain, most used first."""
    check_limit(limit, MAX_PAGE)

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(
            "SELECT md.category, count(*) AS markets FROM market_metadata md "
            "JOIN markets m ON m.market_id = md.market_id WHERE md.category IS NOT NULL "
            "GROUP BY md.category ORDER BY markets DESC, md.category LIMIT $1",
            limit,
        )
        return rows

    rows = await db.run("markets.category_counts", _run, transaction=False)
    return tuple(CategoryCount(category=r["category"], markets=r["markets"]) for r in rows)


# ---------------------------------------------------------------- metadata


_META_COLUMNS = (
    "market_id, creator, title, description, category, tags, image_url, resolution_source, "
    "end_time, created_at, updated_at"
)


def _metadata(row: asyncpg.Record) -> MarketMetadataRecord:
    data = dict(row)
    data["tags"] = tuple(data["tags"])
    return MarketMetadataRecord(**data)


#: A handler's decision, taken inside the unit with the rows locked: the metadata to
#: store, given the market (None when not on chain yet) and the caller's current
#: registration (None when there is none). It raises to refuse; nothing is written then.
MetadataDecision = Callable[[MarketRecord | None, MarketMetadataRecord | None], MarketMetadataInput]

_SHOWN = (
    f"SELECT {_COLUMNS} FROM markets m LEFT JOIN market_metadata md "
    "ON md.market_id = m.market_id WHERE m.market_id = $1::text"
)
_META_VALUES = "$1, $2, $3, $4, $5, $6, $7, $8, $9"
_META_INSERT = (
    "(market_id, creator, title, description, category, tags, image_url, resolution_source, "
    "end_time)"
)
_META_SET = (
    "title = EXCLUDED.title, description = EXCLUDED.description, "
    "category = EXCLUDED.category, tags = EXCLUDED.tags, image_url = EXCLUDED.image_url, "
    "resolution_source = EXCLUDED.resolution_source, end_time = EXCLUDED.end_time, "
    "updated_at = now()"
)


async def edit_metadata(
    db: Database, *, market_id: str, creator: str, decide: MetadataDecision
) -> tuple[MarketMetadataRecord, MarketRecord | None]:
    """Register or change ``creator``'s metadata of a market, in one unit.

    For an indexed market the metadata itself is written (``market_metadata``); for a
    market id the indexer has not seen, a claim bound to ``creator``
    (``market_metadata_claims``) that becomes the market's metadata only if the market
    is indexed with that creator (migration 0006). The market row is read ``FOR SHARE``
    (the indexer cannot move it out of PROPOSED meanwhile) and the registration ``FOR
    UPDATE`` (two edits do not interleave); the handler's ``decide`` applies its rules
    to what was read and returns what to store. Returns the stored registration and the
    market as now shown (None when not on chain), for publishing. Raises
    :class:`InvalidArgument` when a value breaks a table constraint.
    """

    async def _run(con: asyncpg.Connection) -> tuple[asyncpg.Record, asyncpg.Record | None]:
        chain = await con.fetchrow(_SHOWN + " FOR SHARE OF m", market_id)
        table = "market_metadata" if chain is not None else "market_metadata_claims"
        current = await con.fetchrow(
            f"SELECT {_META_COLUMNS} FROM {table} "
            "WHERE market_id = $1::text AND creator = $2::text FOR UPDATE",
            market_id,
            creator,
        )
        m = decide(
            None if chain is None else _market(chain),
            None if current is None else _metadata(current),
        )
        conflict = "(market_id)" if chain is not None else "(market_id, creator)"
        row = await con.fetchrow(
            f"INSERT INTO {table} {_META_INSERT} VALUES ({_META_VALUES}) "
            f"ON CONFLICT {conflict} DO UPDATE SET {_META_SET} RETURNING {_META_COLUMNS}",
            market_id,
            creator,
            m.title,
            m.description,
            m.category,
            list(m.tags),
            m.image_url,
            m.resolution_source,
            m.end_time,
        )
        if chain is None:
            # Indexed meanwhile (committed after our first read)? Its trigger ran before
            # this claim existed: attach it ourselves if it is the creator's, or drop it.
            now = await con.fetchrow(
                "SELECT creator FROM markets WHERE market_id = $1::text FOR SHARE", market_id
            )
            if now is None:
                return row, None
            await con.execute(
                "DELETE FROM market_metadata_claims WHERE market_id = $1::text "
                "AND creator = $2::text",
                market_id,
                creator,
            )
            if now["creator"] == creator:
                await con.execute(
                    f"INSERT INTO market_metadata {_META_INSERT} VALUES ({_META_VALUES}) "
                    f"ON CONFLICT (market_id) DO NOTHING",
                    market_id,
                    creator,
                    m.title,
                    m.description,
                    m.category,
                    list(m.tags),
                    m.image_url,
                    m.resolution_source,
                    m.end_time,
                )
        return row, await con.fetchrow(_SHOWN, market_id)

    try:
        row, shown = await db.run("markets.edit_metadata", _run)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc
    return _metadata(row), None if shown is None else _market(shown)


async def import_metadata(
    db: Database, items: Sequence[tuple[str, str, MarketMetadataInput]]
) -> int:
    """Register metadata for ``(market_id, creator, metadata)`` items that have none yet.

    A trusted import (the local chain double's demo markets), so it skips the
    creator/PROPOSED rules of the API's handlers; it never overwrites what a
    creator already registered.  Never call it with user input.  Returns how
    many rows were inserted.
    """

    async def _run(con: asyncpg.Connection) -> int:
        inserted = 0
        for market_id, creator, m in items:
            status = await con.execute(
                """
                INSERT INTO market_metadata (market_id, creator, title, description, category,
                                             tags, image_url, resolution_source, end_time)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (market_id) DO NOTHING
                """,
                market_id,
                creator,
                m.title,
                m.description,
                m.category,
                list(m.tags),
                m.image_url,
                m.resolution_source,
                m.end_time,
            )
            inserted += int(status.rsplit(" ", 1)[-1])
        return inserted

    try:
        return await db.run("markets.import_metadata", _run)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc


# ---------------------------------------------------------------- indexer writes


_UPDATABLE = tuple(f for f in _CHAIN_FIELDS if f not in ("market_id", "created_at"))


_UPSERT = (
    f"INSERT INTO markets ({', '.join(_CHAIN_FIELDS)}) SELECT {', '.join(_CHAIN_FIELDS)} "
    f"FROM {recordset(1, sql_columns(MarketChainState))}"
    + " ON CONFLICT (market_id) DO UPDATE SET "
    + ", ".join(
        f"{f} = EXCLUDED.{f}"
        if f != "ipfs_question_hash"
        # the account loses the question CID at resolution (docs/chain.md
        # §11.22): a state without one keeps the stored CID
        else f"{f} = coalesce(EXCLUDED.{f}, markets.{f})"
        for f in _UPDATABLE
    )
    + ", updated_at = now() WHERE markets.slot <= EXCLUDED.slot"
)


async def write_markets(con: asyncpg.Connection, states: Sequence[MarketChainState]) -> int:
    """Insert or update market accounts (asyncio side); returns rows written.

    A state older (lower slot) than the stored one is skipped (:func:`write_newest`).
    """
    return await write_newest(con, _UPSERT, states, lambda s: s.market_id)


async def upsert_markets(db: Database, states: Sequence[MarketChainState]) -> int:
    """:func:`write_markets` as its own transaction."""

    async def _run(con: asyncpg.Connection) -> int:
        return await write_markets(con, states)

    try:
        return await db.run("markets.upsert_markets", _run)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc
