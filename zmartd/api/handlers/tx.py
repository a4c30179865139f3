"""Transactions for users' wallets: refuse, quote, simulate, build; relay; report.

The backend cannot sign for a user, but it knows the exact chain math and the
current state, so it hands the wallet a ready transaction with an exact quote.

Order of work for a build (nothing touches the chain until the request passed
every check on the indexed state):

1. refusals from the indexed state, each a problem whose text starts with the
   rule's name (the program error's name where the chain has one):
   ``ProgramNotInitialized``, ``ProtocolPaused``, ``InvalidMarketState``,
   ``MarketEnded``, ``TradeTooSmall`` and the other quoter errors,
   ``SlippageImpossible``;
2. the zmart-core instruction with every account and PDA derived from the
   exact seeds (:mod:`zmartd.chain.instructions`);
3. at once, concurrently: a simulation (``sigVerify: false``,
   ``replaceRecentBlockhash: true``, so it needs no blockhash first), the
   latest ``confirmed`` blockhash, the recent prioritization fees of the
   market account and the block height.  A failing simulation is a 422 naming
   the program error -- never a transaction that will fail;
4. the v0 message: the user is the fee payer and only signer, the compute-unit
   limit is the simulation's consumption plus ``[sender] compute_unit_margin``,
   the price the ``[sender] priority_fee_percentile`` of recent fees capped at
   ``[sender] max_priority_fee`` (:mod:`zmartd.chain.budget`, the sender's rules).

Buys have no minimum-shares argument on chain (docs/chain.md §4.6, §9.7):
``target_cost`` (the quote's ``max_cost``) is the only bound the program
enforces.  ``slippage_bps`` gives ``min_shares`` for the wallet UI, and a buy
that would fill no shares at all is refused (``SlippageImpossible``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import structlog
import trio
from solders.hash import Hash
from solders.instruction import Instruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcBlockhash
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus

from zmartd.api import problems
from zmartd.api.chainlink import ChainLink
from zmartd.api.handlers import quotes
from zmartd.api.handlers.markets import resolve
from zmartd.chain import instructions as ix
from zmartd.chain.budget import (
    COMPUTE_BUDGET_PROGRAM_ID,
    budget_instructions,
    compute_unit_limit,
    priority_fee,
    simulate,
)
from zmartd.chain.errors import all_errors
from zmartd.chain.events import parse_logs
from zmartd.chain.pda import market_pda
from zmartd.chain.rpc import (
    PreflightFailed,
    RpcClient,
    RpcClientError,
    SimulationFailed,
    TxFailure,
    decode_tx_error,
)
from zmartd.chain.types import SharesBought
from zmartd.config import Config
from zmartd.model import views
from zmartd.storage import indexer as indexer_store
from zmartd.storage.database import Database
from zmartd.storage.indexer import GlobalConfigState
from zmartd.storage.records import MarketRecord

__all__ = ["BuildSettings", "build", "buy", "status", "submit"]

log = structlog.get_logger("zmartd.api.tx")

#: a blockhash is valid for 150 blocks after its own; the bound used for an
#: expiry proof when the submitter's lastValidBlockHeight is unknown
BLOCKHASH_VALIDITY: Final = 151
#: the cluster's slot time when zmartd does not run the chain itself
CLUSTER_SLOT_SECONDS: Final = 0.4
#: (solders' statuses are not hashable: a list of pairs, not a dict)
_STATUS_NAMES: Final[tuple[tuple[TransactionConfirmationStatus, views.TxState], ...]] = (
    (TransactionConfirmationStatus.Processed, "processed"),
    (TransactionConfirmationStatus.Confirmed, "confirmed"),
    (TransactionConfirmationStatus.Finalized, "finalized"),
)


@dataclass(frozen=True, slots=True)
class BuildSettings:
    program_id: Pubkey
    compute_unit_margin: float
    priority_fee_percentile: int
    max_priority_fee: int
    slot_seconds: float

    @classmethod
    def from_config(cls, cfg: Config) -> BuildSettings:
        local = cfg.chain.mode == "local"
        return cls(
            program_id=Pubkey.from_string(str(cfg.chain.program_id)),
            compute_unit_margin=cfg.sender.compute_unit_margin,
            priority_fee_percentile=cfg.sender.priority_fee_percentile,
            max_priority_fee=cfg.sender.max_priority_fee,
            slot_seconds=cfg.devchain.slot_interval if local else CLUSTER_SLOT_SECONDS,
        )


# ------------------------------------------------------------------ refusals


def _error_text(name: str, detail: str) -> str:
    known = next((e for e in all_errors() if e.name == name), None)
    code = f" ({known.code})" if known is not None else ""
    return f"{name}{code}: {detail}" if detail else f"{name}{code}"


def refuse_conflict(rule: str, detail: str) -> problems.Problem:
    return problems.conflict(f"{_error_text(rule, detail)}")


def refuse_field(field: str, rule: str, detail: str) -> problems.Problem:
    """409 naming the rule and the field it concerns: the request is valid by the schema
    (a 422 would contradict the document), the chain's rules refuse it now."""
    text = _error_text(rule, detail)
    return problems.Problem(
        "conflict", text, errors=[problems.FieldError(field=field, message=text)]
    )


async def program_config(db: Database) -> GlobalConfigState:
    """The indexed GlobalConfig; refused while absent (nothing can trade) or paused."""
    return _usable(await indexer_store.read_global_config(db))


def _usable(config: GlobalConfigState | None) -> GlobalConfigState:
    if config is None:
        raise refuse_conflict(
            "ProgramNotInitialized", "no GlobalConfig account has been indexed yet"
        )
    if config.is_paused:
        raise refuse_conflict("ProtocolPaused", "the protocol is paused by its admin")
    return config


async def market_and_config(db: Database, ref: str) -> tuple[MarketRecord, GlobalConfigState]:
    """The market (404 if unknown) and the usable GlobalConfig, read concurrently:
    one database round trip's time instead of two."""
    found: dict[str, Any] = {}
    failed: dict[str, BaseException] = {}

    async def read(key: str, fn: Any) -> None:
        try:
            found[key] = await fn()
        except Exception as exc:  # re-raised below, the market's first
            failed[key] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read, "market", lambda: resolve(db, ref))
        nursery.start_soon(read, "config", lambda: indexer_store.read_global_config(db))
    for key in ("market", "config"):
        if key in failed:
            raise failed[key]
    return found["market"], _usable(found["config"])


def _not_ended(market: MarketRecord, now: datetime) -> None:
    if market.end_time is not None and market.end_time <= now:
        raise refuse_conflict(
            "MarketEnded",
            f"the market's end time {market.end_time.isoformat()} has passed; it awaits resolution",
        )


# ------------------------------------------------------------------ building


async def _gather(
    rpc: RpcClient, payer: Pubkey, instruction: Instruction, market_key: Pubkey
) -> tuple[tuple[int, list[str]], RpcBlockhash, list[int], int]:
    """Simulation (units, logs), blockhash, fees and height in one round trip's time.  The
    simulation's failure wins over the others' (it is the caller's problem)."""
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    async def run(key: str, fn: Any) -> None:
        try:
            results[key] = await fn()
        except (RpcClientError, OSError) as exc:
            errors[key] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "units", lambda: simulate(rpc, payer, instruction))
        nursery.start_soon(run, "latest", lambda: rpc.get_latest_blockhash("confirmed"))
        nursery.start_soon(run, "fees", lambda: rpc.get_recent_prioritization_fees([market_key]))
        nursery.start_soon(run, "height", lambda: rpc.get_block_height("confirmed"))
    if "units" in errors:
        raise errors["units"]
    if errors:
        raise next(iter(errors.values()))
    return (
        results["units"],
        results["latest"],
        [f.prioritization_fee for f in results["fees"]],
        results["height"],
    )


def failure_problem(failure: TxFailure, what: str) -> problems.Problem:
    """409 naming the program error (or the runtime's) of a failed simulation: the
    transaction is well formed, the chain's state refuses it."""
    if failure.program_error is not None:
        text = (
            f"{failure.program_error.name} ({failure.program_error.code}): "
            f"{failure.program_error.msg}"
        )
    else:
        text = failure.describe()
    return problems.Problem(
        "conflict", f"{what}: {text}", errors=[problems.FieldError(field="", message=text)]
    )


async def build(
    rpc: RpcClient,
    settings: BuildSettings,
    payer: Pubkey,
    instruction: Instruction,
    market_key: Pubkey,
    *,
    quote: views.TxQuote | None = None,
    notes: list[str] | None = None,
    payout: int | None = None,
    market_id: str | None = None,
    question_hash: str | None = None,
    check: Callable[[list[str]], None] | None = None,
) -> views.TxBuilt:
    """The unsigned v0 transaction for ``instruction``, simulated first;
    ``check(logs)`` may refuse what the simulation shows."""
    try:
        (units, logs), latest, fees, height = await _gather(rpc, payer, instruction, market_key)
    except SimulationFailed as exc:
        raise failure_problem(
            exc.failure, "the simulation failed; the chain would reject this transaction"
        ) from None
    except (RpcClientError, OSError) as exc:
        log.warning("chain unreachable for a transaction build", error=str(exc))
        raise problems.Problem(
            "unavailable", "the chain RPC is unreachable; retry later", headers={"Retry-After": "2"}
        ) from None
    if check is not None:
        check(logs)
    limit = compute_unit_limit(units, settings.compute_unit_margin)
    price = priority_fee(fees, settings.priority_fee_percentile, settings.max_priority_fee)
    message = MessageV0.try_compile(
        payer, [*budget_instructions(limit, price), instruction], [], latest.blockhash
    )
    tx = VersionedTransaction.populate(message, [Signature.default()])
    remaining = max(0, latest.last_valid_block_height - height)
    return views.TxBuilt(
        transaction=base64.b64encode(bytes(tx)).decode(),
        quote=quote,
        blockhash=str(latest.blockhash),
        last_valid_block_height=latest.last_valid_block_height,
        expires_at=datetime.now(UTC) + timedelta(seconds=remaining * settings.slot_seconds),
        compute_unit_limit=limit,
        compute_unit_price=price,
        simulated_units=units,
        payout=None if payout is None else str(payout),
        market_id=market_id,
        question_hash=question_hash,
        notes=notes or [],
    )


# ------------------------------------------------------------------ buy


async def buy(
    db: Database,
    link: ChainLink,
    settings: BuildSettings,
    *,
    market_ref: str,
    wallet: Pubkey,
    outcome: Literal["YES", "NO"],
    amount: int,
    slippage_bps: int,
) -> views.TxBuilt:
    market, config = await market_and_config(db, market_ref)
    if market.state != quotes.ACTIVE:
        raise refuse_conflict(
            "InvalidMarketState", f"the market is {views.STATE_NAMES[market.state]}, not ACTIVE"
        )
    _not_ended(market, datetime.now(UTC))
    q = quotes.quote_market(
        market, config, side="buy", outcome="yes" if outcome == "YES" else "no", amount=amount
    )
    shares = int(q.shares)
    if shares == 0:
        raise refuse_field(
            "amount_lamports",
            "SlippageImpossible",
            f"{amount} lamports fill 0 share-units on this market (the fill "
            "search's granularity); no slippage tolerance can be met: buy more",
        )
    yes = outcome == "YES"
    scale = views.PRICE_SCALE
    quote = views.TxQuote(
        outcome=outcome,
        shares=q.shares,
        cost=q.lamports,
        fees=q.fees,
        price_before=q.price_yes_before if yes else scale - q.price_yes_before,
        price_after=q.price_yes_after if yes else q.price_no_after,
        max_cost=str(amount),
        min_shares=str(shares * (10_000 - slippage_bps) // 10_000),
    )
    market_id = bytes.fromhex(market.market_id)
    instruction = ix.buy_shares(
        user=wallet,
        market_id=market_id,
        outcome=yes,
        target_cost=amount,
        protocol_fee_wallet=Pubkey.from_string(config.protocol_fee_wallet),
        program_id=settings.program_id,
    )

    def same_as_quote(logs: list[str]) -> None:
        """The chain's own SharesBought in the simulation must be the quote: when the
        index lags the chain (a trade landed, not yet indexed) the quote is stale."""
        bought = [
            e.event
            for e in parse_logs(logs, settings.program_id, strict=False).events
            if isinstance(e.event, SharesBought)
        ]
        expected = (shares, int(q.lamports), q.price_yes_after)
        if bought and (bought[0].shares, bought[0].cost, bought[0].new_price_yes) != expected:
            seen = (bought[0].shares, bought[0].cost, bought[0].new_price_yes)
            raise problems.Problem(
                "conflict",
                f"IndexBehind: the chain would fill {seen[0]} share-units for {seen[1]} "
                f"lamports, the indexed market says {expected[0]} for {expected[1]}: the index "
                "has not caught up with the chain yet; retry in a moment",
                headers={"Retry-After": "1"},
            )

    rpc = await link.rpc()
    return await build(
        rpc,
        settings,
        wallet,
        instruction,
        market_pda(market_id, settings.program_id)[0],
        quote=quote,
        notes=q.notes,
        check=same_as_quote,
    )


# ------------------------------------------------------------------ submit and status


def _decode_signed(text: str, program_id: Pubkey) -> VersionedTransaction:
    def bad(message: str) -> problems.Problem:
        return problems.bad_request(f"transaction: {message}")

    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad("not base64") from None
    try:
        tx = VersionedTransaction.from_bytes(raw)
    except (ValueError, TypeError):
        raise bad("not a serialized Solana transaction") from None
    message = tx.message
    if isinstance(message, MessageV0) and message.address_table_lookups:
        raise bad("address lookup tables are not accepted (the programs called must be visible)")
    keys = message.account_keys
    allowed = {program_id, COMPUTE_BUDGET_PROGRAM_ID}
    called = set()
    for ci in message.instructions:
        if ci.program_id_index >= len(keys):
            raise bad("an instruction names a program outside the account keys")
        called.add(keys[ci.program_id_index])
    if not called or not called <= allowed:
        raise bad("the transaction may call only zmart-core and the compute-budget program")
    if program_id not in called:
        raise bad("the transaction has no zmart-core instruction")
    if len(tx.signatures) != message.header.num_required_signatures:
        raise bad("the number of signatures does not match the message's signers")
    if not all(tx.verify_with_results()):
        raise bad(
            "a signature does not verify (sign the transaction as built, with the fee payer's key)"
        )
    return tx


def signer_of(text: str, program_id: Pubkey) -> tuple[VersionedTransaction, Pubkey]:
    """The checked transaction and its fee payer (the key whose signature verified)."""
    tx = _decode_signed(text, program_id)
    return tx, tx.message.account_keys[0]


async def submit(link: ChainLink, nursery: trio.Nursery, tx: VersionedTransaction) -> str:
    """Check the blockhash, send once with preflight and ``maxRetries: 0``, then
    hand the bytes to the relay; returns the signature at once."""
    rpc = await link.rpc()
    raw = bytes(tx)
    blockhash: Hash = tx.message.recent_blockhash
    try:
        valid, _ = await rpc.request(
            "isBlockhashValid", [str(blockhash), {"commitment": "confirmed"}]
        )
        height = await rpc.get_block_height("confirmed")
        if not (isinstance(valid, dict) and valid.get("value") is True):
            raise refuse_conflict(
                "BlockhashExpired", f"blockhash {blockhash} is no longer valid: build again"
            )
        signature = await rpc.send_transaction(raw, skip_preflight=False, max_retries=0)
    except PreflightFailed as exc:
        raise failure_problem(exc.failure, "the chain refused the transaction") from None
    except (RpcClientError, OSError) as exc:
        log.warning("chain unreachable for a submit", error=str(exc))
        raise problems.Problem(
            "unavailable", "the chain RPC is unreachable; retry later", headers={"Retry-After": "2"}
        ) from None
    entry = link.relay.track(str(signature), height + BLOCKHASH_VALIDITY)
    nursery.start_soon(link.relay.follow, rpc, raw, signature, entry)
    return str(signature)


async def status(link: ChainLink, signature: Signature) -> views.TxStatus:
    rpc = await link.rpc()
    text = str(signature)
    try:
        found = (await rpc.get_signature_statuses([signature], search_transaction_history=True))[0]
        if found is None:
            tracked = link.relay.get(text)
            if tracked is None:
                raise problems.not_found(f"the chain does not know transaction {text}")
            return views.TxStatus(
                signature=text, status="expired" if tracked.state == "expired" else "pending"
            )
        if found.err is None:
            name: views.TxState = next(
                (n for c, n in _STATUS_NAMES if c == found.confirmation_status), "processed"
            )
            return views.TxStatus(signature=text, slot=found.slot, status=name)
        doc = await rpc.get_transaction(signature, commitment="confirmed")
    except (RpcClientError, OSError) as exc:
        log.warning("chain unreachable for a status", error=str(exc))
        raise problems.Problem(
            "unavailable", "the chain RPC is unreachable; retry later", headers={"Retry-After": "2"}
        ) from None
    meta: dict[str, Any] = (doc or {}).get("meta") or {}
    failure = decode_tx_error(meta.get("err", str(found.err)), meta.get("logMessages") or ())
    error = failure.program_error
    return views.TxStatus(
        signature=text,
        status="failed",
        slot=found.slot,
        error=error.name if error is not None else failure.describe(),
        error_message=error.msg if error is not None else None,
    )
