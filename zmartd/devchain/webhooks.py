"""Helius-style *raw* webhooks from the devchain, for the indexer's tests.

For every transaction that mentions the program and reaches ``confirmed``
(failed ones included: raw webhooks carry them, docs/chain.md §14.3) the
emitter POSTs a JSON array with one element -- the ``getTransaction``
``json`` result plus Helius' ``indexWithinBlock`` -- to the configured URL,
with the configured value echoed verbatim in the ``Authorization`` header
(that is how Helius authenticates, docs/chain.md §14.2).

Like Helius it retries a failed delivery a few times and then drops it.
Two knobs make it *worse* on purpose, because the indexer must cope:
``duplicates`` delivers every webhook that many times, and ``shuffle``
collects deliveries for a short window and sends them in random order.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import trio
from solders.pubkey import Pubkey

from zmartd.devchain.bank import Account
from zmartd.devchain.node import Commitment, Node, SlotInfo, TxRecord
from zmartd.devchain.rpc_wire import transaction_json

__all__ = ["WebhookEmitter", "WebhookStats", "raw_webhook_element"]

_log = logging.getLogger("zmartd.devchain.webhooks")


def raw_webhook_element(record: TxRecord) -> dict[str, Any]:
    """One element of a Helius raw webhook body for ``record``."""
    element = transaction_json(record, encoding="json", include_version=True)
    element["indexWithinBlock"] = record.index
    return element


@dataclass
class WebhookStats:
    queued: int = 0
    delivered: int = 0
    failed: int = 0
    attempts: int = 0


class WebhookEmitter:
    """Observer of a node that POSTs raw webhooks (see the module docstring).

    Run :meth:`run` in a nursery; ``http`` may be shared or mocked
    (``httpx.AsyncClient(transport=...)``).
    """

    def __init__(
        self,
        node: Node,
        url: str,
        *,
        program_id: Pubkey,
        auth_header: str = "",
        duplicates: int = 1,
        shuffle: bool = False,
        shuffle_window: float = 0.3,
        max_attempts: int = 4,
        retry_delay: float = 0.2,
        timeout: float = 5.0,
        http: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if duplicates < 1:
            raise ValueError("duplicates must be >= 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.node = node
        self.url = url
        self.program_id = program_id
        self.auth_header = auth_header
        self.duplicates = duplicates
        self.shuffle = shuffle
        self.shuffle_window = shuffle_window
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.stats = WebhookStats()
        self._http = http
        self._rng = rng or random.Random()
        self._pending: deque[bytes] = deque()
        self._wakeup = trio.Event()
        node.subscribe(self)

    # ------------------------------------------------------------------ observer

    def on_slot(self, info: SlotInfo, root: int) -> None:
        return None

    def on_accounts(
        self, level: Commitment, slot: int, accounts: Sequence[tuple[Pubkey, Account | None]]
    ) -> None:
        return None

    def on_transaction(self, level: Commitment, record: TxRecord) -> None:
        if level != "confirmed" or self.program_id not in record.account_keys:
            return
        body = msgspec.json.encode([raw_webhook_element(record)])
        for _ in range(self.duplicates):
            self._pending.append(body)
            self.stats.queued += 1
        self._wakeup.set()

    # ------------------------------------------------------------------ delivery

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        owns = self._http is None
        http = self._http or httpx.AsyncClient(timeout=self.timeout)
        task_status.started()
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                if self.shuffle:
                    await trio.sleep(self.shuffle_window)
                batch = list(self._pending)
                self._pending.clear()
                if self.shuffle:
                    self._rng.shuffle(batch)
                for body in batch:
                    await self._deliver(http, body)
        finally:
            self.node.unsubscribe(self)
            if owns:
                with trio.CancelScope(shield=True):
                    await http.aclose()

    async def _deliver(self, http: httpx.AsyncClient, body: bytes) -> None:
        headers = {"Content-Type": "application/json"}
        if self.auth_header:
            headers["Authorization"] = self.auth_header
        delay = self.retry_delay
        for attempt in range(1, self.max_attempts + 1):
            self.stats.attempts += 1
            try:
                with trio.fail_after(self.timeout):
                    response = await http.post(self.url, content=body, headers=headers)
                if 200 <= response.status_code < 300:
                    self.stats.delivered += 1
                    return
                reason = f"HTTP {response.status_code}"
            except (httpx.HTTPError, trio.TooSlowError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if attempt < self.max_attempts:
                await trio.sleep(delay)
                delay *= 2
        self.stats.failed += 1
        _log.warning(
            "webhook to %s dropped after %d attempts: %s", self.url, self.max_attempts, reason
        )
