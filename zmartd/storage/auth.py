"""Sign-In-With-Solana nonces and sessions.

* A nonce is bound to a wallet and a domain, expires, and is consumed at most
  once: :func:`consume_nonce` is a single ``UPDATE ... WHERE used_at IS NULL AND
  expires_at > now() RETURNING``, so two concurrent sign-ins with the same
  nonce cannot both succeed.
* A session token is returned once by :func:`create_session`; only its sha256
  is stored, so the table alone cannot be used to impersonate anyone.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from datetime import timedelta
from ipaddress import IPv4Address, IPv6Address

import asyncpg

from zmartd.storage.database import Database
from zmartd.storage.records import InvalidArgument, NonceRecord, SessionRecord, rejected
from zmartd.storage.users import write_login

__all__ = [
    "consume_nonce",
    "create_nonce",
    "create_session",
    "get_session",
    "hash_token",
    "purge_expired",
    "revoke_session",
    "revoke_wallet_sessions",
]

_ALPHANUMERIC = string.ascii_letters + string.digits
_NONCE_COLUMNS = "nonce, wallet, domain, issued_at, expires_at, used_at"
_SESSION_COLUMNS = "id, wallet, created_at, expires_at, last_seen_at, revoked_at"


def hash_token(token: str) -> bytes:
    """What is stored for a session token: sha256 of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def _positive(ttl: timedelta) -> None:
    if ttl <= timedelta(0):
        raise InvalidArgument("ttl must be positive")


async def create_nonce(db: Database, *, wallet: str, domain: str, ttl: timedelta) -> NonceRecord:
    """A fresh random nonce (24 alphanumerics, as SIWS requires ≥ 8) for this wallet+domain."""
    _positive(ttl)
    nonce = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(24))

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        row: asyncpg.Record = await con.fetchrow(
            f"INSERT INTO auth_nonces (nonce, wallet, domain, expires_at) "
            f"VALUES ($1, $2, $3, now() + $4::interval) RETURNING {_NONCE_COLUMNS}",
            nonce,
            wallet,
            domain,
            ttl,
        )
        return row

    try:
        return NonceRecord(**dict(await db.run("auth.create_nonce", _run)))
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc


async def consume_nonce(
    db: Database, *, nonce: str, wallet: str, domain: str
) -> NonceRecord | None:
    """Use the nonce once; None if unknown, for another wallet/domain, expired or used."""

    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        return await con.fetchrow(
            f"UPDATE auth_nonces SET used_at = now() "
            f"WHERE nonce = $1::text AND wallet = $2::text AND domain = $3::text "
            f"AND used_at IS NULL AND expires_at > now() RETURNING {_NONCE_COLUMNS}",
            nonce,
            wallet,
            domain,
        )

    row = await db.run("auth.consume_nonce", _run)
    return None if row is None else NonceRecord(**dict(row))


async def create_session(
    db: Database,
    *,
    wallet: str,
    ttl: timedelta,
    user_agent: str | None = None,
    ip: IPv4Address | IPv6Address | None = None,
) -> tuple[str, SessionRecord]:
    """A new session for ``wallet`` (created as a user if new): ``(token, record)``.

    The token (43 url-safe characters, 256 bits) is returned only here.
    """
    _positive(ttl)
    token = secrets.token_urlsafe(32)
    if user_agent is not None:
        user_agent = user_agent[:512]

    async def _run(con: asyncpg.Connection) -> asyncpg.Record:
        await write_login(con, wallet)
        row: asyncpg.Record = await con.fetchrow(
            f"INSERT INTO sessions (token_hash, wallet, expires_at, user_agent, ip) "
            f"VALUES ($1, $2, now() + $3::interval, $4, $5) RETURNING {_SESSION_COLUMNS}",
            hash_token(token),
            wallet,
            ttl,
            user_agent,
            ip,
        )
        return row

    try:
        row = await db.run("auth.create_session", _run)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise rejected(exc) from exc
    return token, SessionRecord(**dict(row))


async def get_session(db: Database, token: str) -> SessionRecord | None:
    """The live (not expired, not revoked) session of ``token``, or None."""

    async def _run(con: asyncpg.Connection) -> asyncpg.Record | None:
        return await con.fetchrow(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE token_hash = $1 "
            f"AND revoked_at IS NULL AND expires_at > now()",
            hash_token(token),
        )

    row = await db.run("auth.get_session", _run, transaction=False)
    return None if row is None else SessionRecord(**dict(row))


async def revoke_session(db: Database, token: str) -> bool:
    """Revoke one session (sign-out); False if it was not live."""

    async def _run(con: asyncpg.Connection) -> str:
        status: str = await con.execute(
            "UPDATE sessions SET revoked_at = now() WHERE token_hash = $1 "
            "AND revoked_at IS NULL AND expires_at > now()",
            hash_token(token),
        )
        return status

    return (await db.run("auth.revoke_session", _run)) != "UPDATE 0"


async def revoke_wallet_sessions(db: Database, wallet: str) -> int:
    """Revoke every live session of a wallet (sign out everywhere); returns how many."""

    async def _run(con: asyncpg.Connection) -> str:
        status: str = await con.execute(
            "UPDATE sessions SET revoked_at = now() WHERE wallet = $1::text "
            "AND revoked_at IS NULL AND expires_at > now()",
            wallet,
        )
        return status

    return int((await db.run("auth.revoke_wallet_sessions", _run)).rsplit(" ", 1)[-1])


async def purge_expired(db: Database, *, session_grace: timedelta = timedelta(days=1)) -> int:
    """Delete expired nonces, and sessions that expired more than ``session_grace`` ago;
    returns the rows deleted.

    An expired nonce can never be consumed (nor can the message that names it be
    verified), so it goes at once: anyone can make the server write nonces, and the
    table must not grow with them.  Both deletes use the ``expires_at`` indexes.
    """

    async def _run(con: asyncpg.Connection) -> int:
        a: str = await con.execute("DELETE FROM auth_nonces WHERE expires_at < now()")
        b: str = await con.execute(
            "DELETE FROM sessions WHERE expires_at < now() - $1::interval", session_grace
        )
        return int(a.rsplit(" ", 1)[-1]) + int(b.rsplit(" ", 1)[-1])

    return await db.run("auth.purge_expired", _run)
