"""``POST /v1/webhooks/helius``: chain webhook deliveries (raw or enhanced).

Not rate limited (the provider delivers in bursts from few addresses, and a
refused delivery is a lost one until backfill); authenticated by the shared
secret instead.  See :mod:`zmartd.api.handlers.webhooks`.
"""

from __future__ import annotations

import msgspec
from quart import request

from zmartd.api import problems
from zmartd.api.handlers import webhooks as handlers
from zmartd.api.routing import Call, Router

__all__ = ["MAX_BODY_BYTES", "WebhookAccepted", "router"]

router = Router("webhooks", prefix="/v1/webhooks", tags=["webhooks"])

#: also bounded by http.max_body_bytes for every route
MAX_BODY_BYTES = 8 << 20


class WebhookAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """How many transactions of the delivery were queued for indexing."""

    accepted: int


@router.post("/helius", response=WebhookAccepted, rate=None, errors=[400, 401, 413])
async def helius(call: Call[None, None]) -> WebhookAccepted:
    """Receive a Helius webhook delivery (a JSON array of transactions).

    `Authorization` must equal `chain.webhook_secret` exactly (Helius sends
    the configured `authHeader` verbatim); otherwise 401 and nothing is
    stored.  Raw elements are queued whole, enhanced ones by signature.
    200 means the delivery is durably queued.
    """
    handlers.check_auth(call.ctx.config, request.headers.get("Authorization"))
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise problems.Problem("payload-too-large", f"body larger than {MAX_BODY_BYTES} bytes")
    raw: bytes = await request.get_data(cache=False, as_text=False)  # type: ignore[assignment]
    if len(raw) > MAX_BODY_BYTES:
        raise problems.Problem("payload-too-large", f"body larger than {MAX_BODY_BYTES} bytes")
    items = handlers.parse_body(raw)
    accepted = await handlers.accept(call.database(), call.ctx.services, items)
    return WebhookAccepted(accepted=accepted)
