"""The vote aggregator's SQL: the tally, freezing an aggregation together with
the intent that carries it on chain, and the per-market outcomes.

**The tally runs in the database.**  One statement counts the votes of every
open market (an aggregate over the covering ``(market_id) INCLUDE (vote,
source, excluded)`` index) and returns one row per market; no vote row is ever loaded
into Python.  Which votes count is one SQL predicate, :func:`eligible`: the
configured source (``vote_source``) and the vote policy's verdict (``[votes]``:
votes excluded as sybil-like never count), so every count -- the tally, the
frozen aggregation -- follows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import asyncpg
import msgspec

from zmartd.storage.database import Database
from zmartd.storage.intents import IntentKind, IntentRecord, insert_intent
from zmartd.storage.records import InvalidArgument, VoteKind

__all__ = [
    "AggregationOutcome",
    "Candidate",
    "VoteSource",
    "candidates",
    "eligible",
    "freeze_and_submit",
    "read_outcomes",
    "record_outcome",
]

VoteSource = Literal["chain", "api", "both"]
_TABLES: Final = {"proposal": "proposal_votes", "dispute": "dispute_votes"}
#: the market state whose votes each kind tallies (Proposed, Disputed)
_STATES: Final = {"proposal": 0, "dispute": 4}
_SOURCES: Final = {"both": "TRUE", "chain": "v.source = 'onchain'", "api": "v.source = 'offchain'"}


def eligible(source: str) -> str:
    """The SQL predicate (over alias ``v``) selecting the votes that count: the configured
    source, and never a vote the API's vote policy excluded (``[votes]``, migration 0008:
    sybil wallets without history, too many votes from one address)."""
    try:
        return f"({_SOURCES[source]}) AND v.excluded IS NULL"
    except KeyError:
        raise InvalidArgument(f"vote_source must be chain, api or both, got {source!r}") from None


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """An open market with its live tally and what was last sent for it."""

    market_id: str
    yes: int
    no: int
    #: the counts the chain holds (as indexed): proposal likes/dislikes, dispute agree/disagree
    chain_yes: int
    chain_no: int
    dispute_initiated_at: datetime | None
    proposed_outcome: bool | None
    last_aggregation_id: int | None
    last_yes: int | None
    last_no: int | None
    last_intent_id: int | None
    last_intent_state: str | None


def _sql(kind: str, source: str) -> str:
    table = _TABLES[kind]
    chain = (
        ("m.proposal_likes", "m.proposal_dislikes")
        if kind == "proposal"
        else ("m.dispute_agree", "m.dispute_disagree")
    )
    return f"""
        WITH open AS (
            SELECT market_id, {chain[0]} AS chain_yes, {chain[1]} AS chain_no,
                   dispute_initiated_at, proposed_outcome
            FROM markets m WHERE m.state = {_STATES[kind]}
        ), tally AS (
            SELECT v.market_id, count(*) FILTER (WHERE v.vote) AS yes,
                   count(*) FILTER (WHERE NOT v.vote) AS no
            FROM {table} v JOIN open o USING (market_id)
            WHERE {eligible(source)}
            GROUP BY v.market_id
        ), last AS (
            SELECT DISTINCT ON (a.market_id) a.market_id, a.id, a.yes_count, a.no_count,
                   a.intent_id, i.state
            FROM vote_aggregations a JOIN open o USING (market_id)
            LEFT JOIN intents i ON i.id = a.intent_id
            WHERE a.kind = '{kind}'
            ORDER BY a.market_id, a.id DESC
        )
        SELECT o.market_id, coalesce(t.yes, 0) AS yes, coalesce(t.no, 0) AS no,
               o.chain_yes, o.chain_no, o.dispute_initiated_at, o.proposed_outcome,
               l.id AS last_aggregation_id, l.yes_count AS last_yes, l.no_count AS last_no,
               l.intent_id AS last_intent_id, l.state AS last_intent_state
        FROM open o LEFT JOIN tally t USING (market_id) LEFT JOIN last l USING (market_id)
        ORDER BY o.market_id
    """


async def candidates(db: Database, kind: VoteKind, source: str) -> list[Candidate]:
    """Every market open for ``kind`` votes, tallied (one statement)."""
    sql = _sql(kind, source)

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        return list(await con.fetch(sql))

    return [
        Candidate(**dict(r)) for r in await db.run("aggregator.candidates", _run, transaction=False)
    ]


async def freeze_and_submit(
    db: Database,
    *,
    kind: VoteKind,
    market_id: str,
    source: str,
    intent_kind: IntentKind,
    args_for: Any,
) -> tuple[int | None, int, int, IntentRecord]:
    """In one transaction: recount the market's eligible votes (its row locked,
    so no vote slips in between), record them as an aggregation, stamp the
    counted votes as aggregated (off-chain ones become final), and store the
    intent that carries the counts on chain.  ``args_for(yes, no)`` gives the
    intent's arguments.  Idempotent: the intent's key names the market, the
    counts and the previous aggregation, so a replay returns the stored
    intent without a second aggregation.  Returns ``(aggregation id, yes, no,
    intent)``."""
    table = _TABLES[kind]
    where = eligible(source)

    async def _run(con: asyncpg.Connection) -> tuple[int | None, int, int, IntentRecord]:
        await con.execute("SELECT 1 FROM markets WHERE market_id = $1 FOR UPDATE", market_id)
        counts = await con.fetchrow(
            f"SELECT count(*) FILTER (WHERE v.vote) AS yes, "
            f"count(*) FILTER (WHERE NOT v.vote) AS no FROM {table} v "
            f"WHERE v.market_id = $1 AND {where}",
            market_id,
        )
        yes, no = int(counts["yes"]), int(counts["no"])
        previous = await con.fetchval(
            "SELECT max(id) FROM vote_aggregations WHERE market_id = $1 AND kind = $2",
            market_id,
            kind,
        )
        key = f"{intent_kind}:{market_id}:{yes}:{no}:after:{previous or 0}"
        found = await con.fetchval("SELECT id FROM intents WHERE idempotency_key = $1", key)
        intent, _ = await insert_intent(
            con, kind=intent_kind, market_id=market_id, args=args_for(yes, no), key=key
        )
        if found is not None:
            return previous, yes, no, intent
        agg_id = await con.fetchval(
            "INSERT INTO vote_aggregations (market_id, kind, yes_count, no_count, intent_id) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            market_id,
            kind,
            yes,
            no,
            intent.id,
        )
        await con.execute(
            f"UPDATE {table} v SET aggregation_id = $2, aggregated_at = now() "
            f"WHERE v.market_id = $1 AND v.aggregated_at IS NULL AND {where}",
            market_id,
            agg_id,
        )
        return agg_id, yes, no, intent

    return await db.run("aggregator.freeze_and_submit", _run)


async def record_outcome(
    db: Database,
    *,
    market_id: str,
    kind: VoteKind,
    outcome: str,
    detail: str,
    yes: int,
    no: int,
    aggregation_id: int | None = None,
    intent_id: int | None = None,
) -> None:
    """The aggregator's last decision for a market (replaces the previous one)."""

    async def _run(con: asyncpg.Connection) -> None:
        await con.execute(
            "INSERT INTO aggregator_outcomes AS o (market_id, kind, outcome, detail, yes_count, "
            "no_count, aggregation_id, intent_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (market_id, kind) DO UPDATE SET at = now(), outcome = $3, "
            "detail = $4, yes_count = $5, no_count = $6, "
            "aggregation_id = coalesce($7, o.aggregation_id), "
            "intent_id = coalesce($8, o.intent_id)",
            market_id,
            kind,
            outcome,
            detail[:2000],
            yes,
            no,
            aggregation_id,
            intent_id,
        )

    await db.run("aggregator.record_outcome", _run)


class AggregationOutcome(msgspec.Struct, frozen=True, kw_only=True):
    market_id: str
    kind: VoteKind
    at: datetime
    outcome: str
    detail: str
    yes: int
    no: int
    aggregation_id: int | None
    intent_id: int | None
    intent_kind: str | None
    intent_state: str | None
    signature: str | None
    error_name: str | None


async def read_outcomes(db: Database, market_id: str) -> list[AggregationOutcome]:
    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        return list(
            await con.fetch(
                "SELECT o.market_id, o.kind, o.at, o.outcome, o.detail, o.yes_count AS yes, "
                "o.no_count AS no, o.aggregation_id, o.intent_id, i.kind AS intent_kind, "
                "i.state AS intent_state, i.signature, i.error_name "
                "FROM aggregator_outcomes o LEFT JOIN intents i ON i.id = o.intent_id "
                "WHERE o.market_id = $1 ORDER BY o.kind DESC",
                market_id,
            )
        )

    return [
        AggregationOutcome(**dict(r))
        for r in await db.run("aggregator.read_outcomes", _run, transaction=False)
    ]
