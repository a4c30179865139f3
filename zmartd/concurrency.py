"""Small trio helpers shared across actors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

__all__ = ["cancel_on", "one_error"]


@contextmanager
def one_error() -> Iterator[None]:
    """Let a nursery's single failure out as itself, not as an ExceptionGroup.

    Trio wraps every nursery failure in an ExceptionGroup.  Where the tasks of
    a nursery are an implementation detail (fetching a page's transactions
    concurrently, preparing the next backfill page ahead), callers still
    expect the one error that happened (``RpcError``, ``RuntimeError`` ...)
    and catch it by type.  Several failures at once stay a group.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            (exc,) = group.exceptions
            if isinstance(exc, Exception) and not isinstance(exc, BaseExceptionGroup):
                raise exc from None
        raise


async def cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    """Cancel ``scope`` once ``event`` is set: an actor starts this in its nursery with its
    ``stopping`` event, so everything it runs ends when the supervisor stops it."""
    await event.wait()
    scope.cancel()
