"""What a FINALIZED market owes its traders, computed from the mirror exactly
as ``claim_winnings`` pays (docs/chain.md, claim_winnings):

* final outcome YES/NO: each unclaimed position holding winning shares gets
  ``its_side_shares * current_liquidity // market_side_shares`` (integer
  floor; claims reduce neither the share totals nor ``current_liquidity``, so
  the formula holds before and after other claims);
* final outcome None (INVALID): each unclaimed position gets its
  ``total_invested`` back.

A position whose payout would be 0 cannot claim (``NoWinnings``) and is not
counted.  The resolver's accumulated fees go out with the first winning claim.
"""

from __future__ import annotations

import asyncpg
import msgspec

from zmartd.storage.database import Database

__all__ = ["ClaimTotals", "claim_totals"]


class ClaimTotals(msgspec.Struct, frozen=True, kw_only=True):
    market_id: str
    #: unclaimed positions that can claim, and what they will be paid (lamports)
    claimable_positions: int
    claimable: int
    #: positions that claimed, and what they were paid
    claimed_positions: int
    claimed: int
    #: paid to the resolver with the first winning claim (0 once paid, or for INVALID)
    resolver_fees_due: int


_SQL = """
WITH m AS (SELECT * FROM markets WHERE market_id = $1 AND state = 5),
p AS (
    SELECT p.has_claimed, p.claimed_amount,
           CASE
               WHEN m.final_outcome IS NULL THEN p.total_invested
               WHEN m.final_outcome AND m.shares_yes > 0
                   THEN div(p.shares_yes * m.current_liquidity, m.shares_yes)
               WHEN NOT m.final_outcome AND m.shares_no > 0
                   THEN div(p.shares_no * m.current_liquidity, m.shares_no)
               ELSE 0
           END AS payout
    FROM positions p JOIN m USING (market_id)
)
SELECT m.market_id,
       (SELECT count(*) FROM p WHERE NOT has_claimed AND payout > 0) AS claimable_positions,
       (SELECT coalesce(sum(payout), 0) FROM p WHERE NOT has_claimed AND payout > 0) AS claimable,
       (SELECT count(*) FROM p WHERE has_claimed) AS claimed_positions,
       (SELECT coalesce(sum(claimed_amount), 0) FROM p WHERE has_claimed) AS claimed,
       CASE WHEN m.final_outcome IS NULL THEN 0 ELSE m.accumulated_resolver_fees END
           AS resolver_fees_due
FROM m
"""


async def claim_totals(db: Database, market_id: str) -> ClaimTotals | None:
    """The totals of a FINALIZED market; None when the market is not FINALIZED."""

    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        return await con.fetchrow(_SQL, market_id)

    row = await db.run("claims.claim_totals", _run, transaction=False)
    if row is None:
        return None
    return ClaimTotals(
        market_id=row["market_id"],
        claimable_positions=int(row["claimable_positions"]),
        claimable=int(row["claimable"]),
        claimed_positions=int(row["claimed_positions"]),
        claimed=int(row["claimed"]),
        resolver_fees_due=int(row["resolver_fees_due"]),
    )
