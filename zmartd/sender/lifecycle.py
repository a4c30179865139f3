"""Driving one intent to a final state, exactly once, across crashes.

The one rule everything here follows: **a signed transaction is never
replaced by another one until it is proven that it can no longer land and
that its effect is not on chain.**  Steps (each state change is stored
before the next network action):

1. ``pending`` — read the market (``confirmed``); if the intent's effect is
   already there, it is ``landed``.  Otherwise build the instruction
   (:mod:`zmartd.chain.instructions`), simulate it unsigned: a failing
   instruction is a deterministic program error, so the intent ends
   ``failed`` with the error's name and nothing is sent.  The compute-unit
   limit is the simulation's consumption plus a margin; the priority fee a
   percentile of ``getRecentPrioritizationFees`` for the market, capped.
   Sign with a ``confirmed`` blockhash and **store the signature, the bytes
   and ``lastValidBlockHeight``** (→ ``signed``).
2. ``signed`` — ask ``getSignatureStatuses`` (with history) about the
   stored signature; confirmed → ``landed`` (or ``failed`` with the decoded
   program error if it landed with one).  Otherwise send **the same stored
   bytes** (``maxRetries: 0``, so the node does not retry behind our back)
   every ``rebroadcast_interval`` seconds.  Only once the ``confirmed``
   block height exceeds ``lastValidBlockHeight`` *and then* the signature is
   still unknown with history *and* the market shows no effect is the
   transaction proven dead: back to ``pending``, which signs afresh.

A process killed anywhere resumes from the stored state: in ``pending`` no
transaction of the current attempt exists yet; in ``signed`` the stored
bytes are checked first and rebroadcast, never re-signed.  Landing twice is
impossible for one signed transaction (the chain deduplicates signatures)
and a second transaction is signed only after the first is provably void.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import structlog
import trio
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus

from zmartd.chain import instructions as ix
from zmartd.chain.accounts import decode_account_as
from zmartd.chain.borsh import DecodeError
from zmartd.chain.budget import (
    MAX_COMPUTE_UNITS,
    budget_instructions,
    compute_unit_limit,
    keep_sending,
    priority_fee,
    simulate_units,
)
from zmartd.chain.pda import market_pda
from zmartd.chain.rpc import RpcClient, RpcClientError, SimulationFailed, decode_tx_error
from zmartd.chain.types import MarketAccount, MarketState
from zmartd.sender.metrics import SenderMetrics
from zmartd.storage import intents as store
from zmartd.storage.database import Database
from zmartd.storage.intents import IntentRecord

__all__ = [
    "ADMIN_KINDS",
    "MAX_COMPUTE_UNITS",
    "Executor",
    "NeedsKey",
    "SenderSettings",
    "Signers",
    "build_instruction",
    "effect_present",
    "priority_fee",
]

log = structlog.get_logger("zmartd.sender")

#: intents the program lets only GlobalConfig.admin sign (the others: backend_authority)
ADMIN_KINDS: Final = frozenset({"approve_proposal", "cancel_market"})


@dataclass(frozen=True, slots=True)
class SenderSettings:
    """``[sender]`` (see the config reference)."""

    rebroadcast_interval: float = 2.0
    poll_interval: float = 0.4
    compute_unit_margin: float = 0.2
    priority_fee_percentile: int = 50
    max_priority_fee: int = 100_000
    #: cap of the delay between retries after transient errors (RPC down ...)
    max_backoff: float = 30.0


@dataclass(frozen=True, slots=True)
class Signers:
    """The keys the sender signs with: ``backend`` = GlobalConfig.backend_authority
    (aggregate, finalize), ``admin`` = GlobalConfig.admin (approve, cancel)."""

    backend: Keypair | None
    admin: Keypair | None

    def for_kind(self, kind: str) -> Keypair | None:
        return self.admin if kind in ADMIN_KINDS else self.backend


class NeedsKey(Exception):
    """The key this intent must be signed with is not configured: a human's turn."""


def build_instruction(intent: IntentRecord, signer: Pubkey, program_id: Pubkey) -> Instruction:
    """The zmart-core instruction an intent stands for."""
    market_id = bytes.fromhex(intent.market_id)
    a = intent.args
    if intent.kind == "aggregate_proposal_votes":
        return ix.aggregate_proposal_votes(
            backend_authority=signer,
            market_id=market_id,
            final_likes=int(a["likes"]),
            final_dislikes=int(a["dislikes"]),
            program_id=program_id,
        )
    if intent.kind == "approve_proposal":
        return ix.approve_proposal(admin=signer, market_id=market_id, program_id=program_id)
    if intent.kind == "finalize_market":
        agree, disagree = a.get("agree"), a.get("disagree")
        return ix.finalize_market(
            backend_authority=signer,
            market_id=market_id,
            dispute_agree=None if agree is None else int(agree),
            dispute_disagree=None if disagree is None else int(disagree),
            program_id=program_id,
        )
    if intent.kind == "cancel_market":
        return ix.cancel_market(admin=signer, market_id=market_id, program_id=program_id)
    raise ValueError(f"unknown intent kind {intent.kind!r}")


def effect_present(intent: IntentRecord, market: MarketAccount | None) -> bool:
    """Whether the market account already shows what the intent would do."""
    if market is None:
        return False
    if intent.kind == "aggregate_proposal_votes":
        return market.proposal_likes == int(
            intent.args["likes"]
        ) and market.proposal_dislikes == int(intent.args["dislikes"])
    if intent.kind == "approve_proposal":
        return market.approved_at != 0
    if intent.kind == "finalize_market":
        return market.state == MarketState.FINALIZED
    if intent.kind == "cancel_market":
        return market.state == MarketState.CANCELLED
    return False


_CONFIRMED: Final = (
    TransactionConfirmationStatus.Confirmed,
    TransactionConfirmationStatus.Finalized,
)


class Executor:
    """Drives intents over one RPC client and one database."""

    def __init__(
        self,
        db: Database,
        rpc: RpcClient,
        signers: Signers,
        *,
        program_id: Pubkey,
        settings: SenderSettings,
        metrics: SenderMetrics,
    ) -> None:
        self.db = db
        self.rpc = rpc
        self.signers = signers
        self.program_id = program_id
        self.settings = settings
        self.metrics = metrics
        #: intent id -> trio.current_time() when its current transaction was signed
        self._signed_at: dict[int, float] = {}

    # ------------------------------------------------------------------ the loop

    async def drive(self, intent_id: int) -> IntentRecord | None:
        """Work on one intent until it is final; returns it.  Transient errors
        (RPC unreachable, 429s beyond the client's retries) are noted on the
        intent and retried with backoff; :class:`NeedsKey` propagates."""
        delay = 0.5
        while True:
            intent = await store.get_intent(self.db, intent_id)
            if intent is None or intent.final:
                return intent
            try:
                if intent.state == "pending":
                    await self._sign(intent)
                else:
                    await self._follow(intent)
                delay = 0.5
            except (RpcClientError, OSError, DecodeError) as exc:
                if isinstance(exc, SimulationFailed):
                    raise  # handled in _sign; reaching here is a bug
                text = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "intent step failed; retrying", intent=intent.id, error=text, retry_in=delay
                )
                await store.record_error(self.db, intent.id, text)
                await trio.sleep(delay)
                delay = min(delay * 2, self.settings.max_backoff)

    # ------------------------------------------------------------------ steps

    def _signer(self, intent: IntentRecord) -> Keypair:
        signer = self.signers.for_kind(intent.kind)
        if signer is None:
            role = (
                "admin ([admin] keypair)"
                if intent.kind in ADMIN_KINDS
                else "backend authority ([chain] keypair)"
            )
            raise NeedsKey(
                f"intent {intent.id} ({intent.kind}) must be signed by the {role}, "
                "which is not configured: a human must sign it"
            )
        return signer

    async def _market(self, intent: IntentRecord) -> MarketAccount | None:
        address = market_pda(bytes.fromhex(intent.market_id), self.program_id)[0]
        account = await self.rpc.get_account_info(address, commitment="confirmed")
        if account is None or account.owner != self.program_id:
            return None
        return decode_account_as(MarketAccount, account.data, lenient=True)

    async def _sign(self, intent: IntentRecord) -> None:
        signer = self._signer(intent)
        market = await self._market(intent)
        if effect_present(intent, market):
            await store.record_landed(
                self.db, intent.id, slot=None, note="its effect was already on chain; nothing sent"
            )
            log.info("intent already effective on chain", intent=intent.id, kind=intent.kind)
            return
        instruction = build_instruction(intent, signer.pubkey(), self.program_id)
        latest = await self.rpc.get_latest_blockhash("confirmed")
        units = await self._simulate(intent, signer.pubkey(), instruction, latest.blockhash)
        if units is None:
            return  # failed deterministically
        limit = compute_unit_limit(units, self.settings.compute_unit_margin)
        market_key = market_pda(bytes.fromhex(intent.market_id), self.program_id)[0]
        fees = await self.rpc.get_recent_prioritization_fees([market_key])
        price = priority_fee(
            [f.prioritization_fee for f in fees],
            self.settings.priority_fee_percentile,
            self.settings.max_priority_fee,
        )
        message = MessageV0.try_compile(
            signer.pubkey(),
            [*budget_instructions(limit, price), instruction],
            [],
            latest.blockhash,
        )
        tx = VersionedTransaction(message, [signer])
        signature = str(tx.signatures[0])
        stored = await store.record_signed(
            self.db,
            intent.id,
            signature=signature,
            signed_tx=bytes(tx),
            last_valid_block_height=latest.last_valid_block_height,
        )
        if stored is not None:
            self._signed_at[intent.id] = trio.current_time()
            log.info(
                "intent signed",
                intent=intent.id,
                kind=intent.kind,
                signature=signature,
                attempt=stored.attempts,
                compute_units=limit,
                priority_fee=price,
                last_valid_block_height=latest.last_valid_block_height,
            )

    async def _simulate(
        self, intent: IntentRecord, payer: Pubkey, instruction: Instruction, blockhash: Hash
    ) -> int | None:
        """Units consumed, or None after recording a deterministic failure."""
        try:
            return await simulate_units(self.rpc, payer, instruction, blockhash=blockhash)
        except SimulationFailed as exc:
            if exc.instruction_index is None:
                raise RpcClientError(f"simulation could not run: {exc}") from exc
            name = (
                exc.program_error.name
                if exc.program_error is not None
                else f"instruction error {exc.failure.err['InstructionError'][1]}"
            )
            await self._fail(intent, name, f"simulation failed: {exc.failure.describe()}")
            return None

    async def _fail(
        self, intent: IntentRecord, name: str, message: str, slot: int | None = None
    ) -> None:
        await store.record_failed(self.db, intent.id, error_name=name, message=message, slot=slot)
        self.metrics.failures.labels(name).inc()
        log.warning("intent failed", intent=intent.id, kind=intent.kind, error=name, detail=message)

    async def _follow(self, intent: IntentRecord) -> None:
        """Confirm, rebroadcast or prove expiry of the stored transaction;
        returns once the intent left ``signed``."""
        assert intent.signature is not None and intent.signed_tx is not None
        assert intent.last_valid_block_height is not None
        signature = Signature.from_string(intent.signature)
        last_valid = intent.last_valid_block_height

        async def settled() -> bool:
            return await self._settled(intent, signature)

        async def expired(height: int) -> bool:
            return await self._expired(intent, signature, height)

        async def sent(first: bool) -> None:
            (self.metrics.sends if first else self.metrics.rebroadcasts).labels(intent.kind).inc()
            await store.record_sends(self.db, intent.id)

        await keep_sending(
            self.rpc,
            intent.signed_tx,
            last_valid,
            settled=settled,
            expired=expired,
            on_sent=sent,
            rebroadcast_interval=self.settings.rebroadcast_interval,
            poll_interval=self.settings.poll_interval,
        )

    async def _settled(self, intent: IntentRecord, signature: Signature) -> bool:
        status = (
            await self.rpc.get_signature_statuses([signature], search_transaction_history=True)
        )[0]
        if status is None or status.confirmation_status not in _CONFIRMED:
            return False
        started = self._signed_at.pop(intent.id, None)
        if status.err is None:
            await store.record_landed(self.db, intent.id, slot=status.slot)
            if started is not None:
                self.metrics.confirmation.observe(trio.current_time() - started)
            log.info(
                "intent landed",
                intent=intent.id,
                kind=intent.kind,
                signature=str(signature),
                slot=status.slot,
            )
            return True
        doc = await self.rpc.get_transaction(signature, commitment="confirmed")
        meta: dict[str, Any] = (doc or {}).get("meta") or {}
        failure = decode_tx_error(meta.get("err", str(status.err)), meta.get("logMessages") or ())
        name = (
            failure.program_error.name if failure.program_error is not None else failure.describe()
        )
        await self._fail(
            intent, name, f"landed with an error: {failure.describe()}", slot=status.slot
        )
        return True

    async def _expired(self, intent: IntentRecord, signature: Signature, height: int) -> bool:
        """Called once the confirmed height passed the last valid one: the
        transaction is void when, asked *after* that, the chain does not know
        its signature; then the effect decides between landed and re-sign.

        With several RPC endpoints the answers may come from different nodes,
        so the status answer must be from a node at least at the confirmed
        slot seen after the height (its ``context.slot``); a lagging node's
        "unknown" proves nothing and the check is repeated."""
        seen = await self.rpc.get_slot("confirmed")
        result, _ = await self.rpc.request(
            "getSignatureStatuses", [[str(signature)], {"searchTransactionHistory": True}]
        )
        if not isinstance(result, dict) or int(result.get("context", {}).get("slot", -1)) < seen:
            return False  # answered by a node behind the one that showed the height
        if result.get("value", [None])[0] is not None:
            return False  # it landed in time; the next status check settles it
        market = await self._market(intent)
        self._signed_at.pop(intent.id, None)
        if effect_present(intent, market):
            await store.record_landed(
                self.db,
                intent.id,
                slot=None,
                note=f"{signature} expired unseen, but its effect is on chain",
            )
            return True
        note = (
            f"{signature} expired: block height {height} > last valid "
            f"{intent.last_valid_block_height}, unknown to the chain, no effect on the "
            "market; signing again"
        )
        if await store.record_expired(self.db, intent.id, note=note) is not None:
            self.metrics.expiries.labels(intent.kind).inc()
            log.info(
                "signed transaction expired; re-signing",
                intent=intent.id,
                signature=str(signature),
                height=height,
                last_valid=intent.last_valid_block_height,
            )
        return True
