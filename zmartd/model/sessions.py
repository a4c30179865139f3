"""Who is calling: the session behind a bearer token, shared by the REST API and the
WebSocket hub (``user:<wallet>`` channels need one), so both answer the same for the same
token. Sessions are created by SIWS sign-in (:mod:`zmartd.api.handlers.auth`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from zmartd.config import Config
from zmartd.storage import auth as store
from zmartd.storage.database import Database

__all__ = ["Session", "is_admin", "resolve_session"]


@dataclass(frozen=True, slots=True)
class Session:
    """The caller of an authenticated request."""

    wallet: str
    session_id: int
    expires_at: datetime
    admin: bool
    token: str = field(repr=False)


def is_admin(cfg: Config, wallet: str) -> bool:
    """Whether ``wallet`` is one of ``[admin] wallets``."""
    return any(str(w) == wallet for w in cfg.admin.wallets)


async def resolve_session(db: Database, cfg: Config, token: str) -> Session | None:
    """The live session of a bearer token, or None."""
    record = await store.get_session(db, token)
    if record is None:
        return None
    return Session(
        wallet=record.wallet,
        session_id=record.id,
        expires_at=record.expires_at,
        admin=is_admin(cfg, record.wallet),
        token=token,
    )
