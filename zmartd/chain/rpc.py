"""Solana JSON-RPC client for trio: httpx for the wire, solders for the types.

solana-py's ``AsyncClient`` cannot be used: its confirmation and batching
helpers call ``asyncio`` directly and fail under trio (``RuntimeError: no
running event loop``).  This client builds the JSON-RPC requests itself, sends
them with ``httpx.AsyncClient`` and parses results with solders' response
types (``GetLatestBlockhashResp.from_json`` ...).  Three things it adds over a
bare HTTP call, because the daemon runs unattended against public providers:

* **Retries and failover.**  HTTP 429 and 5xx, connection errors, timeouts
  and "node is behind" (-32005) are retried with exponential backoff and
  jitter, on the next healthy endpoint when several are configured, and a
  ``Retry-After`` header is obeyed exactly (see :mod:`zmartd.chain.endpoints`).
  Every other JSON-RPC error is the node's answer to *this* request and is
  raised at once as :class:`RpcError` with its code.
* **Readable transaction failures.**  A failed simulation or a rejected
  ``sendTransaction`` preflight raises :class:`SimulationFailed` /
  :class:`PreflightFailed`, which carry the logs, the failing instruction
  index, the custom error number and the zmart-core error *name*
  (``SlippageExceeded``) decoded through :mod:`zmartd.chain.errors`.
* **The shapes the indexer needs.**  ``getTransaction`` in ``json`` encoding
  returns the node's JSON object untouched (the codec's transaction decoder
  reads ``meta.logMessages``, ``innerInstructions``, ``loadedAddresses`` and
  the raw ``err`` from it), in ``base64`` a decoded :class:`ConfirmedTransaction`.
  ``getMultipleAccounts`` is chunked at the node's limit of 100 keys and
  ``getSignaturesForAddress`` can be iterated page by page.

The client decodes no zmart account: it returns solders ``Account`` objects
and the codec (``zmartd.chain.accounts``) interprets their bytes.
"""

from __future__ import annotations

import base64
import email.utils
import itertools
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, overload

import httpx
import msgspec
import trio
from solders.account import Account
from solders.errors import SerdeJSONError
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    GetAccountInfoResp,
    GetBlockHeightResp,
    GetLatestBlockhashResp,
    GetMultipleAccountsResp,
    GetProgramAccountsResp,
    GetRecentPrioritizationFeesResp,
    GetSignaturesForAddressResp,
    GetSignatureStatusesResp,
    GetSlotResp,
    GetTransactionResp,
    RpcBlockhash,
    RpcConfirmedTransactionStatusWithSignature,
    RpcPrioritizationFee,
    SendTransactionResp,
    SimulateTransactionResp,
)
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionStatus, UiTransactionStatusMeta

from zmartd.chain.endpoints import EndpointHealth, EndpointPool
from zmartd.chain.errors import ProgramError, from_logs, lookup

__all__ = [
    "MAX_MULTIPLE_ACCOUNTS",
    "MAX_SIGNATURE_STATUSES",
    "NODE_UNHEALTHY",
    "SEND_TRANSACTION_PREFLIGHT_FAILURE",
    "Commitment",
    "ConfirmedTransaction",
    "DataSize",
    "Memcmp",
    "PreflightFailed",
    "ProgramAccountsFilter",
    "RpcBatchRefused",
    "RpcClient",
    "RpcClientError",
    "RpcError",
    "RpcHttpError",
    "RpcResponseError",
    "RpcTransportError",
    "SimulationFailed",
    "TransactionFailed",
    "TxFailure",
    "b58encode",
    "decode_tx_error",
]

Commitment = Literal["processed", "confirmed", "finalized"]
_COMMITMENTS: frozenset[str] = frozenset({"processed", "confirmed", "finalized"})

#: JSON-RPC error codes of the Solana RPC server that this module treats specially.
SEND_TRANSACTION_PREFLIGHT_FAILURE = -32002
NODE_UNHEALTHY = -32005

#: Node limits: keys per ``getMultipleAccounts``, signatures per ``getSignatureStatuses``.
MAX_MULTIPLE_ACCOUNTS = 100
MAX_SIGNATURE_STATUSES = 256
#: Upper bound on ``getSignaturesForAddress``'s ``limit``.
MAX_SIGNATURES_PAGE = 1000


# --------------------------------------------------------------------------- errors


class RpcClientError(Exception):
    """Base of every error raised by :class:`RpcClient`."""


class RpcTransportError(RpcClientError):
    """The request never got an answer: every attempt hit a connection error,
    a timeout, HTTP 429/5xx or an unparseable body.  ``attempts`` lists what
    happened on each try, as ``"<url>: <reason>"``."""

    def __init__(self, method: str, attempts: Sequence[str]) -> None:
        self.method = method
        self.attempts = tuple(attempts)
        super().__init__(
            f"{method} failed after {len(self.attempts)} attempt(s): " + "; ".join(self.attempts)
        )


class RpcHttpError(RpcClientError):
    """An HTTP error status that retrying cannot fix (401, 403, 404, 413 ...),
    usually a wrong URL or API key."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        super().__init__(f"{method} to {url}: HTTP {status}: {body[:200]}")


class RpcResponseError(RpcClientError):
    """The node answered with JSON that does not have the documented shape."""


class RpcError(RpcClientError):
    """A JSON-RPC error object returned by the node (``{"code", "message", "data"}``)."""

    def __init__(
        self,
        code: int,
        message: str,
        data: Any = None,
        *,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        self.url = url
        Exception.__init__(self, f"RPC error {code}: {message}")


@dataclass(frozen=True, slots=True)
class TxFailure:
    """A transaction error decoded for humans and for the API's error codes.

    ``err`` is the node's JSON, unchanged (e.g.
    ``{"InstructionError": [1, {"Custom": 6015}]}`` or ``"BlockhashNotFound"``).
    ``program_error`` is found in the logs first, because the log line names
    the program that failed; the bare ``Custom`` number is looked up only when
    the logs say nothing (it could belong to another program).
    """

    err: Any
    logs: tuple[str, ...]
    instruction_index: int | None
    custom_code: int | None
    program_error: ProgramError | None

    def describe(self) -> str:
        if self.instruction_index is None:
            what = json.dumps(self.err) if not isinstance(self.err, str) else self.err
            if self.program_error is not None:
                return f"{what}: {self.program_error}"
            return what
        if self.program_error is not None:
            reason = str(self.program_error)
        elif self.custom_code is not None:
            reason = f"custom program error {self.custom_code}"
        else:
            reason = json.dumps(self.err["InstructionError"][1])
        return f"instruction {self.instruction_index} failed: {reason}"


def decode_tx_error(err: Any, logs: Sequence[str] | None = None) -> TxFailure:
    """Decode a transaction error object plus its logs into a :class:`TxFailure`.

    Accepts every documented shape of ``TransactionError`` in JSON:
    a bare string (``"AccountNotFound"``), a one-key object
    (``{"InsufficientFundsForRent": {"account_index": 1}}``) and
    ``{"InstructionError": [index, detail]}`` whose detail is a string or
    ``{"Custom": n}``.
    """
    log_tuple = tuple(logs or ())
    index: int | None = None
    custom: int | None = None
    if isinstance(err, dict) and "InstructionError" in err:
        pair = err["InstructionError"]
        if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int):
            index = pair[0]
            detail = pair[1]
            if isinstance(detail, dict) and isinstance(detail.get("Custom"), int):
                custom = detail["Custom"]
    program_error = from_logs(list(log_tuple))
    if program_error is None and custom is not None:
        program_error = lookup(custom)
    return TxFailure(err, log_tuple, index, custom, program_error)


class TransactionFailed(RpcClientError):
    """A transaction failed; ``failure`` says where and why.

    The attributes of ``failure`` are mirrored for convenience:
    ``e.program_error.name == "SlippageExceeded"``.
    """

    def __init__(self, failure: TxFailure, context: str = "transaction failed") -> None:
        self.failure = failure
        Exception.__init__(self, f"{context}: {failure.describe()}")

    @property
    def err(self) -> Any:
        return self.failure.err

    @property
    def logs(self) -> tuple[str, ...]:
        return self.failure.logs

    @property
    def instruction_index(self) -> int | None:
        return self.failure.instruction_index

    @property
    def custom_code(self) -> int | None:
        return self.failure.custom_code

    @property
    def program_error(self) -> ProgramError | None:
        return self.failure.program_error


class SimulationFailed(TransactionFailed):
    """``simulateTransaction`` ran the transaction and it failed.

    ``result`` is the node's simulation result object (JSON), with
    ``unitsConsumed``, ``returnData`` and the rest.
    """

    def __init__(
        self, failure: TxFailure, result: dict[str, Any], context: str = "simulation failed"
    ) -> None:
        self.result = result
        TransactionFailed.__init__(self, failure, context)

    @property
    def units_consumed(self) -> int | None:
        value = self.result.get("unitsConsumed")
        return value if isinstance(value, int) else None


class PreflightFailed(SimulationFailed, RpcError):
    """``sendTransaction`` refused the transaction because its preflight
    simulation failed (JSON-RPC error -32002).  Both a :class:`SimulationFailed`
    (logs, decoded program error) and an :class:`RpcError` (code, message)."""

    def __init__(
        self, code: int, message: str, data: dict[str, Any], *, method: str, url: str
    ) -> None:
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        self.url = url
        failure = decode_tx_error(data.get("err"), data.get("logs") or ())
        SimulationFailed.__init__(self, failure, data, context="preflight failed")


class RpcBatchRefused(RpcClientError):
    """The endpoint answered a JSON-RPC batch with one error (batches are
    disabled or limited there): send the calls one by one instead."""

    def __init__(self, error: RpcError) -> None:
        super().__init__(f"batch refused: {error}")
        self.error = error


def _json_encode(doc: Any) -> bytes:
    return msgspec.json.encode(doc)


def _json_decode(text: str) -> Any:
    """Parse a response body (msgspec: several times faster than ``json`` on
    the large ``getTransaction`` batches of a backfill)."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None


def _rpc_error_from(obj: Any, *, method: str, url: str) -> RpcError:
    if not isinstance(obj, dict) or not isinstance(obj.get("code"), int):
        raise RpcResponseError(f"{method} from {url}: malformed JSON-RPC error {obj!r}")
    code: int = obj["code"]
    message = str(obj.get("message", ""))
    data = obj.get("data")
    if code == SEND_TRANSACTION_PREFLIGHT_FAILURE and isinstance(data, dict) and "err" in data:
        return PreflightFailed(code, message, data, method=method, url=url)
    return RpcError(code, message, data, method=method, url=url)


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True, slots=True)
class DataSize:
    """``getProgramAccounts`` filter: account data is exactly ``size`` bytes."""

    size: int

    def to_json(self) -> dict[str, Any]:
        if self.size < 0:
            raise ValueError(f"dataSize must be >= 0, got {self.size}")
        return {"dataSize": self.size}


@dataclass(frozen=True, slots=True)
class Memcmp:
    """``getProgramAccounts`` filter: ``data`` appears at byte ``offset``.

    Sent base58-encoded, the one encoding every RPC node version accepts
    (the node limits it to 128 bytes).
    """

    offset: int
    data: bytes | Pubkey

    def to_json(self) -> dict[str, Any]:
        raw = bytes(self.data)
        if self.offset < 0:
            raise ValueError(f"memcmp offset must be >= 0, got {self.offset}")
        if not raw or len(raw) > 128:
            raise ValueError(f"memcmp bytes must be 1..128 bytes long, got {len(raw)}")
        return {"memcmp": {"offset": self.offset, "bytes": b58encode(raw)}}


ProgramAccountsFilter = DataSize | Memcmp


@dataclass(frozen=True, slots=True)
class ConfirmedTransaction:
    """A transaction fetched with ``getTransaction`` in ``base64`` encoding."""

    slot: int
    block_time: int | None
    #: ``0`` for v0 transactions, ``"legacy"`` for legacy ones, ``None`` if the node omits it.
    version: int | str | None
    transaction: VersionedTransaction
    meta: UiTransactionStatusMeta | None
    #: The node's ``meta`` JSON, unchanged (``err`` in its original JSON form).
    raw_meta: dict[str, Any] | None


_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    """Bitcoin-alphabet base58 of arbitrary bytes (solders only encodes keys
    and signatures, memcmp filters need arbitrary byte strings)."""
    n = int.from_bytes(data, "big")
    out: list[str] = []
    while n:
        n, rem = divmod(n, 58)
        out.append(_B58_ALPHABET[rem])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(out))


T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _retry_after(header: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if header is None:
        return None
    text = header.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --------------------------------------------------------------------------- client


class RpcClient:
    """Solana JSON-RPC over HTTP with retries, failover and typed errors.

    ``async with RpcClient(["https://primary", "https://fallback"]) as rpc:``

    ``timeout`` bounds each attempt (connect + response), ``max_retries`` the
    number of attempts after the first (spread over the endpoints).  Pass
    ``http`` to share an ``httpx.AsyncClient`` (it is then not closed here) or
    ``transport`` to plug in e.g. ``httpx.MockTransport`` in tests.
    ``commitment`` is the default for every call that takes one.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 10.0,
        max_retries: int = 4,
        backoff_initial: float = 0.25,
        backoff_max: float = 10.0,
        max_retry_after: float = 60.0,
        failure_threshold: int = 3,
        cooldown: float = 30.0,
        commitment: Commitment = "confirmed",
        http: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if http is not None and transport is not None:
            raise ValueError("pass either http or transport, not both")
        self._check_commitment(commitment)
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self.commitment: Commitment = commitment
        self._pool = EndpointPool(
            endpoints,
            clock=trio.current_time,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            failure_threshold=failure_threshold,
            cooldown=cooldown,
            rng=rng,
        )
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(transport=transport, timeout=timeout)
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def health(self) -> list[EndpointHealth]:
        """Per-endpoint health, in configured order (for ``/ready`` and metrics)."""
        return self._pool.health()

    # ------------------------------------------------------------------ transport

    @staticmethod
    def _check_commitment(commitment: str) -> None:
        if commitment not in _COMMITMENTS:
            raise ValueError(
                f"commitment must be one of {sorted(_COMMITMENTS)}, got {commitment!r}"
            )

    def _config(self, commitment: Commitment | None, **extra: Any) -> dict[str, Any]:
        level = commitment or self.commitment
        self._check_commitment(level)
        config: dict[str, Any] = {"commitment": level}
        config.update({k: v for k, v in extra.items() if v is not None})
        return config

    async def request(self, method: str, params: list[Any]) -> tuple[Any, str]:
        """Send one JSON-RPC call; return ``(result, raw_body)``.

        Retries transport-level failures and -32005 as described in the module
        docstring; raises :class:`RpcError` for any other JSON-RPC error and
        :class:`RpcTransportError` when the attempts are used up.
        """
        payload = _json_encode(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        )

        def answer(doc: Any, url: str, status: int, text: str) -> tuple[Any, str | None]:
            if not isinstance(doc, dict):
                return None, "response is not a JSON-RPC object"
            if "error" in doc:
                raise _rpc_error_from(doc["error"], method=method, url=url)
            if status >= 400:
                raise RpcHttpError(method, url, status, text)
            if "result" not in doc:
                return None, "response has neither result nor error"
            return doc["result"], None

        return await self._exchange(method, payload, answer)

    async def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one HTTP request (a JSON-RPC batch).

        Returns one entry per call, in order: its result, or the
        :class:`RpcError` the node answered *that* call with (returned, not
        raised, so one bad element does not lose the others).  Transport
        failures, 429/5xx and a node that is behind (-32005 on any element)
        are retried as a whole, like :meth:`request`.  A node that refuses
        batches (many hosted RPCs limit or forbid them) answers with one
        error object: that is raised as :class:`RpcBatchRefused`.
        """
        if not calls:
            return []
        first = next(self._ids)
        ids = range(first, first + len(calls))
        self._ids = itertools.count(first + len(calls))
        payload = _json_encode(
            [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in zip(ids, calls, strict=True)
            ]
        )
        label = f"batch of {len(calls)} {calls[0][0]}"

        def answer(doc: Any, url: str, status: int, text: str) -> tuple[Any, str | None]:
            if isinstance(doc, dict) and "error" in doc:
                raise RpcBatchRefused(_rpc_error_from(doc["error"], method=label, url=url))
            if not isinstance(doc, list):
                return None, "batch response is not a JSON array"
            if status >= 400:
                raise RpcHttpError(label, url, status, text)
            by_id = {item.get("id"): item for item in doc if isinstance(item, dict)}
            out: list[Any] = []
            for i, (method, _) in zip(ids, calls, strict=True):
                item = by_id.get(i)
                if item is None:
                    return None, f"batch response lacks id {i}"
                if "error" in item:
                    error = _rpc_error_from(item["error"], method=method, url=url)
                    if error.code == NODE_UNHEALTHY:
                        raise error  # retried by _exchange
                    out.append(error)
                elif "result" in item:
                    out.append(item["result"])
                else:
                    return None, f"batch element {i} has neither result nor error"
            return out, None

        result, _ = await self._exchange(label, payload, answer)
        assert isinstance(result, list)
        return result

    async def _exchange(
        self,
        method: str,
        payload: bytes,
        answer: Callable[[Any, str, int, str], tuple[Any, str | None]],
    ) -> tuple[Any, str]:
        """POST ``payload`` until an endpoint answers; ``answer(doc, url,
        status, text)`` turns the parsed body into ``(value, None)``, asks for
        a retry with ``(None, reason)``, or raises the node's answer as an
        error (:class:`RpcError`, :class:`RpcHttpError`, ...)."""
        attempts: list[str] = []
        unhealthy: RpcError | None = None
        for _ in range(self.max_retries + 1):
            ep, wait = self._pool.choose()
            if wait > 0:
                await trio.sleep(wait)
            self._pool.record_start(ep)
            started = trio.current_time()
            unhealthy = None

            def fail(reason: str, retry_after: float | None = None, *, url: str = ep.url) -> None:
                attempts.append(f"{url}: {reason}")
                self._pool.record_failure(self._pool.endpoint(url), reason, retry_after=retry_after)

            try:
                with trio.fail_after(self.timeout):
                    response = await self._http.post(
                        ep.url, content=payload, headers={"Content-Type": "application/json"}
                    )
            except trio.TooSlowError:
                fail(f"timed out after {self.timeout}s")
                continue
            except httpx.TransportError as exc:
                fail(f"{type(exc).__name__}: {exc}")
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                retry_after = _retry_after(response.headers.get("Retry-After"))
                if retry_after is not None:
                    retry_after = min(retry_after, self.max_retry_after)
                fail(f"HTTP {status}", retry_after)
                continue
            text = response.text
            try:
                doc = _json_decode(text)
            except ValueError:
                if status >= 400:
                    self._pool.record_success(ep, trio.current_time() - started)
                    raise RpcHttpError(method, ep.url, status, text) from None
                fail("response is not JSON")
                continue
            try:
                value, retry = answer(doc, ep.url, status, text)
            except RpcError as error:
                if error.code == NODE_UNHEALTHY:
                    unhealthy = error
                    fail(f"node unhealthy: {error.message}")
                    continue
                self._pool.record_success(ep, trio.current_time() - started)
                raise
            except RpcClientError:  # the node answered, with an HTTP error or a refusal
                self._pool.record_success(ep, trio.current_time() - started)
                raise
            if retry is not None:
                fail(retry)
                continue
            self._pool.record_success(ep, trio.current_time() - started)
            return value, text
        if unhealthy is not None:  # the last attempt was answered, by a node that is behind
            raise unhealthy
        raise RpcTransportError(method, attempts)

    async def _call(self, method: str, params: list[Any], cls: Any) -> Any:
        """Call and parse with a solders response type; return its ``value``."""
        _, text = await self.request(method, params)
        return self._parse(method, text, cls)

    @staticmethod
    def _parse(method: str, text: str, cls: Any) -> Any:
        """Parse with a solders ``XxxResp`` type, whose ``from_json`` returns an
        error-message object instead of raising on a JSON-RPC error."""
        try:
            parsed = cls.from_json(text)
        except SerdeJSONError as exc:
            raise RpcResponseError(f"{method}: unexpected response shape: {exc}") from exc
        if not isinstance(parsed, cls):
            raise RpcResponseError(f"{method}: unexpected response {parsed!r}")
        return parsed.value

    # ------------------------------------------------------------------ cluster state

    async def get_slot(self, commitment: Commitment | None = None) -> int:
        value: int = await self._call("getSlot", [self._config(commitment)], GetSlotResp)
        return value

    async def get_block_height(self, commitment: Commitment | None = None) -> int:
        value: int = await self._call(
            "getBlockHeight", [self._config(commitment)], GetBlockHeightResp
        )
        return value

    async def get_latest_blockhash(self, commitment: Commitment | None = None) -> RpcBlockhash:
        """``.blockhash`` (a solders ``Hash``) and ``.last_valid_block_height``."""
        value: RpcBlockhash = await self._call(
            "getLatestBlockhash", [self._config(commitment)], GetLatestBlockhashResp
        )
        return value

    async def get_recent_prioritization_fees(
        self, accounts: Sequence[Pubkey | str] = ()
    ) -> list[RpcPrioritizationFee]:
        """Recent per-slot minimum priority fees (micro-lamports per CU) for
        transactions that write-lock all of ``accounts`` (max 128)."""
        if len(accounts) > 128:
            raise ValueError("getRecentPrioritizationFees takes at most 128 accounts")
        params: list[Any] = [[str(a) for a in accounts]] if accounts else []
        value: list[RpcPrioritizationFee] = await self._call(
            "getRecentPrioritizationFees", params, GetRecentPrioritizationFeesResp
        )
        return value

    # ------------------------------------------------------------------ transactions

    @staticmethod
    def _wire(tx: VersionedTransaction | bytes) -> str:
        raw = bytes(tx)
        if not raw:
            raise ValueError("empty transaction")
        return base64.b64encode(raw).decode()

    async def send_transaction(
        self,
        tx: VersionedTransaction | bytes,
        *,
        skip_preflight: bool = False,
        preflight_commitment: Commitment | None = None,
        max_retries: int | None = None,
        min_context_slot: int | None = None,
    ) -> Signature:
        """Submit a signed transaction; return its signature.

        Retrying on transport errors is safe: the same signed bytes can land at
        most once.  A failed preflight raises :class:`PreflightFailed`.
        ``max_retries`` is the *node's* rebroadcast count, not ours.
        """
        config = self._config(
            preflight_commitment,
            encoding="base64",
            skipPreflight=skip_preflight,
            maxRetries=max_retries,
            minContextSlot=min_context_slot,
        )
        config["preflightCommitment"] = config.pop("commitment")
        value: Signature = await self._call(
            "sendTransaction", [self._wire(tx), config], SendTransactionResp
        )
        return value

    async def simulate_transaction(
        self,
        tx: VersionedTransaction | bytes,
        *,
        sig_verify: bool = False,
        replace_recent_blockhash: bool = False,
        commitment: Commitment | None = None,
    ) -> dict[str, Any]:
        """Simulate; return the node's result object (``logs``,
        ``unitsConsumed``, ``returnData`` ...) as JSON, or raise
        :class:`SimulationFailed` when the transaction would fail.

        The JSON object is returned (rather than solders'
        ``RpcSimulateTransactionResult``) so that the caller sees the fields
        exactly as the node sent them, including newer ones such as ``fee``.
        """
        if sig_verify and replace_recent_blockhash:
            raise ValueError("sig_verify and replace_recent_blockhash are mutually exclusive")
        config = self._config(
            commitment,
            encoding="base64",
            sigVerify=sig_verify,
            replaceRecentBlockhash=replace_recent_blockhash,
        )
        result, text = await self.request("simulateTransaction", [self._wire(tx), config])
        self._parse("simulateTransaction", text, SimulateTransactionResp)  # validates the shape
        value = result["value"]
        if value.get("err") is not None:
            raise SimulationFailed(decode_tx_error(value["err"], value.get("logs") or ()), value)
        assert isinstance(value, dict)
        return value

    async def get_signature_statuses(
        self, signatures: Sequence[Signature | str], *, search_transaction_history: bool = False
    ) -> list[TransactionStatus | None]:
        """Statuses in the order asked, ``None`` for unknown signatures;
        chunked at the node's limit of 256 per call."""
        out: list[TransactionStatus | None] = []
        for chunk in _chunks(signatures, MAX_SIGNATURE_STATUSES):
            params = [
                [str(s) for s in chunk],
                {"searchTransactionHistory": search_transaction_history},
            ]
            value: list[TransactionStatus | None] = await self._call(
                "getSignatureStatuses", params, GetSignatureStatusesResp
            )
            if len(value) != len(chunk):
                raise RpcResponseError(
                    f"getSignatureStatuses: asked {len(chunk)}, got {len(value)} statuses"
                )
            out.extend(value)
        return out

    @overload
    async def get_transaction(
        self,
        signature: Signature | str,
        *,
        encoding: Literal["json"] = "json",
        commitment: Commitment | None = None,
    ) -> dict[str, Any] | None: ...

    @overload
    async def get_transaction(
        self,
        signature: Signature | str,
        *,
        encoding: Literal["base64"],
        commitment: Commitment | None = None,
    ) -> ConfirmedTransaction | None: ...

    async def get_transaction(
        self,
        signature: Signature | str,
        *,
        encoding: Literal["json", "base64"] = "json",
        commitment: Commitment | None = None,
    ) -> dict[str, Any] | ConfirmedTransaction | None:
        """A confirmed transaction, or ``None`` if the node does not have it.

        ``json``: the node's result object unchanged (``slot``, ``blockTime``,
        ``version``, ``transaction.message``, ``meta.logMessages``,
        ``meta.innerInstructions``, ``meta.loadedAddresses``, balances, ``err``)
        -- the input of the codec's transaction decoder.
        ``base64``: a :class:`ConfirmedTransaction` with the decoded
        ``VersionedTransaction``.  Version-0 transactions are always accepted
        (``maxSupportedTransactionVersion: 0``).
        """
        if commitment == "processed":
            raise ValueError("getTransaction does not support commitment 'processed'")
        if encoding not in ("json", "base64"):
            raise ValueError(f"encoding must be 'json' or 'base64', got {encoding!r}")
        config = self._config(commitment, encoding=encoding, maxSupportedTransactionVersion=0)
        result, text = await self.request("getTransaction", [str(signature), config])
        if result is None:
            return None
        if not isinstance(result, dict):
            raise RpcResponseError(f"getTransaction: unexpected result {result!r}")
        if encoding == "json":
            return result
        parsed = self._parse("getTransaction", text, GetTransactionResp)
        tx = parsed.transaction.transaction
        if not isinstance(tx, VersionedTransaction):
            raise RpcResponseError("getTransaction: base64 transaction did not decode")
        version = result.get("version")
        return ConfirmedTransaction(
            slot=parsed.slot,
            block_time=parsed.block_time,
            version=version,
            transaction=tx,
            meta=parsed.transaction.meta,
            raw_meta=result.get("meta"),
        )

    async def get_signatures_for_address(
        self,
        address: Pubkey | str,
        *,
        before: Signature | str | None = None,
        until: Signature | str | None = None,
        limit: int | None = None,
        commitment: Commitment | None = None,
        min_context_slot: int | None = None,
    ) -> list[RpcConfirmedTransactionStatusWithSignature]:
        """One page of signatures touching ``address``, newest first, strictly
        older than ``before`` and newer than ``until`` (both exclusive)."""
        if limit is not None and not 1 <= limit <= MAX_SIGNATURES_PAGE:
            raise ValueError(f"limit must be 1..{MAX_SIGNATURES_PAGE}, got {limit}")
        if commitment == "processed":
            raise ValueError("getSignaturesForAddress does not support commitment 'processed'")
        config = self._config(
            commitment,
            before=str(before) if before is not None else None,
            until=str(until) if until is not None else None,
            limit=limit,
            minContextSlot=min_context_slot,
        )
        value: list[RpcConfirmedTransactionStatusWithSignature] = await self._call(
            "getSignaturesForAddress", [str(address), config], GetSignaturesForAddressResp
        )
        return value

    async def iter_signatures_for_address(
        self,
        address: Pubkey | str,
        *,
        before: Signature | str | None = None,
        until: Signature | str | None = None,
        page_size: int = MAX_SIGNATURES_PAGE,
        commitment: Commitment | None = None,
    ) -> AsyncIterator[RpcConfirmedTransactionStatusWithSignature]:
        """Every signature newer than ``until`` (or all of history), newest
        first, paging backwards with ``before`` = the oldest of the last page.

        It stops at an empty page only: a short page does not prove the end,
        since a node serves at most what its ledger (or a slot-bounded scan)
        holds per call.
        """
        cursor = before
        while True:
            page = await self.get_signatures_for_address(
                address, before=cursor, until=until, limit=page_size, commitment=commitment
            )
            if not page:
                return
            for entry in page:
                yield entry
            cursor = page[-1].signature

    # ------------------------------------------------------------------ accounts

    async def get_account_info(
        self,
        pubkey: Pubkey | str,
        *,
        commitment: Commitment | None = None,
        min_context_slot: int | None = None,
    ) -> Account | None:
        config = self._config(commitment, encoding="base64", minContextSlot=min_context_slot)
        value: Account | None = await self._call(
            "getAccountInfo", [str(pubkey), config], GetAccountInfoResp
        )
        return value

    async def get_multiple_accounts(
        self,
        pubkeys: Sequence[Pubkey | str],
        *,
        commitment: Commitment | None = None,
        min_context_slot: int | None = None,
    ) -> list[Account | None]:
        """Accounts in the order asked (``None`` where none exists), in
        sequential calls of at most 100 keys.  Chunks may be served at
        different slots; pass ``min_context_slot`` to bound how old."""
        out: list[Account | None] = []
        for chunk in _chunks(pubkeys, MAX_MULTIPLE_ACCOUNTS):
            config = self._config(commitment, encoding="base64", minContextSlot=min_context_slot)
            value: list[Account | None] = await self._call(
                "getMultipleAccounts", [[str(k) for k in chunk], config], GetMultipleAccountsResp
            )
            if len(value) != len(chunk):
                raise RpcResponseError(
                    f"getMultipleAccounts: asked {len(chunk)} keys, got {len(value)} accounts"
                )
            out.extend(value)
        return out

    async def get_program_accounts(
        self,
        program_id: Pubkey | str,
        *,
        filters: Sequence[ProgramAccountsFilter] = (),
        commitment: Commitment | None = None,
        min_context_slot: int | None = None,
    ) -> list[tuple[Pubkey, Account]]:
        """All accounts owned by ``program_id`` that pass every filter (AND),
        as ``(address, account)`` pairs, data in base64."""
        config = self._config(
            commitment,
            encoding="base64",
            filters=[f.to_json() for f in filters] or None,
            minContextSlot=min_context_slot,
        )
        value = await self._call(
            "getProgramAccounts", [str(program_id), config], GetProgramAccountsResp
        )
        return [(keyed.pubkey, keyed.account) for keyed in value]
