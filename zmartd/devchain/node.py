"""The chain double's *node*: slots, block heights, blockhashes, commitment
levels, the status cache and the transaction history around a
:class:`~zmartd.devchain.bank.Bank`.

The bank only executes transactions against the current state.  Everything a
client observes *over time* lives here, because that is what the indexer and
the transaction sender are tested against:

* **Slots** advance on a timer (driven by the server, :meth:`Node.advance_slot`);
  every slot is also a block (no skipped slots), with a blockhash derived from
  its parent's and a block time from the node's clock.  A blockhash stays
  valid for 150 blocks after its own, as on Solana
  (``lastValidBlockHeight = height + 150``).
* **Commitment.**  A transaction is *processed* as soon as it executes in the
  current slot, *confirmed* once ``confirmed_lag`` more slots were produced
  and *finalized* after ``finalized_lag`` slots.  Reads at a lower commitment
  see the state *as of* that slot: every first change of an account within a
  slot journals the account's previous value, and a read at slot ``s`` undoes
  the journal of the slots after ``s``.  That keeps ``getAccountInfo`` at
  ``confirmed``, its ``context.slot`` and the PubSub notifications coherent.
* **Clock.**  Unix time is the wall clock plus an offset that
  :meth:`Node.warp_clock` moves forward (tests cross 72-hour dispute windows
  in milliseconds).  Each slot has one timestamp, never smaller than its
  parent's; every transaction of the slot sees it (as ``Clock`` does).
* **History.**  Every executed transaction (failed ones included: they pay
  their fee and are recorded, as on Solana) is kept with its meta, indexed by
  signature and by every account key, for ``getTransaction``,
  ``getSignatureStatuses`` and ``getSignaturesForAddress``.
* **Observers** (:class:`NodeObserver`) get slot, transaction and account
  events per commitment level; the PubSub server and the webhook emitter are
  observers.

All methods are synchronous and meant to be called from one trio thread;
the node never awaits, so a request sees a consistent state.
"""

from __future__ import annotations

import hashlib
import struct
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import msgspec
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from zmartd.devchain.bank import Account, Bank, TransactionRejected

__all__ = [
    "COMMITMENTS",
    "COMPUTE_BUDGET_PROGRAM_ID",
    "FAUCET_LAMPORTS",
    "MAX_PROCESSING_AGE",
    "STATUS_CACHE_SLOTS",
    "Commitment",
    "Node",
    "NodeObserver",
    "Rejected",
    "SlotInfo",
    "StateFileError",
    "TxRecord",
    "priority_fee",
    "writable_keys",
]

Commitment = Literal["processed", "confirmed", "finalized"]
COMMITMENTS: tuple[Commitment, ...] = ("processed", "confirmed", "finalized")

#: A blockhash is usable for this many blocks after its own (Solana's MAX_PROCESSING_AGE).
MAX_PROCESSING_AGE = 150
#: How many slots ``getSignatureStatuses`` answers from without ``searchTransactionHistory``
#: (Solana's status cache holds roughly the last 300 slots of signatures).
STATUS_CACHE_SLOTS = 300
#: Slots of per-slot priority fees kept for ``getRecentPrioritizationFees``.
PRIORITIZATION_FEE_SLOTS = 150
#: Lamports minted to the faucet at genesis (half of u64, like a test validator's mint).
FAUCET_LAMPORTS = 500_000_000 * 1_000_000_000

COMPUTE_BUDGET_PROGRAM_ID = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
_DEFAULT_CU_PER_INSTRUCTION = 200_000
_MAX_CU = 1_400_000

_GENESIS_SEED = b"zmartd devchain genesis"
_STATE_FORMAT = 1


class Rejected(Exception):
    """The node refused the transaction before or instead of recording it
    (bad signature, unknown or expired blockhash, already processed, fee payer
    cannot pay...).  ``err`` is Solana's ``TransactionError`` JSON
    (``"BlockhashNotFound"``, ``{"InstructionError": ...}``...) and
    ``message`` the human sentence Solana puts after "Transaction simulation
    failed: ".  ``kind`` tells the RPC layer which JSON-RPC error to answer:
    ``"signature"`` (-32003), ``"sanitize"`` (-32602) or ``"preflight"``
    (-32002)."""

    def __init__(
        self,
        err: str | dict[str, Any],
        message: str,
        *,
        kind: Literal["signature", "sanitize", "preflight"] = "preflight",
        logs: Sequence[str] = (),
        units_consumed: int = 0,
    ) -> None:
        super().__init__(message)
        self.err = err
        self.message = message
        self.kind = kind
        self.logs = list(logs)
        self.units_consumed = units_consumed


class StateFileError(ValueError):
    """A ``--state`` file that cannot be restored (corrupt, other format)."""


@dataclass(frozen=True, slots=True)
class SlotInfo:
    slot: int
    parent: int
    block_height: int
    blockhash: Hash
    unix_timestamp: int


@dataclass(slots=True)
class TxRecord:
    """One executed transaction and its meta, as kept in the history."""

    signature: Signature
    slot: int
    #: Position within its slot (Helius' ``indexWithinBlock``).
    index: int
    block_time: int
    raw: bytes
    err: str | dict[str, Any] | None
    logs: list[str]
    fee: int
    account_keys: list[Pubkey]
    pre_balances: list[int]
    post_balances: list[int]
    inner_instructions: list[dict[str, Any]]
    compute_units_consumed: int
    _tx: VersionedTransaction | None = field(default=None, repr=False)

    @property
    def tx(self) -> VersionedTransaction:
        if self._tx is None:
            self._tx = VersionedTransaction.from_bytes(self.raw)
        return self._tx

    def to_state(self) -> dict[str, Any]:
        return {
            "raw": self.raw,
            "slot": self.slot,
            "index": self.index,
            "block_time": self.block_time,
            "err": self.err,
            "logs": self.logs,
            "fee": self.fee,
            "keys": [bytes(k) for k in self.account_keys],
            "pre": self.pre_balances,
            "post": self.post_balances,
            "inner": self.inner_instructions,
            "cu": self.compute_units_consumed,
        }

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> TxRecord:
        tx = VersionedTransaction.from_bytes(d["raw"])
        return cls(
            signature=tx.signatures[0],
            slot=d["slot"],
            index=d["index"],
            block_time=d["block_time"],
            raw=d["raw"],
            err=d["err"],
            logs=list(d["logs"]),
            fee=d["fee"],
            account_keys=[Pubkey.from_bytes(k) for k in d["keys"]],
            pre_balances=list(d["pre"]),
            post_balances=list(d["post"]),
            inner_instructions=list(d["inner"]),
            compute_units_consumed=d["cu"],
            _tx=tx,
        )


class NodeObserver(Protocol):
    """Receives the node's events; must not call back into state-changing
    node methods (the node is in the middle of producing a slot)."""

    def on_slot(self, info: SlotInfo, root: int) -> None: ...

    def on_transaction(self, level: Commitment, record: TxRecord) -> None: ...

    def on_accounts(
        self, level: Commitment, slot: int, accounts: Sequence[tuple[Pubkey, Account | None]]
    ) -> None: ...


def writable_keys(tx: VersionedTransaction) -> list[Pubkey]:
    """The statically listed accounts the message may write (header rules)."""
    message = tx.message
    header = message.header
    keys = list(message.account_keys)
    signed = header.num_required_signatures
    out: list[Pubkey] = []
    for i, key in enumerate(keys):
        if i < signed:
            if i < signed - header.num_readonly_signed_accounts:
                out.append(key)
        elif i < len(keys) - header.num_readonly_unsigned_accounts:
            out.append(key)
    return out


def _compute_budget(tx_message: Any) -> tuple[int, int | None]:
    """(micro-lamports per CU, explicit CU limit) from ComputeBudget instructions."""
    keys = list(tx_message.account_keys)
    price = 0
    limit: int | None = None
    for ix in tx_message.instructions:
        index = ix.program_id_index
        if index >= len(keys) or keys[index] != COMPUTE_BUDGET_PROGRAM_ID:
            continue
        data = bytes(ix.data)
        if len(data) == 9 and data[0] == 3:
            price = int.from_bytes(data[1:9], "little")
        elif len(data) == 5 and data[0] == 2:
            limit = int.from_bytes(data[1:5], "little")
    return price, limit


def priority_fee(message: Any) -> tuple[int, int]:
    """(compute unit price, priority fee in lamports) a message asks for:
    ``ceil(price * limit / 10**6)``, the limit defaulting to 200,000 CU per
    non-compute-budget instruction, capped at 1.4 M (Solana's rules)."""
    price, limit = _compute_budget(message)
    if limit is None:
        keys = list(message.account_keys)
        others = sum(
            1
            for ix in message.instructions
            if ix.program_id_index >= len(keys)
            or keys[ix.program_id_index] != COMPUTE_BUDGET_PROGRAM_ID
        )
        limit = _DEFAULT_CU_PER_INSTRUCTION * others
    limit = min(limit, _MAX_CU)
    return price, -(-price * limit // 1_000_000)


def _seed32(label: bytes) -> bytes:
    return hashlib.sha256(label).digest()


def _next_hash(previous: Hash, slot: int) -> Hash:
    return Hash(hashlib.sha256(bytes(previous) + struct.pack("<Q", slot)).digest())


class Node:
    """Ledger, clock and commitment around one bank (see the module docstring).

    ``clock`` returns wall-clock seconds (tests may pass a fake).
    """

    def __init__(
        self,
        bank: Bank,
        *,
        confirmed_lag: int = 1,
        finalized_lag: int = 32,
        clock: Callable[[], float] = time.time,
        faucet: Keypair | None = None,
        _restoring: bool = False,
    ) -> None:
        if confirmed_lag < 0 or finalized_lag < 0:
            raise ValueError("commitment lags must be >= 0")
        self.bank = bank
        self.confirmed_lag = confirmed_lag
        self.finalized_lag = finalized_lag
        self._clock = clock
        self.clock_offset = 0.0
        self.paused = False
        #: blocks a blockhash stays valid for; a test control (zmart_blockhashExpiry) lowers it
        self.max_processing_age = MAX_PROCESSING_AGE
        self.faucet = faucet or Keypair.from_seed(_seed32(b"zmartd devchain faucet"))
        self.genesis_hash = Hash(hashlib.sha256(_GENESIS_SEED).digest())
        self.identity = Keypair.from_seed(_seed32(b"zmartd devchain identity"))
        self.slot = 0
        self.block_height = 0
        self._blockhash = self.genesis_hash
        #: blockhash -> block height it was produced at (recent ones only)
        self._blockhashes: dict[Hash, int] = {self.genesis_hash: 0}
        self._blockhash_order: deque[tuple[int, Hash]] = deque([(0, self.genesis_hash)])
        #: block time of every slot, indexed by slot
        self._times = array("q", [self._now()])
        self._records: dict[Signature, TxRecord] = {}
        self._by_address: dict[Pubkey, list[Signature]] = {}
        #: slot -> its transactions, for slots not yet finalized (notifications)
        self._slot_txs: dict[int, list[TxRecord]] = {}
        #: slot -> pre-images of accounts first changed in that slot (not yet finalized)
        self._journal: dict[int, dict[Pubkey, Account | None]] = {}
        #: (slot, [(writable keys, cu price)]) for getRecentPrioritizationFees
        self._fees: deque[tuple[int, list[tuple[frozenset[Pubkey], int]]]] = deque(
            maxlen=PRIORITIZATION_FEE_SLOTS
        )
        self._observers: list[NodeObserver] = []
        #: called with the new slot once it is fully produced (may submit transactions)
        self.slot_hooks: list[Callable[[int], None]] = []
        self.transaction_count = 0
        #: bumped by every change, so savers know whether to write
        self.generation = 0
        if not _restoring:
            self.bank.airdrop(self.faucet.pubkey(), FAUCET_LAMPORTS)

    # ------------------------------------------------------------------ observers

    def subscribe(self, observer: NodeObserver) -> None:
        self._observers.append(observer)

    def unsubscribe(self, observer: NodeObserver) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    # ------------------------------------------------------------------ clock & slots

    def _now(self) -> int:
        return int(self._clock() + getattr(self, "clock_offset", 0.0))

    @property
    def unix_timestamp(self) -> int:
        """The current slot's timestamp (what transactions executing now see)."""
        return self._times[self.slot]

    @property
    def blockhash(self) -> Hash:
        return self._blockhash

    def _upto(self, level: Commitment) -> int:
        """Highest slot at ``level``; -1 while nothing reached it yet (a fresh
        chain), which makes reads see the genesis state."""
        if level == "processed":
            return self.slot
        confirmed = self.slot - self.confirmed_lag
        if level == "confirmed":
            return confirmed
        return min(confirmed, self.slot - self.finalized_lag)

    def commitment_slot(self, level: Commitment) -> int:
        """The slot reported for ``level`` (``context.slot``, ``getSlot``)."""
        return max(0, self._upto(level))

    def block_height_at(self, slot: int) -> int:
        """Every slot is a block here, so heights differ from slots by a constant."""
        return slot - (self.slot - self.block_height)

    def blockhash_at(self, level: Commitment) -> tuple[Hash, int]:
        """(blockhash, lastValidBlockHeight) of the block at that commitment."""
        slot = self.commitment_slot(level)
        height = self.block_height_at(slot)
        age = self.max_processing_age
        for h, bh in reversed(self._blockhash_order):
            if h == height:
                return bh, height + age
        return self._blockhash, self.block_height + age  # pragma: no cover

    def is_blockhash_valid(self, blockhash: Hash) -> bool:
        height = self._blockhashes.get(blockhash)
        return height is not None and self.block_height <= height + self.max_processing_age

    def block_time(self, slot: int) -> int | None:
        if 0 <= slot <= self.slot:
            return self._times[slot]
        return None

    def slot_info(self) -> SlotInfo:
        return SlotInfo(
            self.slot,
            max(0, self.slot - 1),
            self.block_height,
            self._blockhash,
            self.unix_timestamp,
        )

    def advance_slot(self, count: int = 1) -> None:
        """Produce ``count`` blocks now, notifying observers of each slot and
        of everything that reached confirmed / finalized."""
        for _ in range(count):
            self._advance_one()
            for hook in list(self.slot_hooks):
                hook(self.slot)

    def _advance_one(self) -> None:
        old_confirmed = self._upto("confirmed")
        old_finalized = self._upto("finalized")
        self.slot += 1
        self.block_height += 1
        self._blockhash = _next_hash(self._blockhash, self.slot)
        self._blockhashes[self._blockhash] = self.block_height
        self._blockhash_order.append((self.block_height, self._blockhash))
        while self._blockhash_order[0][0] < self.block_height - 2 * MAX_PROCESSING_AGE:
            _, old = self._blockhash_order.popleft()
            self._blockhashes.pop(old, None)
        self._times.append(max(self._times[-1], self._now()))
        self.generation += 1
        info = self.slot_info()
        new_confirmed = self._upto("confirmed")
        new_finalized = self._upto("finalized")
        for observer in list(self._observers):
            observer.on_slot(info, max(0, new_finalized))
        for slot in range(old_confirmed + 1, new_confirmed + 1):
            self._reached("confirmed", slot)
        for slot in range(old_finalized + 1, new_finalized + 1):
            self._reached("finalized", slot)
        for slot in [s for s in self._journal if s < new_finalized]:
            del self._journal[slot]
        for slot in [s for s in self._slot_txs if s <= new_finalized]:
            del self._slot_txs[slot]

    def _reached(self, level: Commitment, slot: int) -> None:
        if not self._observers:
            return
        for record in self._slot_txs.get(slot, ()):
            for observer in list(self._observers):
                observer.on_transaction(level, record)
        changed = self._journal.get(slot)
        if changed:
            values = [(key, self.account_at(key, slot)) for key in changed]
            for observer in list(self._observers):
                observer.on_accounts(level, slot, values)

    def warp_clock(self, seconds: float) -> int:
        """Move unix time forward by ``seconds`` and open a new slot carrying
        the new time (transactions already in the current slot keep theirs).
        Returns the new timestamp."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.clock_offset += seconds
        self.advance_slot()
        return self.unix_timestamp

    def start_clock_at(self, unix_timestamp: int) -> None:
        """Let a fresh chain's history begin at ``unix_timestamp`` (in the
        past: the demo seed gives its markets days of history and then
        catches up with the wall clock).  Only before the first transaction."""
        if self.slot != 0 or self._records:
            raise RuntimeError("start_clock_at is only allowed on a fresh chain")
        self.clock_offset += unix_timestamp - self._now()
        self._times[0] = self._now()

    def set_clock(self, unix_timestamp: int) -> int:
        """Move the clock forward to ``unix_timestamp`` (no-op if already past)."""
        now = self._now()
        if unix_timestamp > now:
            self.clock_offset += unix_timestamp - now
        self.advance_slot()
        return self.unix_timestamp

    # ------------------------------------------------------------------ state changes

    def _journal_before(self, keys: Iterable[Pubkey]) -> dict[Pubkey, Account | None]:
        """Remember the pre-image of each key not yet changed in this slot."""
        entry = self._journal.setdefault(self.slot, {})
        fresh: dict[Pubkey, Account | None] = {}
        for key in keys:
            if key not in entry and key not in fresh:
                fresh[key] = self.bank.get_account(key)  # the bank hands out copies
        return fresh

    def _commit_journal(
        self, fresh: dict[Pubkey, Account | None], changed: Iterable[Pubkey]
    ) -> None:
        entry = self._journal.setdefault(self.slot, {})
        for key in changed:
            if key in fresh:
                entry[key] = fresh[key]
        if not entry:
            del self._journal[self.slot]

    def _notify_processed_accounts(self, keys: Sequence[Pubkey]) -> None:
        if self._observers and keys:
            values = [(k, self.bank.get_account(k)) for k in keys]
            for observer in list(self._observers):
                observer.on_accounts("processed", self.slot, values)

    def set_account(self, key: Pubkey, account: Account | None) -> None:
        """Overwrite (or delete) an account outside any transaction (test control)."""
        fresh = self._journal_before([key])
        self.bank.set_account(key, account)
        self._commit_journal(fresh, [key])
        self.generation += 1
        self._notify_processed_accounts([key])

    def mint(self, key: Pubkey, lamports: int) -> int:
        """Create ``lamports`` out of thin air on ``key`` (no transaction, no
        history); returns the new balance."""
        if lamports <= 0:
            raise ValueError("lamports must be > 0")
        fresh = self._journal_before([key])
        self.bank.airdrop(key, lamports)
        self._commit_journal(fresh, [key])
        self.generation += 1
        self._notify_processed_accounts([key])
        account = self.bank.get_account(key)
        return account.lamports if account is not None else 0

    def check(self, tx: VersionedTransaction, *, verify: bool = True) -> None:
        """The node's own admission checks, in Solana's order: sanitize,
        signatures, lookup tables, blockhash age, status cache."""
        try:
            tx.sanitize()
        except Exception as exc:  # solders raises its own SanitizeError
            raise Rejected(
                "SanitizeFailure", f"invalid transaction: {exc}", kind="sanitize"
            ) from None
        if len(tx.signatures) != tx.message.header.num_required_signatures:
            raise Rejected(
                "SanitizeFailure",
                "invalid transaction: wrong number of signatures",
                kind="sanitize",
            )
        if verify and not all(tx.verify_with_results()):
            raise Rejected(
                "SignatureFailure", "Transaction signature verification failure", kind="signature"
            )
        message = tx.message
        if isinstance(message, MessageV0) and message.address_table_lookups:
            raise Rejected(
                "AddressLookupTableNotFound",
                "Transaction loads an address table account that doesn't exist",
            )
        if not self.is_blockhash_valid(message.recent_blockhash):
            raise Rejected("BlockhashNotFound", "Blockhash not found")
        if tx.signatures[0] in self._records:
            raise Rejected("AlreadyProcessed", "This transaction has already been processed")

    def submit(
        self, tx: VersionedTransaction, *, verify: bool = True, checked: bool = False
    ) -> TxRecord:
        """Execute and record a transaction in the current slot (it is
        *processed* on return).  Raises :class:`Rejected` if it cannot land.
        ``checked``: :meth:`check` already passed in this same state (the
        preflight path), so it is not repeated."""
        if not checked:
            self.check(tx, verify=verify)
        keys = writable_keys(tx)
        fresh = self._journal_before(keys)
        try:
            result = self.bank.execute(
                tx,
                slot=self.slot,
                unix_timestamp=self.unix_timestamp,
                commit=True,
                verify_signatures=False,
            )
        except TransactionRejected as exc:
            self._commit_journal(fresh, ())
            raise Rejected(exc.err, exc.message) from None
        self._commit_journal(fresh, result.changed_accounts)
        signature = tx.signatures[0]
        slot_txs = self._slot_txs.setdefault(self.slot, [])
        record = TxRecord(
            signature=signature,
            slot=self.slot,
            index=len(slot_txs),
            block_time=self.unix_timestamp,
            raw=bytes(tx),
            err=result.err,
            logs=list(result.logs),
            fee=result.fee,
            account_keys=list(result.account_keys),
            pre_balances=list(result.pre_balances),
            post_balances=list(result.post_balances),
            inner_instructions=list(result.inner_instructions),
            compute_units_consumed=result.compute_units_consumed,
            _tx=tx,
        )
        slot_txs.append(record)
        self._add_record(record)
        price, _ = priority_fee(tx.message)
        if not self._fees or self._fees[-1][0] != self.slot:
            self._fees.append((self.slot, []))
        self._fees[-1][1].append((frozenset(keys), price))
        self.transaction_count += 1
        self.generation += 1
        if self._observers:
            for observer in list(self._observers):
                observer.on_transaction("processed", record)
            self._notify_processed_accounts(list(result.changed_accounts))
        return record

    def _add_record(self, record: TxRecord) -> None:
        self._records[record.signature] = record
        seen: set[Pubkey] = set()
        for key in record.account_keys:
            if key not in seen:
                seen.add(key)
                self._by_address.setdefault(key, []).append(record.signature)

    def simulate(
        self, tx: VersionedTransaction, *, verify: bool = False, checked: bool = False
    ) -> Any:
        """Execute without committing; returns the bank's ExecutionResult.
        Raises :class:`Rejected` for what would not even execute."""
        if not checked:
            self.check(tx, verify=verify)
        try:
            return self.bank.execute(
                tx,
                slot=self.slot,
                unix_timestamp=self.unix_timestamp,
                commit=False,
                verify_signatures=False,
            )
        except TransactionRejected as exc:
            raise Rejected(exc.err, exc.message) from None

    def faucet_transfer(self, to: Pubkey, lamports: int) -> TxRecord:
        """``requestAirdrop``: a real System transfer from the faucet, signed
        and recorded like any transaction (so lamports are conserved)."""
        if lamports <= 0:
            raise ValueError("lamports must be > 0")
        ix = transfer(
            TransferParams(from_pubkey=self.faucet.pubkey(), to_pubkey=to, lamports=lamports)
        )
        message = MessageV0.try_compile(self.faucet.pubkey(), [ix], [], self._blockhash)
        tx = VersionedTransaction(message, [self.faucet])
        if tx.signatures[0] in self._records:  # same transfer twice in one slot
            self.advance_slot()
            return self.faucet_transfer(to, lamports)
        return self.submit(tx, verify=False)

    # ------------------------------------------------------------------ reads

    def account_at(self, key: Pubkey, slot: int) -> Account | None:
        """The account as it was at the end of ``slot`` (>= the finalized slot)."""
        for s in sorted(self._journal):
            if s > slot and key in self._journal[s]:
                return self._journal[s][key]
        return self.bank.get_account(key)

    def get_account(self, key: Pubkey, level: Commitment = "processed") -> Account | None:
        slot = self._upto(level)
        if slot >= self.slot or not self._journal:
            return self.bank.get_account(key)
        return self.account_at(key, slot)

    def accounts_owned_by(
        self, owner: Pubkey, level: Commitment = "processed"
    ) -> Iterator[tuple[Pubkey, Account]]:
        slot = self._upto(level)
        overrides: dict[Pubkey, Account | None] = {}
        if slot < self.slot:
            for s in sorted(self._journal):
                if s > slot:
                    for key, value in self._journal[s].items():
                        overrides.setdefault(key, value)
        for key, account in self.bank.accounts():
            if overrides and key in overrides:
                continue
            if account.owner == owner:
                yield key, account
        for key, value in overrides.items():
            if value is not None and value.owner == owner:
                yield key, value

    def record(self, signature: Signature) -> TxRecord | None:
        return self._records.get(signature)

    def level_of(self, record: TxRecord) -> Commitment:
        if record.slot <= self._upto("finalized"):
            return "finalized"
        if record.slot <= self._upto("confirmed"):
            return "confirmed"
        return "processed"

    def signature_status(self, signature: Signature, *, search_history: bool) -> TxRecord | None:
        record = self._records.get(signature)
        if record is None:
            return None
        if not search_history and record.slot < self.slot - STATUS_CACHE_SLOTS:
            return None
        return record

    def transaction(self, signature: Signature, level: Commitment) -> TxRecord | None:
        record = self._records.get(signature)
        if record is None or record.slot > self._upto(level):
            return None
        return record

    def signatures_for_address(
        self,
        address: Pubkey,
        level: Commitment,
        *,
        before: Signature | None = None,
        until: Signature | None = None,
        limit: int = 1000,
    ) -> list[TxRecord]:
        """Newest first, strictly older than ``before``, strictly newer than ``until``."""
        signatures = self._by_address.get(address, [])
        visible = self._upto(level)
        end = len(signatures)
        if before is not None:
            try:
                end = signatures.index(before)
            except ValueError:
                return []
        out: list[TxRecord] = []
        for i in range(end - 1, -1, -1):
            sig = signatures[i]
            if until is not None and sig == until:
                break
            record = self._records[sig]
            if record.slot > visible:
                continue
            out.append(record)
            if len(out) >= limit:
                break
        return out

    def recent_prioritization_fees(self, accounts: Sequence[Pubkey]) -> list[tuple[int, int]]:
        """(slot, minimum CU price among that slot's transactions writing all
        ``accounts``; 0 when none) for the recent slots, oldest first."""
        wanted = frozenset(accounts)
        by_slot = dict(self._fees)
        first = max(0, self.slot - PRIORITIZATION_FEE_SLOTS + 1)
        out: list[tuple[int, int]] = []
        for slot in range(first, self.slot + 1):
            prices = [price for keys, price in by_slot.get(slot, ()) if wanted <= keys]
            out.append((slot, min(prices) if prices else 0))
        return out

    def fee_for_message(self, message: Any) -> int:
        _, prio = priority_fee(message)
        return int(message.header.num_required_signatures) * self.bank.lamports_per_signature + prio

    # ------------------------------------------------------------------ persistence

    def to_bytes(self) -> bytes:
        """The whole ledger: bank, slots, clock, recent blockhashes, history."""
        state = {
            "format": _STATE_FORMAT,
            "bank": self.bank.to_bytes(),
            "slot": self.slot,
            "block_height": self.block_height,
            "blockhash": bytes(self._blockhash),
            "blockhashes": [[h, bytes(bh)] for h, bh in self._blockhash_order],
            "times": self._times.tobytes(),
            "clock_offset": self.clock_offset,
            "transaction_count": self.transaction_count,
            "records": [r.to_state() for r in self._records.values()],
        }
        return msgspec.msgpack.encode(state)

    @classmethod
    def from_bytes(
        cls,
        raw: bytes,
        *,
        confirmed_lag: int = 1,
        finalized_lag: int = 32,
        clock: Callable[[], float] = time.time,
    ) -> Node:
        try:
            state = msgspec.msgpack.decode(raw)
            if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
                raise StateFileError("not a devchain state (unknown format)")
            bank = Bank.from_bytes(state["bank"])
            node = cls(
                bank,
                confirmed_lag=confirmed_lag,
                finalized_lag=finalized_lag,
                clock=clock,
                _restoring=True,
            )
            node.slot = state["slot"]
            node.block_height = state["block_height"]
            node._blockhash = Hash(state["blockhash"])
            node._blockhash_order = deque((h, Hash(bh)) for h, bh in state["blockhashes"])
            node._blockhashes = {bh: h for h, bh in node._blockhash_order}
            times = array("q")
            times.frombytes(state["times"])
            node._times = times
            node.clock_offset = float(state["clock_offset"])
            node.transaction_count = state["transaction_count"]
            for item in state["records"]:
                node._add_record(TxRecord.from_state(item))
        except StateFileError:
            raise
        except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
            raise StateFileError(f"cannot restore devchain state: {exc}") from exc
        if len(node._times) != node.slot + 1:
            raise StateFileError("cannot restore devchain state: slot times do not match the slot")
        # Time never runs backwards, even if the wall clock did between runs.
        if node._now() < node._times[-1]:
            node.clock_offset += node._times[-1] - node._now()
        return node
