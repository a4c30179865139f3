"""Fault injection for the devchain's JSON-RPC endpoint, to test the
transaction sender against what real clusters and providers do.

Each fault is switched on by a ``zmart_*`` control method (see
:class:`~zmartd.devchain.rpc_server.JsonRpc`) and applies to the requests
that follow; control methods themselves are never faulted, so a test can
always switch faults off again (``zmart_clearFaults``).

* **dropped sends** -- the next *n* ``sendTransaction`` calls answer the
  signature as usual but the transaction is never executed (a leader that
  never got the packet).  Sending the same bytes again lands it.
* **timeout after landing** -- the next *n* ``sendTransaction`` calls
  execute the transaction, then hold the HTTP answer for *seconds*: the
  client times out without knowing that it landed.
* **HTTP 429/503** -- each non-control request is answered with that status
  (no JSON-RPC body) with probability *rate*, for the next *count* requests
  (or until cleared): a rate-limited or overloaded provider.
* **delayed landing** -- accepted transactions execute *k* slots later
  (congestion): they stay unknown to ``getSignatureStatuses`` meanwhile.
* **fast blockhash expiry** -- a blockhash is valid for *n* blocks instead
  of 150, so ``lastValidBlockHeight`` passes within seconds.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from typing import Any

from solders.transaction import VersionedTransaction

from zmartd.devchain.node import MAX_PROCESSING_AGE, Node, Rejected

__all__ = ["Faults"]


@dataclass
class Faults:
    """The active faults of one devchain (all off by default)."""

    node: Node
    rng: random.Random = field(default_factory=lambda: random.Random(0x2A))
    drop_sends: int = 0
    timeout_sends: int = 0
    timeout_seconds: float = 30.0
    http_status: int = 0
    http_rate: float = 0.0
    #: requests left to fault at ``http_rate`` (None = until cleared)
    http_remaining: int | None = None
    landing_delay: int = 0
    #: (slot at which to execute, transaction)
    delayed: list[tuple[int, VersionedTransaction]] = field(default_factory=list)
    #: set by a send that must time out, taken by the HTTP layer for this answer
    hang: float = 0.0
    #: counters, for tests and ``zmart_faults``
    dropped: int = 0
    timed_out: int = 0
    http_errors: int = 0
    delayed_landed: int = 0

    def __post_init__(self) -> None:
        self.node.slot_hooks.append(self.land_due)

    # ------------------------------------------------------------------ controls

    def state(self) -> dict[str, Any]:
        return {
            "dropSends": self.drop_sends,
            "timeoutSends": self.timeout_sends,
            "timeoutSeconds": self.timeout_seconds,
            "httpStatus": self.http_status,
            "httpRate": self.http_rate,
            "httpRemaining": self.http_remaining,
            "landingDelay": self.landing_delay,
            "delayedPending": len(self.delayed),
            "blockhashExpiry": self.node.max_processing_age,
            "dropped": self.dropped,
            "timedOut": self.timed_out,
            "httpErrors": self.http_errors,
            "delayedLanded": self.delayed_landed,
        }

    def clear(self) -> None:
        """Every fault off; transactions already delayed still land on time."""
        self.drop_sends = self.timeout_sends = 0
        self.http_status, self.http_rate, self.http_remaining = 0, 0.0, None
        self.landing_delay = 0
        self.node.max_processing_age = MAX_PROCESSING_AGE

    # ------------------------------------------------------------------ hooks

    def intercept_send(self, tx: VersionedTransaction) -> bool:
        """Called by ``sendTransaction`` before anything else; True = the
        transaction was taken care of here (dropped or delayed)."""
        if self.drop_sends > 0:
            self.drop_sends -= 1
            self.dropped += 1
            return True
        if self.landing_delay > 0:
            self.delayed.append((self.node.slot + self.landing_delay, tx))
            return True
        return False

    def after_send(self) -> None:
        """Called once ``sendTransaction`` executed a transaction."""
        if self.timeout_sends > 0:
            self.timeout_sends -= 1
            self.timed_out += 1
            self.hang = self.timeout_seconds

    def take_hang(self) -> float:
        hang, self.hang = self.hang, 0.0
        return hang

    def http_error(self, body: bytes) -> int | None:
        """The HTTP status to answer this request with instead, or None."""
        if not self.http_status or b'"zmart_' in body:
            return None
        if self.http_remaining is not None:
            if self.http_remaining <= 0:
                self.http_status = 0
                return None
            self.http_remaining -= 1
        if self.rng.random() >= self.http_rate:
            return None
        self.http_errors += 1
        return self.http_status

    # ------------------------------------------------------------------ slot hook

    def land_due(self, slot: int) -> None:
        """Execute the delayed transactions whose slot has come."""
        if not self.delayed:
            return
        due = [tx for at, tx in self.delayed if at <= slot]
        self.delayed = [(at, tx) for at, tx in self.delayed if at > slot]
        for tx in due:
            with contextlib.suppress(Rejected):  # expired meanwhile, or a duplicate
                self.node.submit(tx, verify=True)
                self.delayed_landed += 1
