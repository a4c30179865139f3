"""An in-memory Solana bank: accounts, and atomic execution of signed transactions.

Why a bank of our own instead of a real validator: zmartd's tests and its
``devchain`` mode need a chain that starts in milliseconds, runs on a laptop
without Rust tooling, and executes the *deployed* zmart-core program with all
its quirks (docs/chain.md §11).  So this module reproduces the parts of the
Solana runtime a client can observe:

* **Rejection before execution** (:class:`TransactionRejected`, nothing
  recorded, no fee): sanitize failures, bad or missing signatures, an
  already-processed signature, a fee payer that does not exist / cannot pay,
  unknown program ids, bad compute-budget instructions.
* **Execution** (:class:`ExecutionResult`, fee charged): instructions run in
  order on copies of the accounts; the first failing instruction aborts the
  transaction and *everything but the fee* is rolled back, exactly like
  Solana.  After a successful run every writable account must satisfy the
  rent-state rules, else ``InsufficientFundsForRent { account_index }``.
* **Fees**: ``lamports_per_signature * signatures`` plus the priority fee
  ``ceil(micro-lamports price * compute-unit limit / 10**6)``, where the limit
  is SetComputeUnitLimit or 200,000 per non-compute-budget instruction
  (capped at 1,400,000).
* **Logs, inner instructions, compute units** in the shapes RPC returns
  (``Program <id> invoke [1]`` … ``success`` / ``failed: <error text>``).

Programs are processors registered per program id.  The System Program and
the Compute Budget program are built in; zmart-core is modelled in
:mod:`zmartd.devchain.program` and registered by :class:`Bank` itself.  A
processor receives an :class:`InstructionContext` — accounts, signer/writable
flags, logging, compute metering and cross-program invocation with PDA
signers — and fails by raising :class:`InstructionError`.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from solders.instruction import AccountMeta
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction

from zmartd.chain.borsh import b58encode
from zmartd.chain.pda import PROGRAM_ID, SYSTEM_PROGRAM_ID
from zmartd.devchain.failures import InstructionError, TransactionRejected, instruction_error_text
from zmartd.devchain.program import ZmartCore

__all__ = [
    "BPF_UPGRADEABLE_LOADER_ID",
    "COMPUTE_BUDGET_PROGRAM_ID",
    "DEFAULT_INSTRUCTION_COMPUTE_UNIT_LIMIT",
    "MAX_COMPUTE_UNIT_LIMIT",
    "NATIVE_LOADER_ID",
    "SYSTEM_PROGRAM_ID",
    "Account",
    "Bank",
    "ExecutionResult",
    "InstructionContext",
    "InstructionError",
    "Processor",
    "TransactionRejected",
    "instruction_error_text",
    "rent_exempt_minimum",
]

COMPUTE_BUDGET_PROGRAM_ID = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
NATIVE_LOADER_ID = Pubkey.from_string("NativeLoader1111111111111111111111111111111")
BPF_UPGRADEABLE_LOADER_ID = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")
_SYSVAR_OWNER = Pubkey.from_string("Sysvar1111111111111111111111111111111111111")

DEFAULT_INSTRUCTION_COMPUTE_UNIT_LIMIT = 200_000
MAX_COMPUTE_UNIT_LIMIT = 1_400_000
#: Solana's account-lock limit per transaction.
MAX_TX_ACCOUNT_LOCKS = 64
#: Compute units a builtin (system, compute budget) instruction costs.
BUILTIN_COMPUTE_UNITS = 150
#: Deepest invoke stack (top level = 1).
MAX_INVOKE_DEPTH = 5
_MAX_PERMITTED_DATA_LENGTH = 10 * 1024 * 1024
_MICRO_LAMPORTS_PER_LAMPORT = 1_000_000
# Default rent: 3,480 lamports/byte-year, 2 years' exemption, 128 bytes overhead.
_RENT_BYTES_OVERHEAD = 128
_RENT_LAMPORTS_PER_BYTE = 6_960


def rent_exempt_minimum(data_len: int) -> int:
    """Rent-exempt minimum balance for ``data_len`` bytes with default rent."""
    return (_RENT_BYTES_OVERHEAD + data_len) * _RENT_LAMPORTS_PER_BYTE


@dataclass
class Account:
    """One ledger entry (mutable: the bank edits working copies in place)."""

    lamports: int
    data: bytes
    owner: Pubkey
    executable: bool = False
    rent_epoch: int = 0

    def copy(self) -> Account:
        return replace(self)


def _empty_account() -> Account:
    return Account(lamports=0, data=b"", owner=SYSTEM_PROGRAM_ID)


@dataclass(frozen=True)
class ExecutionResult:
    """An executed transaction (fee charged): ``err`` is None on success, else
    the TransactionError JSON, e.g. ``{"InstructionError": [0, {"Custom": 6015}]}``."""

    signature: Signature
    err: str | dict[str, Any] | None
    logs: list[str]
    fee: int
    account_keys: list[Pubkey]
    pre_balances: list[int]
    post_balances: list[int]
    inner_instructions: list[dict[str, Any]]
    compute_units_consumed: int
    changed_accounts: list[Pubkey]
    unix_timestamp: int
    slot: int


class Processor(Protocol):
    """A program: runs one instruction, raises :class:`InstructionError` to fail."""

    def __call__(self, ctx: InstructionContext) -> None: ...


# ---------------------------------------------------------------------------
# Execution contexts
# ---------------------------------------------------------------------------


@dataclass
class _TxState:
    keys: list[Pubkey]
    accounts: dict[Pubkey, Account]
    signers: set[Pubkey]
    writable: set[Pubkey]
    processors: dict[Pubkey, Processor]
    slot: int
    unix_timestamp: int
    compute_limit: int
    variant: str
    logs: list[str] = field(default_factory=list)
    consumed: int = 0
    inner: list[dict[str, Any]] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.compute_limit - self.consumed


class InstructionContext:
    """What a processor sees while running one (possibly nested) instruction.

    Accounts are addressed by their position in the instruction's account
    list, as programs see them; the :class:`Account` objects returned are the
    transaction's working copies, so edits are visible to later instructions
    and are thrown away if the transaction fails.
    """

    def __init__(
        self,
        tx: _TxState,
        program_id: Pubkey,
        metas: Sequence[tuple[Pubkey, bool, bool]],
        data: bytes,
        depth: int,
    ) -> None:
        self._tx = tx
        self.program_id = program_id
        self._metas = list(metas)
        self.data = data
        self.depth = depth

    # -- accounts ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._metas)

    @property
    def keys(self) -> list[Pubkey]:
        return [k for k, _, _ in self._metas]

    def key(self, i: int) -> Pubkey:
        return self._metas[i][0]

    def is_signer(self, i: int) -> bool:
        return self._metas[i][1]

    def is_writable(self, i: int) -> bool:
        return self._metas[i][2]

    def account(self, i: int) -> Account:
        return self._tx.accounts[self._metas[i][0]]

    def account_by_key(self, key: Pubkey) -> Account:
        return self._tx.accounts[key]

    def require_accounts(self, n: int) -> None:
        if len(self._metas) < n:
            raise InstructionError("NotEnoughAccountKeys")

    # -- environment ---------------------------------------------------------
    @property
    def unix_timestamp(self) -> int:
        return self._tx.unix_timestamp

    @property
    def slot(self) -> int:
        return self._tx.slot

    @property
    def variant(self) -> str:
        return self._tx.variant

    @staticmethod
    def rent_exempt_minimum(data_len: int) -> int:
        return rent_exempt_minimum(data_len)

    # -- logging and metering ------------------------------------------------
    def log(self, line: str) -> None:
        """Append a raw log line (``ic_msg``-style builtin messages)."""
        self._tx.logs.append(line)

    def msg(self, text: str) -> None:
        """``msg!``: a ``Program log: ...`` line."""
        self._tx.logs.append("Program log: " + text)

    def consume(self, units: int) -> None:
        """Charge compute units; over the limit → ComputationalBudgetExceeded."""
        if units > self._tx.remaining:
            self._tx.consumed = self._tx.compute_limit
            raise InstructionError("ComputationalBudgetExceeded")
        self._tx.consumed += units

    # -- cross-program invocation -------------------------------------------
    def invoke(
        self,
        program_id: Pubkey,
        metas: Sequence[AccountMeta],
        data: bytes,
        signer_pdas: Iterable[Pubkey] = (),
    ) -> None:
        """``invoke_signed``: run another program's instruction at depth+1.

        Privileges are checked like the runtime does: a callee account may be
        signer only if it signed the caller's instruction or is one of
        ``signer_pdas`` (derived from the caller's program id), and writable
        only if writable in the caller.  The CPI is recorded as an inner
        instruction; a failure propagates as the caller's failure.
        """
        if self.depth + 1 > MAX_INVOKE_DEPTH:
            raise InstructionError("CallDepth")
        pdas = set(signer_pdas)
        caller = {k: (s, w) for k, s, w in self._metas}
        if program_id not in caller:
            self.log(f"Unknown program {program_id}")
            raise InstructionError("MissingAccount")
        callee_metas: list[tuple[Pubkey, bool, bool]] = []
        for m in metas:
            if m.pubkey not in caller:
                self.log(f"Instruction references an unknown account {m.pubkey}")
                raise InstructionError("MissingAccount")
            c_signer, c_writable = caller[m.pubkey]
            if m.is_signer and not (c_signer or m.pubkey in pdas):
                self.log(f"{m.pubkey}'s signer privilege escalated")
                raise InstructionError("PrivilegeEscalation")
            if m.is_writable and not c_writable:
                self.log(f"{m.pubkey}'s writable privilege escalated")
                raise InstructionError("PrivilegeEscalation")
            callee_metas.append((m.pubkey, m.is_signer, m.is_writable))
        tx = self._tx
        index = {k: i for i, k in enumerate(tx.keys)}
        tx.inner.append(
            {
                "programIdIndex": index[program_id],
                "accounts": [index[k] for k, _, _ in callee_metas],
                "data": b58encode(data),
                "stackHeight": self.depth + 1,
            }
        )
        _run_program(tx, program_id, callee_metas, data, self.depth + 1)


def _run_program(
    tx: _TxState,
    program_id: Pubkey,
    metas: Sequence[tuple[Pubkey, bool, bool]],
    data: bytes,
    depth: int,
) -> None:
    """Invoke a program with the runtime's log framing."""
    processor = tx.processors.get(program_id)
    tx.logs.append(f"Program {program_id} invoke [{depth}]")
    builtin = program_id in _BUILTINS
    start_consumed = tx.consumed
    start_remaining = tx.remaining
    ctx = InstructionContext(tx, program_id, metas, data, depth)
    try:
        if processor is None:
            raise InstructionError("UnsupportedProgramId")
        processor(ctx)
    except InstructionError as e:
        if not builtin:
            used = tx.consumed - start_consumed
            tx.logs.append(_consumed_line(program_id, used, start_remaining))
            if e.err == "ComputationalBudgetExceeded":
                tx.logs.append(
                    f"Program {program_id} failed: exceeded CUs meter at BPF instruction #{used}"
                )
                raise
        tx.logs.append(f"Program {program_id} failed: {instruction_error_text(e.err)}")
        raise
    if not builtin:
        tx.logs.append(_consumed_line(program_id, tx.consumed - start_consumed, start_remaining))
    tx.logs.append(f"Program {program_id} success")


def _consumed_line(program_id: Pubkey, used: int, budget: int) -> str:
    return f"Program {program_id} consumed {used} of {budget} compute units"


# ---------------------------------------------------------------------------
# Builtin programs
# ---------------------------------------------------------------------------


def _address_debug(key: Pubkey) -> str:
    # agave formats system-program addresses with the Debug of its `Address` type.
    return f"Address {{ address: {key}, base: None }}"


def _system_processor(ctx: InstructionContext) -> None:
    """The System Program instructions Anchor and wallets use:
    CreateAccount, Assign, Transfer, Allocate (agave's checks and messages)."""
    ctx.consume(BUILTIN_COMPUTE_UNITS)
    data = ctx.data
    if len(data) < 4:
        raise InstructionError("InvalidInstructionData")
    (kind,) = struct.unpack_from("<I", data)
    body = data[4:]
    if kind == 0:  # CreateAccount { lamports, space, owner }
        if len(body) != 48:
            raise InstructionError("InvalidInstructionData")
        lamports, space = struct.unpack_from("<QQ", body)
        owner = Pubkey.from_bytes(body[16:48])
        ctx.require_accounts(2)
        to = ctx.account(1)
        if to.lamports > 0:
            ctx.log(f"Create Account: account {_address_debug(ctx.key(1))} already in use")
            raise InstructionError.custom(0)
        _allocate(ctx, 1, space)
        _assign(ctx, 1, owner)
        _transfer(ctx, 0, 1, lamports)
    elif kind == 1:  # Assign { owner }
        if len(body) != 32:
            raise InstructionError("InvalidInstructionData")
        ctx.require_accounts(1)
        _assign(ctx, 0, Pubkey.from_bytes(body))
    elif kind == 2:  # Transfer { lamports }
        if len(body) != 8:
            raise InstructionError("InvalidInstructionData")
        ctx.require_accounts(2)
        (lamports,) = struct.unpack("<Q", body)
        _transfer(ctx, 0, 1, lamports)
    elif kind == 8:  # Allocate { space }
        if len(body) != 8:
            raise InstructionError("InvalidInstructionData")
        ctx.require_accounts(1)
        (space,) = struct.unpack("<Q", body)
        _allocate(ctx, 0, space)
    else:
        raise InstructionError("InvalidInstructionData")


def _allocate(ctx: InstructionContext, i: int, space: int) -> None:
    acct = ctx.account(i)
    if not ctx.is_signer(i):
        ctx.log(f"Allocate: 'to' account {_address_debug(ctx.key(i))} must sign")
        raise InstructionError("MissingRequiredSignature")
    if acct.data or acct.owner != SYSTEM_PROGRAM_ID:
        ctx.log(f"Allocate: account {_address_debug(ctx.key(i))} already in use")
        raise InstructionError.custom(0)
    if space > _MAX_PERMITTED_DATA_LENGTH:
        ctx.log(f"Allocate: requested {space}, max allowed {_MAX_PERMITTED_DATA_LENGTH}")
        raise InstructionError.custom(3)
    if not ctx.is_writable(i):
        raise InstructionError("ReadonlyDataModified")
    acct.data = bytes(space)


def _assign(ctx: InstructionContext, i: int, owner: Pubkey) -> None:
    acct = ctx.account(i)
    if acct.owner == owner:
        return
    if not ctx.is_signer(i):
        ctx.log(f"Assign: account {_address_debug(ctx.key(i))} must sign")
        raise InstructionError("MissingRequiredSignature")
    if not ctx.is_writable(i):
        raise InstructionError("ModifiedProgramId")
    acct.owner = owner


def _transfer(ctx: InstructionContext, src: int, dst: int, lamports: int) -> None:
    if not ctx.is_signer(src):
        ctx.log(f"Transfer: `from` account {ctx.key(src)} must sign")
        raise InstructionError("MissingRequiredSignature")
    frm = ctx.account(src)
    if frm.data:
        ctx.log("Transfer: `from` must not carry data")
        raise InstructionError("InvalidArgument")
    if lamports > frm.lamports:
        ctx.log(f"Transfer: insufficient lamports {frm.lamports}, need {lamports}")
        raise InstructionError.custom(1)
    if frm.owner != SYSTEM_PROGRAM_ID:
        raise InstructionError("ExternalAccountLamportSpend")
    if lamports and not (ctx.is_writable(src) and ctx.is_writable(dst)):
        raise InstructionError("ReadonlyLamportChange")
    to = ctx.account(dst)
    frm.lamports -= lamports
    to.lamports += lamports


def _compute_budget_processor(ctx: InstructionContext) -> None:
    # Parsed (and validated) before execution; executing it is a no-op.
    ctx.consume(BUILTIN_COMPUTE_UNITS)


_BUILTINS: dict[Pubkey, Processor] = {
    SYSTEM_PROGRAM_ID: _system_processor,
    COMPUTE_BUDGET_PROGRAM_ID: _compute_budget_processor,
}
#: Keys the runtime never write-locks (demoted to read-only in any message).
_RESERVED_KEYS = frozenset(
    {
        SYSTEM_PROGRAM_ID,
        COMPUTE_BUDGET_PROGRAM_ID,
        NATIVE_LOADER_ID,
        BPF_UPGRADEABLE_LOADER_ID,
        _SYSVAR_OWNER,
        Pubkey.from_string("SysvarC1ock11111111111111111111111111111111"),
        Pubkey.from_string("SysvarRent111111111111111111111111111111111"),
    }
)


@dataclass(frozen=True)
class _ComputeBudget:
    limit: int
    price_micro_lamports: int

    @property
    def priority_fee(self) -> int:
        return math.ceil(self.price_micro_lamports * self.limit / _MICRO_LAMPORTS_PER_LAMPORT)


def _parse_compute_budget(
    keys: Sequence[Pubkey], instructions: Sequence[tuple[int, bytes]]
) -> _ComputeBudget:
    """Agave's ``process_compute_budget_instructions`` (rejections raise)."""
    limit: int | None = None
    price: int | None = None
    heap: int | None = None
    loaded: int | None = None
    non_cb = 0
    for i, (pidx, data) in enumerate(instructions):
        if keys[pidx] != COMPUTE_BUDGET_PROGRAM_ID:
            non_cb += 1
            continue
        bad = TransactionRejected(
            {"InstructionError": [i, "InvalidInstructionData"]},
            f"Transaction error: instruction {i} has invalid compute budget data",
        )
        dup = TransactionRejected(
            {"DuplicateInstruction": i},
            f"Transaction contains a duplicate instruction ({i}) that is not allowed",
        )
        if not data:
            raise bad
        tag, body = data[0], data[1:]
        if tag == 1 and len(body) == 4:
            if heap is not None:
                raise dup
            (heap,) = struct.unpack("<I", body)
            if heap % 1024 or not 32 * 1024 <= heap <= 256 * 1024:
                raise bad
        elif tag == 2 and len(body) == 4:
            if limit is not None:
                raise dup
            (limit,) = struct.unpack("<I", body)
        elif tag == 3 and len(body) == 8:
            if price is not None:
                raise dup
            (price,) = struct.unpack("<Q", body)
        elif tag == 4 and len(body) == 4:
            if loaded is not None:
                raise dup
            (loaded,) = struct.unpack("<I", body)
        else:
            raise bad
    if limit is None:
        limit = DEFAULT_INSTRUCTION_COMPUTE_UNIT_LIMIT * non_cb
    return _ComputeBudget(min(limit, MAX_COMPUTE_UNIT_LIMIT), price or 0)


def _rent_ok(pre: Account, post: Account) -> bool:
    """Solana's rent-state transition rule for one writable account."""
    if post.lamports == 0 or post.lamports >= rent_exempt_minimum(len(post.data)):
        return True
    pre_paying = 0 < pre.lamports < rent_exempt_minimum(len(pre.data))
    return pre_paying and len(pre.data) == len(post.data) and post.lamports <= pre.lamports


# ---------------------------------------------------------------------------
# The bank
# ---------------------------------------------------------------------------


class Bank:
    """The ledger and its transaction processor (see the module docstring).

    ``variant`` selects the zmart-core model: ``"deployed"`` (default) is the
    program as it runs on devnet, bugs included; ``"patched"`` fixes the
    fund-moving bugs (sell payouts, initial-liquidity deposit) and is **not**
    the deployed behaviour.
    """

    VARIANTS = ("deployed", "patched")

    def __init__(
        self,
        *,
        program_id: Pubkey = PROGRAM_ID,
        variant: str = "deployed",
        lamports_per_signature: int = 5000,
    ) -> None:
        if variant not in self.VARIANTS:
            raise ValueError(f"unknown program variant {variant!r}; use one of {self.VARIANTS}")
        if lamports_per_signature < 0:
            raise ValueError("lamports_per_signature must be >= 0")
        self.program_id = program_id
        self.variant = variant
        self.lamports_per_signature = lamports_per_signature
        self._accounts: dict[Pubkey, Account] = {}
        self._processed: set[Signature] = set()
        self._processors: dict[Pubkey, Processor] = dict(_BUILTINS)
        self._install_builtin_accounts()
        self._install_zmart()

    # -- setup ----------------------------------------------------------------
    def _install_builtin_accounts(self) -> None:
        for key, name in (
            (SYSTEM_PROGRAM_ID, b"system_program"),
            (COMPUTE_BUDGET_PROGRAM_ID, b"compute_budget_program"),
        ):
            self._accounts[key] = Account(1, name, NATIVE_LOADER_ID, executable=True)
        programdata, _ = Pubkey.find_program_address(
            [bytes(self.program_id)], BPF_UPGRADEABLE_LOADER_ID
        )
        # UpgradeableLoaderState::Program { programdata_address }: 36 bytes.
        program_data = struct.pack("<I", 2) + bytes(programdata)
        self._accounts[self.program_id] = Account(
            rent_exempt_minimum(len(program_data)),
            program_data,
            BPF_UPGRADEABLE_LOADER_ID,
            executable=True,
        )

    def _install_zmart(self) -> None:
        self.register_program(self.program_id, ZmartCore(self.program_id))

    def register_program(self, program_id: Pubkey, processor: Processor) -> None:
        """Attach a processor; creates the executable program account if missing."""
        self._processors[program_id] = processor
        if program_id not in self._accounts:
            self._accounts[program_id] = Account(1, b"", BPF_UPGRADEABLE_LOADER_ID, executable=True)

    # -- ledger access ----------------------------------------------------------
    def get_account(self, key: Pubkey) -> Account | None:
        acct = self._accounts.get(key)
        return None if acct is None else acct.copy()

    def set_account(self, key: Pubkey, account: Account | None) -> None:
        if account is None or account.lamports == 0:
            self._accounts.pop(key, None)
        else:
            self._accounts[key] = account.copy()

    def airdrop(self, key: Pubkey, lamports: int) -> None:
        if lamports < 0:
            raise ValueError("airdrop amount must be >= 0")
        acct = self._accounts.get(key)
        if acct is None:
            if lamports:
                self._accounts[key] = Account(lamports, b"", SYSTEM_PROGRAM_ID)
        else:
            acct.lamports += lamports

    def accounts(self) -> Iterator[tuple[Pubkey, Account]]:
        for key, acct in list(self._accounts.items()):
            yield key, acct.copy()

    def total_lamports(self) -> int:
        return sum(a.lamports for a in self._accounts.values())

    def has_processed(self, signature: Signature) -> bool:
        return signature in self._processed

    @staticmethod
    def rent_exempt_minimum(data_len: int) -> int:
        return rent_exempt_minimum(data_len)

    # -- execution ----------------------------------------------------------------
    def execute(
        self,
        tx: VersionedTransaction | Transaction,
        *,
        slot: int,
        unix_timestamp: int,
        commit: bool = True,
        verify_signatures: bool = True,
    ) -> ExecutionResult:
        """Run ``tx``; raise :class:`TransactionRejected` if Solana would not
        even execute it.  With ``commit=False`` (simulation) nothing changes."""
        if isinstance(tx, Transaction):
            tx = VersionedTransaction.from_legacy(tx)
        msg = tx.message
        if not isinstance(msg, Message | MessageV0):
            raise TransactionRejected("UnsupportedVersion", "Transaction version is unsupported")
        keys, signer_set, writable_set, instructions = self._sanitize(tx, msg)
        signature = tx.signatures[0]
        if signature in self._processed:
            raise TransactionRejected(
                "AlreadyProcessed", "This transaction has already been processed"
            )
        if verify_signatures and not all(tx.verify_with_results()):
            raise TransactionRejected(
                "SignatureFailure", "Transaction signature verification failure"
            )
        budget = _parse_compute_budget(keys, instructions)
        fee = self.lamports_per_signature * len(tx.signatures) + budget.priority_fee
        payer_key = keys[0]
        payer = self._accounts.get(payer_key)
        if payer is None:
            raise TransactionRejected(
                "AccountNotFound",
                "Attempt to debit an account but found no record of a prior credit.",
            )
        if payer.owner != SYSTEM_PROGRAM_ID or payer.data:
            raise TransactionRejected(
                "InvalidAccountForFee", "This account may not be used to pay transaction fees"
            )
        if payer.lamports < fee:
            raise TransactionRejected("InsufficientFundsForFee", "Insufficient funds for fee")
        paid = replace(payer, lamports=payer.lamports - fee)
        if not _rent_ok(payer, paid):
            raise TransactionRejected(
                {"InsufficientFundsForRent": {"account_index": 0}},
                "Transaction results in an account (0) with insufficient funds for rent",
            )
        for pidx, _ in instructions:
            prog = self._accounts.get(keys[pidx])
            if prog is None:
                raise TransactionRejected(
                    "ProgramAccountNotFound", "Attempt to load a program that does not exist"
                )
            if not prog.executable:
                raise TransactionRejected(
                    "InvalidProgramForExecution",
                    "Attempt to process a transaction with an invalid program",
                )

        original = {k: (self._accounts.get(k) or _empty_account()).copy() for k in keys}
        after_fee = {k: a.copy() for k, a in original.items()}
        after_fee[payer_key] = paid
        state = _TxState(
            keys=keys,
            accounts={k: a.copy() for k, a in after_fee.items()},
            signers=signer_set,
            writable=writable_set,
            processors=self._processors,
            slot=slot,
            unix_timestamp=unix_timestamp,
            compute_limit=budget.limit,
            variant=self.variant,
        )
        err: str | dict[str, Any] | None = None
        inner: list[dict[str, Any]] = []
        for i, (pidx, data) in enumerate(instructions):
            metas = [
                (keys[a], keys[a] in signer_set, keys[a] in writable_set)
                for a in bytes(msg.instructions[i].accounts)
            ]
            state.inner = []
            try:
                before = {k: state.accounts[k].copy() for k, _, _ in metas}
                _run_program(state, keys[pidx], metas, data, 1)
                self._verify_instruction(state, metas, before)
            except InstructionError as e:
                err = {"InstructionError": [i, e.err]}
            if state.inner:
                inner.append({"index": i, "instructions": state.inner})
            if err is not None:
                break
        if err is None:
            for idx, k in enumerate(keys):
                if k in writable_set and not _rent_ok(after_fee[k], state.accounts[k]):
                    err = {"InsufficientFundsForRent": {"account_index": idx}}
                    break
        final = after_fee if err is not None else state.accounts
        changed = [
            k
            for k in keys
            if (original[k].lamports, original[k].data, original[k].owner)
            != (final[k].lamports, final[k].data, final[k].owner)
        ]
        result = ExecutionResult(
            signature=signature,
            err=err,
            logs=list(state.logs),
            fee=fee,
            account_keys=list(keys),
            pre_balances=[original[k].lamports for k in keys],
            post_balances=[final[k].lamports for k in keys],
            inner_instructions=inner,
            compute_units_consumed=state.consumed,
            changed_accounts=changed,
            unix_timestamp=unix_timestamp,
            slot=slot,
        )
        if commit:
            for k in changed:
                self.set_account(k, final[k])
            self._processed.add(signature)
        return result

    def _sanitize(
        self, tx: VersionedTransaction, msg: Message | MessageV0
    ) -> tuple[list[Pubkey], set[Pubkey], set[Pubkey], list[tuple[int, bytes]]]:
        def reject(why: str) -> TransactionRejected:
            return TransactionRejected("SanitizeFailure", f"invalid transaction: {why}")

        try:
            tx.sanitize()
        except Exception as e:  # solders raises its own SanitizeError types
            raise reject(str(e)) from None
        if isinstance(msg, MessageV0) and msg.address_table_lookups:
            raise TransactionRejected(
                "AddressLookupTableNotFound",
                "Transaction loads an address table account that doesn't exist",
            )
        keys = list(msg.account_keys)
        header = msg.header
        n_req = header.num_required_signatures
        if n_req == 0 or len(tx.signatures) != n_req:
            raise reject("signature count does not match the message header")
        if len(set(keys)) != len(keys):
            raise TransactionRejected("AccountLoadedTwice", "Account loaded twice")
        if len(keys) > MAX_TX_ACCOUNT_LOCKS:
            raise TransactionRejected("TooManyAccountLocks", "Transaction locked too many accounts")
        instructions: list[tuple[int, bytes]] = []
        called: set[Pubkey] = set()
        for ix in msg.instructions:
            pidx = ix.program_id_index
            if pidx == 0 or pidx >= len(keys) or any(a >= len(keys) for a in bytes(ix.accounts)):
                raise reject("instruction index out of bounds")
            instructions.append((pidx, bytes(ix.data)))
            called.add(keys[pidx])
        n = len(keys)
        ro_signed = header.num_readonly_signed_accounts
        ro_unsigned = header.num_readonly_unsigned_accounts
        upgradeable_present = BPF_UPGRADEABLE_LOADER_ID in keys
        signers = set(keys[:n_req])
        writable: set[Pubkey] = set()
        for i, k in enumerate(keys):
            w = i < n_req - ro_signed or n_req <= i < n - ro_unsigned
            if k in _RESERVED_KEYS or (k in called and not upgradeable_present):
                w = False
            if w:
                writable.add(k)
        if keys[0] not in writable:
            raise reject("fee payer must be a writable signer")
        return keys, signers, writable, instructions

    @staticmethod
    def _verify_instruction(
        state: _TxState, metas: Sequence[tuple[Pubkey, bool, bool]], before: dict[Pubkey, Account]
    ) -> None:
        """The runtime's post-instruction checks that guard the model itself:
        read-only accounts untouched, lamports neither created nor destroyed."""
        for k, acct in before.items():
            now = state.accounts[k]
            if k not in state.writable:
                if now.lamports != acct.lamports:
                    raise InstructionError("ReadonlyLamportChange")
                if now.data != acct.data or now.owner != acct.owner:
                    raise InstructionError("ReadonlyDataModified")
        if sum(a.lamports for a in before.values()) != sum(
            state.accounts[k].lamports for k in before
        ):
            raise InstructionError("UnbalancedInstruction")

    # -- persistence ----------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The whole ledger (accounts, processed signatures, settings) as JSON bytes."""
        doc = {
            "format": "zmartd-devchain-bank/1",
            "program_id": str(self.program_id),
            "variant": self.variant,
            "lamports_per_signature": self.lamports_per_signature,
            "processed": sorted(str(s) for s in self._processed),
            "accounts": {
                str(k): {
                    "lamports": a.lamports,
                    "data": base64.b64encode(a.data).decode("ascii"),
                    "owner": str(a.owner),
                    "executable": a.executable,
                    "rent_epoch": a.rent_epoch,
                }
                for k, a in sorted(self._accounts.items(), key=lambda kv: str(kv[0]))
            },
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Bank:
        try:
            doc = json.loads(raw)
            if doc.get("format") != "zmartd-devchain-bank/1":
                raise ValueError(f"unknown ledger format {doc.get('format')!r}")
            bank = cls(
                program_id=Pubkey.from_string(doc["program_id"]),
                variant=doc["variant"],
                lamports_per_signature=int(doc["lamports_per_signature"]),
            )
            bank._accounts = {
                Pubkey.from_string(k): Account(
                    lamports=int(v["lamports"]),
                    data=base64.b64decode(v["data"], validate=True),
                    owner=Pubkey.from_string(v["owner"]),
                    executable=bool(v["executable"]),
                    rent_epoch=int(v["rent_epoch"]),
                )
                for k, v in doc["accounts"].items()
            }
            bank._processed = {Signature.from_string(s) for s in doc["processed"]}
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a devchain ledger: {e}") from e
        return bank
