"""The ``snapshotter`` actor: daily discussion snapshots, leader-only.

Each round (at start, then every day at ``[snapshotter] at`` UTC): catch up every day
whose snapshot time has passed and whose root is not made yet, oldest first
(:meth:`~zmartd.snapshotter.core.Snapshotter.catch_up`), then prune what is older than
``retention_days``.  A round that failed (backend down, CID mismatch) is retried after
:data:`RETRY_DELAY`.  Sleeps are cut into pieces of at most :data:`MAX_SLEEP` and the
wall clock re-read after each, so a suspended host or a clock step cannot make it miss
a day for long.

Only one instance per database snapshots: the actor first takes a session advisory lock
(:func:`zmartd.storage.leader.lead`); the others stand by.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import trio

from zmartd.concurrency import cancel_on
from zmartd.config import SnapshotterConfig
from zmartd.context import ActorContext
from zmartd.snapshotter.backends import make_backend
from zmartd.snapshotter.core import Snapshotter
from zmartd.snapshotter.metrics import snapshot_metrics
from zmartd.storage.blobs import BlobStore
from zmartd.storage.database import Database
from zmartd.storage.leader import lead, lock_key

__all__ = [
    "LOCK_KEY",
    "MAX_SLEEP",
    "RETRY_DELAY",
    "next_run",
    "parse_at",
    "run",
    "run_round",
]

#: advisory lock key of the snapshotter leader (one per role: :data:`zmartd.storage.leader.ROLES`)
LOCK_KEY: Final = lock_key("snapshotter")
RETRY_DELAY: Final = 300.0
MAX_SLEEP: Final = 300.0


def parse_at(text: str) -> tuple[int, int]:
    hour, minute = text.split(":")
    return int(hour), int(minute)


def next_run(now: datetime, at: tuple[int, int]) -> datetime:
    """The first ``at`` (UTC) strictly after ``now``."""
    today = now.astimezone(UTC).replace(hour=at[0], minute=at[1], second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)


async def run_round(snap: Snapshotter, cfg: SnapshotterConfig) -> bool:
    """One round: catch up, then prune.  True when every due day was anchored."""
    results = await snap.catch_up(parse_at(cfg.at), cfg.retention_days)
    await snap.prune(cfg.retention_days)
    return all(r.ok for r in results)


async def run(
    ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
) -> None:
    """The actor (see the module docstring)."""
    cfg = ctx.config.snapshotter
    metrics = snapshot_metrics(ctx.metrics.registry)
    task_status.started()
    backend = make_backend(cfg, ctx.config.daemon.data_dir)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_on, stopping, nursery.cancel_scope)

            def waiting() -> None:
                ctx.log.info("another instance holds the snapshotter lock; standing by")

            async def snapshot(db: Database) -> None:
                metrics.leader.set(1)
                ctx.log.info(
                    "snapshotter lock acquired: this instance snapshots",
                    backend=backend.name,
                    at=cfg.at,
                )
                try:
                    workdir = BlobStore.under(ctx.config.daemon.data_dir).workdir()
                    # half-written files of a cancelled round (only the leader writes)
                    await trio.to_thread.run_sync(_clear, workdir)
                    snap = Snapshotter(db, backend, workdir=workdir, metrics=metrics, log=ctx.log)
                    await _serve(ctx, snap, cfg)
                finally:
                    metrics.leader.set(0)

            await lead(ctx, LOCK_KEY, snapshot, on_wait=waiting)
    finally:
        metrics.leader.set(0)
        with trio.CancelScope(shield=True):
            await backend.aclose()


async def _serve(ctx: ActorContext, snap: Snapshotter, cfg: SnapshotterConfig) -> None:
    at = parse_at(cfg.at)
    while True:
        ok = await run_round(snap, cfg)
        now = snap.clock()
        due = now + timedelta(seconds=RETRY_DELAY) if not ok else next_run(now, at)
        while True:  # re-read the wall clock at least every MAX_SLEEP seconds
            left = (due - snap.clock()).total_seconds()
            if left <= 0:
                break
            await trio.sleep(min(left, MAX_SLEEP))


def _clear(workdir: Path) -> None:
    for leftover in workdir.iterdir():
        leftover.unlink(missing_ok=True)
