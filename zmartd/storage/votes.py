"""Proposal and dispute votes: one per wallet per market per kind.

Off-chain votes (cast through the API) may be changed until an aggregation
covers them; on-chain votes (VoteRecord accounts, written by the indexer) are
final and replace an off-chain vote of the same wallet.  An aggregation
(:func:`aggregate`) freezes the current votes of a market and records the
counts that zmartd submits on chain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from zmartd.storage.cursors import TEXT, TIME
from zmartd.storage.database import Database
from zmartd.storage.records import (
    ExcludedReason,
    InvalidArgument,
    NotFound,
    NotPermitted,
    Page,
    VoteKind,
    VoteLocked,
    VoteRecord,
    VoteTally,
    check_limit,
    rejected,
)

__all__ = [
    "ChainVote",
    "Eligibility",
    "VoterFacts",
    "aggregate",
    "cast_vote",
    "get_vote",
    "list_user_votes",
    "tally",
    "write_chain_votes",
]

MAX_PAGE = 200

_TABLES: dict[str, str] = {"proposal": "proposal_votes", "dispute": "dispute_votes"}
#: the market state in which each kind of vote is accepted (docs/chain.md §7)
_OPEN_STATE = {"proposal": 0, "dispute": 4}
_COLUMNS = (
    "market_id, wallet, kind, vote, source, created_at, updated_at, aggregated_at, "
    "aggregation_id, excluded"
)


#: What a handler's eligibility rule sees about a vote being cast (read in the unit).
class VoterFacts(msgspec.Struct, frozen=True, kw_only=True):
    #: the wallet has a position or a trade in the mirror (any market)
    has_history: bool
    #: other wallets' off-chain votes on this market and kind from the same address
    votes_from_address: int


#: The rule: None to count the vote, or the reason it is kept but not counted.
Eligibility = Callable[[VoterFacts], ExcludedReason | None]


def _table(kind: str) -> str:
    try:
        return _TABLES[kind]
    except KeyError:
        raise InvalidArgument(f"vote kind must be 'proposal' or 'dispute', got {kind!r}") from None


def _vote(row: asyncpg.Record) -> VoteRecord:
    return VoteRecord(**dict(row))


class ChainVote(msgspec.Struct, frozen=True, kw_only=True):
    """A ProposalVoteSubmitted / DisputeVoteSubmitted event, as the indexer writes it."""

    kind: VoteKind
    market_id: str
    wallet: str
    vote: bool
    signature: str
    slot: int
    voted_at: datetime


async def cast_vote(
    db: Database,
    *,
    kind: VoteKind,
    market_id: str,
    wallet: str,
    vote: bool,
    client_ip: str | None = None,
    eligibility: Eligibility | None = None,
) -> VoteRecord:
    """Cast or change an off-chain vote, with the verdict of ``eligibility`` (taken in
    the same unit, from :class:`VoterFacts`; without a rule every vote counts).

    Raises :class:`NotFound` (no such market), :class:`NotPermitted` (the
    market is not in the state that takes this kind of vote), or
    :class:`VoteLocked` (already aggregated, or cast on chain).
    """
    table = _table(kind)

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        state = await con.fetchval(
            "SELECT state FROM markets WHERE market_id = $1::text FOR SHARE", market_id
        )
        if state is None:
            raise NotFound(f"market {market_id} not found")
        if state != _OPEN_STATE[kind]:
            raise NotPermitted(f"market is not accepting {kind} votes (state {state})")
        excluded = None
        if eligibility is not None:
            facts = await con.fetchrow(
                f"""
                SELECT EXISTS (SELECT 1 FROM positions WHERE wallet = $2::text)
                       OR EXISTS (SELECT 1 FROM trades WHERE wallet = $2::text) AS history,
                       (SELECT count(*) FROM {table}
                         WHERE market_id = $1::text AND client_ip = $3::inet
                           AND wallet <> $2::text AND source = 'offchain') AS same_address
                """,
                market_id,
                wallet,
                client_ip,
            )
            excluded = eligibility(
                VoterFacts(has_history=facts["history"], votes_from_address=facts["same_address"])
            )
        row = await con.fetchrow(
            f"""
            INSERT INTO {table} AS v (market_id, wallet, vote, source, excluded, client_ip)
            VALUES ($1, $2, $3, 'offchain', $4, $5::inet)
            ON CONFLICT (market_id, wallet) DO UPDATE SET vote = EXCLUDED.vote,
                excluded = EXCLUDED.excluded, client_ip = EXCLUDED.client_ip, updated_at = now()
            WHERE v.source = 'offchain' AND v.aggregated_at IS NULL
            RETURNING {_COLUMNS}
            """,
            market_id,
            wallet,
            vote,
            excluded,
            client_ip,
        )
        if row is None:
            raise VoteLocked("this vote was already aggregated or cast on chain")
        return row

    try:
        return _vote(await db.run("votes.cast_vote", _run))
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc


async def get_vote(
    db: Database, *, kind: VoteKind, market_id: str, wallet: str
) -> VoteRecord | None:
    table = _table(kind)

    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        return await con.fetchrow(
            f"SELECT {_COLUMNS} FROM {table} WHERE market_id = $1::text AND wallet = $2::text",
            market_id,
            wallet,
        )

    row = await db.run("votes.get_vote", _run, transaction=False)
    return None if row is None else _vote(row)


async def tally(db: Database, *, kind: VoteKind, market_id: str) -> VoteTally:
    """Counts of a market's votes of one kind (yes = like / agree)."""
    table = _table(kind)

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        row: asyncpg.Record = await con.fetchrow(
            f"""
            SELECT count(*) FILTER (WHERE vote AND excluded IS NULL) AS yes,
                   count(*) FILTER (WHERE NOT vote AND excluded IS NULL) AS no,
                   count(*) FILTER (WHERE excluded IS NULL) AS total,
                   count(*) FILTER (WHERE aggregated_at IS NULL AND excluded IS NULL)
                       AS pending,
                   count(*) FILTER (WHERE excluded = 'no_history') AS excluded_no_history,
                   count(*) FILTER (WHERE excluded = 'address_limit')
                       AS excluded_address_limit,
                   (SELECT max(id) FROM vote_aggregations
                     WHERE market_id = $1::text AND kind = $2::text) AS last_aggregation_id
            FROM {table} WHERE market_id = $1::text
            """,
            market_id,
            kind,
        )
        return row

    row = dict(await db.run("votes.tally", _run, transaction=False))
    excluded = {reason: row.pop(f"excluded_{reason}") for reason in ("no_history", "address_limit")}
    return VoteTally(market_id=market_id, kind=kind, excluded=excluded, **row)


async def aggregate(db: Database, *, kind: VoteKind, market_id: str) -> VoteTally:
    """Freeze every vote of the market and record the counts as a new aggregation.

    Votes cast after this are counted by the next aggregation.  Returns the
    counts the aggregation recorded (all votes of the market, old and new).
    """
    table = _table(kind)

    async def _run(con: asyncpg.Connection) -> VoteTally:
        # Lock the market row: casts (FOR SHARE) wait, so no vote slips between count and stamp.
        found = await con.fetchval(
            "SELECT 1 FROM markets WHERE market_id = $1::text FOR UPDATE", market_id
        )
        if found is None:
            raise NotFound(f"market {market_id} not found")
        counts = await con.fetchrow(
            f"SELECT count(*) FILTER (WHERE vote) AS yes, count(*) FILTER (WHERE NOT vote) AS no "
            f"FROM {table} WHERE market_id = $1::text AND excluded IS NULL",
            market_id,
        )
        agg_id = await con.fetchval(
            "INSERT INTO vote_aggregations (market_id, kind, yes_count, no_count) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            market_id,
            kind,
            counts["yes"],
            counts["no"],
        )
        await con.execute(
            f"UPDATE {table} SET aggregation_id = $2, aggregated_at = now() "
            "WHERE market_id = $1::text AND aggregated_at IS NULL",
            market_id,
            agg_id,
        )
        return VoteTally(
            market_id=market_id,
            kind=kind,
            yes=counts["yes"],
            no=counts["no"],
            total=counts["yes"] + counts["no"],
            pending=0,
            last_aggregation_id=agg_id,
        )

    return await db.run("votes.aggregate", _run)


async def list_user_votes(
    db: Database,
    wallet: str,
    *,
    kind: VoteKind | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[VoteRecord]:
    """A wallet's votes of both kinds (or one), newest first."""
    check_limit(limit, MAX_PAGE)
    kinds = [kind] if kind is not None else ["proposal", "dispute"]
    tables = [_table(k) for k in kinds]
    args: list[Any] = [wallet]
    after = ""
    if cursor is not None:
        at, market_id, last_kind = db.cursors.decode(cursor, "votes:wallet", (TIME, TEXT, TEXT))
        args += [at, market_id, last_kind]
        after = " AND (created_at, market_id, kind) < ($2::timestamptz, $3::text, $4::text)"
    args.append(limit + 1)
    union = " UNION ALL ".join(
        f"(SELECT {_COLUMNS} FROM {t} WHERE wallet = $1::text{after} "
        f"ORDER BY created_at DESC, market_id DESC LIMIT ${len(args)})"
        for t in tables
    )
    sql = (
        f"SELECT * FROM ({union}) v ORDER BY created_at DESC, market_id DESC, kind DESC "
        f"LIMIT ${len(args)}"
    )

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(sql, *args)
        return rows

    rows = await db.run("votes.list_user_votes", _run, transaction=False)
    items = tuple(_vote(r) for r in rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = db.cursors.encode(
            "votes:wallet", (last.created_at, last.market_id, last.kind)
        )
    return Page(items=items, next_cursor=next_cursor)


async def write_chain_votes(con: asyncpg.Connection, votes: Sequence[ChainVote]) -> int:
    """Store on-chain votes (asyncio side); they replace off-chain ones and are final."""
    written = 0
    for kind in ("proposal", "dispute"):
        batch = [v for v in votes if v.kind == kind]
        if not batch:
            continue
        status: str = await con.execute(
            f"""
            INSERT INTO {_TABLES[kind]} AS v (market_id, wallet, vote, source, signature, slot,
                                              created_at, updated_at)
            SELECT m, w, vt, 'onchain', s, sl, t, t
            FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::bigint[],
                        $6::timestamptz[]) AS x(m, w, vt, s, sl, t)
            ON CONFLICT (market_id, wallet) DO UPDATE SET
                vote = EXCLUDED.vote, source = 'onchain', signature = EXCLUDED.signature,
                slot = EXCLUDED.slot, updated_at = now()
            WHERE v.source = 'offchain'
            """,
            [v.market_id for v in batch],
            [v.wallet for v in batch],
            [v.vote for v in batch],
            [v.signature for v in batch],
            [v.slot for v in batch],
            [v.voted_at for v in batch],
        )
        written += int(status.rsplit(" ", 1)[-1])
    return written
