"""How a legacy route is declared: a :class:`~zmartd.api.routing.Router` route under
the ``legacy`` OpenAPI tag, ``deprecated``, naming its ``/v1`` equivalent, in the
``legacy`` rate class (GETs; writes share ``writes`` with ``/v1``).

Everything else -- parsing, rate limits, caching, ETags, CORS -- is the ``/v1``
machinery unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final

from zmartd.api.routing import Handler, Router
from zmartd.api.validation import Query

__all__ = ["LEGACY", "LegacyQuery", "LegacyRouter", "legacy_router"]

#: The OpenAPI tag of every legacy route.
LEGACY: Final = "legacy"


class LegacyRouter(Router):
    """A Router whose routes take ``v1=`` (the ``/v1`` equivalent, or None when there
    is none) and are deprecated, tagged ``legacy`` and rate-limited as ``legacy``."""

    def route(
        self,
        method: str,
        path: str,
        *,
        v1: str | None = None,
        **kw: Any,
    ) -> Callable[[Handler], Handler]:
        kw.setdefault("tags", [LEGACY])
        kw.setdefault("deprecated", True)
        if method.upper() == "GET":
            kw.setdefault("rate", "legacy")
        declare = super().route(method, path, **kw)
        pointer = (
            f"Deprecated: the original ZMART frontend's call. Use `{v1}` instead."
            if v1
            else "Deprecated: the original ZMART frontend's call (no /v1 "
            "equivalent; see docs/legacy-api.md)."
        )

        def decorator(fn: Handler) -> Handler:
            declare(fn)
            route = self.routes[-1]
            description = f"{pointer}\n\n{route.description}".strip()
            self.routes[-1] = dataclasses.replace(route, description=description)
            return fn

        return decorator


def legacy_router(name: str, prefix: str) -> LegacyRouter:
    return LegacyRouter(name, prefix=prefix, tags=[LEGACY])


class LegacyQuery(Query, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """Legacy query strings: unknown parameters are ignored, as the original's were."""
