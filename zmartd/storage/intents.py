"""Intents: what zmartd wants done on chain, stored before anything is signed.

The transaction sender (:mod:`zmartd.sender`) is the only writer of the
lifecycle columns; every transition is one statement guarded by the state
it leaves, so a second sender (which leader election prevents anyway) or a
replay after a crash can never move an intent backwards.  Each function is
one unit of work; :func:`insert_intent` also runs inside a caller's
transaction (the aggregator stores its aggregation and the intent that
carries it on chain atomically).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import asyncpg
import msgspec

from zmartd.storage.database import Database
from zmartd.storage.records import InvalidArgument, NotFound, NotPermitted, check_limit

__all__ = [
    "FINAL_STATES",
    "INTENT_KINDS",
    "INTENT_STATES",
    "IntentKind",
    "IntentRecord",
    "IntentState",
    "count_by_kind_state",
    "get_intent",
    "insert_intent",
    "list_intents",
    "open_intent_ids",
    "record_error",
    "record_expired",
    "record_failed",
    "record_landed",
    "record_sends",
    "record_signed",
    "retry_intent",
    "submit_intent",
]

IntentKind = Literal[
    "aggregate_proposal_votes", "approve_proposal", "finalize_market", "cancel_market"
]
IntentState = Literal["pending", "signed", "landed", "failed"]
INTENT_KINDS: Final[tuple[str, ...]] = (
    "aggregate_proposal_votes",
    "approve_proposal",
    "finalize_market",
    "cancel_market",
)
INTENT_STATES: Final[tuple[str, ...]] = ("pending", "signed", "landed", "failed")
FINAL_STATES: Final = frozenset({"landed", "failed"})
MAX_PAGE: Final = 1000

_COLUMNS: Final = (
    "id, kind, market_id, args, idempotency_key, state, attempts, signature, signed_tx, "
    "last_valid_block_height, signatures, sends, last_error, error_name, landed_slot, "
    "signed_at, landed_at, created_at, updated_at"
)


class IntentRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: IntentKind
    market_id: str
    args: dict[str, Any]
    idempotency_key: str
    state: IntentState
    attempts: int
    #: the live (state signed) or landed transaction's signature
    signature: str | None
    #: the exact signed bytes that are (re)broadcast; never re-signed while live
    signed_tx: bytes | None
    last_valid_block_height: int | None
    signatures: tuple[str, ...]
    sends: int
    last_error: str | None
    error_name: str | None
    landed_slot: int | None
    signed_at: datetime | None
    landed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def _record(row: asyncpg.Record) -> IntentRecord:
    d = dict(row)
    d["args"] = msgspec.json.decode(d["args"]) if isinstance(d["args"], str) else d["args"]
    d["signatures"] = tuple(d["signatures"])
    return IntentRecord(**d)


def _check(kind: str, key: str) -> None:
    if kind not in INTENT_KINDS:
        raise InvalidArgument(f"intent kind must be one of {', '.join(INTENT_KINDS)}, got {kind!r}")
    if not 1 <= len(key) <= 200:
        raise InvalidArgument("an idempotency key has 1..200 characters")


async def insert_intent(
    con: asyncpg.Connection,
    *,
    kind: IntentKind,
    market_id: str,
    args: dict[str, Any],
    key: str,
) -> tuple[IntentRecord, bool]:
    """Store a new intent, or return the one already stored under ``key``
    (asyncio side).  Returns ``(intent, created)``."""
    _check(kind, key)
    row = await con.fetchrow(
        f"INSERT INTO intents (kind, market_id, args, idempotency_key) "
        f"VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (idempotency_key) DO NOTHING "
        f"RETURNING {_COLUMNS}",
        kind,
        market_id,
        msgspec.json.encode(args).decode(),
        key,
    )
    if row is not None:
        return _record(row), True
    row = await con.fetchrow(f"SELECT {_COLUMNS} FROM intents WHERE idempotency_key = $1", key)
    assert row is not None
    existing = _record(row)
    if existing.kind != kind or existing.market_id != market_id or existing.args != args:
        raise InvalidArgument(
            f"idempotency key {key!r} already names intent {existing.id} "
            f"({existing.kind} {existing.market_id} {existing.args}), not this one"
        )
    return existing, False


async def submit_intent(
    db: Database,
    *,
    kind: IntentKind,
    market_id: str,
    args: dict[str, Any],
    key: str,
) -> tuple[IntentRecord, bool]:
    """:func:`insert_intent` as its own unit of work."""

    async def _run(con: asyncpg.Connection) -> tuple[IntentRecord, bool]:
        return await insert_intent(con, kind=kind, market_id=market_id, args=args, key=key)

    return await db.run("intents.submit_intent", _run)


async def get_intent(db: Database, intent_id: int) -> IntentRecord | None:
    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        return await con.fetchrow(f"SELECT {_COLUMNS} FROM intents WHERE id = $1", intent_id)

    row = await db.run("intents.get_intent", _run, transaction=False)
    return None if row is None else _record(row)


async def list_intents(
    db: Database,
    *,
    states: tuple[str, ...] = (),
    limit: int = 100,
) -> list[IntentRecord]:
    """Newest first, optionally only those in ``states``."""
    check_limit(limit, MAX_PAGE)
    for s in states:
        if s not in INTENT_STATES:
            raise InvalidArgument(
                f"intent state must be one of {', '.join(INTENT_STATES)}, got {s!r}"
            )

    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        if states:
            return list(
                await con.fetch(
                    f"SELECT {_COLUMNS} FROM intents WHERE state = ANY($1::text[]) "
                    "ORDER BY id DESC LIMIT $2",
                    list(states),
                    limit,
                )
            )
        return list(
            await con.fetch(f"SELECT {_COLUMNS} FROM intents ORDER BY id DESC LIMIT $1", limit)
        )

    return [_record(r) for r in await db.run("intents.list_intents", _run, transaction=False)]


async def open_intent_ids(db: Database) -> list[int]:
    """Every intent not in a final state, oldest first (what a starting sender resumes)."""

    async def _run(con: asyncpg.Connection) -> list[int]:
        return [
            r["id"]
            for r in await con.fetch(
                "SELECT id FROM intents WHERE state IN ('pending', 'signed') ORDER BY id"
            )
        ]

    return await db.run("intents.open_intent_ids", _run, transaction=False)


async def count_by_kind_state(db: Database) -> dict[tuple[str, str], int]:
    async def _run(con: asyncpg.Connection) -> list[asyncpg.Record]:
        return list(
            await con.fetch("SELECT kind, state, count(*) AS n FROM intents GROUP BY kind, state")
        )

    return {
        (r["kind"], r["state"]): r["n"]
        for r in await db.run("intents.count_by_kind_state", _run, transaction=False)
    }


async def _transition(db: Database, sql: str, *args: Any) -> IntentRecord | None:
    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        return await con.fetchrow(sql + f" RETURNING {_COLUMNS}", *args)

    row = await db.run("intents.transition", _run)
    return None if row is None else _record(row)


async def record_signed(
    db: Database,
    intent_id: int,
    *,
    signature: str,
    signed_tx: bytes,
    last_valid_block_height: int,
) -> IntentRecord | None:
    """pending → signed: the signed bytes are durable before the first send."""
    return await _transition(
        db,
        "UPDATE intents SET state = 'signed', signature = $2::text, signed_tx = $3, "
        "last_valid_block_height = $4, signatures = signatures || $2::text, "
        "attempts = attempts + 1, signed_at = now(), updated_at = now() "
        "WHERE id = $1 AND state = 'pending'",
        intent_id,
        signature,
        signed_tx,
        last_valid_block_height,
    )


async def record_sends(db: Database, intent_id: int, count: int = 1) -> None:
    async def _run(con: asyncpg.Connection) -> None:
        await con.execute("UPDATE intents SET sends = sends + $2 WHERE id = $1", intent_id, count)

    await db.run("intents.record_sends", _run)


async def record_landed(
    db: Database,
    intent_id: int,
    *,
    slot: int | None,
    note: str | None = None,
) -> IntentRecord | None:
    """signed/pending → landed (``note``: e.g. the effect was found on chain)."""
    return await _transition(
        db,
        "UPDATE intents SET state = 'landed', landed_slot = $2, last_error = $3, "
        "error_name = NULL, signed_tx = NULL, landed_at = now(), updated_at = now() "
        "WHERE id = $1 AND state IN ('pending', 'signed')",
        intent_id,
        slot,
        note,
    )


async def record_failed(
    db: Database,
    intent_id: int,
    *,
    error_name: str,
    message: str,
    slot: int | None = None,
) -> IntentRecord | None:
    """pending/signed → failed with a deterministic error (named when the
    program named it)."""
    return await _transition(
        db,
        "UPDATE intents SET state = 'failed', error_name = $2, last_error = $3, "
        "landed_slot = $4, signed_tx = NULL, updated_at = now() "
        "WHERE id = $1 AND state IN ('pending', 'signed')",
        intent_id,
        error_name,
        message,
        slot,
    )


async def record_expired(db: Database, intent_id: int, *, note: str) -> IntentRecord | None:
    """signed → pending after expiry was *proven* (block height past the last
    valid one, the signature unknown with history, the effect absent): the
    next step signs again with a fresh blockhash."""
    return await _transition(
        db,
        "UPDATE intents SET state = 'pending', signature = NULL, signed_tx = NULL, "
        "last_valid_block_height = NULL, last_error = $2, updated_at = now() "
        "WHERE id = $1 AND state = 'signed'",
        intent_id,
        note,
    )


async def record_error(db: Database, intent_id: int, message: str) -> None:
    """A transient problem (RPC down, payer short of lamports): noted, retried."""

    async def _run(con: asyncpg.Connection) -> None:
        await con.execute(
            "UPDATE intents SET last_error = $2, updated_at = now() "
            "WHERE id = $1 AND state IN ('pending', 'signed')",
            intent_id,
            message[:2000],
        )

    await db.run("intents.record_error", _run)


async def retry_intent(db: Database, intent_id: int) -> IntentRecord:
    """failed → pending (a human fixed the cause).  NotFound / NotPermitted."""

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        row = await con.fetchrow(
            f"UPDATE intents SET state = 'pending', signature = NULL, signed_tx = NULL, "
            f"last_valid_block_height = NULL, error_name = NULL, "
            f"last_error = 're-queued by an operator after: ' || coalesce(last_error, '?'), "
            f"updated_at = now() WHERE id = $1 AND state = 'failed' RETURNING {_COLUMNS}",
            intent_id,
        )
        if row is None:
            state = await con.fetchval("SELECT state FROM intents WHERE id = $1", intent_id)
            if state is None:
                raise NotFound(f"intent {intent_id} not found")
            raise NotPermitted(
                f"intent {intent_id} is {state}; only a failed intent can be retried"
            )
        return row

    return _record(await db.run("intents.retry_intent", _run))
