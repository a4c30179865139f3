"""The original frontend's wallet-signature credential, for the legacy ``/api`` writes.

When a wallet is connected, the frontend sends on every axios request::

    Authorization: Signature message=<encodeURIComponent(text)>&signature=<base58>&wallet=<base58>

where ``text`` is exactly ``"Sign in to ZMART\\nTimestamp: <Unix ms>"`` signed by
the wallet with ed25519 (raw UTF-8 bytes, no prefix).  A compat route that acts
for a wallet accepts it when

* the message is exactly that template (nothing else is a sign-in to ZMART:
  the original's "contains a phrase" check let any site mint a credential);
* the signature verifies against ``wallet``;
* the timestamp is within :data:`WINDOW` of the server's clock, either way;
* and this (wallet, timestamp, signature) was never accepted before: each
  header authorizes one request (``zmartd/storage/legacy_signatures.py``), so a
  header copied from a log cannot be replayed.

Public GETs never look at the header (the frontend attaches it to them too).
The ``/v1`` API never accepts it: it authenticates with SIWS sessions only
(this module is used by the compat routes alone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import unquote

from quart import request
from solders.pubkey import Pubkey
from solders.signature import Signature

from zmartd.api.problems import Problem
from zmartd.api.routing import Call, rate_limited
from zmartd.storage import legacy_signatures

__all__ = ["MESSAGE", "WINDOW", "LegacyCredential", "authenticate", "parse"]

#: How far the signed timestamp may be from the server's clock, either way.
WINDOW: Final = timedelta(minutes=5)
#: The only message the frontend signs.
MESSAGE: Final = re.compile(r"Sign in to ZMART\nTimestamp: ([0-9]{13})")
_SCHEME: Final = "Signature "
_MAX_HEADER: Final = 1024


@dataclass(frozen=True, slots=True)
class LegacyCredential:
    wallet: str
    signature: str
    signed_at: datetime
    message: str


def _refuse(detail: str) -> Problem:
    return Problem("unauthorized", detail, headers={"WWW-Authenticate": 'Signature realm="zmart"'})


def parse(header: str | None) -> LegacyCredential:
    """Decode and check the header's form (not its signature or age); 401 when
    absent or malformed."""
    if not header:
        raise _refuse(
            "sign in with your wallet first (Authorization: Signature message=..."
            "&signature=...&wallet=...)"
        )
    if len(header) > _MAX_HEADER or not header.startswith(_SCHEME):
        raise _refuse("the Authorization header must use the Signature scheme")
    fields: dict[str, str] = {}
    for pair in header[len(_SCHEME) :].strip().split("&"):
        name, sep, value = pair.partition("=")
        if not sep or name in fields:
            raise _refuse("malformed Signature credential")
        fields[name] = value
    if set(fields) != {"message", "signature", "wallet"}:
        raise _refuse("the Signature credential needs exactly message, signature and wallet")
    try:
        message = unquote(fields["message"], errors="strict")
    except UnicodeDecodeError:
        raise _refuse("the message is not percent-encoded UTF-8") from None
    if MESSAGE.fullmatch(message) is None:
        raise _refuse('the signed message must be "Sign in to ZMART\\nTimestamp: <ms>"')
    try:
        wallet = Pubkey.from_string(fields["wallet"])
        signature = Signature.from_string(fields["signature"])
    except ValueError:
        raise _refuse("wallet or signature is not valid base58") from None
    if not signature.verify(wallet, message.encode()):
        raise _refuse("the signature does not match the wallet")
    match = MESSAGE.fullmatch(message)
    assert match is not None
    try:
        signed_at = datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
    except (OverflowError, ValueError, OSError):
        raise _refuse("the signed timestamp is out of range") from None
    return LegacyCredential(
        wallet=str(wallet), signature=str(signature), signed_at=signed_at, message=message
    )


async def authenticate(call: Call[Any, Any], *, now: datetime | None = None) -> str:
    """The wallet that signed this request's header (401 otherwise); takes a token
    from that wallet's ``legacy`` bucket (429 when empty), whatever address the
    request came from."""
    credential = parse(call_header(call))
    now = now or datetime.now(UTC)
    if abs(now - credential.signed_at) > WINDOW:
        raise _refuse(
            "the signature has expired: sign a fresh message "
            f"(its timestamp must be within {int(WINDOW.total_seconds())} s)"
        )
    decision = await call.api.limiter.take("legacy", "wallet", credential.wallet)
    if decision is not None and not decision.allowed:
        raise rate_limited(decision)
    fresh = await legacy_signatures.consume(
        call.database(),
        signature=credential.signature,
        wallet=credential.wallet,
        signed_at=credential.signed_at,
        expires_at=credential.signed_at + WINDOW,
        now=now,
    )
    if not fresh:
        raise _refuse("this signature was already used: sign a fresh message for each request")
    return credential.wallet


def call_header(call: Call[Any, Any]) -> str | None:
    """The request's ``Authorization`` header."""
    return request.headers.get("Authorization")
