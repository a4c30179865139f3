"""Single use of the legacy wallet-signature header (migration 0010).

The original frontend's ``Authorization: Signature ...`` credential has no
nonce: whoever sees one header could use it again.  Each accepted signature is
recorded here until its validity window has passed; recording it a second time
fails, so a header authorizes exactly one request.  Expired rows are deleted by
the same statement, so the table holds at most one window of signatures.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from zmartd.storage.database import Database

__all__ = ["consume"]


async def consume(
    db: Database,
    *,
    signature: str,
    wallet: str,
    signed_at: datetime,
    expires_at: datetime,
    now: datetime,
) -> bool:
    """Record ``signature`` as used; False when it was already used (a replay)."""

    async def _run(con: asyncpg.Connection) -> bool:
        await con.execute("DELETE FROM legacy_signatures WHERE expires_at < $1::timestamptz", now)
        row = await con.fetchrow(
            "INSERT INTO legacy_signatures (signature, wallet, signed_at, expires_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (signature) DO NOTHING RETURNING 1",
            signature,
            wallet,
            signed_at,
            expires_at,
        )
        return row is not None

    return await db.run("legacy_signatures.consume", _run)
