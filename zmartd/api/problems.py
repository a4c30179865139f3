"""RFC 9457 problem details: the one shape of every error the API returns.

Clients branch on ``type``, never on ``title`` or ``detail`` (which are for
humans and may be reworded), so every kind of error has one stable ``type``
URI declared in :data:`KINDS`; the OpenAPI document lists them as an enum.
Validation problems carry ``errors``, a list of ``{field, message}``.

Handlers and routes raise :class:`Problem` (or one of the helpers such as
:func:`not_found`); the app's error handlers turn it, and every other
exception, into an ``application/problem+json`` response.  Nothing outside
this module builds an error body by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import asyncpg
import msgspec
import trio

from zmartd.services import ServiceUnavailable
from zmartd.storage import records

__all__ = [
    "CONTENT_TYPE",
    "KINDS",
    "FieldError",
    "Problem",
    "ProblemDoc",
    "ProblemKind",
    "bad_request",
    "conflict",
    "forbidden",
    "from_exception",
    "invalid_cursor",
    "is_refused_parameter",
    "is_unavailable",
    "not_found",
    "type_uri",
    "unauthorized",
    "unavailable",
    "validation",
]

CONTENT_TYPE: Final = "application/problem+json"
#: Retry-After (seconds) of 503 answers: the storage actor reconnects within seconds.
UNAVAILABLE_RETRY_AFTER: Final = 5
#: Retry-After (seconds) of load-shedding answers: in-flight requests finish fast.
OVERLOADED_RETRY_AFTER: Final = 1
_TYPE_BASE: Final = "urn:zmart:problem:"


@dataclass(frozen=True, slots=True)
class ProblemKind:
    """One kind of error: its stable slug, HTTP status and default title."""

    slug: str
    status: int
    title: str
    why: str

    @property
    def type(self) -> str:
        return _TYPE_BASE + self.slug


#: Every kind of error the API can return.  A new kind is added here and
#: nowhere else; the slug (hence ``type``) of a kind never changes.
KINDS: Final[dict[str, ProblemKind]] = {
    k.slug: k
    for k in (
        ProblemKind(
            "malformed",
            400,
            "Malformed request",
            "the body is not JSON, is nested too deeply, or has the wrong content type",
        ),
        ProblemKind(
            "unauthorized",
            401,
            "Authentication required",
            "no valid session token, or a sign-in proof that does not verify",
        ),
        ProblemKind("forbidden", 403, "Forbidden", "authenticated, but not allowed"),
        ProblemKind("not-found", 404, "Not found", "no such route or resource"),
        ProblemKind(
            "method-not-allowed",
            405,
            "Method not allowed",
            "the route exists but not with this method",
        ),
        ProblemKind("conflict", 409, "Conflict", "the request conflicts with the current state"),
        ProblemKind(
            "payload-too-large",
            413,
            "Payload too large",
            "the body is larger than http.max_body_bytes",
        ),
        ProblemKind(
            "unsupported-media-type",
            415,
            "Unsupported media type",
            "a body was sent with a content type other than application/json",
        ),
        ProblemKind(
            "validation",
            422,
            "Validation failed",
            "well-formed input with invalid values; see errors[]",
        ),
        ProblemKind(
            "rate-limited",
            429,
            "Too many requests",
            "a rate limit bucket is empty; retry after Retry-After seconds",
        ),
        ProblemKind("internal", 500, "Internal error", "a bug; the server log has the details"),
        ProblemKind(
            "unavailable",
            503,
            "Service unavailable",
            "the database (or another dependency) is unreachable; retry later",
        ),
        ProblemKind(
            "overloaded",
            503,
            "Overloaded",
            "too many requests in flight (load shedding); retry later",
        ),
    )
}


def type_uri(slug: str) -> str:
    return KINDS[slug].type


class FieldError(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One invalid input: ``field`` is a dotted path (``items[0].amount``;
    ``""`` for the whole body), ``message`` says what was expected."""

    field: str
    message: str


class ProblemDoc(msgspec.Struct, frozen=True, omit_defaults=True):
    """The ``application/problem+json`` body (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class Problem(Exception):
    """Raise to answer with a problem document.

    ``headers`` are added to the response (``Retry-After``, ``RateLimit-*``,
    ``WWW-Authenticate``).
    """

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
        title: str | None = None,
    ) -> None:
        if slug not in KINDS:
            raise ValueError(f"unknown problem kind {slug!r}; declare it in KINDS")
        self.kind = KINDS[slug]
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})
        self.title = title or self.kind.title
        super().__init__(detail or self.title)

    @property
    def status(self) -> int:
        return self.kind.status

    def doc(self, instance: str | None = None) -> ProblemDoc:
        return ProblemDoc(
            type=self.kind.type,
            title=self.title,
            status=self.kind.status,
            detail=self.detail,
            instance=instance,
            errors=self.errors,
        )

    def body(self, instance: str | None = None) -> bytes:
        return msgspec.json.encode(self.doc(instance))


def bad_request(detail: str) -> Problem:
    return Problem("malformed", detail)


def validation(errors: list[FieldError], detail: str | None = None) -> Problem:
    return Problem(
        "validation",
        detail or "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in errors),
        errors=errors,
    )


def unauthorized(detail: str) -> Problem:
    # RFC 6750: a 401 names the scheme the client should use.
    return Problem("unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="zmart"'})


def forbidden(detail: str) -> Problem:
    return Problem("forbidden", detail)


def not_found(detail: str) -> Problem:
    return Problem("not-found", detail)


def conflict(detail: str) -> Problem:
    return Problem("conflict", detail)


def invalid_cursor() -> Problem:
    """400, not 422: a cursor is only valid if this server issued it, which
    its schema (an opaque string) cannot say -- the request is malformed,
    not a schema violation."""
    return bad_request(
        "the cursor was not issued by this server for this list, or it is "
        "out of date; restart from the first page (without cursor)"
    )


# ------------------------------------------------------------------ exceptions -> problems

#: Exceptions that mean "the database cannot answer right now", not "your input is wrong":
#: the pool is withdrawn (actor degraded), the connection dropped mid-request, the server
#: is restarting or refusing connections, or a statement hit statement_timeout.
_UNAVAILABLE: Final = (
    ServiceUnavailable,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # cannot connect now, admin shutdown, timeout
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    trio.TooSlowError,
)


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, _UNAVAILABLE)


#: SQLSTATEs of a text value PostgreSQL cannot store: a NUL (22021), a character the
#: database encoding lacks (22P05).
_BAD_TEXT: Final = frozenset({"22021", "22P05"})


def is_refused_parameter(exc: BaseException) -> bool:
    """Whether PostgreSQL, or asyncpg encoding it, refused a query *parameter*: a client's
    value that validation let through (an integer beyond int64, a NUL in text).

    That is the client's error, answered 422 and logged as one line; a 500 with a
    traceback per request would let any client flood the logs.  Other data exceptions
    (an overflow in the SQL's own arithmetic) are bugs and stay 500.
    """
    if not isinstance(exc, asyncpg.exceptions.DataError):
        return False
    # asyncpg raises DataError "invalid input for query argument $n" from the codec's error
    if exc.__cause__ is not None and not isinstance(exc.__cause__, asyncpg.PostgresError):
        return True
    return getattr(exc, "sqlstate", None) in _BAD_TEXT


def unavailable(detail: str = "the database is unavailable; retry later") -> Problem:
    return Problem("unavailable", detail, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})


def from_exception(exc: BaseException) -> Problem | None:
    """The problem an exception raised below a route stands for, or None (a bug: 500).

    Storage's typed errors are the caller's fault by construction (their
    messages never contain the rejected values, so they are safe to show).
    """
    if isinstance(exc, Problem):
        return exc
    if is_unavailable(exc):
        return unavailable()
    if isinstance(exc, records.InvalidCursor):
        return invalid_cursor()
    if is_refused_parameter(exc):
        return validation(
            [FieldError(field="", message="a parameter is out of range or not storable text")]
        )
    if isinstance(exc, records.InvalidArgument):
        return validation([FieldError(field="", message=str(exc))])
    if isinstance(exc, records.NotFound):
        return not_found(str(exc) or "not found")
    if isinstance(exc, records.NotPermitted):
        # storage says "this state does not allow it" (already exists, wrong phase);
        # who may call is decided above storage and raised as 403 there.
        return conflict(str(exc) or "not permitted in the current state")
    if isinstance(exc, records.VoteLocked):
        return conflict(str(exc) or "the vote can no longer change")
    return None
