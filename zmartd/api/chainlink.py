"""The HTTP actor's way to the chain: one RPC client and the relay of submitted
transactions, for the app's lifetime.

The ``/v1/tx/*`` routes need RPC (simulation, blockhash, fees, sending).  The
client is made on first use rather than at start: in local mode the chain
double's URLs exist only once the devchain actor runs, and the HTTP actor must
not wait for it to serve reads.  It is closed when the app stops serving.

:class:`Relay` keeps each transaction submitted through ``POST /v1/tx/submit``
alive (the same bytes, ``maxRetries: 0``, every ``rebroadcast_interval``) until
the chain settles it or its blockhash provably expired, with
:func:`zmartd.chain.budget.keep_sending` -- the sender's own loop.  It also
remembers the outcome for ``GET /v1/tx/{signature}``: the chain cannot say
"expired", only "unknown".  That memory is per process (bounded); another
instance answers an expired signature with 404.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, Literal

import structlog
import trio
from solders.signature import Signature
from solders.transaction_status import TransactionConfirmationStatus

from zmartd.api import problems
from zmartd.chain.budget import keep_sending
from zmartd.chain.rpc import RpcClient, RpcClientError
from zmartd.context import ActorContext
from zmartd.model.services import chain_urls

__all__ = ["CHAIN_WAIT", "MAX_TRACKED", "ChainLink", "Relay", "Tracked"]

log = structlog.get_logger("zmartd.api.tx")

#: how long a request waits for the chain's URLs (local mode: the devchain starting)
CHAIN_WAIT: Final = 5.0
#: submitted transactions remembered for GET /v1/tx/{signature}
MAX_TRACKED: Final = 10_000
_SETTLED: Final = (
    TransactionConfirmationStatus.Confirmed,
    TransactionConfirmationStatus.Finalized,
)


@dataclass(slots=True)
class Tracked:
    """One submitted transaction: ``bound`` is a block height its blockhash is
    certainly invalid after; ``state`` what the relay concluded."""

    bound: int
    state: Literal["relaying", "settled", "expired", "abandoned"] = "relaying"


class Relay:
    """Rebroadcasts submitted transactions in the app's background nursery."""

    def __init__(self, *, rebroadcast_interval: float, poll_interval: float) -> None:
        self.rebroadcast_interval = rebroadcast_interval
        self.poll_interval = poll_interval
        self.tracked: OrderedDict[str, Tracked] = OrderedDict()

    def get(self, signature: str) -> Tracked | None:
        return self.tracked.get(signature)

    def track(self, signature: str, bound: int) -> Tracked:
        entry = Tracked(bound)
        self.tracked[signature] = entry
        while len(self.tracked) > MAX_TRACKED:
            self.tracked.popitem(last=False)
        return entry

    async def follow(
        self, rpc: RpcClient, raw: bytes, signature: Signature, entry: Tracked
    ) -> None:
        """Until settled or expired; transient RPC failures are retried, never raised
        (a background task must not take the app down)."""

        async def settled() -> bool:
            status = (
                await rpc.get_signature_statuses([signature], search_transaction_history=True)
            )[0]
            if status is not None and (
                status.err is not None or status.confirmation_status in _SETTLED
            ):
                entry.state = "settled"
                return True
            return False

        async def expired(height: int) -> bool:
            # asked after the height passed: still unknown = it can never land
            status = (
                await rpc.get_signature_statuses([signature], search_transaction_history=True)
            )[0]
            entry.state = "expired" if status is None else "settled"
            return True

        delay = self.poll_interval
        while entry.state == "relaying":
            try:
                await keep_sending(
                    rpc,
                    raw,
                    entry.bound,
                    settled=settled,
                    expired=expired,
                    rebroadcast_interval=self.rebroadcast_interval,
                    poll_interval=self.poll_interval,
                )
            except (RpcClientError, OSError) as exc:
                log.info("relay step failed; retrying", signature=str(signature), error=str(exc))
                await trio.sleep(delay)
                delay = min(delay * 2, 10.0)


class ChainLink:
    """One :class:`RpcClient` made on first use, and the :class:`Relay`."""

    def __init__(self, ctx: ActorContext) -> None:
        self.ctx = ctx
        sender = ctx.config.sender
        self.relay = Relay(
            rebroadcast_interval=sender.rebroadcast_interval,
            poll_interval=min(0.4, sender.rebroadcast_interval),
        )
        self._rpc: RpcClient | None = None
        self._lock = trio.Lock()

    async def rpc(self) -> RpcClient:
        """The client; 503 when the chain's URLs are not known within :data:`CHAIN_WAIT`."""
        if self._rpc is not None:
            return self._rpc
        async with self._lock:
            if self._rpc is None:
                urls: list[str] | None = None
                with trio.move_on_after(CHAIN_WAIT):
                    urls, _ = await chain_urls(self.ctx)
                if not urls:
                    raise problems.Problem("unavailable", "the chain RPC is not available yet")
                self._rpc = RpcClient(urls, timeout=10.0, max_retries=2, commitment="confirmed")
            return self._rpc

    async def aclose(self) -> None:
        if self._rpc is not None:
            await self._rpc.aclose()
            self._rpc = None
