"""Sign-In With Solana: issue a nonce and its message, verify a signed message,
open, resolve and close sessions.

Verification order matters for replay and abuse resistance:

1. the message is parsed strictly;
2. its domain, URI, version and chain id must be exactly ours, and its
   times must be current (an expired or not-yet-valid message is refused
   without touching the database);
3. the ed25519 signature must verify for the address in the message over
   the exact bytes signed;
4. only then is the nonce consumed -- atomically, in one ``UPDATE ...
   RETURNING`` bound to that wallet and domain -- so a bad signature cannot
   burn someone else's nonce, and a replayed (message, signature) finds its
   nonce already used;
5. a session is created; its token is returned once and stored hashed.

Every refusal is a 401 ``unauthorized`` whose detail names the reason (the
caller is the signer; nothing secret is revealed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Final

from solders.pubkey import Pubkey
from solders.signature import Signature

from zmartd.api import problems
from zmartd.api.auth import (
    SIWS_VERSION,
    SiwsError,
    SiwsMessage,
    build_message,
    parse_message,
    siws_domain,
    siws_uri,
    verify_signature,
)
from zmartd.bus import Bus, SessionEnded
from zmartd.config import Config
from zmartd.model.sessions import Session, is_admin
from zmartd.storage import auth as store
from zmartd.storage.database import Database
from zmartd.storage.records import NonceRecord, SessionRecord

__all__ = [
    "CLOCK_SKEW",
    "IssuedNonce",
    "SignedIn",
    "check_message",
    "issue_nonce",
    "sign_in",
    "sign_out",
]

#: Tolerance for a client whose clock runs ahead (Issued At slightly in the future).
CLOCK_SKEW: Final = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class IssuedNonce:
    record: NonceRecord
    message: SiwsMessage
    text: str


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str
    session: SessionRecord
    admin: bool


def _message_for(cfg: Config, record: NonceRecord) -> SiwsMessage:
    return SiwsMessage(
        domain=record.domain,
        address=record.wallet,
        statement=cfg.auth.statement,
        uri=siws_uri(cfg),
        version=SIWS_VERSION,
        chain_id=cfg.auth.chain_id,
        nonce=record.nonce,
        issued_at=record.issued_at,
        expiration_time=record.expires_at,
    )


async def issue_nonce(db: Database, cfg: Config, wallet: Pubkey) -> IssuedNonce:
    """A fresh single-use nonce for ``wallet`` and the message to sign with it."""
    record = await store.create_nonce(
        db,
        wallet=str(wallet),
        domain=siws_domain(cfg),
        ttl=timedelta(seconds=cfg.auth.nonce_ttl),
    )
    message = _message_for(cfg, record)
    return IssuedNonce(record=record, message=message, text=build_message(message))


def check_message(
    cfg: Config, text: str, signature: Signature, now: datetime | None = None
) -> SiwsMessage:
    """Steps 1-3 above (everything but the nonce); raises a Problem."""
    try:
        msg = parse_message(text)
    except SiwsError as exc:
        # A proof that cannot be read is a failed authentication, like one that does
        # not verify (the body itself is well-formed: message is a string).
        raise problems.unauthorized(
            f"message is not a Sign-In-With-Solana message: {exc}"
        ) from None
    domain = siws_domain(cfg)
    if msg.domain != domain:
        raise problems.unauthorized(f"the message is for domain {msg.domain!r}, not {domain!r}")
    if msg.uri != siws_uri(cfg):
        raise problems.unauthorized(f"the message URI is not {siws_uri(cfg)!r}")
    if msg.version != SIWS_VERSION:
        raise problems.unauthorized(f"unsupported SIWS version {msg.version!r}")
    if msg.chain_id != cfg.auth.chain_id:
        raise problems.unauthorized(
            f"the message is for chain {msg.chain_id!r}, not {cfg.auth.chain_id!r}"
        )
    now = now or datetime.now(UTC)
    if msg.expiration_time is None:
        raise problems.unauthorized("the message has no Expiration Time")
    if msg.expiration_time <= now:
        raise problems.unauthorized("the message has expired; request a new nonce")
    if msg.issued_at > now + CLOCK_SKEW:
        raise problems.unauthorized("the message is issued in the future")
    lifetime = timedelta(seconds=cfg.auth.nonce_ttl)
    if msg.expiration_time - msg.issued_at > lifetime + CLOCK_SKEW:
        raise problems.unauthorized(
            f"the message's Expiration Time is more than auth.nonce_ttl "
            f"({cfg.auth.nonce_ttl:g} s) after its Issued At; request a new nonce"
        )
    if msg.not_before is not None and msg.not_before > now + CLOCK_SKEW:
        raise problems.unauthorized("the message is not valid yet (Not Before)")
    try:
        wallet = Pubkey.from_string(msg.address)
    except ValueError:
        raise problems.unauthorized(
            "the address in the message is not a 32-byte base58 public key"
        ) from None
    if not verify_signature(text, signature, wallet):
        raise problems.unauthorized("the signature does not verify for the address in the message")
    return msg


def _ip(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


async def sign_in(
    db: Database,
    cfg: Config,
    msg: SiwsMessage,
    *,
    user_agent: str | None = None,
    client_ip: str | None = None,
) -> SignedIn:
    """Steps 4-5: consume the nonce of a message that :func:`check_message`
    returned (and only such a message) and open a session."""
    record = await store.consume_nonce(db, nonce=msg.nonce, wallet=msg.address, domain=msg.domain)
    if record is None:
        raise problems.unauthorized(
            "the nonce is unknown, already used, expired, or issued for another wallet"
        )
    token, session = await store.create_session(
        db,
        wallet=msg.address,
        ttl=timedelta(seconds=cfg.auth.session_ttl),
        user_agent=user_agent,
        ip=_ip(client_ip) if client_ip else None,
    )
    return SignedIn(token=token, session=session, admin=is_admin(cfg, msg.address))


async def sign_out(db: Database, bus: Bus, session: Session) -> bool:
    """Revoke the session used for this request; False if it was already gone. Live
    WebSocket subscriptions opened with it end too (:class:`~zmartd.bus.SessionEnded`)."""
    revoked = await store.revoke_session(db, session.token)
    bus.topic("auth.sessions").publish_nowait(SessionEnded(wallet=session.wallet))
    return revoked
