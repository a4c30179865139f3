"""``/v1/auth``: Sign In With Solana and sessions.

Flow: ``POST /v1/auth/nonce {wallet}`` returns the exact SIWS message to
sign; the wallet signs its UTF-8 bytes (``signMessage``); ``POST
/v1/auth/verify {message, signature}`` returns a session token, sent from
then on as ``Authorization: Bearer <token>``; ``GET /v1/auth/session``
says who the token belongs to; ``POST /v1/auth/logout`` revokes it.

Rate limits (see :mod:`zmartd.api.ratelimit`): a nonce costs a token of the
client IP's ``auth`` bucket and of the ``auth`` bucket shared by all
clients, never of the wallet's -- anyone may ask for a nonce naming any
wallet, so charging the wallet would let a stranger lock it out.  The
wallet's ``auth`` bucket is charged by ``verify`` once the signature
verified.  ``session`` and ``logout`` are in the ``session`` class, whose
buckets sign-in traffic does not touch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from solders.pubkey import Pubkey
from solders.signature import Signature

from zmartd.api.handlers import auth as handlers
from zmartd.api.routing import ApiState, Call, Router
from zmartd.api.validation import Body
from zmartd.model.sessions import Session, resolve_session

__all__ = [
    "NonceRequest",
    "NonceResponse",
    "SessionInfo",
    "SessionToken",
    "VerifyRequest",
    "router",
    "session_resolver",
]

router = Router("auth", prefix="/v1/auth", tags=["auth"])


class NonceRequest(Body, frozen=True, kw_only=True):
    wallet: Pubkey


class NonceResponse(msgspec.Struct, frozen=True, kw_only=True):
    """Sign ``message`` exactly as given (UTF-8 bytes, no prefix)."""

    message: str
    nonce: str
    wallet: str
    domain: str
    uri: str
    chain_id: str
    issued_at: datetime
    expires_at: datetime


class VerifyRequest(Body, frozen=True, kw_only=True):
    message: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=4096, description="the message from /v1/auth/nonce"),
    ]
    signature: Signature


class SessionToken(msgspec.Struct, frozen=True, kw_only=True):
    """Returned once; only its hash is stored."""

    token: str
    token_type: Literal["Bearer"]
    wallet: str
    expires_at: datetime
    admin: bool


class SessionInfo(msgspec.Struct, frozen=True, kw_only=True):
    wallet: str
    expires_at: datetime
    admin: bool


async def session_resolver(state: ApiState, token: str) -> Session | None:
    """The :class:`~zmartd.api.routing.ApiState` hook for ``Authorization: Bearer``."""
    return await resolve_session(state.database(), state.ctx.config, token)


@router.post("/nonce", body=NonceRequest, response=NonceResponse, status=201, rate="auth")
async def nonce(call: Call[NonceRequest, None]) -> NonceResponse:
    """Start signing in: a single-use nonce and the SIWS message to sign.

    The nonce is bound to the wallet and this server's domain and expires
    after `auth.nonce_ttl` seconds (default 300).
    """
    await call.limit_global()
    issued = await handlers.issue_nonce(call.database(), call.ctx.config, call.body.wallet)
    m = issued.message
    return NonceResponse(
        message=issued.text,
        nonce=m.nonce,
        wallet=m.address,
        domain=m.domain,
        uri=m.uri,
        chain_id=m.chain_id,
        issued_at=issued.record.issued_at,
        expires_at=issued.record.expires_at,
    )


@router.post(
    "/verify", body=VerifyRequest, response=SessionToken, status=201, rate="auth", errors=[401]
)
async def verify(call: Call[VerifyRequest, None]) -> SessionToken:
    """Finish signing in: verify the signed message and open a session.

    Fails with 401 when `message` is not a SIWS message, its domain, URI,
    chain or times do not match, the signature does not verify, or the nonce
    was already used (a replay), expired or belongs to another wallet.
    """
    cfg = call.ctx.config
    msg = handlers.check_message(cfg, call.body.message, call.body.signature)
    await call.limit_wallet(msg.address)  # only now: the caller holds the wallet's key
    done = await handlers.sign_in(
        call.database(), cfg, msg, user_agent=call.user_agent, client_ip=call.client_ip
    )
    return SessionToken(
        token=done.token,
        token_type="Bearer",
        wallet=done.session.wallet,
        expires_at=done.session.expires_at,
        admin=done.admin,
    )


@router.get("/session", response=SessionInfo, auth="session", rate="session")
async def session(call: Call[None, None]) -> SessionInfo:
    """Who the bearer token belongs to, and until when it is valid."""
    s = call.require_session()
    return SessionInfo(wallet=s.wallet, expires_at=s.expires_at, admin=s.admin)


@router.post("/logout", auth="session", rate="session")
async def logout(call: Call[None, None]) -> None:
    """Revoke the session whose token authenticates this request."""
    await handlers.sign_out(call.database(), call.ctx.bus, call.require_session())
