"""Discussions: posts per market, threaded by ``parent_id``, soft-deleted.

A deleted post keeps its row (so replies keep their place in the thread) but
reads return ``content=None`` and ``deleted=True``: deleted text never leaves
storage.  Threads page by their top-level post, newest first; each comes with
all its replies in creation order (one recursive query).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from zmartd.storage.cursors import BIGINT, TIME
from zmartd.storage.database import Database
from zmartd.storage.records import (
    DiscussionRecord,
    DiscussionThread,
    NotFound,
    NotPermitted,
    Page,
    check_limit,
    rejected,
)

__all__ = ["MAX_PAGE", "delete_post", "edit_post", "get_post", "list_threads", "post"]

MAX_PAGE = 50

# Content is blanked in SQL, so a deleted post's text is never even fetched.
_COLUMNS = (
    "id, market_id, parent_id, wallet, "
    "CASE WHEN deleted_at IS NULL THEN content END AS content, "
    "created_at, edited_at, deleted_at IS NOT NULL AS deleted"
)


def _record(row: asyncpg.Record) -> DiscussionRecord:
    data: dict[str, Any] = dict(row)
    data.pop("root", None)
    return DiscussionRecord(**data)


async def post(
    db: Database, *, market_id: str, wallet: str, content: str, parent_id: int | None = None
) -> DiscussionRecord:
    """Add a post (a reply when ``parent_id`` is given; the parent must be in the market)."""

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        if parent_id is not None:
            parent = await con.fetchrow(
                "SELECT market_id, deleted_at FROM discussions WHERE id = $1", parent_id
            )
            if parent is None or parent["market_id"] != market_id:
                raise NotFound(f"post {parent_id} not found in market {market_id}")
            if parent["deleted_at"] is not None:
                raise NotPermitted("cannot reply to a deleted post")
        row: asyncpg.Record = await con.fetchrow(
            f"INSERT INTO discussions (market_id, parent_id, wallet, content) "
            f"VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
            market_id,
            parent_id,
            wallet,
            content,
        )
        return row

    try:
        return _record(await db.run("discussions.post", _run))
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc


async def get_post(db: Database, post_id: int) -> DiscussionRecord | None:
    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        return await con.fetchrow(f"SELECT {_COLUMNS} FROM discussions WHERE id = $1", post_id)

    row = await db.run("discussions.get_post", _run, transaction=False)
    return None if row is None else _record(row)


async def edit_post(db: Database, *, post_id: int, wallet: str, content: str) -> DiscussionRecord:
    """Replace the text of one's own, not deleted, post."""

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        row = await con.fetchrow(
            f"UPDATE discussions SET content = $3, edited_at = now() "
            f"WHERE id = $1 AND wallet = $2::text AND deleted_at IS NULL RETURNING {_COLUMNS}",
            post_id,
            wallet,
            content,
        )
        if row is None:
            raise await _why_not(con, post_id)
        return row

    try:
        return _record(await db.run("discussions.edit_post", _run))
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc


async def delete_post(
    db: Database, *, post_id: int, deleted_by: str, moderator: bool = False
) -> DiscussionRecord:
    """Soft-delete a post: by its author, or by a moderator (``moderator=True``).

    ``deleted_by`` is the author's wallet or the moderator's identity (kept for
    the audit trail).  Deleting an already deleted post is :class:`NotFound`.
    """

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        row = await con.fetchrow(
            f"UPDATE discussions SET deleted_at = now(), deleted_by = $2 "
            f"WHERE id = $1 AND deleted_at IS NULL AND ($3 OR wallet = $2::text) "
            f"RETURNING {_COLUMNS}",
            post_id,
            deleted_by,
            moderator,
        )
        if row is None:
            raise await _why_not(con, post_id)
        return row

    try:
        return _record(await db.run("discussions.delete_post", _run))
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc


async def _why_not(con: asyncpg.Connection, post_id: int) -> Exception:
    deleted = await con.fetchval(
        "SELECT deleted_at IS NOT NULL FROM discussions WHERE id = $1", post_id
    )
    if deleted is None or deleted:
        return NotFound(f"post {post_id} not found")
    return NotPermitted("only the author may change this post")


_THREADS = """
WITH RECURSIVE roots AS (
    SELECT id FROM discussions
    WHERE market_id = $1::text AND parent_id IS NULL {after}
    ORDER BY created_at DESC, id DESC
    LIMIT $2
), tree AS (
    SELECT d.id, d.id AS root FROM discussions d JOIN roots r ON r.id = d.id
    UNION ALL
    SELECT c.id, t.root FROM discussions c JOIN tree t ON c.parent_id = t.id
)
SELECT t.root, d.id, d.market_id, d.parent_id, d.wallet,
       CASE WHEN d.deleted_at IS NULL THEN d.content END AS content,
       d.created_at, d.edited_at, d.deleted_at IS NOT NULL AS deleted
FROM tree t JOIN discussions d ON d.id = t.id
ORDER BY t.root, d.created_at, d.id
"""


async def list_threads(
    db: Database, market_id: str, *, limit: int = 20, cursor: str | None = None
) -> Page[DiscussionThread]:
    """Top-level posts of a market, newest first, each with all its replies."""
    check_limit(limit, MAX_PAGE)
    kind = "discussions:market"
    args: list[Any] = [market_id, limit + 1]
    after = ""
    if cursor is not None:
        at, last_id = db.cursors.decode(cursor, kind, (TIME, BIGINT))
        args += [at, last_id]
        after = "AND (created_at, id) < ($3::timestamptz, $4::bigint)"
    sql = _THREADS.replace("{after}", after)

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(sql, *args)
        return rows

    rows = await db.run("discussions.list_threads", _run, transaction=False)
    roots: dict[int, DiscussionRecord] = {}
    replies: dict[int, list[DiscussionRecord]] = {}
    for row in rows:
        rec = _record(row)
        if rec.id == row["root"]:
            roots[rec.id] = rec
            replies.setdefault(rec.id, [])
        else:
            replies.setdefault(row["root"], []).append(rec)
    ordered = sorted(roots.values(), key=lambda r: (r.created_at, r.id), reverse=True)
    threads = tuple(DiscussionThread(root=r, replies=tuple(replies[r.id])) for r in ordered[:limit])
    next_cursor = None
    if len(ordered) > limit:
        last = threads[-1].root
        next_cursor = db.cursors.encode(kind, (last.created_at, last.id))
    return Page(items=threads, next_cursor=next_cursor)
