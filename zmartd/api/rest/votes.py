"""``/v1/markets/{market_id}/votes``: tallies with thresholds and deadlines, and casting.

Casting needs a session (the vote is the session's wallet's).  A vote may be
changed by casting again until an aggregation covers it; proposal votes are
taken while the market is PROPOSED and dispute votes while it is DISPUTED,
anything else is 409.
"""

from __future__ import annotations

from typing import Literal

from zmartd.api.handlers import votes as handlers
from zmartd.api.rest.markets import MarketPath
from zmartd.api.routing import Call, Router
from zmartd.api.validation import Body
from zmartd.model import views

__all__ = ["DisputeVoteBody", "ProposalVoteBody", "router"]

router = Router("votes", prefix="/v1/markets", tags=["votes"])


class ProposalVoteBody(Body, frozen=True, kw_only=True):
    vote: Literal["like", "dislike"]


class DisputeVoteBody(Body, frozen=True, kw_only=True):
    #: agree = the proposed outcome is wrong (the dispute should succeed)
    vote: Literal["agree", "disagree"]


@router.get("/<market_id>/votes", path_type=MarketPath, response=views.VoteSummary, errors=[404])
async def market_votes(call: Call[None, None]) -> views.VoteSummary:
    """Proposal and dispute tallies, the aggregator's thresholds, and the dispute deadline.

    `approval_bps` is `yes x 10000 // total` (the chain's floor); a tally
    `meets_threshold` with at least `min_votes` votes and `approval_bps >=
    threshold_bps` (the indexed GlobalConfig's thresholds; `min_votes` from
    `[aggregator]`).  `dispute_window_ends_at` = `resolution_proposed_at + dispute_period`.
    """
    return await handlers.summary(call.database(), call.ctx.config.aggregator, call.path.market_id)


@router.post(
    "/<market_id>/votes/proposal",
    path_type=MarketPath,
    body=ProposalVoteBody,
    response=views.Vote,
    auth="session",
    errors=[404, 409],
)
async def vote_proposal(call: Call[ProposalVoteBody, None]) -> views.Vote:
    """Like or dislike a PROPOSED market (cast or change your vote)."""
    return await handlers.cast(
        call.database(),
        call.ctx.bus,
        kind="proposal",
        ref=call.path.market_id,
        wallet=call.require_session().wallet,
        vote=call.body.vote == "like",
        client_ip=call.client_ip,
        policy=call.ctx.config.votes,
    )


@router.post(
    "/<market_id>/votes/dispute",
    path_type=MarketPath,
    body=DisputeVoteBody,
    response=views.Vote,
    auth="session",
    errors=[404, 409],
)
async def vote_dispute(call: Call[DisputeVoteBody, None]) -> views.Vote:
    """Agree or disagree with the dispute of a DISPUTED market (cast or change your vote)."""
    return await handlers.cast(
        call.database(),
        call.ctx.bus,
        kind="dispute",
        ref=call.path.market_id,
        wallet=call.require_session().wallet,
        vote=call.body.vote == "agree",
        client_ip=call.client_ip,
        policy=call.ctx.config.votes,
    )
