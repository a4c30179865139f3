"""Aggregate numbers: the platform's and one user's (inputs for volume, P&L, win rate).

Each is one query set in one crossing.  They scan what they summarise, so the
API should cache the platform numbers briefly rather than compute them per
request.
"""

from __future__ import annotations

import asyncpg
import msgspec

from zmartd.storage.database import Database
from zmartd.storage.records import PlatformStats, UserStats, u64

__all__ = ["MarketFlows", "platform_stats", "user_market_flows", "user_stats"]

_PLATFORM = """
SELECT (SELECT count(*) FROM markets) AS markets,
       (SELECT coalesce(sum(total_volume), 0) FROM markets) AS total_volume,
       (SELECT coalesce(sum(current_liquidity), 0) FROM markets) AS total_liquidity,
       (SELECT count(*) FROM trades) AS trades,
       (SELECT count(DISTINCT wallet) FROM positions) AS traders,
       (SELECT count(*) FROM users) AS users,
       (SELECT coalesce(sum(amount), 0) FROM trades
         WHERE block_time > now() - interval '24 hours') AS volume_24h,
       (SELECT count(*) FROM trades WHERE block_time > now() - interval '24 hours') AS trades_24h
"""


async def platform_stats(db: Database) -> PlatformStats:
    async def _run(con: asyncpg.Connection) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
        row = await con.fetchrow(_PLATFORM)
        states = await con.fetch("SELECT state, count(*) AS n FROM markets GROUP BY state")
        return row, states

    row, states = await db.run("stats.platform_stats", _run, transaction=False)
    by_state = dict.fromkeys(range(7), 0)
    by_state.update({r["state"]: r["n"] for r in states})
    return PlatformStats(
        markets=row["markets"],
        markets_by_state=by_state,
        total_volume=u64(row["total_volume"]),
        total_liquidity=u64(row["total_liquidity"]),
        trades=row["trades"],
        traders=row["traders"],
        users=row["users"],
        volume_24h=u64(row["volume_24h"]),
        trades_24h=row["trades_24h"],
    )


_USER = """
WITH t AS (
    SELECT count(*) AS trades,
           coalesce(sum(amount) FILTER (WHERE side = 'buy'), 0) AS bought,
           coalesce(sum(amount) FILTER (WHERE side = 'sell'), 0) AS sold
    FROM trades WHERE wallet = $1::text
), p AS (
    SELECT count(*) AS markets_traded,
           count(*) FILTER (WHERE (p.shares_yes > 0 OR p.shares_no > 0)
                            AND m.state NOT IN (5, 6)) AS open_positions,
           coalesce(sum(p.claimed_amount), 0) AS claimed,
           count(*) FILTER (WHERE m.state = 5 AND m.final_outcome IS NOT NULL AND (
               (m.final_outcome AND p.shares_yes > 0)
               OR (NOT m.final_outcome AND p.shares_no > 0)
               OR p.has_claimed)) AS winning_positions,
           count(*) FILTER (WHERE m.state = 5 AND m.final_outcome IS NOT NULL AND NOT (
               (m.final_outcome AND p.shares_yes > 0)
               OR (NOT m.final_outcome AND p.shares_no > 0)
               OR p.has_claimed)) AS losing_positions
    FROM positions p JOIN markets m ON m.market_id = p.market_id
    WHERE p.wallet = $1::text
)
SELECT t.*, p.*,
       (SELECT count(*) FROM markets WHERE creator = $1::text) AS markets_created,
       (SELECT count(*) FROM proposal_votes WHERE wallet = $1::text) AS proposal_votes,
       (SELECT count(*) FROM dispute_votes WHERE wallet = $1::text) AS dispute_votes,
       (SELECT count(*) FROM discussions WHERE wallet = $1::text AND deleted_at IS NULL)
           AS discussions
FROM t, p
"""


async def user_stats(db: Database, wallet: str) -> UserStats:
    """A wallet's activity totals (all zero for an unknown wallet).

    Winning/losing count positions in FINALIZED markets with a YES/NO outcome;
    a position that already claimed counts as winning (claiming zeroes no
    shares on chain, but only winners have anything to claim).
    """

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        row: asyncpg.Record = await con.fetchrow(_USER, wallet)
        return row

    r = await db.run("stats.user_stats", _run, transaction=False)
    bought, sold = u64(r["bought"]), u64(r["sold"])
    return UserStats(
        wallet=wallet,
        trades=r["trades"],
        volume=bought + sold,
        bought=bought,
        sold=sold,
        claimed=u64(r["claimed"]),
        markets_traded=r["markets_traded"],
        open_positions=r["open_positions"],
        winning_positions=r["winning_positions"],
        losing_positions=r["losing_positions"],
        markets_created=r["markets_created"],
        proposal_votes=r["proposal_votes"],
        dispute_votes=r["dispute_votes"],
        discussions=r["discussions"],
    )


class MarketFlows(msgspec.Struct, frozen=True, kw_only=True):
    """One wallet's money and shares in one market: its trades summed per side and
    outcome, its position (zero if none) and what the market's P&L valuation needs."""

    market_id: str
    market_state: int
    market_price_yes: int
    market_final_outcome: bool | None
    shares_yes: int
    shares_no: int
    total_invested: int
    has_claimed: bool
    claimed_amount: int
    bought_yes: int
    bought_yes_shares: int
    sold_yes: int
    sold_yes_shares: int
    bought_no: int
    bought_no_shares: int
    sold_no: int
    sold_no_shares: int


_FLOWS = """
WITH f AS (
    SELECT market_id,
           coalesce(sum(amount) FILTER (WHERE side = 'buy' AND outcome = 'YES'), 0) AS bought_yes,
           coalesce(sum(shares) FILTER (WHERE side = 'buy' AND outcome = 'YES'), 0)
               AS bought_yes_shares,
           coalesce(sum(amount) FILTER (WHERE side = 'sell' AND outcome = 'YES'), 0) AS sold_yes,
           coalesce(sum(shares) FILTER (WHERE side = 'sell' AND outcome = 'YES'), 0)
               AS sold_yes_shares,
           coalesce(sum(amount) FILTER (WHERE side = 'buy' AND outcome = 'NO'), 0) AS bought_no,
           coalesce(sum(shares) FILTER (WHERE side = 'buy' AND outcome = 'NO'), 0)
               AS bought_no_shares,
           coalesce(sum(amount) FILTER (WHERE side = 'sell' AND outcome = 'NO'), 0) AS sold_no,
           coalesce(sum(shares) FILTER (WHERE side = 'sell' AND outcome = 'NO'), 0)
               AS sold_no_shares
    FROM trades WHERE wallet = $1::text GROUP BY market_id
), p AS (
    SELECT market_id, shares_yes, shares_no, total_invested, has_claimed, claimed_amount
    FROM positions WHERE wallet = $1::text
)
SELECT coalesce(f.market_id, p.market_id) AS market_id, m.state AS market_state,
       m.price_yes AS market_price_yes, m.final_outcome AS market_final_outcome,
       coalesce(p.shares_yes, 0) AS shares_yes, coalesce(p.shares_no, 0) AS shares_no,
       coalesce(p.total_invested, 0) AS total_invested,
       coalesce(p.has_claimed, false) AS has_claimed,
       coalesce(p.claimed_amount, 0) AS claimed_amount,
       coalesce(f.bought_yes, 0) AS bought_yes,
       coalesce(f.bought_yes_shares, 0) AS bought_yes_shares,
       coalesce(f.sold_yes, 0) AS sold_yes, coalesce(f.sold_yes_shares, 0) AS sold_yes_shares,
       coalesce(f.bought_no, 0) AS bought_no,
       coalesce(f.bought_no_shares, 0) AS bought_no_shares,
       coalesce(f.sold_no, 0) AS sold_no, coalesce(f.sold_no_shares, 0) AS sold_no_shares
FROM f FULL JOIN p ON p.market_id = f.market_id
JOIN markets m ON m.market_id = coalesce(f.market_id, p.market_id)
ORDER BY 1
"""
_FLOW_U64 = (
    "shares_yes",
    "shares_no",
    "total_invested",
    "claimed_amount",
    "bought_yes",
    "bought_yes_shares",
    "sold_yes",
    "sold_yes_shares",
    "bought_no",
    "bought_no_shares",
    "sold_no",
    "sold_no_shares",
)


async def user_market_flows(db: Database, wallet: str) -> tuple[MarketFlows, ...]:
    """Per market the wallet traded in or holds: the inputs of its P&L (one crossing).

    Scans the wallet's trades and positions (both indexed by wallet); a profile
    page's cost, proportional to the wallet's activity.
    """

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(_FLOWS, wallet)
        return rows

    rows = await db.run("stats.user_market_flows", _run, transaction=False)
    out = []
    for r in rows:
        data = dict(r)
        for name in _FLOW_U64:
            data[name] = u64(data[name])
        out.append(MarketFlows(**data))
    return tuple(out)
