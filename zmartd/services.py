"""A small registry through which actors hand live resources to each other.

Actors are restarted independently, so a resource (the database pool, the
RPC client) can disappear and come back.  Instead of holding references,
consumers ask the registry: :meth:`Services.get` waits until the resource is
provided, :meth:`Services.get_nowait` answers immediately (used by request
handlers, which should answer 503 rather than wait).
"""

from __future__ import annotations

from typing import Any, TypeVar

import trio

__all__ = ["ServiceUnavailable", "Services"]

T = TypeVar("T")


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

    def provide(self, name: str, value: object) -> None:
        self._items[name] = value
        self._event(name).set()

    def withdraw(self, name: str, value: object | None = None) -> None:
        """Remove ``name`` (only if it is still ``value``, when given)."""
        if name not in self._items:
            return
        if value is not None and self._items[name] is not value:
            return
        del self._items[name]
        self._events[name] = trio.Event()

    def get_nowait(self, name: str, kind: type[T]) -> T:
        try:
            value = self._items[name]
        except KeyError:
            raise ServiceUnavailable(name) from None
        if not isinstance(value, kind):
            raise TypeError(f"service {name!r} is a {type(value).__name__}, not {kind.__name__}")
        return value

    async def get(self, name: str, kind: type[T]) -> T:
        while name not in self._items:
            await self._event(name).wait()
        return self.get_nowait(name, kind)

    def __contains__(self, name: str) -> bool:
        return name in self._items
