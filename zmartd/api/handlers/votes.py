"""Proposal and dispute votes: casting (off chain, changeable until aggregated)
and the tallies with the aggregator's thresholds and the dispute deadline.

Rules (docs/chain.md §7 and the ``[aggregator]`` config):

* proposal votes (like/dislike) are taken while the market is PROPOSED,
  dispute votes (agree/disagree) while it is DISPUTED; otherwise 409;
* one vote per wallet per market and kind; casting again changes it until an
  aggregation covers it (or it was cast on chain): then 409;
* a tally "meets the threshold" when it has at least ``min_votes`` votes and
  ``yes x 10000 // total >= threshold`` (the chain's integer floor, inclusive);
  the thresholds are the indexed GlobalConfig's (the program re-checks them),
  ``min_votes`` is the aggregator's off-chain policy;
* the dispute window ends at ``resolution_proposed_at + dispute_period``
  (the indexed GlobalConfig; the program defaults -- 7000/6000 bps, 72 h --
  until the indexer has seen that account, which ``dispute_period_source`` tells).

Every accepted vote is published as :class:`~zmartd.bus.VoteChanged`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Final

from zmartd.api import problems
from zmartd.api.handlers.markets import resolve
from zmartd.bus import Bus, VoteChanged
from zmartd.config import AggregatorConfig, VotesConfig
from zmartd.model import views
from zmartd.storage import aggregator as aggregator_store
from zmartd.storage import indexer as indexer_store
from zmartd.storage import votes as store
from zmartd.storage.database import Database
from zmartd.storage.records import ExcludedReason, Page, VoteKind, VoteRecord

__all__ = ["DISPUTE_PERIOD", "OPEN_STATE", "cast", "summary", "user_votes"]

#: GlobalConfig values as initialize_global_config writes them.
DISPUTE_PERIOD: Final = timedelta(hours=72)
PROPOSAL_THRESHOLD: Final = 7000
DISPUTE_THRESHOLD: Final = 6000
#: the market state in which each kind of vote is accepted
OPEN_STATE: Final[dict[VoteKind, int]] = {"proposal": 0, "dispute": 4}


async def summary(db: Database, cfg: AggregatorConfig, ref: str) -> views.VoteSummary:
    market = await resolve(db, ref)
    proposal = await store.tally(db, kind="proposal", market_id=market.market_id)
    dispute = await store.tally(db, kind="dispute", market_id=market.market_id)
    accepting = next((k for k, s in OPEN_STATE.items() if s == market.state), None)
    proposed = market.resolution_proposed_at
    config = await indexer_store.read_global_config(db)
    period = DISPUTE_PERIOD if config is None else timedelta(seconds=config.dispute_period)
    proposal_bps = PROPOSAL_THRESHOLD if config is None else config.proposal_approval_threshold
    dispute_bps = DISPUTE_THRESHOLD if config is None else config.dispute_success_threshold
    return views.VoteSummary(
        market_id=market.market_id,
        state=market.state,
        status=views.STATE_NAMES[market.state],
        accepting=accepting,
        proposal=views.tally_view(proposal, threshold_bps=proposal_bps, min_votes=cfg.min_votes),
        dispute=views.tally_view(dispute, threshold_bps=dispute_bps, min_votes=cfg.min_votes),
        resolution_proposed_at=proposed,
        dispute_period=int(period.total_seconds()),
        dispute_period_source="program_defaults" if config is None else "global_config",
        dispute_window_ends_at=None if proposed is None else proposed + period,
        aggregations=[
            views.aggregation_view(o)
            for o in await aggregator_store.read_outcomes(db, market.market_id)
        ],
    )


def _address(client_ip: str | None) -> str | None:
    """The client address as PostgreSQL's inet takes it (None for a socket path)."""
    if client_ip is None:
        return None
    try:
        return str(ip_address(client_ip))
    except ValueError:
        return None


def eligibility(policy: VotesConfig) -> store.Eligibility:
    """The anti-sybil rule of ``[votes]``: which off-chain votes count (the vote is kept
    either way, with the reason it does not count)."""

    def decide(facts: store.VoterFacts) -> ExcludedReason | None:
        if policy.eligibility == "history" and not facts.has_history:
            return "no_history"
        if policy.max_per_address and facts.votes_from_address >= policy.max_per_address:
            return "address_limit"
        return None

    return decide


async def cast(
    db: Database,
    bus: Bus,
    *,
    kind: VoteKind,
    ref: str,
    wallet: str,
    vote: bool,
    client_ip: str | None = None,
    policy: VotesConfig | None = None,
) -> views.Vote:
    """Cast or change ``wallet``'s vote; 404 unknown market, 409 wrong state or locked.
    With a ``policy`` the answer says whether the vote counts (``counted``, ``excluded``)."""
    market = await resolve(db, ref)
    if market.state != OPEN_STATE[kind]:
        wanted = views.STATE_NAMES[OPEN_STATE[kind]]
        raise problems.conflict(
            f"{kind} votes are taken while the market is {wanted}; it is "
            f"{views.STATE_NAMES[market.state]}"
        )
    record: VoteRecord = await store.cast_vote(
        db,
        kind=kind,
        market_id=market.market_id,
        wallet=wallet,
        vote=vote,
        client_ip=_address(client_ip),
        eligibility=None if policy is None else eligibility(policy),
    )
    view = views.vote_view(record)
    await bus.publish(
        "events",
        VoteChanged(
            kind=kind,
            market_id=market.market_id,
            wallet=wallet,
            at=datetime.now(UTC).isoformat(),
            data=views.to_builtins(view),
        ),
    )
    return view


async def user_votes(
    db: Database,
    wallet: str,
    *,
    kind: VoteKind | None,
    limit: int,
    cursor: str | None,
) -> Page[views.Vote]:
    page = await store.list_user_votes(db, wallet, kind=kind, limit=limit, cursor=cursor)
    return Page(items=tuple(views.vote_view(v) for v in page.items), next_cursor=page.next_cursor)
