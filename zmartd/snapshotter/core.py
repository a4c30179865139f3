"""One day's snapshots, catch-up and pruning: the work the actor schedules and ``zmartd
snapshot`` runs by hand.

For a day: every market with discussion activity in it gets its snapshot
(:mod:`~zmartd.snapshotter.document`), which is stored through the backend; the CID the
backend reports must equal the one computed while writing the file, or nothing is
anchored (error metric + error log, and the stray content is removed).  Once every
market of the day is anchored, the day's **root** document (the list of those CIDs) is
made the same way.  A day is *complete* once its cut-off is the day's end; complete
snapshots are unique per (market, day) in ``ipfs_anchors``, so running a day twice
changes nothing.  A day still in progress (a manual run for today) gets snapshots up to
"now", recorded as partial; the scheduled run makes the complete one later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from zmartd.snapshotter.backends import Backend, BackendError
from zmartd.snapshotter.document import Built, Period, build_market_snapshot, build_root
from zmartd.snapshotter.metrics import SnapshotMetrics
from zmartd.storage import anchors
from zmartd.storage import snapshots as posts
from zmartd.storage.database import Database
from zmartd.storage.records import AnchorRecord

__all__ = ["DayResult", "Snapshotter", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class DayResult:
    day: date
    made: list[AnchorRecord] = field(default_factory=list)
    #: markets whose complete snapshot already existed
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    root: AnchorRecord | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


class Snapshotter:
    """Snapshots through one backend.  ``clock`` is injectable so tests can warp time."""

    def __init__(
        self,
        db: Database,
        backend: Backend,
        *,
        workdir: Path,
        metrics: SnapshotMetrics,
        log: Any,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.db = db
        self.backend = backend
        self.workdir = workdir
        self.metrics = metrics
        self.log = log
        self.clock = clock

    async def snapshot_day(self, day: date, *, market_id: str | None = None) -> DayResult:
        """Snapshot ``day`` (every active market, or just ``market_id``), then its root."""
        period = Period(day)
        now = self.clock()
        if period.start >= now:
            raise ValueError(f"{day.isoformat()} has not started yet (UTC)")
        complete = period.cutoff(now) == period.end
        result = DayResult(day)
        if market_id is None:
            markets: Sequence[str] = await posts.active_markets(
                self.db, period.start, period.cutoff(now)
            )
        else:
            markets = (market_id,)
        for market in markets:
            if complete and await anchors.complete_snapshot(
                self.db, kind="discussions", market_id=market, period_start=period.start
            ):
                result.skipped += 1
                continue
            self.workdir.mkdir(parents=True, exist_ok=True)
            built = await build_market_snapshot(
                self.db, market, period, now=now, workdir=self.workdir
            )
            anchor = await self._store(built, "discussions", market, period, now)
            if anchor is None:
                result.failed.append(market)
            else:
                result.made.append(anchor)
        if market_id is None and result.ok:
            result.root = await self._root(period, now, complete)
            if result.root is None:
                result.failed.append("root")
            elif complete:
                self.metrics.last_success.set(self.clock().timestamp())
        return result

    async def _root(self, period: Period, now: datetime, complete: bool) -> AnchorRecord | None:
        if complete:
            done = await anchors.complete_snapshot(
                self.db, kind="discussions_root", market_id=None, period_start=period.start
            )
            if done is not None:
                return done
        day = await anchors.day_snapshots(self.db, period.start)
        self.workdir.mkdir(parents=True, exist_ok=True)
        built = await build_root(period, day, now=now, workdir=self.workdir)
        return await self._store(built, "discussions_root", None, period, now)

    async def _store(
        self,
        built: Built,
        kind: Literal["discussions", "discussions_root"],
        market_id: str | None,
        period: Period,
        now: datetime,
    ) -> AnchorRecord | None:
        """Store ``built`` through the backend, verify the CID, record the anchor."""
        label = f"{kind}-{market_id or 'root'}-{period.day.isoformat()}.json"
        try:
            try:
                reported = await self.backend.put(built.path, label)
            except BackendError as exc:
                self.metrics.failures.labels("backend").inc()
                self.log.error(
                    "snapshot not stored: backend failed",
                    kind=kind,
                    market_id=market_id,
                    day=period.day.isoformat(),
                    backend=self.backend.name,
                    error=str(exc),
                )
                return None
            if reported != built.cid:
                self.metrics.failures.labels("cid_mismatch").inc()
                self.log.error(
                    "snapshot not anchored: the backend reported another CID",
                    kind=kind,
                    market_id=market_id,
                    day=period.day.isoformat(),
                    backend=self.backend.name,
                    expected=built.cid,
                    reported=reported,
                )
                await self._discard(reported, built.cid)
                return None
        finally:
            built.path.unlink(missing_ok=True)
        anchor = await anchors.record_snapshot(
            self.db,
            anchors.SnapshotAnchor(
                kind=kind,
                market_id=market_id,
                cid=built.cid,
                content_sha256=built.sha256,
                size_bytes=built.size,
                post_count=built.post_count,
                period_start=period.start,
                period_end=period.end,
                covers_until=period.cutoff(now),
                backend=self.backend.name,
            ),
        )
        self.metrics.made.labels(kind).inc()
        self.metrics.bytes.inc(built.size)
        self.log.info(
            "snapshot anchored",
            kind=kind,
            market_id=market_id,
            day=period.day.isoformat(),
            cid=built.cid,
            bytes=built.size,
            posts=built.post_count,
            backend=self.backend.name,
        )
        return anchor

    async def _discard(self, reported: str, ours: str) -> None:
        """Remove what a mismatched store left: the content under the CID the backend
        reported and, unless an anchor owns it, under ours (a backend may have stored the
        bytes correctly and misreported them)."""
        stray = [reported]
        if ours != reported and await anchors.anchor_by_cid(self.db, ours) is None:
            stray.append(ours)
        for cid in stray:
            try:
                await self.backend.remove(cid)
            except BackendError as exc:
                self.log.warning("could not remove the mismatched content", cid=cid, error=str(exc))

    # ------------------------------------------------------------ schedule

    async def due_days(self, at: tuple[int, int], retention_days: int) -> list[date]:
        """Days whose snapshot time (the next day at ``at`` UTC) has passed and whose root
        is not made yet, oldest first (a gap left behind a later day, e.g. one run by hand,
        is filled too); never before the first post, nor older than the retention period
        (they would be pruned at once)."""
        now = self.clock()
        hour, minute = at
        last_due = (now - timedelta(hours=hour, minutes=minute)).date() - timedelta(days=1)
        oldest = await posts.first_post_at(self.db)
        if oldest is None:
            return []
        first = max(oldest.astimezone(UTC).date(), now.date() - timedelta(days=retention_days - 1))
        done = await anchors.complete_days(self.db, Period(first).start)
        days = (first + timedelta(days=i) for i in range((last_due - first).days + 1))
        return [day for day in days if Period(day).start not in done]

    async def catch_up(self, at: tuple[int, int], retention_days: int) -> list[DayResult]:
        """Snapshot every due day, oldest first; stop at the first day that fails (it is
        retried next round, and later days wait for it)."""
        results = []
        for day in await self.due_days(at, retention_days):
            result = await self.snapshot_day(day)
            results.append(result)
            if not result.ok:
                break
        return results

    async def prune(self, retention_days: int) -> int:
        """Unpin/delete snapshots of days older than ``retention_days``; rows stay.

        Only snapshots stored through the configured backend can be removed; those of a
        backend configured before are left (and counted in a warning) for the operator."""
        cutoff = datetime.combine(
            self.clock().date() - timedelta(days=retention_days), datetime.min.time(), UTC
        )
        pruned = 0
        try:
            while batch := await anchors.prunable(
                self.db, cutoff, backend=self.backend.name, limit=500
            ):
                for anchor in batch:
                    try:
                        await self.backend.remove(anchor.cid)
                    except BackendError as exc:
                        self.metrics.failures.labels("backend").inc()
                        self.log.error(
                            "pruning failed; retrying next round",
                            cid=anchor.cid,
                            backend=self.backend.name,
                            error=str(exc),
                        )
                        return pruned
                    if await anchors.mark_pruned(self.db, anchor.id):
                        pruned += 1
                        self.metrics.pruned.inc()
        finally:
            if pruned:
                self.log.info("snapshots pruned", count=pruned, before=cutoff.isoformat())
        others = await anchors.unprunable(self.db, cutoff, backend=self.backend.name)
        if others:
            self.log.warning(
                "snapshots stored through another backend are due for pruning; remove them "
                "there (the configured backend cannot)",
                count=others,
                backend=self.backend.name,
            )
        return pruned
