"""Operator alerts (the market monitor's), one row per condition.

The monitor reports, every cycle, the full set of conditions it sees.  Each is
stored under its dedup key by :func:`observe`: a new (or returning) condition
starts a firing episode and must be notified; a persisting one only moves
``last_seen``/``count`` and is notified again once ``repeat_after`` passed since
the last notice.  :func:`resolve_absent` closes the episodes whose condition
was not seen this cycle (each then gets one "resolved" notice).  Alert times
are this server's clock: they say when zmartd noticed, for the operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import asyncpg
import msgspec

from zmartd.storage.cursors import BIGINT
from zmartd.storage.database import Database
from zmartd.storage.records import InvalidArgument, Page, check_limit

__all__ = [
    "SEVERITIES",
    "AlertRecord",
    "Observation",
    "Severity",
    "firing_by_severity",
    "list_alerts",
    "observe",
    "record_notified",
    "resolve_absent",
]

Severity = Literal["info", "warning", "critical"]
SEVERITIES: Final[tuple[str, ...]] = ("info", "warning", "critical")
STATES: Final[tuple[str, ...]] = ("firing", "resolved")
MAX_PAGE: Final = 500

_COLUMNS: Final = (
    "id, dedup_key, severity, title, details, state, first_seen, last_seen, count, "
    "resolved_at, notified_at, notified, notify_failures"
)


class Observation(msgspec.Struct, frozen=True, kw_only=True):
    """A condition the monitor sees now."""

    key: str
    severity: Severity
    title: str
    details: dict[str, Any] = {}


class AlertRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    dedup_key: str
    severity: Severity
    title: str
    details: dict[str, Any]
    state: Literal["firing", "resolved"]
    first_seen: datetime
    last_seen: datetime
    count: int
    resolved_at: datetime | None
    notified_at: datetime | None
    notified: tuple[str, ...]
    notify_failures: int


def _record(row: asyncpg.Record) -> AlertRecord:
    d = dict(row)
    d["details"] = (
        msgspec.json.decode(d["details"]) if isinstance(d["details"], str) else d["details"]
    )
    d["notified"] = tuple(d["notified"])
    return AlertRecord(**d)


async def observe(
    db: Database, obs: Observation, *, repeat_after: float
) -> tuple[AlertRecord, Literal["new", "repeat", "quiet"]]:
    """Store that ``obs`` holds now.  Returns the alert and whether a notice is
    due: "new" (a new or returning condition), "repeat" (still firing and the
    last notice is older than ``repeat_after`` seconds) or "quiet"."""
    if obs.severity not in SEVERITIES:
        raise InvalidArgument(f"severity must be one of {', '.join(SEVERITIES)}")
    details = msgspec.json.encode(obs.details).decode()

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        row = await con.fetchrow(
            "INSERT INTO alerts AS a (dedup_key, severity, title, details) "
            "VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (dedup_key) DO UPDATE SET "
            "severity = EXCLUDED.severity, title = EXCLUDED.title, details = EXCLUDED.details, "
            "last_seen = now(), "
            "count = CASE WHEN a.state = 'firing' THEN a.count + 1 ELSE 1 END, "
            "first_seen = CASE WHEN a.state = 'firing' THEN a.first_seen ELSE now() END, "
            "notified_at = CASE WHEN a.state = 'firing' THEN a.notified_at END, "
            "notified = CASE WHEN a.state = 'firing' THEN a.notified ELSE '{}' END, "
            "state = 'firing', resolved_at = NULL "
            f"RETURNING {_COLUMNS}",
            obs.key,
            obs.severity,
            obs.title,
            details,
        )
        assert row is not None
        return row

    alert = _record(await db.run("alerts.observe", _run))
    if alert.notified_at is None:
        return alert, "new"
    if alert.last_seen - alert.notified_at >= timedelta(seconds=repeat_after):
        return alert, "repeat"
    return alert, "quiet"


async def resolve_absent(db: Database, present: Sequence[str]) -> list[AlertRecord]:
    """Close every firing alert whose key is not in ``present``; returns them."""

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        return list(
            await con.fetch(
                "UPDATE alerts SET state = 'resolved', resolved_at = now(), notified_at = NULL, "
                "notified = '{}' WHERE state = 'firing' AND NOT (dedup_key = ANY($1::text[])) "
                f"RETURNING {_COLUMNS}",
                list(present),
            )
        )

    return [_record(r) for r in await db.run("alerts.resolve_absent", _run)]


async def record_notified(db: Database, alert_id: int, *, sent: Sequence[str], failed: int) -> None:
    """The notice of the alert's current state went out to ``sent`` channels
    (``failed`` channels gave up after their retries).  Marked as notified even
    when every channel failed, so a dead channel is not retried every cycle
    (the next attempt comes after ``repeat_after``; failures are counted)."""

    async def _run(con: asyncpg.Connection) -> None:
        await con.execute(
            "UPDATE alerts SET notified_at = now(), notified = $2::text[], "
            "notify_failures = notify_failures + $3 WHERE id = $1",
            alert_id,
            list(sent),
            failed,
        )

    await db.run("alerts.record_notified", _run)


async def firing_by_severity(db: Database) -> dict[str, int]:
    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        return list(
            await con.fetch(
                "SELECT severity, count(*) AS n FROM alerts WHERE state = 'firing' "
                "GROUP BY severity"
            )
        )

    rows = await db.run("alerts.firing_by_severity", _run, transaction=False)
    out = dict.fromkeys(SEVERITIES, 0)
    out.update({r["severity"]: int(r["n"]) for r in rows})
    return out


async def list_alerts(
    db: Database,
    *,
    state: str | None = None,
    severity: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[AlertRecord]:
    """Alerts newest first (by id), optionally in one state and/or severity."""
    check_limit(limit, MAX_PAGE)
    if state is not None and state not in STATES:
        raise InvalidArgument(f"state must be one of {', '.join(STATES)}, got {state!r}")
    if severity is not None and severity not in SEVERITIES:
        raise InvalidArgument(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    kind = "alerts"
    where: list[str] = []
    args: list[Any] = []
    if state is not None:
        args.append(state)
        where.append(f"state = ${len(args)}")
    if severity is not None:
        args.append(severity)
        where.append(f"severity = ${len(args)}")
    if cursor is not None:
        (last_id,) = db.cursors.decode(cursor, kind, (BIGINT,))
        args.append(last_id)
        where.append(f"id < ${len(args)}::bigint")
    args.append(limit + 1)
    sql = (
        f"SELECT {_COLUMNS} FROM alerts "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + f"ORDER BY id DESC LIMIT ${len(args)}"
    )

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        return list(await con.fetch(sql, *args))

    rows = await db.run("alerts.list_alerts", _run, transaction=False)
    items = tuple(_record(r) for r in rows[:limit])
    next_cursor = db.cursors.encode(kind, (items[-1].id,)) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)
