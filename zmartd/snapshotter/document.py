"""Canonical JSON snapshots, written to a file in one streaming pass.

A market's snapshot holds every post of the market created before the cut-off (the end of
the UTC day, or "now" for a day still in progress), in (created_at, id) order::

    {"counts": {"posts": 41, "tombstones": 1, "total": 42},
     "cut_off": "2026-12-05T00:00:00.000000Z",
     "market_id": "7", "period": {"day": "2026-12-04", "end": "...", "start": "..."},
     "posts": [{"content": "...", "content_sha256": "<hex>", "created_at": "...",
                "deleted": false, "edited_at": null, "id": 1, "parent_id": null,
                "wallet": "..."},
               {"created_at": "...", "deleted": true, "id": 2, "parent_id": 1}, ...],
     "schema": "zmartd.discussions/1"}

Canonical means: UTF-8, no insignificant whitespace, object keys sorted by code point,
timestamps as UTC with microseconds and ``Z``, integers as integers.  The same rows give
the same bytes in any process, so the same CID.  A deleted post is a tombstone: its place
in the thread (id, parent, time) without its text, author or hash.

Memory stays bounded whatever the market's size: posts are read in pages
(:data:`PAGE_SIZE`), encoded and appended to a spool file; the counts, which sort before
``posts``, are known only at the end, so the document is then assembled by copying the
spool once behind the header, hashing (CID + sha-256) as it is written.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Final

import msgspec
import trio

from zmartd.snapshotter.cid import StreamHasher
from zmartd.storage import snapshots as store
from zmartd.storage.database import Database
from zmartd.storage.records import AnchorRecord

__all__ = [
    "PAGE_SIZE",
    "ROOT_SCHEMA",
    "SCHEMA",
    "Built",
    "Period",
    "build_market_snapshot",
    "build_root",
    "iso",
]

SCHEMA: Final = "zmartd.discussions/1"
ROOT_SCHEMA: Final = "zmartd.discussions-root/1"
PAGE_SIZE: Final = 5000
_COPY_BLOCK: Final = 1 << 20
_encoder = msgspec.json.Encoder(order="sorted")


def iso(ts: datetime) -> str:
    """The one timestamp spelling of snapshots: UTC, microseconds, ``Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Period:
    """One UTC day, [start, end)."""

    day: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.day, time(0), UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)

    def cutoff(self, now: datetime) -> datetime:
        """Posts created before this are in the snapshot: the day's end, or ``now`` while
        the day lasts."""
        return min(self.end, now)

    def describe(self) -> dict[str, str]:
        return {"day": self.day.isoformat(), "start": iso(self.start), "end": iso(self.end)}


@dataclass(frozen=True, slots=True)
class Built:
    """A finished document on disk (the caller stores then deletes it)."""

    path: Path
    cid: str
    sha256: bytes
    size: int
    post_count: int


def _post(p: store.SnapshotPost) -> dict[str, Any]:
    if p.content is None:
        return {
            "created_at": iso(p.created_at),
            "deleted": True,
            "id": p.id,
            "parent_id": p.parent_id,
        }
    text = p.content.encode()
    return {
        "content": p.content,
        "content_sha256": hashlib.sha256(text).hexdigest(),
        "created_at": iso(p.created_at),
        "deleted": False,
        "edited_at": None if p.edited_at is None else iso(p.edited_at),
        "id": p.id,
        "parent_id": p.parent_id,
        "wallet": p.wallet,
    }


def _append_page(spool: BinaryIO, page: Sequence[store.SnapshotPost], first: bool) -> int:
    """Encode one page of posts onto the spool; returns its tombstone count."""
    dead = 0
    parts: list[bytes] = []
    for p in page:
        if p.content is None:
            dead += 1
        parts.append(_encoder.encode(_post(p)))
    spool.write((b"" if first else b",") + b",".join(parts))
    return dead


def _assemble(head: bytes, spool: BinaryIO, tail: bytes, out: BinaryIO) -> tuple[str, bytes, int]:
    hasher = StreamHasher()

    def emit(data: bytes) -> None:
        hasher.update(data)
        out.write(data)

    emit(head)
    spool.seek(0)
    while block := spool.read(_COPY_BLOCK):
        emit(block)
    emit(tail)
    out.flush()
    os.fsync(out.fileno())
    cid, sha = hasher.finalize()
    return cid, sha, hasher.size


async def build_market_snapshot(
    db: Database,
    market_id: str,
    period: Period,
    *,
    now: datetime,
    workdir: Path,
    page_size: int = PAGE_SIZE,
) -> Built:
    """Write the market's snapshot for ``period`` into ``workdir`` (see the module doc)."""
    cutoff = period.cutoff(now)
    total = dead = 0
    after: tuple[datetime, int] | None = None
    with tempfile.TemporaryFile(dir=workdir) as spool:
        while True:
            page = await store.posts_page(db, market_id, cutoff, after=after, limit=page_size)
            if not page:
                break
            dead += await trio.to_thread.run_sync(_append_page, spool, page, total == 0)
            total += len(page)
            after = (page[-1].created_at, page[-1].id)
            if len(page) < page_size:
                break
        header = _encoder.encode(
            {
                "counts": {"posts": total - dead, "tombstones": dead, "total": total},
                "cut_off": iso(cutoff),
                "market_id": market_id,
                "period": period.describe(),
            }
        )
        head = header[:-1] + b',"posts":['
        tail = b'],"schema":' + _encoder.encode(SCHEMA) + b"}"
        fd, name = tempfile.mkstemp(dir=workdir, prefix="snapshot-", suffix=".json")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                cid, sha, size = await trio.to_thread.run_sync(_assemble, head, spool, tail, out)
        except BaseException:
            os.unlink(path)
            raise
    return Built(path=path, cid=cid, sha256=sha, size=size, post_count=total)


def root_document(period: Period, snapshots: Sequence[AnchorRecord], *, now: datetime) -> bytes:
    """The day's root: every per-market snapshot of the day, by market id."""
    ordered = sorted(snapshots, key=lambda a: a.market_id or "")
    entries = [
        {"bytes": a.size_bytes, "cid": a.cid, "market_id": a.market_id, "posts": a.post_count or 0}
        for a in ordered
    ]
    posts = sum(a.post_count or 0 for a in ordered)
    return _encoder.encode(
        {
            "counts": {"markets": len(entries), "posts": posts},
            "cut_off": iso(period.cutoff(now)),
            "period": period.describe(),
            "schema": ROOT_SCHEMA,
            "snapshots": entries,
        }
    )


async def build_root(
    period: Period,
    snapshots: Sequence[AnchorRecord],
    *,
    now: datetime,
    workdir: Path,
) -> Built:
    """Write the day's root document into ``workdir``."""
    data = root_document(period, snapshots, now=now)

    def _write() -> Built:
        fd, name = tempfile.mkstemp(dir=workdir, prefix="root-", suffix=".json")
        with os.fdopen(fd, "wb") as out:
            hasher = StreamHasher()
            hasher.update(data)
            out.write(data)
        cid, sha = hasher.finalize()
        return Built(
            path=Path(name),
            cid=cid,
            sha256=sha,
            size=len(data),
            post_count=sum(a.post_count or 0 for a in snapshots),
        )

    return await trio.to_thread.run_sync(_write)
