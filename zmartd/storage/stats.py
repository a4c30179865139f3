"""Aggregate numbers: the platform's and one user's (inputs for volume, P&L, win rate).

Each is one query set in one crossing.  They scan what they summarise, so the
API should cache the platform numbers briefly rather than compute them per
request.
"""

from __future__ import annotations

import asyncpg

from zmartd.storage.database import Database
from zmartd.storage.records import PlatformStats, UserStats, u64

__all__ = ["platform_stats", "user_stats"]

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

    row, states = await db.run(_run, transaction=False)
    by_state = dict.fromkeys(range(7), 0)
    by_state.update({r["state"]: r["n"] for r in states})
    return PlatformStats(
        markets=row["markets"], markets_by_state=by_state, total_volume=u64(row["total_volume"]),
        total_liquidity=u64(row["total_liquidity"]), trades=row["trades"],
        traders=row["traders"], users=row["users"], volume_24h=u64(row["volume_24h"]),
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

    r = await db.run(_run, transaction=False)
    bought, sold = u64(r["bought"]), u64(r["sold"])
    return UserStats(
        wallet=wallet, trades=r["trades"], volume=bought + sold, bought=bought, sold=sold,
        claimed=u64(r["claimed"]), markets_traded=r["markets_traded"],
        open_positions=r["open_positions"], winning_positions=r["winning_positions"],
        losing_positions=r["losing_positions"], markets_created=r["markets_created"],
        proposal_votes=r["proposal_votes"], dispute_votes=r["dispute_votes"],
        discussions=r["discussions"],
    )
