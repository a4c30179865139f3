"""The WebSocket protocol: what clients send, what the server answers.

The vocabulary is the existing ZMART web client's (kept so that client works
unchanged): client messages carry ``action``, server messages carry ``type``, an
ISO-8601 ``timestamp`` and a ``data`` payload.  On top of it zmartd adds
named channels, per-channel sequence numbers and resume.  docs/websocket.md
is the prose version of this module; keep them in step.

Client → server::

    {"action": "subscribe", "channel": "market:<64 hex>", "since": 41}
    {"action": "subscribe", "channel": "user:<wallet>", "token": "<session token>"}
    {"action": "subscribe", "market_id": "<64 hex>"}          # legacy form = market:<id>
    {"action": "unsubscribe", "channel": "trades"}
    {"action": "ping"}    {"action": "pong"}

Server → client: ``welcome``, ``subscribed``, ``unsubscribed``, events
(``market_state``, ``trade``, ``price``, ``vote``, ``discussion``,
``position``) with ``channel`` and ``seq``, ``gap``, ``pong``, ``error``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = [
    "CHANNEL_KINDS",
    "ClientMessage",
    "ProtocolError",
    "encode",
    "parse_channel",
    "parse_client_message",
    "server_message",
]

_MARKET_ID = re.compile(r"[0-9a-f]{64}")
_WALLET = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")

#: channel kinds and what they carry
CHANNEL_KINDS = {
    "market": "everything about one market: market_state, trade, price, vote, discussion",
    "markets": "market_state of every market",
    "trades": "every trade",
    "user": "one wallet's trades and positions (needs a session token)",
}


class ProtocolError(Exception):
    """A client message the server cannot act on; becomes an ``error`` reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ClientMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    action: str
    channel: str | None = None
    market_id: str | None = None  # legacy subscribe form
    since: int | None = None
    token: str | None = None


_DECODER = msgspec.json.Decoder(ClientMessage)
_ENCODER = msgspec.json.Encoder()
ACTIONS = ("subscribe", "unsubscribe", "ping", "pong")


def parse_client_message(raw: str | bytes) -> ClientMessage:
    """Decode and validate one client frame (raises :class:`ProtocolError`)."""
    try:
        msg = _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        raise ProtocolError("invalid_message", f"invalid message: {exc}") from None
    except msgspec.DecodeError:
        raise ProtocolError("invalid_json", "message is not valid JSON") from None
    if msg.action not in ACTIONS:
        raise ProtocolError(
            "unknown_action",
            f"unknown action {msg.action!r}; expected one of " + ", ".join(ACTIONS),
        )
    if msg.action in ("subscribe", "unsubscribe"):
        if msg.channel is None and msg.market_id is None:
            raise ProtocolError("invalid_message", f"{msg.action} needs a channel")
        if msg.since is not None and msg.since < 0:
            raise ProtocolError("invalid_message", "since must be >= 0")
    return msg


def channel_of(msg: ClientMessage) -> str:
    """The channel a (un)subscribe message names, legacy form included."""
    if msg.channel is not None:
        return parse_channel(msg.channel)
    return parse_channel(f"market:{msg.market_id}")


def parse_channel(channel: str) -> str:
    """Validate a channel name; returns it unchanged (raises ProtocolError)."""
    kind, _, arg = channel.partition(":")
    if kind in ("markets", "trades") and not arg:
        return channel
    if kind == "market" and _MARKET_ID.fullmatch(arg):
        return channel
    if kind == "user" and _WALLET.fullmatch(arg):
        return channel
    raise ProtocolError(
        "invalid_channel",
        f"invalid channel {channel[:80]!r}; expected market:<64 hex market id>, markets, "
        "trades or user:<base58 wallet>",
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def server_message(type_: str, data: Any = None, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": type_, **fields, "timestamp": now_iso()}
    message["data"] = data if data is not None else {}
    return message


def encode(message: dict[str, Any]) -> str:
    return _ENCODER.encode(message).decode()
