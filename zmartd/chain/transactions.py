"""Decode a whole transaction into zmart-core instructions and events.

Input: one ``getTransaction`` result in ``json`` encoding (``jsonParsed``
account keys are understood too), or one element of a Helius *raw* webhook
body, which has the same shape plus ``indexWithinBlock`` (docs/chain.md §14.3).
Output: a :class:`DecodedTransaction` — the single typed value the indexer
consumes.

Decisions worth knowing:

* The full account-key space of a v0 transaction is the static keys, then
  ``meta.loadedAddresses.writable``, then ``.readonly``; instruction account
  indices refer to that space.
* Events of a *failed* transaction are not reported (all its state was
  rolled back, docs/chain.md §5); its zmart instructions still are, together
  with the failing instruction index and the mapped program error, which is
  what error analytics need.
* A zmart-core instruction or event line that does not decode does not make
  the whole transaction undecodable: it is recorded in
  :attr:`DecodedTransaction.problems` (and the rest is still decoded), so the
  indexer can quarantine the transaction instead of crashing or silently
  skipping it.  A malformed *envelope* (missing keys, wrong types) raises
  :class:`TransactionFormatError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from solders.pubkey import Pubkey
from solders.signature import Signature

from zmartd.chain import errors
from zmartd.chain.borsh import DecodeError, b58decode
from zmartd.chain.events import parse_logs
from zmartd.chain.instructions import DecodedInstruction, decode_instruction
from zmartd.chain.pda import PROGRAM_ID
from zmartd.chain.types import Event

__all__ = [
    "Balance",
    "DecodedTransaction",
    "TransactionFormatError",
    "TxEvent",
    "TxInstruction",
    "TxProblem",
    "decode_helius_raw_webhook",
    "decode_transaction",
]


class TransactionFormatError(ValueError):
    """The input is not a ``getTransaction``/raw-webhook transaction object."""


class Balance(NamedTuple):
    """Lamports of one account before and after the transaction (a tuple:
    every account of every indexed transaction gets one)."""

    pre: int
    post: int

    @property
    def delta(self) -> int:
        return self.post - self.pre


class Balances(Mapping[Pubkey, Balance]):
    """``account -> Balance`` over the transaction's ``preBalances`` /
    ``postBalances``, built on access: the indexer reads one entry of a
    transaction (the fee wallet's), and building all of them for every
    transaction of a backfill cost ~5 % of its CPU."""

    __slots__ = ("_keys", "_post", "_pre")

    def __init__(self, keys: Sequence[Pubkey], pre: Sequence[Any], post: Sequence[Any]) -> None:
        n = min(len(keys), len(pre), len(post))
        self._keys, self._pre, self._post = keys[:n], pre, post

    def __getitem__(self, key: Pubkey) -> Balance:
        try:
            i = self._keys.index(key)
        except ValueError:
            raise KeyError(key) from None
        return Balance(int(self._pre[i]), int(self._post[i]))

    def __iter__(self) -> Iterator[Pubkey]:
        return iter(dict.fromkeys(self._keys))

    def __len__(self) -> int:
        return len(dict.fromkeys(self._keys))

    def __repr__(self) -> str:
        return f"Balances({dict(self)!r})"


@dataclass(frozen=True, slots=True)
class TxInstruction:
    """A decoded zmart-core instruction and where it sits in the transaction."""

    #: Index of the top-level instruction (for inner ones: of its parent).
    instruction_index: int
    #: Position in ``meta.innerInstructions[...].instructions``; ``None`` for top-level.
    inner_index: int | None
    decoded: DecodedInstruction


@dataclass(frozen=True, slots=True)
class TxEvent:
    """A zmart-core event of a successful transaction."""

    #: Top-level instruction that emitted it (``None`` only if it cannot be attributed).
    instruction_index: int | None
    #: Position among this transaction's zmart-core events.
    event_index: int
    #: Index of its ``Program data:`` line in ``meta.logMessages``.
    log_index: int
    event: Event


@dataclass(frozen=True, slots=True)
class TxProblem:
    """Something zmart-related in the transaction that could not be decoded."""

    #: e.g. ``"instruction 1"``, ``"instruction 0 inner 2"``, ``"log line 7"``.
    where: str
    message: str


@dataclass(frozen=True, slots=True)
class DecodedTransaction:
    signature: Signature
    slot: int
    block_time: int | None
    #: Helius raw webhooks only; ``None`` from ``getTransaction``.
    index_within_block: int | None
    #: ``meta.err`` exactly as received (``None`` on success).
    err: Any
    #: Top-level instruction index named by an ``InstructionError``.
    failed_instruction_index: int | None
    #: ``Custom`` code of a failing zmart-core instruction mapped through
    #: :mod:`zmartd.chain.errors` (unknown codes keep their number as ``Custom``).
    program_error: errors.ProgramError | None
    fee: int
    compute_units_consumed: int | None
    account_keys: tuple[Pubkey, ...]
    balances: Mapping[Pubkey, Balance]
    instructions: tuple[TxInstruction, ...]
    events: tuple[TxEvent, ...]
    logs_truncated: bool
    problems: tuple[TxProblem, ...]

    @property
    def succeeded(self) -> bool:
        return self.err is None


def _pubkey(text: Any, what: str) -> Pubkey:
    if isinstance(text, Mapping):  # jsonParsed account key object
        text = text.get("pubkey")
    if not isinstance(text, str):
        raise TransactionFormatError(f"{what}: expected a base58 pubkey, got {text!r}")
    try:
        return Pubkey.from_string(text)
    except ValueError as e:
        raise TransactionFormatError(f"{what}: invalid pubkey {text!r}: {e}") from None


def _account_keys(message: Mapping[str, Any], meta: Mapping[str, Any]) -> tuple[Pubkey, ...]:
    raw = message.get("accountKeys")
    if not isinstance(raw, list):
        raise TransactionFormatError("transaction.message.accountKeys missing")
    keys = [_pubkey(k, f"accountKeys[{i}]") for i, k in enumerate(raw)]
    # jsonParsed lists the looked-up keys in accountKeys already (with a "source").
    if not (raw and isinstance(raw[0], Mapping)):
        loaded = meta.get("loadedAddresses") or {}
        for part in ("writable", "readonly"):
            for i, k in enumerate(loaded.get(part) or []):
                keys.append(_pubkey(k, f"loadedAddresses.{part}[{i}]"))
    return tuple(keys)


def _resolve(
    ix: Mapping[str, Any], keys: Sequence[Pubkey], where: str
) -> tuple[Pubkey, list[Pubkey], str]:
    """(program id, account keys, base58 data) of one compiled or parsed instruction."""
    try:
        if "programIdIndex" in ix:
            program = keys[ix["programIdIndex"]]
            accounts = [keys[i] for i in ix["accounts"]]
        else:
            program = _pubkey(ix["programId"], f"{where}.programId")
            accounts = [_pubkey(a, f"{where}.accounts") for a in ix.get("accounts", [])]
        data = ix.get("data", "")
    except (KeyError, IndexError, TypeError) as e:
        raise TransactionFormatError(f"{where}: malformed instruction ({e!r})") from None
    if not isinstance(data, str):
        raise TransactionFormatError(f"{where}: data must be a base58 string")
    return program, accounts, data


def _decode_ix(
    accounts: list[Pubkey], data: str, where: str, problems: list[TxProblem]
) -> DecodedInstruction | None:
    try:
        return decode_instruction(b58decode(data), accounts)
    except (DecodeError, ValueError) as e:
        problems.append(TxProblem(where, str(e)))
        return None


def _inner_key(inner_index: int | None) -> int:
    return -1 if inner_index is None else inner_index


def _error_index(err: Any) -> tuple[int | None, int | None]:
    """(instruction index, Custom code) of ``{"InstructionError": [i, {"Custom": n}]}``."""
    if not isinstance(err, Mapping):
        return None, None
    ie = err.get("InstructionError")
    if not (isinstance(ie, list) and len(ie) == 2 and isinstance(ie[0], int)):
        return None, None
    detail = ie[1]
    code = detail.get("Custom") if isinstance(detail, Mapping) else None
    return ie[0], code if isinstance(code, int) else None


def decode_transaction(
    tx: Mapping[str, Any], *, program_id: Pubkey = PROGRAM_ID
) -> DecodedTransaction:
    """Decode one transaction object (see the module docstring for shapes).

    A JSON-RPC envelope ``{"jsonrpc": ..., "result": {...}}`` is unwrapped.
    """
    if "transaction" not in tx and isinstance(tx.get("result"), Mapping):
        tx = tx["result"]
    try:
        transaction = tx["transaction"]
        meta = tx["meta"]
        message = transaction["message"]
        signature_text = transaction["signatures"][0]
    except (KeyError, IndexError, TypeError) as e:
        raise TransactionFormatError(f"not a json-encoded transaction: missing {e}") from None
    if not isinstance(meta, Mapping) or not isinstance(message, Mapping):
        raise TransactionFormatError("meta and transaction.message must be objects")
    try:
        signature = Signature.from_string(signature_text)
    except (ValueError, TypeError) as e:
        raise TransactionFormatError(f"invalid signature {signature_text!r}: {e}") from None

    keys = _account_keys(message, meta)
    problems: list[TxProblem] = []
    top_level = message.get("instructions") or []
    top_programs: list[Pubkey] = []
    decoded: list[TxInstruction] = []
    for i, ix in enumerate(top_level):
        program, accounts, data = _resolve(ix, keys, f"instruction {i}")
        top_programs.append(program)
        if program == program_id:
            d = _decode_ix(accounts, data, f"instruction {i}", problems)
            if d is not None:
                decoded.append(TxInstruction(i, None, d))
    for group in meta.get("innerInstructions") or []:
        parent = group.get("index")
        if not isinstance(parent, int):
            raise TransactionFormatError("innerInstructions[].index must be an int")
        for j, ix in enumerate(group.get("instructions") or []):
            where = f"instruction {parent} inner {j}"
            program, accounts, data = _resolve(ix, keys, where)
            if program == program_id:
                d = _decode_ix(accounts, data, where, problems)
                if d is not None:
                    decoded.append(TxInstruction(parent, j, d))
    decoded.sort(
        key=lambda t: (t.instruction_index, -1 if t.inner_index is None else t.inner_index)
    )

    err = meta.get("err")
    logs = meta.get("logMessages") or []
    parsed = parse_logs(logs, program_id, instruction_program_ids=top_programs, strict=False)
    for p in parsed.problems:
        problems.append(TxProblem(f"log line {p.log_index}", str(p.error)))
    events: tuple[TxEvent, ...] = ()
    if err is None:
        events = tuple(
            TxEvent(e.instruction_index, e.event_index, e.log_index, e.event) for e in parsed.events
        )

    failed_index, custom = _error_index(err)
    program_error = None
    if (
        custom is not None
        and failed_index is not None
        and failed_index < len(top_programs)
        and top_programs[failed_index] == program_id
    ):
        program_error = errors.lookup(custom) or errors.ProgramError(
            custom, "Custom", f"custom program error {custom}", "unknown"
        )

    pre = meta.get("preBalances") or []
    post = meta.get("postBalances") or []
    balances = Balances(keys, pre, post)

    block_time = tx.get("blockTime")
    index_within_block = tx.get("indexWithinBlock")
    cu = meta.get("computeUnitsConsumed")
    return DecodedTransaction(
        signature=signature,
        slot=int(tx.get("slot", 0)),
        block_time=int(block_time) if block_time is not None else None,
        index_within_block=int(index_within_block) if index_within_block is not None else None,
        err=err,
        failed_instruction_index=failed_index,
        program_error=program_error,
        fee=int(meta.get("fee", 0)),
        compute_units_consumed=int(cu) if cu is not None else None,
        account_keys=keys,
        balances=balances,
        instructions=tuple(decoded),
        events=events,
        logs_truncated=parsed.truncated,
        problems=tuple(problems),
    )


def decode_helius_raw_webhook(
    body: Sequence[Mapping[str, Any]] | Mapping[str, Any], *, program_id: Pubkey = PROGRAM_ID
) -> list[DecodedTransaction]:
    """Decode a Helius raw webhook body (a JSON array of transactions; a single
    object is accepted too)."""
    items = [body] if isinstance(body, Mapping) else list(body)
    return [decode_transaction(item, program_id=program_id) for item in items]
