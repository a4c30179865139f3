"""A small registry through which actors hand live resources to each other.

Actors are restarted independently, so a resource (the database pool, the
RPC client) can disappear and come back.  Instead of holding references,
consumers ask the registry: :meth:`Services.get` waits until the resource is
provided, :meth:`Services.get_nowait` answers immediately (used by request
handlers, which should answer 503 rather than wait).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio

__all__ = ["ServiceKey", "ServiceUnavailable", "Services"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ServiceKey(Generic[T]):
    """The typed name of a service: what is provided under ``name`` must be a ``kind``.

    Keys shared between actors live in :mod:`zmartd.model.services`, so that a consumer
    names the service without importing the actor that provides it.
    """

    name: str
    kind: type[T]


class ServiceUnavailable(LookupError):
    """The named resource is not provided right now (its actor is down)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"service {name!r} is not available")
        self.name = name


class Services:
    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._events: dict[str, trio.Event] = {}

    def _event(self, name: str) -> trio.Event:
        event = self._events.get(name)
        if event is None:
            event = self._events[name] = trio.Event()
        return event

    def provide(self, key: ServiceKey[T], value: T) -> None:
        if not isinstance(value, key.kind):
            raise TypeError(
                f"service {key.name!r} must be a {key.kind.__name__}, not {type(value).__name__}"
            )
        self._items[key.name] = value
        self._event(key.name).set()

    def withdraw(self, key: ServiceKey[T], value: T | None = None) -> None:
        """Remove the service (only if it is still ``value``, when given)."""
        if key.name not in self._items:
            return
        if value is not None and self._items[key.name] is not value:
            return
        del self._items[key.name]
        self._events[key.name] = trio.Event()

    def get_nowait(self, key: ServiceKey[T]) -> T:
        try:
            value = self._items[key.name]
        except KeyError:
            raise ServiceUnavailable(key.name) from None
        if not isinstance(value, key.kind):
            raise TypeError(
                f"service {key.name!r} is a {type(value).__name__}, not {key.kind.__name__}"
            )
        return value

    async def get(self, key: ServiceKey[T]) -> T:
        while key.name not in self._items:
            await self._event(key.name).wait()
        return self.get_nowait(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, ServiceKey):
            raise TypeError(f"ask with a ServiceKey, not {type(key).__name__}")
        return key.name in self._items
