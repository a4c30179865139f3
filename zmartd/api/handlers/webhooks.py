"""Helius webhook deliveries: authenticate, parse, store durably, wake the indexer.

Helius does not sign bodies: it echoes the configured ``authHeader`` value
verbatim in ``Authorization`` (docs/chain.md §14.2), so the check is a
constant-time comparison of that header with ``chain.webhook_secret``.  A
wrong or missing header, or no configured secret, is 401 and nothing is
stored.  The body is parsed only after that.

Both webhook types are accepted: a *raw* element (a ``getTransaction`` json
object) is stored whole, so the indexer needs no RPC call for it; an
*enhanced* element carries no logs (hence no events), so only its
``signature`` is stored and the indexer fetches the transaction.  The reply
is sent as soon as the deliveries are committed to ``webhook_inbox``: the
provider gets its 200 quickly and never retries a delivery we have.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import msgspec
from solders.signature import Signature

from zmartd.api import problems
from zmartd.config import Config
from zmartd.model.services import INDEXER
from zmartd.services import Services
from zmartd.storage import indexer as store
from zmartd.storage.database import Database

__all__ = ["MAX_ELEMENTS", "WebhookItem", "accept", "check_auth", "parse_body"]

#: transactions per delivery (Helius batches a few; a huge array is abuse)
MAX_ELEMENTS = 1000

WebhookItem = tuple[str, int | None, bytes | None]


def check_auth(cfg: Config, header: str | None) -> None:
    """Raise 401 unless ``header`` is exactly the configured secret."""
    secret = cfg.chain.webhook_secret.reveal()
    if not secret:
        raise problems.unauthorized("webhooks are not enabled (chain.webhook_secret is empty)")
    given = (header or "").encode()
    if not hmac.compare_digest(given, secret.encode()):
        raise problems.unauthorized("wrong or missing Authorization header")


def _signature(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise problems.bad_request(f"{where}: the transaction signature is missing")
    try:
        Signature.from_string(value)
    except ValueError:
        raise problems.bad_request(f"{where}: {value[:100]!r} is not a signature") from None
    return value


def _slot(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_body(raw: bytes) -> list[WebhookItem]:
    """``(signature, slot, raw element JSON or None)`` for each delivered transaction."""
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise problems.bad_request(f"the body is not JSON: {exc}") from None
    elements = [doc] if isinstance(doc, Mapping) else doc
    if not isinstance(elements, list):
        raise problems.bad_request("expected a JSON array of transactions")
    if len(elements) > MAX_ELEMENTS:
        raise problems.bad_request(f"at most {MAX_ELEMENTS} transactions per delivery")
    out: list[WebhookItem] = []
    for i, el in enumerate(elements):
        where = f"[{i}]"
        if not isinstance(el, Mapping):
            raise problems.bad_request(f"{where}: expected an object")
        tx = el.get("transaction")
        if isinstance(tx, Mapping) and isinstance(el.get("meta"), Mapping):  # raw
            sigs = tx.get("signatures")
            sig = _signature(sigs[0] if isinstance(sigs, list) and sigs else None, where)
            out.append((sig, _slot(el.get("slot")), msgspec.json.encode(el)))
        elif "signature" in el:  # enhanced: no logs, fetch the transaction
            out.append((_signature(el["signature"], where), _slot(el.get("slot")), None))
        else:
            raise problems.bad_request(f"{where}: neither a raw nor an enhanced transaction")
    return out


async def accept(db: Database, services: Services, items: list[WebhookItem]) -> int:
    """Store the deliveries (one transaction) and wake the in-process indexer."""
    stored = await store.enqueue_inbox(db, items)
    if INDEXER in services:
        services.get_nowait(INDEXER).wake()
    return stored
