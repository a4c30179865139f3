"""``/v1/tx``: ready transactions for users' wallets, their relay and status.

Building (``POST /v1/tx/buy`` ...) needs no session: the transaction is
unsigned and only the wallet's own key can make it do anything.  Builds are
charged to the client IP (and to the session's wallet when one is sent); a
wallet *named* in a body is never charged, or anyone could lock it out.
``POST /v1/tx/submit`` charges the signer's wallet once its signature
verified.  See :mod:`zmartd.api.handlers.tx` for the order of checks.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from quart import current_app
from quart_trio import QuartTrio
from solders.pubkey import Pubkey
from solders.signature import Signature

from zmartd.api.chainlink import ChainLink
from zmartd.api.handlers import tx as handlers
from zmartd.api.handlers import txactions as actions
from zmartd.api.rest.markets import (
    Category,
    Description,
    MarketId,
    MarketRef,
    Source,
    Tags,
    Title,
    Url,
)
from zmartd.api.routing import Call, Reply, Router
from zmartd.api.validation import Amount, Body, DateTime, Query
from zmartd.model import views
from zmartd.storage.markets import MarketMetadataInput

__all__ = [
    "BuyBody",
    "CreateMarketBody",
    "DisputeVoteBody",
    "MarketWalletBody",
    "ProposalVoteBody",
    "ResolveBody",
    "SellBody",
    "SubmitBody",
    "TxPath",
    "chain_link",
    "router",
]

router = Router("tx", prefix="/v1/tx", tags=["transactions"])

SlippageBps = Annotated[
    int, msgspec.Meta(ge=0, le=10_000, description="tolerated shortfall of shares, in basis points")
]
#: a signed transaction is at most 1,232 bytes: 1,644 base64 characters
SignedTx = Annotated[
    str, msgspec.Meta(min_length=1, max_length=1644, description="base64 of the signed transaction")
]


def chain_link() -> ChainLink:
    link: ChainLink = current_app.extensions["zmartd.chain"]
    return link


def _settings(call: Call[Any, Any]) -> handlers.BuildSettings:
    return handlers.BuildSettings.from_config(call.ctx.config)


class BuyBody(Body, frozen=True, kw_only=True):
    market_id: MarketRef
    #: the buyer: fee payer and only signer of the transaction
    wallet: Pubkey
    outcome: Literal["YES", "NO"]
    #: the most the buy may spend, fees included (the instruction's target_cost)
    amount_lamports: Amount
    slippage_bps: SlippageBps = 100


class SellBody(Body, frozen=True, kw_only=True):
    market_id: MarketRef
    wallet: Pubkey
    outcome: Literal["YES", "NO"]
    #: share-units to sell (10^9 = one share)
    shares: Amount
    slippage_bps: SlippageBps = 100


class MarketWalletBody(Body, frozen=True, kw_only=True):
    market_id: MarketRef
    #: the signer and fee payer
    wallet: Pubkey


EvidenceCid = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[1-9A-HJ-NP-Za-km-z]{46}$",
        description="the 46-character IPFS CIDv0 of the resolution's evidence",
    ),
]


class ResolveBody(MarketWalletBody, frozen=True, kw_only=True):
    outcome: Literal["YES", "NO"]
    evidence: EvidenceCid


class ProposalVoteBody(MarketWalletBody, frozen=True, kw_only=True):
    vote: Literal["like", "dislike"]


class DisputeVoteBody(MarketWalletBody, frozen=True, kw_only=True):
    #: agree = the proposed outcome is wrong (the dispute should succeed)
    vote: Literal["agree", "disagree"]


class CreateMarketBody(Body, frozen=True, kw_only=True):
    #: omitted: a random id
    market_id: MarketId | None = None
    #: LMSR liquidity parameter in lamports (at least 100 SOL)
    b_parameter: Amount
    initial_liquidity: Amount
    title: Title
    description: Description = ""
    category: Category | None = None
    tags: Tags = msgspec.field(default_factory=list)
    image_url: Url | None = None
    resolution_source: Source | None = None
    end_time: DateTime | None = None


class SubmitBody(Body, frozen=True, kw_only=True):
    transaction: SignedTx


class TxPath(Query, frozen=True, kw_only=True):
    signature: Signature


@router.post("/buy", body=BuyBody, response=views.TxBuilt, auth="optional", errors=[404, 409, 503])
async def tx_buy(call: Call[BuyBody, None]) -> views.TxBuilt:
    """An unsigned `buy_shares` transaction with its exact quote.

    The quote is the chain's own integer LMSR on the indexed market: what the
    wallet signs takes `quote.cost` lamports for `quote.shares` share-units if
    the market does not move first, and never more than `quote.max_cost`
    (`amount_lamports`, the instruction's `target_cost`).  The program has no
    minimum-shares argument: `quote.min_shares` (shares less `slippage_bps`) is
    for the wallet to show.  Refusals (before anything is asked of the chain)
    are problems whose message starts with the rule: 409 `ProgramNotInitialized`,
    `ProtocolPaused`, `InvalidMarketState`, `MarketEnded`; 422 `TradeTooSmall`
    (below 10,000 lamports) and the chain's other amount errors,
    `SlippageImpossible` (the budget fills 0 shares).  A failing simulation is
    422 naming the program error.
    """
    b = call.body
    return await handlers.buy(
        call.database(),
        chain_link(),
        _settings(call),
        market_ref=b.market_id,
        wallet=b.wallet,
        outcome=b.outcome,
        amount=int(b.amount_lamports),
        slippage_bps=b.slippage_bps,
    )


_ERRORS = [404, 409, 503]


@router.post("/sell", body=SellBody, response=views.TxBuilt, auth="optional", errors=_ERRORS)
async def tx_sell(call: Call[SellBody, None]) -> views.TxBuilt:
    """An unsigned `sell_shares` transaction with its exact quote.

    409 `SellsRevert` on the deployed program: every sell reverts after its
    checks (the payout is a System transfer out of the market account), so no
    transaction is handed out; only a chain double configured with
    `program_variant = "patched"` pays sells.  `quote.cost` is the net
    proceeds and `quote.min_proceeds` (net less `slippage_bps`) is in the
    instruction.  Refusals as for buys, plus 422 `InsufficientShares`.
    """
    b = call.body
    return await actions.sell(
        call.database(),
        chain_link(),
        _settings(call),
        call.ctx.config,
        market_ref=b.market_id,
        wallet=b.wallet,
        outcome=b.outcome,
        shares=int(b.shares),
        slippage_bps=b.slippage_bps,
    )


@router.post(
    "/claim", body=MarketWalletBody, response=views.TxBuilt, auth="optional", errors=_ERRORS
)
async def tx_claim(call: Call[MarketWalletBody, None]) -> views.TxBuilt:
    """An unsigned `claim_winnings`; `payout` is what it pays (the quoter's claim math).

    409 `InvalidMarketState` (not FINALIZED), `AlreadyClaimed`, `NoWinnings`
    (no position, no winning shares), `InsufficientLiquidity`."""
    b = call.body
    return await actions.claim(
        call.database(), chain_link(), _settings(call), market_ref=b.market_id, wallet=b.wallet
    )


@router.post(
    "/withdraw-liquidity",
    body=MarketWalletBody,
    response=views.TxBuilt,
    auth="optional",
    errors=_ERRORS,
)
async def tx_withdraw(call: Call[MarketWalletBody, None]) -> views.TxBuilt:
    """An unsigned `withdraw_liquidity` for the market's creator; `payout` is the amount.

    409 `InvalidMarketState` (not FINALIZED), `Unauthorized` (not the
    creator), `InsufficientLiquidity` (nothing to withdraw)."""
    b = call.body
    return await actions.withdraw(
        call.database(), chain_link(), _settings(call), market_ref=b.market_id, wallet=b.wallet
    )


@router.post("/resolve", body=ResolveBody, response=views.TxBuilt, auth="optional", errors=_ERRORS)
async def tx_resolve(call: Call[ResolveBody, None]) -> views.TxBuilt:
    """An unsigned `resolve_market` proposing `outcome` with the evidence CID (ACTIVE only)."""
    b = call.body
    return await actions.resolve_market(
        call.database(),
        chain_link(),
        _settings(call),
        market_ref=b.market_id,
        wallet=b.wallet,
        outcome=b.outcome,
        evidence=b.evidence,
    )


@router.post(
    "/dispute", body=MarketWalletBody, response=views.TxBuilt, auth="optional", errors=_ERRORS
)
async def tx_dispute(call: Call[MarketWalletBody, None]) -> views.TxBuilt:
    """An unsigned `initiate_dispute` (RESOLVING, within the dispute window:
    409 `DisputePeriodEnded` after it)."""
    b = call.body
    return await actions.dispute(
        call.database(), chain_link(), _settings(call), market_ref=b.market_id, wallet=b.wallet
    )


@router.post(
    "/vote/proposal", body=ProposalVoteBody, response=views.TxBuilt, auth="optional", errors=_ERRORS
)
async def tx_vote_proposal(call: Call[ProposalVoteBody, None]) -> views.TxBuilt:
    """An unsigned on-chain `submit_proposal_vote` (PROPOSED only: 409
    `InvalidStateForVoting`); a second vote fails in simulation."""
    b = call.body
    return await actions.vote(
        call.database(),
        chain_link(),
        _settings(call),
        kind="proposal",
        market_ref=b.market_id,
        wallet=b.wallet,
        choice=b.vote == "like",
    )


@router.post(
    "/vote/dispute", body=DisputeVoteBody, response=views.TxBuilt, auth="optional", errors=_ERRORS
)
async def tx_vote_dispute(call: Call[DisputeVoteBody, None]) -> views.TxBuilt:
    """An unsigned on-chain `submit_dispute_vote` (DISPUTED only)."""
    b = call.body
    return await actions.vote(
        call.database(),
        chain_link(),
        _settings(call),
        kind="dispute",
        market_ref=b.market_id,
        wallet=b.wallet,
        choice=b.vote == "agree",
    )


@router.post(
    "/activate", body=MarketWalletBody, response=views.TxBuilt, auth="optional", errors=_ERRORS
)
async def tx_activate(call: Call[MarketWalletBody, None]) -> views.TxBuilt:
    """An unsigned `activate_market` by the creator or admin (APPROVED only:
    409 `InvalidStateTransition`; 409 `Unauthorized` for anyone else)."""
    b = call.body
    return await actions.activate(
        call.database(), chain_link(), _settings(call), market_ref=b.market_id, wallet=b.wallet
    )


@router.post(
    "/create-market", body=CreateMarketBody, response=views.TxBuilt, auth="session", errors=_ERRORS
)
async def tx_create_market(call: Call[CreateMarketBody, None]) -> views.TxBuilt:
    """An unsigned `create_market` by the signed-in wallet, its question stored first.

    The metadata is stored as the wallet's claim on the market id (it becomes
    the market's metadata once the indexer sees the market created by that
    wallet); `question_hash`, placed in the instruction, is the CIDv0
    (sha2-256 multihash) of the metadata's canonical JSON.  422
    `InvalidBParameter` below 100 SOL (every trade would fail); 409
    `MarketExists`, `ProtocolPaused`.
    """
    b = call.body
    metadata = MarketMetadataInput(
        title=b.title,
        description=b.description,
        category=b.category,
        tags=tuple(b.tags),
        image_url=b.image_url,
        resolution_source=b.resolution_source,
        end_time=b.end_time,
    )
    return await actions.create_market(
        call.database(),
        chain_link(),
        _settings(call),
        wallet=Pubkey.from_string(call.require_session().wallet),
        market_id=b.market_id,
        b_parameter=int(b.b_parameter),
        initial_liquidity=int(b.initial_liquidity),
        metadata=metadata,
    )


@router.post("/submit", body=SubmitBody, response=views.TxSubmitted, status=202, errors=[409, 503])
async def tx_submit(call: Call[SubmitBody, None]) -> Reply[views.TxSubmitted]:
    """Relay a signed transaction: answered with its signature at once.

    Accepted only when it calls nothing but zmart-core and the compute-budget
    program, every signature verifies (the fee payer's included) and its
    blockhash is still valid (409 `BlockhashExpired` otherwise).  It is sent
    with preflight and `maxRetries: 0` (a preflight failure is 422 naming the
    program error), then the same bytes are rebroadcast until the chain
    settles it or its blockhash expired; follow it with `GET /v1/tx/{signature}`.
    """
    program_id = _settings(call).program_id
    tx, signer = handlers.signer_of(call.body.transaction, program_id)
    await call.limit_wallet(str(signer))
    app: QuartTrio = current_app  # type: ignore[assignment]  # the app is always QuartTrio
    signature = await handlers.submit(chain_link(), app.nursery, tx)
    return Reply(views.TxSubmitted(signature=signature), status=202)


@router.get("/<signature:signature>", path_type=TxPath, response=views.TxStatus, errors=[404, 503])
async def tx_status(call: Call[None, None]) -> views.TxStatus:
    """Where a transaction is: `processed`, `confirmed`, `finalized`, `failed`
    (with the program error's name), `expired` (its blockhash passed unseen:
    it can never land), or `pending` (this server still rebroadcasts it)."""
    return await handlers.status(chain_link(), call.path.signature)
