"""The indexer's reads from the chain, over :class:`~zmartd.chain.rpc.RpcClient`.

The RPC client already retries transport errors, timeouts and 429s with
backoff and fails over between endpoints; this module adds what the
indexer needs on top: account reads that report their *context slot*
(the slot the account rows will carry), transaction fetches with a bounded
number of concurrent requests, and signature walks with progress.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
import trio
from solders.pubkey import Pubkey

from zmartd.chain.rpc import RpcBatchRefused, RpcClient, RpcResponseError
from zmartd.concurrency import one_error
from zmartd.indexer.effects import AccountSnapshot

__all__ = ["BATCH_SIZE", "ChainSource", "SignatureInfo"]

log = structlog.get_logger("zmartd.indexer.source")

_MAX_KEYS = 100
#: getTransaction calls per JSON-RPC batch; a page of 250 makes 3 batches.
BATCH_SIZE = 100


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    signature: str
    slot: int
    failed: bool


def _data(value: Any) -> bytes | None:
    if value is None:
        return None
    raw = value.get("data") if isinstance(value, dict) else None
    if not (isinstance(raw, list) and len(raw) == 2 and raw[1] == "base64"):
        raise RpcResponseError(f"account data is not base64: {raw!r:.80}")
    return base64.b64decode(raw[0])


class ChainSource:
    """Chain reads at ``confirmed`` for one program."""

    def __init__(
        self,
        rpc: RpcClient,
        program_id: Pubkey,
        *,
        concurrency: int = 8,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.rpc = rpc
        self.program_id = program_id
        self._limit = trio.CapacityLimiter(concurrency)
        #: getTransaction calls per JSON-RPC batch (1 = no batches)
        self.batch_size = batch_size

    async def transaction(self, signature: str) -> dict[str, Any] | None:
        async with self._limit:
            return await self.rpc.get_transaction(signature, commitment="confirmed")

    async def transactions(self, signatures: Sequence[str]) -> list[dict[str, Any] | None]:
        """``getTransaction`` (json) for each, in the order given.

        Sent as JSON-RPC batches of up to :attr:`batch_size` calls (a backfill
        fetches thousands: one HTTP exchange per transaction cost more CPU
        than decoding it), several batches concurrently.  An endpoint that
        refuses a batch halves the size for the rest of the process, down to
        single calls; an element the node answers with an error is fetched
        again on its own, so its error surfaces exactly as for one call.
        """
        out: list[dict[str, Any] | None] = [None] * len(signatures)
        config = {
            "encoding": "json",
            "commitment": "confirmed",
            "maxSupportedTransactionVersion": 0,
        }

        async def one(i: int, sig: str) -> None:
            out[i] = await self.transaction(sig)

        async def chunk(start: int, sigs: Sequence[str]) -> None:
            async with self._limit:
                try:
                    results = await self.rpc.batch(
                        [("getTransaction", [sig, config]) for sig in sigs]
                    )
                except RpcBatchRefused as exc:
                    if self.batch_size > 1:
                        self.batch_size = max(1, min(self.batch_size, len(sigs)) // 2)
                        log.warning(
                            "RPC endpoint refused a batch; smaller batches from now on",
                            error=str(exc.error),
                            batch_size=self.batch_size,
                        )
                    results = [exc] * len(sigs)
            for k, (sig, value) in enumerate(zip(sigs, results, strict=True)):
                if value is None or isinstance(value, dict):
                    out[start + k] = value
                else:  # refused batch or a per-call error: ask for this one alone
                    await one(start + k, sig)

        with one_error():
            async with trio.open_nursery() as nursery:
                i = 0
                while i < len(signatures):
                    size = self.batch_size
                    if size <= 1:
                        nursery.start_soon(one, i, signatures[i])
                        i += 1
                        continue
                    nursery.start_soon(chunk, i, signatures[i : i + size])
                    i += size
        return out

    async def accounts(self, keys: Sequence[Pubkey]) -> AccountSnapshot:
        """Account data at ``confirmed``; the snapshot's slot is the *lowest*
        context slot of the chunks (every chunk is at least that new)."""
        found: dict[Pubkey, bytes | None] = {}
        slot: int | None = None
        ordered = list(dict.fromkeys(keys))
        for i in range(0, len(ordered), _MAX_KEYS):
            chunk = ordered[i : i + _MAX_KEYS]
            async with self._limit:
                result, _ = await self.rpc.request(
                    "getMultipleAccounts",
                    [[str(k) for k in chunk], {"commitment": "confirmed", "encoding": "base64"}],
                )
            if not (
                isinstance(result, dict)
                and isinstance(result.get("value"), list)
                and len(result["value"]) == len(chunk)
            ):
                raise RpcResponseError(f"getMultipleAccounts: unexpected result {result!r:.200}")
            ctx = int(result["context"]["slot"])
            slot = ctx if slot is None else min(slot, ctx)
            for key, value in zip(chunk, result["value"], strict=True):
                found[key] = _data(value)
        return AccountSnapshot(slot=slot or 0, accounts=found)

    async def program_accounts(self, filters: Sequence[dict[str, Any]]) -> AccountSnapshot:
        """``getProgramAccounts`` with its context slot."""
        async with self._limit:
            result, _ = await self.rpc.request(
                "getProgramAccounts",
                [
                    str(self.program_id),
                    {
                        "commitment": "confirmed",
                        "encoding": "base64",
                        "filters": list(filters),
                        "withContext": True,
                    },
                ],
            )
        if not (isinstance(result, dict) and isinstance(result.get("value"), list)):
            raise RpcResponseError(f"getProgramAccounts: unexpected result {result!r:.200}")
        accounts = {
            Pubkey.from_string(item["pubkey"]): _data(item["account"]) for item in result["value"]
        }
        return AccountSnapshot(slot=int(result["context"]["slot"]), accounts=accounts)

    async def signatures(
        self,
        *,
        until: str | None,
        min_slot: int | None = None,
        on_page: Callable[[int], Awaitable[None] | None] | None = None,
    ) -> list[SignatureInfo]:
        """Every program signature newer than ``until`` (exclusive) and at or
        above ``min_slot``, walking back from the newest; returned oldest first."""
        out: list[SignatureInfo] = []
        async for entry in self.rpc.iter_signatures_for_address(
            self.program_id, until=until, commitment="confirmed"
        ):
            if min_slot is not None and entry.slot < min_slot:
                break
            out.append(SignatureInfo(str(entry.signature), entry.slot, entry.err is not None))
            if on_page is not None and len(out) % 1000 == 0:
                res = on_page(len(out))
                if res is not None:
                    await res
        out.reverse()
        return out

    async def slot(self, commitment: str) -> int:
        return await self.rpc.get_slot(commitment)  # type: ignore[arg-type]
