"""User profiles, keyed by wallet.  A row appears on first sign-in or first edit."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from zmartd.storage.database import Database
from zmartd.storage.records import InvalidArgument, UserRecord, rejected

__all__ = ["PROFILE_FIELDS", "get_user", "update_profile", "write_login"]

#: the profile fields a user may set (None clears one)
PROFILE_FIELDS = ("display_name", "bio", "avatar_url", "website_url", "twitter")
#: what update_profile stores: the fields, and the display name's uniqueness key (set
#: with the name by the API's text rules; unique in the table)
_STORED = (*PROFILE_FIELDS, "display_name_key")
_COLUMNS = (
    "wallet, display_name, bio, avatar_url, website_url, twitter, created_at, "
    "updated_at, last_login_at"
)


async def get_user(db: Database, wallet: str) -> UserRecord | None:
    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        return await con.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE wallet = $1::text", wallet)

    row = await db.run("users.get_user", _run, transaction=False)
    return None if row is None else UserRecord(**dict(row))


async def update_profile(
    db: Database, wallet: str, changes: Mapping[str, str | None]
) -> UserRecord:
    """Set the given profile fields (others unchanged), creating the user if needed.

    Unknown fields and values a constraint rejects raise :class:`InvalidArgument`;
    a ``display_name_key`` already used raises ``NotPermitted``.
    """
    unknown = sorted(set(changes) - set(_STORED))
    if unknown:
        raise InvalidArgument(f"unknown profile fields: {', '.join(unknown)}")
    fields = [f for f in _STORED if f in changes]
    values = [changes[f] for f in fields]
    cols = ", ".join(["wallet", *fields])
    params = ", ".join(f"${i}" for i in range(1, len(fields) + 2))
    updates = ", ".join([*(f"{f} = EXCLUDED.{f}" for f in fields), "updated_at = now()"])
    sql = (
        f"INSERT INTO users ({cols}) VALUES ({params}) "
        f"ON CONFLICT (wallet) DO UPDATE SET {updates} RETURNING {_COLUMNS}"
    )

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        row: asyncpg.Record = await con.fetchrow(sql, wallet, *values)
        return row

    try:
        row = await db.run("users.update_profile", _run)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc
    return UserRecord(**dict(row))


async def write_login(con: asyncpg.Connection, wallet: str) -> None:
    """Create the user if new and stamp ``last_login_at`` (asyncio side)."""
    await con.execute(
        "INSERT INTO users (wallet, last_login_at) VALUES ($1, now()) "
        "ON CONFLICT (wallet) DO UPDATE SET last_login_at = now()",
        wallet,
    )
