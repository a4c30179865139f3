"""Compute budget and relaying: what every transaction zmartd builds shares.

Two parties build zmart-core transactions: the sender (signing with the
backend's keys) and the ``/v1/tx/*`` builder (unsigned, for a user's
wallet).  Both size the compute-unit limit from a simulation plus a margin,
price it from ``getRecentPrioritizationFees`` (a capped percentile), and
both keep a signed transaction alive the same way: send the *same bytes*
with ``maxRetries: 0`` every few seconds until its status settles or its
blockhash provably expired.  Those pieces live here, once.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import structlog
import trio
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from zmartd.chain.rpc import RpcClient, RpcClientError

__all__ = [
    "BUDGET_UNITS",
    "COMPUTE_BUDGET_PROGRAM_ID",
    "DEFAULT_UNITS",
    "MAX_COMPUTE_UNITS",
    "budget_instructions",
    "compute_unit_limit",
    "keep_sending",
    "priority_fee",
    "simulate",
    "simulate_units",
]

log = structlog.get_logger("zmartd.chain.budget")

MAX_COMPUTE_UNITS: Final = 1_400_000
#: the two compute-budget instructions cost 150 CU each, added on top of the margin
BUDGET_UNITS: Final = 300
#: what a simulation that reported no consumption is assumed to have used
DEFAULT_UNITS: Final = 200_000
COMPUTE_BUDGET_PROGRAM_ID: Final = Pubkey.from_string("ComputeBudget111111111111111111111111111111")


def priority_fee(fees: Sequence[int], percentile: int, cap: int) -> int:
    """The ``percentile`` (nearest-rank) of recent per-slot fees, at most ``cap``
    micro-lamports per compute unit; 0 when no fees were reported."""
    if not fees:
        return 0
    ordered = sorted(fees)
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return min(cap, ordered[rank - 1])


def compute_unit_limit(consumed: int, margin: float) -> int:
    """The limit to request for an instruction that consumed ``consumed`` units
    in simulation: the margin on top, plus the budget instructions' own cost."""
    return min(MAX_COMPUTE_UNITS, math.ceil(consumed * (1 + margin)) + BUDGET_UNITS)


def budget_instructions(limit: int, price: int) -> list[Instruction]:
    return [set_compute_unit_limit(limit), set_compute_unit_price(price)]


async def simulate_units(
    rpc: RpcClient,
    payer: Pubkey,
    instruction: Instruction,
    *,
    blockhash: Hash | None = None,
) -> int:
    """Units ``instruction`` consumes, paid by ``payer`` (see :func:`simulate`)."""
    units, _ = await simulate(rpc, payer, instruction, blockhash=blockhash)
    return units


async def simulate(
    rpc: RpcClient,
    payer: Pubkey,
    instruction: Instruction,
    *,
    blockhash: Hash | None = None,
) -> tuple[int, list[str]]:
    """Units ``instruction`` consumes, paid by ``payer``, simulated unsigned
    (``sigVerify: false``), and the simulation's log lines (its events).
    Without ``blockhash`` the node substitutes its latest one
    (``replaceRecentBlockhash: true``), so the simulation needs no blockhash
    round trip first.  Raises :class:`~zmartd.chain.rpc.SimulationFailed` when
    the instruction fails."""
    message = MessageV0.try_compile(
        payer,
        [set_compute_unit_limit(MAX_COMPUTE_UNITS), instruction],
        [],
        blockhash if blockhash is not None else Hash.default(),
    )
    unsigned = VersionedTransaction.populate(message, [Signature.default()])
    result = await rpc.simulate_transaction(
        unsigned,
        sig_verify=False,
        replace_recent_blockhash=blockhash is None,
        commitment="confirmed",
    )
    units = result.get("unitsConsumed")
    logs = [str(line) for line in result.get("logs") or ()]
    return (int(units) if isinstance(units, int) and units > 0 else DEFAULT_UNITS), logs


async def keep_sending(
    rpc: RpcClient,
    raw: bytes,
    last_valid_block_height: int,
    *,
    settled: Callable[[], Awaitable[bool]],
    expired: Callable[[int], Awaitable[bool]],
    on_sent: Callable[[bool], Awaitable[None]] | None = None,
    rebroadcast_interval: float,
    poll_interval: float,
) -> None:
    """Keep one signed transaction alive until it is decided.

    Each round: ``settled()`` (the caller's status check) ends the loop when
    True; once the ``confirmed`` block height passed ``last_valid_block_height``
    ``expired(height)`` decides (True ends the loop, False checks again --
    e.g. a lagging node's "unknown" proves nothing); otherwise the *same
    bytes* are sent with ``maxRetries: 0`` every ``rebroadcast_interval``
    seconds (so no node retries behind our back) and ``on_sent(first)`` is
    told.  A failed send is logged, not raised: the bytes may or may not have
    reached the node, and the status decides."""
    sent_before = False
    last_send = -math.inf
    while True:
        if await settled():
            return
        height = await rpc.get_block_height("confirmed")
        if height > last_valid_block_height:
            if await expired(height):
                return
            continue
        now = trio.current_time()
        if now - last_send >= rebroadcast_interval:
            last_send = now
            try:
                await rpc.send_transaction(raw, skip_preflight=True, max_retries=0)
            except (RpcClientError, OSError) as exc:
                log.info("send failed; the status check decides", error=str(exc))
            else:
                if on_sent is not None:
                    await on_sent(not sent_before)
            sent_before = True
        await trio.sleep(poll_interval)
