"""The devchain's Solana JSON-RPC endpoint (HTTP, batch requests included).

:class:`JsonRpc` answers requests against a :class:`~zmartd.devchain.node.Node`
with Solana's wire formats and error objects; :func:`serve_http` serves it
through a minimal ASGI app on hypercorn (trio).  The dispatcher is
synchronous: the node never awaits, so every request sees one consistent
state, and a batch is answered in order.

Deliberate differences from a real node, all documented in the method
docstrings: preflight and ``simulateTransaction`` run against the current
(processed) state whatever the commitment asked; there are no skipped
slots; ``jsonParsed`` account data falls back to base64 (as Solana does for
programs it cannot parse), and transactions are served in ``json``,
``base64`` or ``base58`` only.

Test controls are extra methods prefixed ``zmart_`` (see :data:`CONTROL_METHODS`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from solders.hash import Hash
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from zmartd.chain.borsh import DecodeError, b58decode
from zmartd.devchain.bank import Account, Bank
from zmartd.devchain.faults import Faults
from zmartd.devchain.node import COMMITMENTS, Commitment, Node, Rejected
from zmartd.devchain.rpc_wire import (
    ACCOUNT_ENCODINGS,
    API_VERSION,
    WireError,
    account_json,
    transaction_error_text,
    transaction_json,
)

__all__ = [
    "CONTROL_METHODS",
    "MAX_BODY_BYTES",
    "PACKET_DATA_SIZE",
    "JsonRpc",
    "RpcFault",
    "asgi_app",
    "parse_filters",
    "serve_http",
]

#: Largest serialized transaction Solana accepts.
PACKET_DATA_SIZE = 1232
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_MULTIPLE_ACCOUNTS = 100
MAX_SIGNATURE_STATUSES = 256
MAX_SIGNATURES_LIMIT = 1000
MAX_PROGRAM_ACCOUNT_FILTERS = 4
MAX_MEMCMP_BYTES = 128
SLOTS_PER_EPOCH = 432_000
FEATURE_SET = 3_294_202_862

CONTROL_METHODS = (
    "zmart_warpClock",
    "zmart_setClock",
    "zmart_airdrop",
    "zmart_setAccount",
    "zmart_pause",
    "zmart_resume",
    "zmart_advanceSlots",
    "zmart_status",
    "zmart_dropConnections",
    "zmart_snapshot",
    "zmart_dropSends",
    "zmart_timeoutSends",
    "zmart_httpErrors",
    "zmart_delayLanding",
    "zmart_blockhashExpiry",
    "zmart_faults",
    "zmart_clearFaults",
)

_log = logging.getLogger("zmartd.devchain.rpc")
_encoder = msgspec.json.Encoder()


class RpcFault(Exception):
    """A JSON-RPC error answer (``code``, ``message``, optional ``data``)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


def _invalid(message: str) -> RpcFault:
    return RpcFault(
        -32602, f"Invalid params: {message}" if not message.startswith("Invalid") else message
    )


# --------------------------------------------------------------------------- params


def _param(params: Sequence[Any], index: int, what: str) -> Any:
    if index >= len(params):
        raise RpcFault(-32602, f"Invalid params: missing {what}")
    return params[index]


def _config(params: Sequence[Any], index: int) -> dict[str, Any]:
    if index >= len(params) or params[index] is None:
        return {}
    cfg = params[index]
    if not isinstance(cfg, dict):
        raise _invalid(f"expected a configuration object, got {cfg!r}")
    return cfg


def _pubkey(value: Any, what: str = "pubkey") -> Pubkey:
    if not isinstance(value, str):
        raise _invalid(f"{what} must be a base58 string")
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise _invalid(f"Invalid param: {what} {value!r} is not a valid pubkey") from None


def _signature(value: Any) -> Signature:
    if not isinstance(value, str):
        raise _invalid("signature must be a base58 string")
    try:
        return Signature.from_string(value)
    except ValueError:
        raise RpcFault(-32602, f"Invalid param: Invalid signature {value!r}") from None


def _int(value: Any, what: str, *, lo: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise _invalid(f"{what} must be an integer >= {lo}, got {value!r}")
    return value


def _bool(cfg: dict[str, Any], key: str, default: bool = False) -> bool:
    value = cfg.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(f"{key} must be true or false")
    return value


# --------------------------------------------------------------------------- dispatcher


class JsonRpc:
    """Solana JSON-RPC over a :class:`Node`.

    ``hooks`` adds or overrides methods (the server registers
    ``zmart_dropConnections`` and ``zmart_snapshot`` there, which need the
    PubSub server and the state file).
    """

    def __init__(
        self,
        node: Node,
        *,
        hooks: dict[str, Callable[[list[Any]], Any]] | None = None,
    ) -> None:
        self.node = node
        self.requests = 0
        self.faults = Faults(node)
        self._methods: dict[str, Callable[[list[Any]], Any]] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")
        }
        self._methods.update(hooks or {})

    @property
    def methods(self) -> list[str]:
        return sorted(self._methods)

    def add_method(self, name: str, fn: Callable[[list[Any]], Any]) -> None:
        self._methods[name] = fn

    # ------------------------------------------------------------------ transport

    def handle(self, body: bytes) -> bytes:
        """One HTTP body in, one out (a batch answers with an array)."""
        try:
            doc = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return _encoder.encode(_error_response(None, RpcFault(-32700, "Parse error")))
        if isinstance(doc, list):
            if not doc:
                return _encoder.encode(_error_response(None, RpcFault(-32600, "Invalid request")))
            return _encoder.encode([self.call(item) for item in doc])
        return _encoder.encode(self.call(doc))

    def call(self, request: Any) -> dict[str, Any]:
        """Answer one request object (a dict with jsonrpc/id/method/params)."""
        self.requests += 1
        if not isinstance(request, dict):
            return _error_response(None, RpcFault(-32600, "Invalid request"))
        req_id = request.get("id")
        method = request.get("method")
        params = request.get("params", [])
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return _error_response(req_id, RpcFault(-32600, "Invalid request"))
        if params is None:
            params = []
        if not isinstance(params, list):
            return _error_response(req_id, RpcFault(-32602, "Invalid params: expected an array"))
        fn = self._methods.get(method)
        if fn is None:
            return _error_response(req_id, RpcFault(-32601, "Method not found"))
        try:
            result = fn(params)
        except RpcFault as fault:
            return _error_response(req_id, fault)
        except WireError as exc:
            return _error_response(req_id, RpcFault(exc.code, exc.message))
        except Exception as exc:  # a bug must answer, not kill the connection
            _log.exception("devchain RPC %s failed", method)
            return _error_response(req_id, RpcFault(-32603, f"Internal error: {exc}"))
        return {"jsonrpc": "2.0", "result": result, "id": req_id}

    # ------------------------------------------------------------------ helpers

    def _context(self, slot: int) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "slot": slot}

    def _level(self, cfg: dict[str, Any], *, minimum: Commitment | None = None) -> Commitment:
        level = cfg.get("commitment") or cfg.get("preflightCommitment") or "finalized"
        # Deprecated aliases still sent by old clients.
        level = {
            "recent": "processed",
            "single": "confirmed",
            "singleGossip": "confirmed",
            "root": "finalized",
            "max": "finalized",
        }.get(level, level)
        if level not in COMMITMENTS:
            raise _invalid(f"unknown commitment {level!r}")
        if minimum == "confirmed" and level == "processed":
            raise RpcFault(-32602, "Method does not support commitment below `confirmed`")
        return level

    def _slot(self, cfg: dict[str, Any], *, minimum: Commitment | None = None) -> int:
        slot = self.node.commitment_slot(self._level(cfg, minimum=minimum))
        wanted = cfg.get("minContextSlot")
        if wanted is not None and _int(wanted, "minContextSlot") > slot:
            raise RpcFault(
                -32016, "Minimum context slot has not been reached", {"contextSlot": slot}
            )
        return slot

    @staticmethod
    def _encoding(cfg: dict[str, Any], default: str = "binary") -> str:
        encoding = cfg.get("encoding") or default
        if encoding not in ACCOUNT_ENCODINGS:
            raise RpcFault(-32602, f"Invalid params: unsupported encoding: {encoding}")
        return str(encoding)

    @staticmethod
    def _data_slice(cfg: dict[str, Any]) -> tuple[int, int] | None:
        ds = cfg.get("dataSlice")
        if ds is None:
            return None
        if not isinstance(ds, dict):
            raise _invalid("dataSlice must be {offset, length}")
        offset = _int(ds.get("offset"), "dataSlice.offset")
        return offset, _int(ds.get("length"), "dataSlice.length")

    def _decode_tx(self, raw: Any, cfg: dict[str, Any]) -> VersionedTransaction:
        encoding = cfg.get("encoding") or "base58"
        if not isinstance(raw, str):
            raise _invalid("transaction must be an encoded string")
        limit = {"base58": 1683, "base64": 1644}.get(encoding)
        if limit is None:
            raise RpcFault(
                -32602,
                f"Invalid params: unsupported encoding: {encoding}. "
                "Supported encodings: base58, base64",
            )
        if len(raw) > limit:
            raise RpcFault(
                -32602,
                f"{encoding} encoded solana_sdk::transaction::versioned::VersionedTransaction too "
                f"large: {len(raw)} bytes (max: encoded/raw {limit}/{PACKET_DATA_SIZE})",
            )
        try:
            data = base64.b64decode(raw, validate=True) if encoding == "base64" else b58decode(raw)
        except (binascii.Error, DecodeError, ValueError) as exc:
            raise RpcFault(-32602, f"invalid {encoding} encoding: {exc}") from None
        if len(data) > PACKET_DATA_SIZE:
            raise RpcFault(
                -32602,
                f"decoded solana_sdk::transaction::versioned::"
                f"VersionedTransaction too large: {len(data)} bytes "
                f"(max: {PACKET_DATA_SIZE} bytes)",
            )
        try:
            return VersionedTransaction.from_bytes(data)
        except Exception as exc:  # solders raises its own error types
            raise RpcFault(
                -32602,
                "failed to deserialize solana_sdk::transaction::versioned::"
                f"VersionedTransaction: {exc}",
            ) from None

    def _account_value(
        self, account: Account | None, encoding: str, data_slice: tuple[int, int] | None
    ) -> Any:
        return None if account is None else account_json(account, encoding, data_slice)

    # ------------------------------------------------------------------ cluster

    def rpc_getHealth(self, params: list[Any]) -> str:
        return "ok"

    def rpc_getVersion(self, params: list[Any]) -> dict[str, Any]:
        return {"solana-core": API_VERSION, "feature-set": FEATURE_SET}

    def rpc_getGenesisHash(self, params: list[Any]) -> str:
        return str(self.node.genesis_hash)

    def rpc_getIdentity(self, params: list[Any]) -> dict[str, str]:
        return {"identity": str(self.node.identity.pubkey())}

    def rpc_getSlot(self, params: list[Any]) -> int:
        return self._slot(_config(params, 0))

    def rpc_getBlockHeight(self, params: list[Any]) -> int:
        return self.node.block_height_at(self._slot(_config(params, 0)))

    def rpc_getTransactionCount(self, params: list[Any]) -> int:
        return self.node.transaction_count

    def rpc_getFirstAvailableBlock(self, params: list[Any]) -> int:
        return 0

    def rpc_getEpochInfo(self, params: list[Any]) -> dict[str, Any]:
        slot = self._slot(_config(params, 0))
        return {
            "absoluteSlot": slot,
            "blockHeight": self.node.block_height_at(slot),
            "epoch": slot // SLOTS_PER_EPOCH,
            "slotIndex": slot % SLOTS_PER_EPOCH,
            "slotsInEpoch": SLOTS_PER_EPOCH,
            "transactionCount": self.node.transaction_count,
        }

    def rpc_getBlockTime(self, params: list[Any]) -> int:
        slot = _int(_param(params, 0, "slot"), "slot")
        when = self.node.block_time(slot)
        if when is None:
            raise RpcFault(-32004, f"Block not available for slot {slot}")
        return when

    def rpc_getLatestBlockhash(self, params: list[Any]) -> dict[str, Any]:
        cfg = _config(params, 0)
        slot = self._slot(cfg)
        blockhash, last_valid = self.node.blockhash_at(self._level(cfg))
        return {
            "context": self._context(slot),
            "value": {"blockhash": str(blockhash), "lastValidBlockHeight": last_valid},
        }

    def rpc_isBlockhashValid(self, params: list[Any]) -> dict[str, Any]:
        text = _param(params, 0, "blockhash")
        slot = self._slot(_config(params, 1))
        try:
            blockhash = Hash.from_string(text)
        except (ValueError, TypeError):
            raise RpcFault(-32602, f"Invalid param: {text!r} is not a valid blockhash") from None
        return {"context": self._context(slot), "value": self.node.is_blockhash_valid(blockhash)}

    def rpc_getFeeForMessage(self, params: list[Any]) -> dict[str, Any]:
        raw = _param(params, 0, "message")
        slot = self._slot(_config(params, 1))
        try:
            data = base64.b64decode(raw, validate=True)
            message: Message | MessageV0 = (
                MessageV0.from_bytes(data[1:])
                if data and data[0] & 0x80
                else Message.from_bytes(data)
            )
        except Exception as exc:  # binascii / solders errors
            raise RpcFault(-32602, f"Invalid params: invalid message: {exc}") from None
        fee: int | None = None
        if self.node.is_blockhash_valid(message.recent_blockhash):
            fee = self.node.fee_for_message(message)
        return {"context": self._context(slot), "value": fee}

    def rpc_getMinimumBalanceForRentExemption(self, params: list[Any]) -> int:
        size = _int(_param(params, 0, "data length"), "data length")
        return Bank.rent_exempt_minimum(size)

    def rpc_getRecentPrioritizationFees(self, params: list[Any]) -> list[dict[str, int]]:
        raw = params[0] if params else []
        if not isinstance(raw, list):
            raise _invalid("expected an array of pubkeys")
        if len(raw) > 128:
            raise RpcFault(-32602, "Too many inputs provided; max 128")
        keys = [_pubkey(k, "account") for k in raw]
        return [
            {"slot": slot, "prioritizationFee": fee}
            for slot, fee in self.node.recent_prioritization_fees(keys)
        ]

    # ------------------------------------------------------------------ accounts

    def rpc_getAccountInfo(self, params: list[Any]) -> dict[str, Any]:
        key = _pubkey(_param(params, 0, "pubkey"))
        cfg = _config(params, 1)
        slot = self._slot(cfg)
        account = self.node.get_account(key, self._level(cfg))
        value = self._account_value(account, self._encoding(cfg), self._data_slice(cfg))
        return {"context": self._context(slot), "value": value}

    def rpc_getBalance(self, params: list[Any]) -> dict[str, Any]:
        key = _pubkey(_param(params, 0, "pubkey"))
        cfg = _config(params, 1)
        slot = self._slot(cfg)
        account = self.node.get_account(key, self._level(cfg))
        return {"context": self._context(slot), "value": account.lamports if account else 0}

    def rpc_getMultipleAccounts(self, params: list[Any]) -> dict[str, Any]:
        raw = _param(params, 0, "pubkeys")
        if not isinstance(raw, list):
            raise _invalid("expected an array of pubkeys")
        if len(raw) > MAX_MULTIPLE_ACCOUNTS:
            raise RpcFault(-32602, f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
        keys = [_pubkey(k) for k in raw]
        cfg = _config(params, 1)
        slot = self._slot(cfg)
        level = self._level(cfg)
        encoding = self._encoding(cfg)
        data_slice = self._data_slice(cfg)
        return {
            "context": self._context(slot),
            "value": [
                self._account_value(self.node.get_account(k, level), encoding, data_slice)
                for k in keys
            ],
        }

    def rpc_getProgramAccounts(self, params: list[Any]) -> Any:
        program = _pubkey(_param(params, 0, "program id"), "program id")
        cfg = _config(params, 1)
        slot = self._slot(cfg)
        level = self._level(cfg)
        encoding = self._encoding(cfg)
        data_slice = self._data_slice(cfg)
        filters = parse_filters(cfg.get("filters"))
        out = []
        for key, account in self.node.accounts_owned_by(program, level):
            data = account.data
            if all(f(data) for f in filters):
                value = account_json(account, encoding, data_slice, base58_limit=False)
                out.append({"pubkey": str(key), "account": value})
        if _bool(cfg, "withContext"):
            return {"context": self._context(slot), "value": out}
        return out

    # ------------------------------------------------------------------ transactions

    def _simulation_value(
        self,
        result: Any | None,
        *,
        err: Any = None,
        logs: Sequence[str] = (),
        units: int = 0,
        accounts: list[Any] | None = None,
        inner: bool = False,
        replacement: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if result is not None:
            err, logs, units = result.err, result.logs, result.compute_units_consumed
        return {
            "err": err,
            "logs": list(logs),
            "accounts": accounts,
            "unitsConsumed": units,
            "returnData": None,
            "innerInstructions": (result.inner_instructions if result is not None else [])
            if inner
            else None,
            "replacementBlockhash": replacement,
            "fee": result.fee if result is not None else None,
        }

    def rpc_sendTransaction(self, params: list[Any]) -> str:
        """Preflight (unless ``skipPreflight``) simulates against the current
        state and refuses with -32002 when it fails; a transaction that
        cannot land after ``skipPreflight`` (bad blockhash, duplicate, payer
        cannot pay) is dropped silently, as a real cluster would."""
        cfg = _config(params, 1)
        tx = self._decode_tx(_param(params, 0, "transaction"), cfg)
        signature = str(tx.signatures[0])
        if self.faults.intercept_send(tx):
            return signature  # dropped or delayed (fault injection)
        skip = _bool(cfg, "skipPreflight")
        if skip:
            with contextlib.suppress(Rejected):
                self.node.submit(tx, verify=True)
                self.faults.after_send()
            return signature
        self._level(cfg)
        try:
            self.node.check(tx, verify=True)
            result = self.node.simulate(tx, checked=True)
        except Rejected as rej:
            raise self._rejection(rej) from None
        if result.err is not None:
            raise RpcFault(
                -32002,
                f"Transaction simulation failed: {transaction_error_text(result.err)}",
                self._simulation_value(result),
            )
        try:
            self.node.submit(tx, checked=True)
        except Rejected as rej:  # pragma: no cover - the simulation just passed
            raise self._rejection(rej) from None
        self.faults.after_send()
        return signature

    def _rejection(self, rej: Rejected) -> RpcFault:
        if rej.kind == "signature":
            return RpcFault(-32003, "Transaction signature verification failure")
        if rej.kind == "sanitize":
            return RpcFault(-32602, rej.message)
        return RpcFault(
            -32002,
            f"Transaction simulation failed: {transaction_error_text(rej.err)}",
            self._simulation_value(None, err=rej.err, logs=rej.logs, units=rej.units_consumed),
        )

    def rpc_simulateTransaction(self, params: list[Any]) -> dict[str, Any]:
        """Runs against the current state.  ``accounts`` returns the
        post-simulation accounts (the ledger is cloned for that)."""
        cfg = _config(params, 1)
        tx = self._decode_tx(_param(params, 0, "transaction"), cfg)
        slot = self._slot(cfg)
        sig_verify = _bool(cfg, "sigVerify")
        replace = _bool(cfg, "replaceRecentBlockhash")
        if sig_verify and replace:
            raise RpcFault(-32602, "sigVerify may not be used with replaceRecentBlockhash")
        inner = _bool(cfg, "innerInstructions")
        replacement = None
        if replace:
            blockhash, last_valid = self.node.blockhash_at("processed")
            tx = _with_blockhash(tx, blockhash)
            replacement = {"blockhash": str(blockhash), "lastValidBlockHeight": last_valid}
        want = cfg.get("accounts")
        addresses: list[Pubkey] = []
        acct_encoding = "base64"
        if want is not None:
            if not isinstance(want, dict) or not isinstance(want.get("addresses"), list):
                raise _invalid("accounts must be {addresses: [...], encoding}")
            addresses = [_pubkey(k, "address") for k in want["addresses"]]
            acct_encoding = self._encoding(want, "base64")
        if sig_verify:
            try:
                self.node.check(tx, verify=True)
            except Rejected as rej:
                if rej.kind != "preflight":
                    raise self._rejection(rej) from None
        try:
            if want is None:
                result = self.node.simulate(tx)
                accounts = None
            else:
                self.node.check(tx, verify=False)
                clone = Bank.from_bytes(self.node.bank.to_bytes())
                result = clone.execute(
                    tx,
                    slot=self.node.slot,
                    unix_timestamp=self.node.unix_timestamp,
                    commit=True,
                    verify_signatures=False,
                )
                accounts = [
                    self._account_value(clone.get_account(k), acct_encoding, None)
                    for k in addresses
                ]
        except Rejected as rej:
            value = self._simulation_value(None, err=rej.err, inner=inner, replacement=replacement)
            return {"context": self._context(slot), "value": value}
        except Exception as exc:
            err = getattr(exc, "err", None)
            if err is None:
                raise
            value = self._simulation_value(None, err=err, inner=inner, replacement=replacement)
            return {"context": self._context(slot), "value": value}
        value = self._simulation_value(
            result, accounts=accounts, inner=inner, replacement=replacement
        )
        return {"context": self._context(slot), "value": value}

    def rpc_getSignatureStatuses(self, params: list[Any]) -> dict[str, Any]:
        raw = _param(params, 0, "signatures")
        if not isinstance(raw, list):
            raise _invalid("expected an array of signatures")
        if len(raw) > MAX_SIGNATURE_STATUSES:
            raise RpcFault(-32602, f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
        signatures = [_signature(s) for s in raw]
        search = _bool(_config(params, 1), "searchTransactionHistory")
        node = self.node
        values: list[Any] = []
        for sig in signatures:
            record = node.signature_status(sig, search_history=search)
            if record is None:
                values.append(None)
                continue
            level = node.level_of(record)
            values.append(
                {
                    "slot": record.slot,
                    "confirmations": None if level == "finalized" else node.slot - record.slot,
                    "err": record.err,
                    "status": {"Ok": None} if record.err is None else {"Err": record.err},
                    "confirmationStatus": level,
                }
            )
        return {"context": self._context(node.slot), "value": values}

    def rpc_getTransaction(self, params: list[Any]) -> Any:
        sig = _signature(_param(params, 0, "signature"))
        cfg = _config(params, 1)
        if isinstance(params[1] if len(params) > 1 else None, str):
            cfg = {"encoding": params[1]}
        level = self._level(cfg, minimum="confirmed")
        encoding = cfg.get("encoding") or "json"
        if encoding not in ("json", "base64", "base58"):
            raise RpcFault(-32602, f"Invalid params: unsupported encoding: {encoding}")
        max_version = cfg.get("maxSupportedTransactionVersion")
        if max_version is not None and _int(max_version, "maxSupportedTransactionVersion") != 0:
            raise RpcFault(
                -32602, f"Invalid params: unsupported transaction version ({max_version})"
            )
        record = self.node.transaction(sig, level)
        if record is None:
            return None
        if max_version is None and isinstance(record.tx.message, MessageV0):
            raise RpcFault(
                -32015,
                "Transaction version (0) is not supported by the requesting client. Please try "
                "the request again with the following configuration parameter: "
                '"maxSupportedTransactionVersion": 0',
            )
        return transaction_json(record, encoding=encoding, include_version=max_version is not None)

    def rpc_getSignaturesForAddress(self, params: list[Any]) -> list[dict[str, Any]]:
        address = _pubkey(_param(params, 0, "address"), "address")
        cfg = _config(params, 1)
        self._slot(cfg, minimum="confirmed")
        level = self._level(cfg, minimum="confirmed")
        limit = cfg.get("limit")
        if limit is None:
            limit = MAX_SIGNATURES_LIMIT
        elif not isinstance(limit, int) or not 1 <= limit <= MAX_SIGNATURES_LIMIT:
            raise RpcFault(-32602, f"Invalid limit; max {MAX_SIGNATURES_LIMIT}")
        before = _signature(cfg["before"]) if cfg.get("before") else None
        until = _signature(cfg["until"]) if cfg.get("until") else None
        node = self.node
        return [
            {
                "signature": str(r.signature),
                "slot": r.slot,
                "err": r.err,
                "memo": None,
                "blockTime": r.block_time,
                "confirmationStatus": node.level_of(r),
            }
            for r in node.signatures_for_address(
                address, level, before=before, until=until, limit=limit
            )
        ]

    def rpc_requestAirdrop(self, params: list[Any]) -> str:
        """A real, recorded System transfer from the devchain's faucet."""
        key = _pubkey(_param(params, 0, "pubkey"))
        lamports = _int(_param(params, 1, "lamports"), "lamports", lo=1)
        try:
            record = self.node.faucet_transfer(key, lamports)
        except Rejected as rej:
            raise RpcFault(-32600, f"airdrop failed: {rej.message}") from None
        return str(record.signature)

    # ------------------------------------------------------------------ test controls

    def rpc_zmart_warpClock(self, params: list[Any]) -> dict[str, int]:
        """Advance unix time by ``seconds`` (a new slot carries the new time)."""
        seconds = _param(params, 0, "seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise _invalid("seconds must be a number >= 0")
        timestamp = self.node.warp_clock(seconds)
        return {"slot": self.node.slot, "unixTimestamp": timestamp}

    def rpc_zmart_setClock(self, params: list[Any]) -> dict[str, int]:
        """Move unix time forward to the given timestamp (never backwards)."""
        when = _int(_param(params, 0, "unix timestamp"), "unix timestamp")
        timestamp = self.node.set_clock(when)
        return {"slot": self.node.slot, "unixTimestamp": timestamp}

    def rpc_zmart_airdrop(self, params: list[Any]) -> dict[str, Any]:
        """Fund a wallet now through the faucet (a recorded transfer, processed
        on return); answers the signature and the new balance."""
        key = _pubkey(_param(params, 0, "pubkey"))
        lamports = _int(_param(params, 1, "lamports"), "lamports", lo=1)
        try:
            record = self.node.faucet_transfer(key, lamports)
        except Rejected as rej:
            raise RpcFault(-32600, f"airdrop failed: {rej.message}") from None
        account = self.node.get_account(key)
        return {
            "signature": str(record.signature),
            "slot": record.slot,
            "lamports": account.lamports if account else 0,
        }

    def rpc_zmart_setAccount(self, params: list[Any]) -> dict[str, int]:
        """Overwrite an account: ``[pubkey, {lamports, data: [b64, "base64"] |
        b64, owner, executable}]`` or ``[pubkey, null]`` to delete it."""
        key = _pubkey(_param(params, 0, "pubkey"))
        spec = _param(params, 1, "account")
        if spec is None:
            self.node.set_account(key, None)
            return {"slot": self.node.slot}
        if not isinstance(spec, dict):
            raise _invalid("account must be an object or null")
        data = spec.get("data", "")
        if isinstance(data, list):
            data = data[0] if data else ""
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, TypeError):
            raise _invalid("account data must be base64") from None
        account = Account(
            lamports=_int(spec.get("lamports"), "lamports"),
            data=raw,
            owner=_pubkey(spec.get("owner", "11111111111111111111111111111111"), "owner"),
            executable=bool(spec.get("executable", False)),
            rent_epoch=_int(spec.get("rentEpoch", 0), "rentEpoch"),
        )
        self.node.set_account(key, account)
        return {"slot": self.node.slot}

    def rpc_zmart_pause(self, params: list[Any]) -> dict[str, Any]:
        """Stop slot production (transactions still execute in the current
        slot, so they stay *processed* until resumed)."""
        self.node.paused = True
        return {"paused": True, "slot": self.node.slot}

    def rpc_zmart_resume(self, params: list[Any]) -> dict[str, Any]:
        self.node.paused = False
        return {"paused": False, "slot": self.node.slot}

    def rpc_zmart_advanceSlots(self, params: list[Any]) -> dict[str, int]:
        """Produce ``n`` slots now (also while paused)."""
        count = _int(params[0] if params else 1, "n", lo=1)
        if count > 100_000:
            raise _invalid("n must be <= 100000")
        self.node.advance_slot(count)
        return {"slot": self.node.slot, "blockHeight": self.node.block_height}

    # ------------------------------------------------------------------ fault injection

    def rpc_zmart_dropSends(self, params: list[Any]) -> dict[str, Any]:
        """The next ``n`` sendTransaction calls answer the signature but never
        execute the transaction (the same bytes sent again do)."""
        self.faults.drop_sends = _int(params[0] if params else 1, "n")
        return self.faults.state()

    def rpc_zmart_timeoutSends(self, params: list[Any]) -> dict[str, Any]:
        """The next ``n`` sendTransaction calls execute the transaction, then
        hold the HTTP answer ``seconds`` (default 30) so the client times out."""
        self.faults.timeout_sends = _int(params[0] if params else 1, "n")
        if len(params) > 1:
            seconds = params[1]
            if (
                not isinstance(seconds, int | float)
                or isinstance(seconds, bool)
                or not 0 < seconds <= 600
            ):
                raise _invalid("seconds must be a number in (0, 600]")
            self.faults.timeout_seconds = float(seconds)
        return self.faults.state()

    def rpc_zmart_httpErrors(self, params: list[Any]) -> dict[str, Any]:
        """``{status: 429|503, rate: 0..1, count?: n}``: answer each other
        request with that HTTP status at that rate (for ``count`` requests, or
        until cleared); ``rate`` 0 switches it off."""
        spec = _param(params, 0, "settings")
        if not isinstance(spec, dict):
            raise _invalid("settings must be {status, rate, count}")
        status = spec.get("status", 429)
        if status not in (429, 500, 502, 503, 504):
            raise _invalid("status must be 429, 500, 502, 503 or 504")
        rate = spec.get("rate", 1.0)
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
            raise _invalid("rate must be a number 0..1")
        count = spec.get("count")
        self.faults.http_status = int(status) if rate > 0 else 0
        self.faults.http_rate = float(rate)
        self.faults.http_remaining = None if count is None else _int(count, "count")
        return self.faults.state()

    def rpc_zmart_delayLanding(self, params: list[Any]) -> dict[str, Any]:
        """Accepted transactions execute ``k`` slots later (0 = at once)."""
        self.faults.landing_delay = _int(params[0] if params else 0, "k")
        return self.faults.state()

    def rpc_zmart_blockhashExpiry(self, params: list[Any]) -> dict[str, Any]:
        """A blockhash stays valid for ``n`` blocks (Solana: 150; null = 150)."""
        value = params[0] if params else None
        self.node.max_processing_age = 150 if value is None else _int(value, "n", lo=1)
        return self.faults.state()

    def rpc_zmart_faults(self, params: list[Any]) -> dict[str, Any]:
        """The active faults and how often each fired."""
        return self.faults.state()

    def rpc_zmart_clearFaults(self, params: list[Any]) -> dict[str, Any]:
        """Every fault off (already delayed transactions still land on time)."""
        self.faults.clear()
        return self.faults.state()

    def rpc_zmart_status(self, params: list[Any]) -> dict[str, Any]:
        node = self.node
        return {
            "slot": node.slot,
            "blockHeight": node.block_height,
            "confirmedSlot": node.commitment_slot("confirmed"),
            "finalizedSlot": node.commitment_slot("finalized"),
            "unixTimestamp": node.unix_timestamp,
            "clockOffset": node.clock_offset,
            "paused": node.paused,
            "transactionCount": node.transaction_count,
            "programId": str(node.bank.program_id),
            "faucet": str(node.faucet.pubkey()),
        }


def _error_response(req_id: Any, fault: RpcFault) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": fault.to_json(), "id": req_id}


def _with_blockhash(tx: VersionedTransaction, blockhash: Hash) -> VersionedTransaction:
    """The same transaction with another recent blockhash (signatures kept,
    hence invalid: only for simulation without sigVerify)."""
    message = tx.message
    new_message: Message | MessageV0
    if isinstance(message, MessageV0):
        new_message = MessageV0(
            message.header,
            list(message.account_keys),
            blockhash,
            list(message.instructions),
            list(message.address_table_lookups),
        )
    else:
        new_message = Message.new_with_compiled_instructions(
            message.header.num_required_signatures,
            message.header.num_readonly_signed_accounts,
            message.header.num_readonly_unsigned_accounts,
            list(message.account_keys),
            blockhash,
            list(message.instructions),
        )
    return VersionedTransaction.populate(new_message, list(tx.signatures))


Filter = Callable[[bytes], bool]


def _size_filter(size: int) -> Filter:
    return lambda data: len(data) == size


def _memcmp_filter(offset: int, needle: bytes) -> Filter:
    end = offset + len(needle)
    return lambda data: data[offset:end] == needle


def parse_filters(raw: Any) -> list[Filter]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _invalid("filters must be an array")
    if len(raw) > MAX_PROGRAM_ACCOUNT_FILTERS:
        raise RpcFault(-32602, f"Too many filters provided; max {MAX_PROGRAM_ACCOUNT_FILTERS}")
    out: list[Filter] = []
    for item in raw:
        if not isinstance(item, dict) or len(item) != 1:
            raise _invalid(f"Invalid param: filter {item!r}")
        if "dataSize" in item:
            size = _int(item["dataSize"], "dataSize")
            out.append(_size_filter(size))
        elif "memcmp" in item:
            memcmp = item["memcmp"]
            if not isinstance(memcmp, dict):
                raise _invalid("memcmp must be {offset, bytes}")
            offset = _int(memcmp.get("offset"), "memcmp.offset")
            text = memcmp.get("bytes")
            encoding = memcmp.get("encoding") or "base58"
            if not isinstance(text, str):
                raise _invalid("memcmp.bytes must be a string")
            try:
                if encoding == "base58":
                    if len(text) > 175:
                        raise RpcFault(-32602, "Invalid param: memcmp bytes too large")
                    needle = b58decode(text)
                elif encoding == "base64":
                    needle = base64.b64decode(text, validate=True)
                else:
                    raise _invalid(f"unsupported memcmp encoding {encoding!r}")
            except (binascii.Error, DecodeError, ValueError):
                raise _invalid(f"Invalid param: memcmp bytes are not {encoding}") from None
            if len(needle) > MAX_MEMCMP_BYTES:
                raise RpcFault(-32602, "Invalid param: memcmp bytes too large")
            out.append(_memcmp_filter(offset, needle))
        else:
            raise _invalid(f"Invalid param: unknown filter {item!r}")
    return out


# --------------------------------------------------------------------------- HTTP


def asgi_app(rpc: JsonRpc, *, max_body: int = MAX_BODY_BYTES) -> Any:
    """A minimal ASGI application: ``POST /`` JSON-RPC, ``GET /health`` like
    solana-test-validator."""

    async def respond(send: Any, status: int, body: bytes, content_type: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] == "/health":
            await respond(send, 200, b"ok", b"text/plain")
            return
        if scope["method"] != "POST":
            await respond(
                send,
                405,
                b"Used HTTP Method is not allowed. POST or OPTIONS is required",
                b"text/plain",
            )
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body:
                await respond(send, 413, b"Payload Too Large", b"text/plain")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        status = rpc.faults.http_error(body)
        if status is not None:
            text = b"Too Many Requests" if status == 429 else b"Service Unavailable"
            await respond(send, status, text, b"text/plain")
            return
        answer = rpc.handle(body)
        hang = rpc.faults.take_hang()
        if hang:
            await trio.sleep(hang)  # the transaction landed; the client times out first
        await respond(send, 200, answer, b"application/json")

    return app


async def serve_http(
    app: Any,
    host: str,
    port: int,
    *,
    shutdown_trigger: Callable[[], Any],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` with hypercorn until ``shutdown_trigger`` returns;
    ``task_status`` receives the bound URLs (port 0 picks a free port)."""
    config = HypercornConfig()
    bind_host = f"[{host}]" if ":" in host else host
    config.bind = [f"{bind_host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 0.5
    config.keep_alive_timeout = 30
    # hypercorn closes a connection after 1,000 requests by default; an RPC
    # client (or the indexer) reusing one connection should not pay reconnects.
    config.keep_alive_max_requests = 1_000_000
    await serve(app, config, shutdown_trigger=shutdown_trigger, task_status=task_status)
