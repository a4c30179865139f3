"""The live feed: a PubSub ``logsSubscribe`` on the program id at
``confirmed``, published on the bus.

Notifications go to ``chain.logs`` (:class:`~zmartd.bus.ProgramLogs`, block
policy: a slow indexer slows the listener instead of losing a transaction)
and every lost connection or stall the PubSub client detects goes to
``chain.gaps`` (:class:`~zmartd.bus.ChainGap`), which makes the indexer
backfill.  The client reconnects and resubscribes by itself.
"""

from __future__ import annotations

import trio
from solders.pubkey import Pubkey

from zmartd.bus import Bus, ChainGap
from zmartd.chain.pubsub import open_pubsub

__all__ = ["run_listener"]


async def run_listener(
    bus: Bus,
    ws_url: str,
    program_id: Pubkey,
    *,
    heartbeat_timeout: float = 30.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Forward notifications and gaps to the bus until cancelled; ``started``
    once the subscription is confirmed (so a backfill begun after it cannot
    miss what the feed has not yet delivered)."""
    gaps_send, gaps_recv = trio.open_memory_channel[ChainGap](256)

    async def forward_gaps() -> None:
        async for gap in gaps_recv:
            await bus.publish("chain.gaps", gap)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(forward_gaps)
        async with open_pubsub(
            ws_url,
            gap_channel=gaps_send,
            commitment="confirmed",
            heartbeat_timeout=heartbeat_timeout,
        ) as ps:
            subscription = ps.logs_subscribe(program_id, commitment="confirmed", name="logs")
            async with subscription as sub:
                task_status.started()
                async for note in sub:
                    await bus.publish("chain.logs", note)
        nursery.cancel_scope.cancel()
