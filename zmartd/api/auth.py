"""Sign-In With Solana messages, bearer tokens and the caller's identity.

The message is the SIWS text (Phantom's Sign-In-With-Solana, modelled on
EIP-4361 / CAIP-122), which wallets recognise and check against the page
they run on before prompting the user::

    app.example.com wants you to sign in with your Solana account:
    <base58 address>

    <statement>

    URI: https://app.example.com
    Version: 1
    Chain ID: devnet
    Nonce: <nonce>
    Issued At: 2025-01-01T00:00:00.000Z
    Expiration Time: 2025-01-01T00:05:00.000Z

:func:`parse_message` is strict: it accepts exactly what
:func:`build_message` produces for the parsed fields (so the same text
always means the same thing, and no field can hide in odd whitespace), and
verification (:mod:`zmartd.api.handlers.auth`) then checks each field
against the configuration and the nonce record.

Sessions are opaque bearer tokens (``Authorization: Bearer <token>``),
generated and stored hashed by :mod:`zmartd.storage.auth`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

from solders.pubkey import Pubkey
from solders.signature import Signature

from zmartd.config import Config

__all__ = [
    "SIWS_VERSION",
    "SiwsError",
    "SiwsMessage",
    "bearer_token",
    "build_message",
    "format_time",
    "parse_message",
    "siws_domain",
    "siws_uri",
    "verify_signature",
]

SIWS_VERSION: Final = "1"
_HEADER_SUFFIX: Final = " wants you to sign in with your Solana account:"
_MAX_MESSAGE: Final = 4096
_B58_ADDRESS: Final = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")
_NONCE: Final = re.compile(r"[A-Za-z0-9]{8,64}")
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{16,128}")
# Field order is fixed by the spec; a message lists a subset of them in this order.
_FIELDS: Final = (
    ("URI", "uri"),
    ("Version", "version"),
    ("Chain ID", "chain_id"),
    ("Nonce", "nonce"),
    ("Issued At", "issued_at"),
    ("Expiration Time", "expiration_time"),
    ("Not Before", "not_before"),
    ("Request ID", "request_id"),
)


class SiwsError(ValueError):
    """The text is not a well-formed SIWS message (``reason`` says why)."""


@dataclass(frozen=True, slots=True)
class SiwsMessage:
    domain: str
    address: str
    uri: str
    version: str
    chain_id: str
    nonce: str
    issued_at: datetime
    statement: str | None = None
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default=())


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z`` (what ``Date.toISOString`` writes)."""
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _parse_time(text: str, name: str) -> datetime:
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", text):
        raise SiwsError(f"{name} is not an RFC 3339 time")
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # fromisoformat takes at most microseconds
        text = text.replace(frac.group(0), "." + frac.group(1)[:6])
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SiwsError(f"{name} is not a valid time") from None
    return t


def build_message(m: SiwsMessage) -> str:
    lines = [m.domain + _HEADER_SUFFIX, m.address]
    if m.statement is not None:
        lines += ["", m.statement]
    fields: list[str] = []
    for label, attr in _FIELDS:
        value = getattr(m, attr)
        if value is None:
            continue
        if isinstance(value, datetime):
            value = format_time(value)
        fields.append(f"{label}: {value}")
    if m.resources:
        fields.append("Resources:")
        fields += [f"- {r}" for r in m.resources]
    lines += ["", *fields]
    return "\n".join(lines)


def _hidden_character(text: str) -> str | None:
    """The first character a wallet may not display faithfully, as ``U+XXXX``: controls
    other than the line feed, format characters (bidi overrides, zero-width joiners) and
    line or paragraph separators. A message someone signs must read as it is."""
    for ch in text:
        if ch == "\n":
            continue
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"):
            return f"U+{ord(ch):04X}"
    return None


def parse_message(text: str) -> SiwsMessage:
    """Parse a SIWS message; raise :class:`SiwsError` unless it is well formed
    *and* canonical (re-building it gives back exactly ``text``)."""
    if len(text) > _MAX_MESSAGE:
        raise SiwsError("message too long")
    if "\r" in text:
        raise SiwsError("lines must end with LF only")
    hidden = _hidden_character(text)
    if hidden is not None:
        raise SiwsError(
            f"the message contains the control or invisible character {hidden} "
            "(wallets may not show what it changes)"
        )
    lines = text.split("\n")
    if len(lines) < 4 or not lines[0].endswith(_HEADER_SUFFIX):
        raise SiwsError(
            "first line must be '<domain> wants you to sign in with your Solana account:'"
        )
    domain = lines[0][: -len(_HEADER_SUFFIX)]
    if not domain or " " in domain:
        raise SiwsError("missing domain")
    address = lines[1]
    if not _B58_ADDRESS.fullmatch(address):
        raise SiwsError("second line must be a base58 address")
    rest = lines[2:]
    statement: str | None = None
    if rest[0] != "":
        raise SiwsError("expected an empty line after the address")
    # "", statement, "", fields...   or   "", fields...
    if len(rest) >= 3 and not rest[1].startswith("URI: ") and rest[2] == "":
        statement = rest[1]
        rest = rest[3:]
    else:
        rest = rest[1:]
    values: dict[str, str] = {}
    resources: list[str] = []
    labels = [label for label, _ in _FIELDS]
    position = 0
    in_resources = False
    for line in rest:
        if in_resources:
            if not line.startswith("- ") or len(line) < 3:
                raise SiwsError("resources must be '- <uri>' lines")
            resources.append(line[2:])
            continue
        if line == "Resources:":
            in_resources = True
            continue
        label, sep, value = line.partition(": ")
        if not sep or label not in labels or not value:
            raise SiwsError(f"unexpected line {line[:40]!r}")
        index = labels.index(label)
        if index < position:
            raise SiwsError(f"field {label!r} is out of order or repeated")
        position = index + 1
        values[label] = value
    for required in ("URI", "Version", "Chain ID", "Nonce", "Issued At"):
        if required not in values:
            raise SiwsError(f"missing field {required!r}")
    if not _NONCE.fullmatch(values["Nonce"]):
        raise SiwsError("nonce must be 8..64 letters or digits")
    msg = SiwsMessage(
        domain=domain,
        address=address,
        statement=statement,
        uri=values["URI"],
        version=values["Version"],
        chain_id=values["Chain ID"],
        nonce=values["Nonce"],
        issued_at=_parse_time(values["Issued At"], "Issued At"),
        expiration_time=(
            _parse_time(values["Expiration Time"], "Expiration Time")
            if "Expiration Time" in values
            else None
        ),
        not_before=(
            _parse_time(values["Not Before"], "Not Before") if "Not Before" in values else None
        ),
        request_id=values.get("Request ID"),
        resources=tuple(resources),
    )
    if build_message(msg) != text:
        raise SiwsError(
            "message is not in canonical form (times must be written as YYYY-MM-DDTHH:MM:SS.sssZ)"
        )
    return msg


def verify_signature(message: str, signature: Signature, wallet: Pubkey) -> bool:
    """ed25519 over the exact UTF-8 bytes the wallet signed (no prefix)."""
    return bool(signature.verify(wallet, message.encode("utf-8")))


# ------------------------------------------------------------------ configuration


def siws_domain(cfg: Config) -> str:
    """``auth.domain``, or the host[:port] of ``http.public_url``."""
    if cfg.auth.domain:
        return cfg.auth.domain
    return urlsplit(cfg.http.public_url).netloc.rsplit("@", 1)[-1]


def siws_uri(cfg: Config) -> str:
    return cfg.http.public_url


# ------------------------------------------------------------------ sessions


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None if absent.

    Raises ValueError when the header is present but not a well-formed
    bearer token (the caller answers 401 rather than treat it as anonymous).
    """
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise ValueError("expected 'Authorization: Bearer <token>'")
    token = token.strip()
    if not _TOKEN.fullmatch(token):
        raise ValueError("malformed bearer token")
    return token
