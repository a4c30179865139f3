"""The admin audit log: append-only (a trigger rejects UPDATE and DELETE).

Use :func:`write_admin_action` inside the unit of work that performs the admin
action, so the action and its record commit or roll back together.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import asyncpg
import msgspec

from zmartd.storage.cursors import BIGINT, TIME
from zmartd.storage.database import Database
from zmartd.storage.records import (
    AuditEntry,
    Page,
    check_limit,
    rejected,
)

__all__ = ["list_admin_actions", "record_admin_action", "write_admin_action"]

_COLUMNS = "id, at, actor, action, target_type, target_id, details, ip, request_id"


def _entry(row: asyncpg.Record) -> AuditEntry:
    data: dict[str, Any] = dict(row)
    data["details"] = msgspec.json.decode(data["details"])
    data["ip"] = None if data["ip"] is None else str(data["ip"])
    return AuditEntry(**data)


async def write_admin_action(
    con: asyncpg.Connection,
    *,
    actor: str,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
    ip: IPv4Address | IPv6Address | None = None,
    request_id: str | None = None,
) -> AuditEntry:
    """Append one entry (asyncio side)."""
    row: asyncpg.Record = await con.fetchrow(
        f"INSERT INTO admin_audit_log (actor, action, target_type, target_id, details, ip, "
        f"request_id) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7) RETURNING {_COLUMNS}",
        actor,
        action,
        target_type,
        target_id,
        msgspec.json.encode(details or {}).decode(),
        ip,
        request_id,
    )
    return _entry(row)


async def record_admin_action(
    db: Database,
    *,
    actor: str,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
    ip: IPv4Address | IPv6Address | None = None,
    request_id: str | None = None,
) -> AuditEntry:
    """:func:`write_admin_action` as its own transaction."""

    async def _run(con: asyncpg.Connection) -> AuditEntry:
        return await write_admin_action(
            con,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details,
            ip=ip,
            request_id=request_id,
        )

    try:
        return await db.run("audit.record_admin_action", _run)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc


async def list_admin_actions(
    db: Database,
    *,
    actor: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[AuditEntry]:
    """Entries newest first, optionally for one actor or one target."""
    check_limit(limit, 500)
    kind = "audit"
    where: list[str] = []
    args: list[Any] = []
    if actor is not None:
        args.append(actor)
        where.append(f"actor = ${len(args)}")
    if target_type is not None:
        args.append(target_type)
        where.append(f"target_type = ${len(args)}")
    if target_id is not None:
        args.append(target_id)
        where.append(f"target_id = ${len(args)}")
    if cursor is not None:
        at, last_id = db.cursors.decode(cursor, kind, (TIME, BIGINT))
        args += [at, last_id]
        where.append(f"(at, id) < (${len(args) - 1}::timestamptz, ${len(args)}::bigint)")
    args.append(limit + 1)
    sql = (
        f"SELECT {_COLUMNS} FROM admin_audit_log "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + f"ORDER BY at DESC, id DESC LIMIT ${len(args)}"
    )

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await con.fetch(sql, *args)
        return rows

    rows = await db.run("audit.list_admin_actions", _run, transaction=False)
    items = tuple(_entry(r) for r in rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        next_cursor = db.cursors.encode(kind, (items[-1].at, items[-1].id))
    return Page(items=items, next_cursor=next_cursor)
