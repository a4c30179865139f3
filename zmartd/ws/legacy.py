"""The legacy firehose: the original ZMART web frontend's WebSocket event shapes.

That frontend connects to the hub's URL (no path), never subscribes, answers
with ``{"action":"pong"}`` every 30 s, and acts on two event types for any
market (it filters by ``market_id`` itself):

* ``trade`` -- ``data.id``, ``data.trader`` (base58, must be non-empty: a toast
  calls ``.slice`` on it), ``data.outcome`` ``"YES"``/``"NO"``, ``data.shares``
  (share-units, 9 decimals), ``data.cost`` (lamports), ``data.trade_type``;
* ``market_state`` -- a non-null ``data`` with ``priceYes``/``priceNo``
  (fractions 0..1), ``totalShares`` and ``state`` (0..6).

The hub gives every connection that has not subscribed yet these frames for
all markets (:meth:`zmartd.ws.hub.Hub.deliver`); its first ``subscribe``
switches it to the channel protocol.  This module is the one place that
knows the legacy shapes: :func:`adapt` turns a sequenced channel frame into
its legacy frame, once per event whatever the number of connections.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from zmartd.ws.replay import Sequenced

__all__ = ["CHANNELS", "adapt"]

#: The channel whose events legacy connections get, and their legacy type.  Each
#: event is on exactly one of them (``trades`` and ``markets`` carry every market's).
CHANNELS: Final = {"trades": "trade", "markets": "market_state"}
_SCALE: Final = 1_000_000_000
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def _fraction(price: Any) -> float:
    return round(int(price) / _SCALE, 6) if price is not None else 0.0


def _trade(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": data["id"],
        "tradeId": data["id"],
        "trader": data["wallet"],
        "user_wallet": data["wallet"],
        "outcome": data["outcome"],
        "shares": data["shares"],
        "cost": data["amount"],
        "trade_type": data["side"],
        "price": _fraction(data["price_yes"]),
        "created_at": data["block_time"],
        "tx_signature": data["signature"],
    }


def _market_state(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "priceYes": _fraction(data.get("price_yes")),
        "priceNo": _fraction(data.get("price_no")),
        "totalShares": str(int(data.get("shares_yes", 0)) + int(data.get("shares_no", 0))),
        "state": data.get("state"),
        "status": data.get("status"),
        "question": data.get("title"),
        "total_volume": data.get("total_volume"),
    }


def adapt(item: Sequenced) -> str | None:
    """The legacy frame of ``item``, or None when legacy connections do not get it."""
    kind = CHANNELS.get(item.channel)
    if kind is None:
        return None
    message = _decode(item.frame)
    if message.get("type") != kind or not isinstance(message.get("data"), dict):
        return None
    data = _trade(message["data"]) if kind == "trade" else _market_state(message["data"])
    return _encode(
        {
            "type": kind,
            "market_id": message.get("market_id"),
            "timestamp": message["timestamp"],
            "data": data,
        }
    ).decode()
