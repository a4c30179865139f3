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
from zmartd.api.rest.markets import MarketRef
from zmartd.api.routing import Call, Reply, Router
from zmartd.api.validation import Amount, Body, Query
from zmartd.model import views

__all__ = ["BuyBody", "SubmitBody", "TxPath", "chain_link", "router"]

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


@router.get("/<signature>", path_type=TxPath, response=views.TxStatus, errors=[404, 503])
async def tx_status(call: Call[None, None]) -> views.TxStatus:
    """Where a transaction is: `processed`, `confirmed`, `finalized`, `failed`
    (with the program error's name), `expired` (its blockhash passed unseen:
    it can never land), or `pending` (this server still rebroadcasts it)."""
    return await handlers.status(chain_link(), call.path.signature)
