"""The other wallet transactions: sell, claim, withdraw, create, resolve, dispute,
votes, activate -- each refused on the indexed state first, then built and
simulated like a buy (:func:`zmartd.api.handlers.tx.build`).

The refusals follow each instruction's checks in the program's order
(docs/chain.md §4): the market's state (``InvalidMarketState``, or
``InvalidStateForVoting``/``InvalidStateTransition`` where the program says
so), who may sign (``Unauthorized``), the claim and withdrawal math of
:mod:`zmartd.chain.quoter` (``AlreadyClaimed``, ``NoWinnings``,
``InsufficientLiquidity``: nothing to withdraw), the dispute window
(``DisputePeriodEnded``).  Claim and withdrawal amounts need the market
account's lamports, which the index does not hold: they are read from the
chain (one ``getAccountInfo``), never a blockhash before the checks passed.

Sells: the deployed program reverts every ``sell_shares`` after its checks
(its payout is a System transfer out of a data-carrying account, docs/chain.md
§4.7 and §11): unless zmartd runs the chain double with ``[devchain]
program_variant = "patched"``, a sell is refused with 409 ``SellsRevert``
rather than handing out a transaction that can only fail and cost its fee.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec
from solders.pubkey import Pubkey

from zmartd.api import problems
from zmartd.api.chainlink import ChainLink
from zmartd.api.handlers import quotes
from zmartd.api.handlers.markets import resolve
from zmartd.api.handlers.tx import (
    BuildSettings,
    build,
    program_config,
    refuse_conflict,
    refuse_field,
)
from zmartd.chain import instructions as ix
from zmartd.chain.lmsr import QuoteError
from zmartd.chain.pda import market_pda
from zmartd.chain.quoter import MarketMath, PositionHoldings, claim_payout, withdrawable
from zmartd.chain.rpc import RpcClient, RpcClientError, b58encode
from zmartd.config import Config
from zmartd.model import views
from zmartd.storage import markets as market_store
from zmartd.storage import positions as position_store
from zmartd.storage.database import Database
from zmartd.storage.markets import MarketMetadataInput
from zmartd.storage.records import MarketMetadataRecord, MarketRecord

__all__ = [
    "MIN_B_PARAMETER",
    "activate",
    "claim",
    "create_market",
    "dispute",
    "question_cid",
    "resolve_market",
    "sell",
    "sells_work",
    "vote",
    "withdraw",
]

PROPOSED, APPROVED, ACTIVE, RESOLVING, DISPUTED, FINALIZED = range(6)
#: below 100 SOL the program accepts the market but every trade on it fails
#: (docs/chain.md §11): refused at creation
MIN_B_PARAMETER = 100_000_000_000
SELLS_REVERT = (
    "sell_shares reverts on the deployed zmart-core program after all its checks (its payout "
    "is a System transfer out of the market account, which carries data); no sell can land. "
    'Only the chain double with [devchain] program_variant = "patched" pays sells'
)


def sells_work(cfg: Config) -> bool:
    return cfg.chain.mode == "local" and cfg.devchain.program_variant == "patched"


def _state(market: MarketRecord, wanted: int, rule: str = "InvalidMarketState") -> None:
    if market.state != wanted:
        raise refuse_conflict(
            rule,
            f"the market is {views.STATE_NAMES[market.state]}, not {views.STATE_NAMES[wanted]}",
        )


def _key(market: MarketRecord, settings: BuildSettings) -> tuple[bytes, Pubkey]:
    market_id = bytes.fromhex(market.market_id)
    return market_id, market_pda(market_id, settings.program_id)[0]


async def _lamports(rpc: RpcClient, key: Pubkey) -> int:
    try:
        account = await rpc.get_account_info(key, commitment="confirmed")
    except (RpcClientError, OSError):
        raise problems.Problem(
            "unavailable", "the chain RPC is unreachable; retry later", headers={"Retry-After": "2"}
        ) from None
    if account is None:
        raise refuse_conflict("AccountNotInitialized", f"market account {key} is not on chain")
    return int(account.lamports)


def _math(market: MarketRecord) -> MarketMath:
    return MarketMath(
        b_parameter=market.b_parameter,
        shares_yes=market.shares_yes,
        shares_no=market.shares_no,
        current_liquidity=market.current_liquidity,
    )


# ------------------------------------------------------------------ sell


async def sell(
    db: Database,
    link: ChainLink,
    settings: BuildSettings,
    cfg: Config,
    *,
    market_ref: str,
    wallet: Pubkey,
    outcome: Literal["YES", "NO"],
    shares: int,
    slippage_bps: int,
) -> views.TxBuilt:
    if not sells_work(cfg):
        raise refuse_conflict("SellsRevert", SELLS_REVERT)
    market = await resolve(db, market_ref)
    config = await program_config(db)
    _state(market, ACTIVE)
    q = await quotes.quote(
        db,
        market.market_id,
        side="sell",
        outcome="yes" if outcome == "YES" else "no",
        amount=shares,
        wallet=str(wallet),
    )
    net = int(q.lamports)
    min_proceeds = net * (10_000 - slippage_bps) // 10_000
    yes = outcome == "YES"
    scale = views.PRICE_SCALE
    quote = views.TxQuote(
        side="sell",
        outcome=outcome,
        shares=q.shares,
        cost=q.lamports,
        fees=q.fees,
        price_before=q.price_yes_before if yes else scale - q.price_yes_before,
        price_after=q.price_yes_after if yes else q.price_no_after,
        min_proceeds=str(min_proceeds),
    )
    market_id, key = _key(market, settings)
    instruction = ix.sell_shares(
        user=wallet,
        market_id=market_id,
        outcome=yes,
        shares_to_sell=shares,
        min_proceeds=min_proceeds,
        protocol_fee_wallet=Pubkey.from_string(config.protocol_fee_wallet),
        program_id=settings.program_id,
    )
    return await build(await link.rpc(), settings, wallet, instruction, key, quote=quote)


# ------------------------------------------------------------------ claim and withdraw


async def claim(
    db: Database, link: ChainLink, settings: BuildSettings, *, market_ref: str, wallet: Pubkey
) -> views.TxBuilt:
    market = await resolve(db, market_ref)
    _state(market, FINALIZED)
    position = await position_store.get_position(db, market.market_id, str(wallet))
    if position is None:
        raise refuse_conflict("NoWinnings", f"{wallet} holds no position in this market")
    if position.has_claimed:
        raise refuse_conflict(
            "AlreadyClaimed", f"this position already claimed {position.claimed_amount} lamports"
        )
    if market.resolver is None:
        raise refuse_conflict("InvalidResolver", "the market has no resolver")
    market_id, key = _key(market, settings)
    rpc = await link.rpc()
    try:
        payout = claim_payout(
            _math(market),
            PositionHoldings(
                shares_yes=position.shares_yes,
                shares_no=position.shares_no,
                total_invested=position.total_invested,
            ),
            final_outcome=market.final_outcome,
            accumulated_resolver_fees=market.accumulated_resolver_fees,
            market_lamports=await _lamports(rpc, key),
        )
    except QuoteError as exc:
        raise refuse_conflict(exc.name, exc.detail) from None
    instruction = ix.claim_winnings(
        user=wallet,
        market_id=market_id,
        resolver=Pubkey.from_string(market.resolver),
        program_id=settings.program_id,
    )
    return await build(rpc, settings, wallet, instruction, key, payout=payout.winnings)


async def withdraw(
    db: Database, link: ChainLink, settings: BuildSettings, *, market_ref: str, wallet: Pubkey
) -> views.TxBuilt:
    market = await resolve(db, market_ref)
    _state(market, FINALIZED)
    if market.creator != str(wallet):
        raise refuse_conflict("Unauthorized", "only the market's creator may withdraw")
    market_id, key = _key(market, settings)
    rpc = await link.rpc()
    try:
        amount = withdrawable(await _lamports(rpc, key))
    except QuoteError as exc:
        raise refuse_conflict(exc.name, f"nothing to withdraw: {exc.detail}") from None
    instruction = ix.withdraw_liquidity(
        creator=wallet, market_id=market_id, program_id=settings.program_id
    )
    return await build(rpc, settings, wallet, instruction, key, payout=amount)


# ------------------------------------------------------------------ lifecycle


async def resolve_market(
    db: Database,
    link: ChainLink,
    settings: BuildSettings,
    *,
    market_ref: str,
    wallet: Pubkey,
    outcome: Literal["YES", "NO"],
    evidence: str,
) -> views.TxBuilt:
    market = await resolve(db, market_ref)
    _state(market, ACTIVE)
    market_id, key = _key(market, settings)
    instruction = ix.resolve_market(
        resolver=wallet,
        market_id=market_id,
        proposed_outcome=outcome == "YES",
        ipfs_evidence_hash=evidence.encode(),
        program_id=settings.program_id,
    )
    return await build(await link.rpc(), settings, wallet, instruction, key)


async def dispute(
    db: Database, link: ChainLink, settings: BuildSettings, *, market_ref: str, wallet: Pubkey
) -> views.TxBuilt:
    market = await resolve(db, market_ref)
    _state(market, RESOLVING)
    config = await program_config(db)
    proposed = market.resolution_proposed_at
    if proposed is not None:
        ends = proposed + timedelta(seconds=config.dispute_period)
        if datetime.now(UTC) >= ends:
            raise refuse_conflict(
                "DisputePeriodEnded", f"the dispute window closed at {ends.isoformat()}"
            )
    market_id, key = _key(market, settings)
    instruction = ix.initiate_dispute(
        initiator=wallet, market_id=market_id, program_id=settings.program_id
    )
    return await build(await link.rpc(), settings, wallet, instruction, key)


async def vote(
    db: Database,
    link: ChainLink,
    settings: BuildSettings,
    *,
    kind: Literal["proposal", "dispute"],
    market_ref: str,
    wallet: Pubkey,
    choice: bool,
) -> views.TxBuilt:
    """``submit_proposal_vote`` (PROPOSED; true = like) or ``submit_dispute_vote``
    (DISPUTED; true = agree with the dispute).  A second vote of the same wallet
    fails in the account creation: the simulation names it."""
    market = await resolve(db, market_ref)
    _state(market, PROPOSED if kind == "proposal" else DISPUTED, "InvalidStateForVoting")
    market_id, key = _key(market, settings)
    build_ix = ix.submit_proposal_vote if kind == "proposal" else ix.submit_dispute_vote
    instruction = build_ix(
        user=wallet, market_id=market_id, vote=choice, program_id=settings.program_id
    )
    return await build(await link.rpc(), settings, wallet, instruction, key)


async def activate(
    db: Database, link: ChainLink, settings: BuildSettings, *, market_ref: str, wallet: Pubkey
) -> views.TxBuilt:
    market = await resolve(db, market_ref)
    config = await program_config(db)
    if str(wallet) not in (market.creator, config.admin):
        raise refuse_conflict(
            "Unauthorized", "only the market's creator or the program's admin may activate it"
        )
    _state(market, APPROVED, "InvalidStateTransition")
    market_id, key = _key(market, settings)
    instruction = ix.activate_market(
        authority=wallet, market_id=market_id, program_id=settings.program_id
    )
    return await build(await link.rpc(), settings, wallet, instruction, key)


# ------------------------------------------------------------------ create


def question_cid(metadata: MarketMetadataInput) -> str:
    """The 46-character hash placed in ``create_market``: the base58 sha2-256
    multihash (a CIDv0) of the metadata's canonical JSON, so anyone holding the
    metadata can check it against the chain."""
    digest = hashlib.sha256(msgspec.json.encode(metadata, order="sorted")).digest()
    return b58encode(b"\x12\x20" + digest)


async def create_market(
    db: Database,
    link: ChainLink,
    settings: BuildSettings,
    *,
    wallet: Pubkey,
    market_id: str | None,
    b_parameter: int,
    initial_liquidity: int,
    metadata: MarketMetadataInput,
) -> views.TxBuilt:
    """Store the question metadata as ``wallet``'s claim on the market id first
    (it becomes the market's metadata once the indexer sees the market created
    by that wallet), then build ``create_market`` carrying its hash."""
    await program_config(db)
    if b_parameter < MIN_B_PARAMETER:
        raise refuse_field(
            "b_parameter",
            "InvalidBParameter",
            f"b below {MIN_B_PARAMETER} lamports (100 SOL) makes every trade on the market fail",
        )
    ident = market_id if market_id is not None else secrets.token_bytes(32).hex()
    creator = str(wallet)

    def decide(
        market: MarketRecord | None, existing: MarketMetadataRecord | None
    ) -> MarketMetadataInput:
        if market is not None:
            raise refuse_conflict("MarketExists", f"market {ident} is already on chain")
        return metadata  # a new claim, or the caller's own earlier one replaced

    await market_store.edit_metadata(db, market_id=ident, creator=creator, decide=decide)
    cid = question_cid(metadata)
    instruction = ix.create_market(
        creator=wallet,
        market_id=bytes.fromhex(ident),
        b_parameter=b_parameter,
        initial_liquidity=initial_liquidity,
        ipfs_question_hash=cid.encode(),
        program_id=settings.program_id,
    )
    key = market_pda(bytes.fromhex(ident), settings.program_id)[0]
    return await build(
        await link.rpc(), settings, wallet, instruction, key, market_id=ident, question_hash=cid
    )
