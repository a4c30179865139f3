"""The service keys actors share, and the interfaces behind them.

A consumer asks :class:`~zmartd.services.Services` for a key from here and gets a typed
value, without importing the actor that provides it (the webhook route wakes the
indexer; the indexer asks for the local chain's URLs). An actor's private services may
declare their keys in the actor's own package.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from zmartd.config import chain_endpoints
from zmartd.context import ActorContext
from zmartd.services import ServiceKey
from zmartd.storage.database import DATABASE

__all__ = [
    "DATABASE",
    "HTTP_URLS",
    "INDEXER",
    "LOCAL_CHAIN",
    "WS_URL",
    "IndexerControl",
    "LocalChain",
    "chain_urls",
]


@runtime_checkable
class IndexerControl(Protocol):
    """What other actors may ask of the running indexer."""

    def wake(self) -> None:
        """New webhook deliveries are in the inbox: drain it now."""

    def request_backfill(self) -> None:
        """Re-scan the chain's recent history (after a gap)."""


@runtime_checkable
class LocalChain(Protocol):
    """The chain double's endpoints, when ``chain.mode = "local"``."""

    @property
    def rpc_url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...


#: the indexer's controls (indexer actor, leader or follower)
INDEXER: ServiceKey[IndexerControl] = ServiceKey(
    "indexer",
    IndexerControl,  # type: ignore[type-abstract]  # mypy#4717: protocols are fine here
)
#: the local chain double's endpoints (devchain actor)
LOCAL_CHAIN: ServiceKey[LocalChain] = ServiceKey(
    "devchain",
    LocalChain,  # type: ignore[type-abstract]  # mypy#4717: protocols are fine here
)
#: the HTTP actor's listening URLs
HTTP_URLS: ServiceKey[list[str]] = ServiceKey("http.urls", list)
#: the WebSocket hub's listening URL
WS_URL = ServiceKey("ws.url", str)


async def chain_urls(ctx: ActorContext) -> tuple[list[str], str]:
    """Where an actor reaches the chain: ``(rpc_urls, ws_url)``; in local mode the chain
    double's bound URLs (its ports may be picked at start: waits for the service),
    otherwise the configured endpoints."""
    cfg = ctx.config
    if cfg.chain.mode == "local":
        chain = await ctx.services.get(LOCAL_CHAIN)
        return [chain.rpc_url], chain.ws_url
    ep = chain_endpoints(cfg)
    return list(ep.rpc_urls), ep.ws_url
