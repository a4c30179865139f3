"""The service keys actors share, and the interfaces behind them.

A consumer asks :class:`~zmartd.services.Services` for a key from here and gets a typed
value, without importing the actor that provides it (the webhook route wakes the
indexer; the indexer asks for the local chain's URLs). An actor's private services may
declare their keys in the actor's own package.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from zmartd.services import ServiceKey
from zmartd.storage.database import DATABASE

__all__ = ["DATABASE", "HTTP_URLS", "INDEXER", "LOCAL_CHAIN", "WS_URL", "IndexerControl",
           "LocalChain"]


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
    "indexer", IndexerControl  # type: ignore[type-abstract]  # mypy#4717: protocols are fine here
)
#: the local chain double's endpoints (devchain actor)
LOCAL_CHAIN: ServiceKey[LocalChain] = ServiceKey(
    "devchain", LocalChain  # type: ignore[type-abstract]  # mypy#4717: protocols are fine here
)
#: the HTTP actor's listening URLs
HTTP_URLS: ServiceKey[list[str]] = ServiceKey("http.urls", list)
#: the WebSocket hub's listening URL
WS_URL = ServiceKey("ws.url", str)
