"""Solana's JSON wire shapes for the devchain: accounts, transactions with
meta, error texts.  Shared by the JSON-RPC server, the PubSub server and the
webhook emitter, so that ``getTransaction``, ``logsNotification`` and a
Helius raw webhook describe one transaction identically.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from solders.message import MessageV0
from solders.pubkey import Pubkey

from zmartd.chain.borsh import b58encode
from zmartd.devchain.bank import Account, instruction_error_text
from zmartd.devchain.node import TxRecord

__all__ = [
    "API_VERSION",
    "MAX_BASE58_BYTES",
    "AccountEncoding",
    "WireError",
    "account_json",
    "deleted_account",
    "transaction_error_text",
    "transaction_json",
]

#: What ``context.apiVersion`` and ``getVersion`` report: the RPC surface mimicked.
API_VERSION = "2.2.0"
#: Solana refuses base58 for account data longer than this (use base64).
MAX_BASE58_BYTES = 128

AccountEncoding = Literal["binary", "base58", "base64", "jsonParsed"]
ACCOUNT_ENCODINGS: tuple[str, ...] = ("binary", "base58", "base64", "jsonParsed")
_SYSTEM_PROGRAM = Pubkey.from_string("11111111111111111111111111111111")


class WireError(ValueError):
    """A request the wire format cannot satisfy; ``code`` is the JSON-RPC code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def deleted_account() -> Account:
    """What Solana shows for an account that no longer exists (notifications)."""
    return Account(lamports=0, data=b"", owner=_SYSTEM_PROGRAM)


def account_json(
    account: Account,
    encoding: str = "base64",
    data_slice: tuple[int, int] | None = None,
    *,
    base58_limit: bool = True,
) -> dict[str, Any]:
    """``UiAccount``: ``data`` as ``[text, encoding]`` (a bare base58 string for
    the legacy ``binary`` default).  ``jsonParsed`` falls back to base64 as
    Solana does for accounts it has no parser for (all of ours).  Like Agave,
    ``getAccountInfo``/``getMultipleAccounts`` refuse base58 over 128 bytes
    (``base58_limit``) while ``getProgramAccounts`` and notifications encode
    any size."""
    data = bytes(account.data)
    if data_slice is not None:
        offset, length = data_slice
        data = data[offset : offset + length]
    encoded: str | list[str]
    if encoding in ("base64", "jsonParsed"):
        encoded = [base64.b64encode(data).decode("ascii"), "base64"]
    elif encoding in ("base58", "binary"):
        if base58_limit and len(data) > MAX_BASE58_BYTES:
            raise WireError(
                -32600,
                f"Encoded binary (base 58) data should be less than {MAX_BASE58_BYTES} bytes, "
                "please use Base64 encoding.",
            )
        text = b58encode(data)
        encoded = text if encoding == "binary" else [text, "base58"]
    else:
        raise WireError(-32602, f"Invalid params: unsupported encoding: {encoding}")
    return {
        "data": encoded,
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(account.owner),
        "rentEpoch": account.rent_epoch,
        "space": len(account.data),
    }


_ERROR_TEXT: dict[str, str] = {
    "AccountInUse": "Account in use",
    "AccountLoadedTwice": "Account loaded twice",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "ProgramAccountNotFound": "Attempt to load a program that does not exist",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "InvalidAccountForFee": "This account may not be used to pay transaction fees",
    "AlreadyProcessed": "This transaction has already been processed",
    "BlockhashNotFound": "Blockhash not found",
    "InvalidProgramForExecution": "Attempt to process a transaction with an invalid program",
    "SanitizeFailure": "Transaction failed to sanitize accounts offsets correctly",
    "SignatureFailure": "Transaction did not pass signature verification",
    "TooManyAccountLocks": "Transaction locked too many accounts",
    "AddressLookupTableNotFound": ("Transaction loads an address table account that doesn't exist"),
    "UnsupportedVersion": "Transaction version is unsupported",
}


def transaction_error_text(err: str | dict[str, Any]) -> str:
    """Solana's Display text of a ``TransactionError`` (used after
    "Transaction simulation failed: ")."""
    if isinstance(err, str):
        return _ERROR_TEXT.get(err, err)
    if "InstructionError" in err:
        index, detail = err["InstructionError"]
        return f"Error processing Instruction {index}: {instruction_error_text(detail)}"
    if "InsufficientFundsForRent" in err:
        index = err["InsufficientFundsForRent"].get("account_index")
        return f"Transaction results in an account ({index}) with insufficient funds for rent"
    if "DuplicateInstruction" in err:
        return (
            f"Transaction contains a duplicate instruction ({err['DuplicateInstruction']}) "
            "that is not allowed"
        )
    return str(err)


def _message_json(record: TxRecord) -> dict[str, Any]:
    message = record.tx.message
    header = message.header
    out: dict[str, Any] = {
        "accountKeys": [str(k) for k in message.account_keys],
        "header": {
            "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
            "numRequiredSignatures": header.num_required_signatures,
        },
        "instructions": [
            {
                "accounts": list(bytes(ix.accounts)),
                "data": b58encode(bytes(ix.data)),
                "programIdIndex": ix.program_id_index,
                "stackHeight": None,
            }
            for ix in message.instructions
        ],
        "recentBlockhash": str(message.recent_blockhash),
    }
    if isinstance(message, MessageV0):
        out["addressTableLookups"] = [
            {
                "accountKey": str(lookup.account_key),
                "writableIndexes": list(bytes(lookup.writable_indexes)),
                "readonlyIndexes": list(bytes(lookup.readonly_indexes)),
            }
            for lookup in message.address_table_lookups
        ]
    return out


def version_of(record: TxRecord) -> int | str:
    return 0 if isinstance(record.tx.message, MessageV0) else "legacy"


def meta_json(record: TxRecord) -> dict[str, Any]:
    err = record.err
    return {
        "computeUnitsConsumed": record.compute_units_consumed,
        "err": err,
        "fee": record.fee,
        "innerInstructions": record.inner_instructions,
        "loadedAddresses": {"readonly": [], "writable": []},
        "logMessages": record.logs,
        "postBalances": record.post_balances,
        "postTokenBalances": [],
        "preBalances": record.pre_balances,
        "preTokenBalances": [],
        "rewards": [],
        "status": {"Ok": None} if err is None else {"Err": err},
    }


def transaction_json(
    record: TxRecord,
    *,
    encoding: str = "json",
    include_version: bool = True,
) -> dict[str, Any]:
    """The ``getTransaction`` result object for ``record`` (``json``,
    ``base64`` or ``base58`` transaction encoding)."""
    transaction: Any
    if encoding == "json":
        transaction = {
            "message": _message_json(record),
            "signatures": [str(s) for s in record.tx.signatures],
        }
    elif encoding == "base64":
        transaction = [base64.b64encode(record.raw).decode("ascii"), "base64"]
    elif encoding == "base58":
        transaction = [b58encode(record.raw), "base58"]
    else:
        raise WireError(-32602, f"Invalid params: unsupported encoding: {encoding}")
    out: dict[str, Any] = {
        "blockTime": record.block_time,
        "meta": meta_json(record),
        "slot": record.slot,
        "transaction": transaction,
    }
    if include_version:
        out["version"] = version_of(record)
    return out
