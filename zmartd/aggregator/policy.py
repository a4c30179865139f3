"""The aggregator's arithmetic, exactly as the program computes it.

``approve_proposal`` computes ``(likes * 10_000) // total`` in u128 and
compares it with ``proposal_approval_threshold`` (inclusive); a disputed
``finalize_market`` flips the proposed outcome when ``(agree * 10_000) //
(agree + disagree) >= dispute_success_threshold``.  Integer floor division on
both sides, never floats: 6,999.99 bps is 6,999 and does not pass 7,000.
"""

from __future__ import annotations

from typing import Final

__all__ = ["U32_MAX", "approval_bps", "approves", "dispute_flips"]

U32_MAX: Final = 2**32 - 1


def approval_bps(yes: int, total: int) -> int:
    """``yes * 10000 // total`` (0 without votes, as the program's events say)."""
    return yes * 10_000 // total if total > 0 else 0


def approves(likes: int, dislikes: int, *, threshold_bps: int, min_votes: int) -> bool:
    """Whether ``approve_proposal`` will pass with these counts stored on chain
    and the off-chain minimum is met (the program itself needs total > 0)."""
    total = likes + dislikes
    return total > 0 and total >= min_votes and approval_bps(likes, total) >= threshold_bps


def dispute_flips(agree: int, disagree: int, *, threshold_bps: int) -> bool:
    """Whether ``finalize_market(Some(agree), Some(disagree))`` flips the outcome."""
    return approval_bps(agree, agree + disagree) >= threshold_bps
