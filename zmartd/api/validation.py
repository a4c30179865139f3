"""Request parsing with msgspec: bodies, query strings and path parameters.

A route declares msgspec types; this module turns raw HTTP input into
instances of them or raises a :class:`~zmartd.api.problems.Problem`:

* ``malformed`` (400) -- the body is not JSON, nests deeper than
  ``http.max_json_depth``, or is sent with a content type other than JSON;
* ``validation`` (422) -- well-formed input whose values do not fit the
  type: unknown fields (every request type forbids them), wrong types,
  out-of-range amounts, invalid base58 keys.  ``errors`` names the field.

Query and path values are text, and no parameter of this API has a use for
control characters: any of them (C0, DEL, C1 -- NUL above all, which
PostgreSQL text cannot hold) is a 422 naming the parameter, before any type
sees the value.

Why the depth check happens before decoding: msgspec decodes nested JSON
recursively, and a small body of ``[[[[...`` would otherwise cost a deep
recursion before any type check could reject it.

Solana values are typed with solders' own classes (``Pubkey``,
``Signature``): the hooks below decode them from base58 (exactly 32/64
bytes, so a wrong-length string is a 422, not a crash later), encode them
back to base58 and document them in the OpenAPI schema.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, TypeVar

import msgspec
from solders.pubkey import Pubkey
from solders.signature import Signature

from zmartd.api.problems import FieldError, Problem, bad_request, unauthorized, validation
from zmartd.model.wire import U64, U64_MAX, Amount, enc_hook

__all__ = [
    "U64",
    "U64_MAX",
    "Amount",
    "Body",
    "DateTime",
    "Query",
    "check_json_depth",
    "dec_hook",
    "decode_body",
    "decode_path",
    "decode_query",
    "enc_hook",
    "encode",
    "field_error",
    "schema_hook",
]

T = TypeVar("T")

_B58: Final = "[1-9A-HJ-NP-Za-km-z]"
_PUBKEY_SHAPE: Final = re.compile(f"{_B58}{{32,44}}")
_SIGNATURE_SHAPE: Final = re.compile(f"{_B58}{{64,88}}")

#: A datetime in a request (query or body): RFC 3339, as the schema says --
#: msgspec's own schema for ``datetime`` leaves the format out, and then
#: schema-driven clients send any string.
DateTime = Annotated[datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]


class Body(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are rejected, not ignored, so a
    client's typo (``amout``) is a 422 instead of a silently missing value."""


class Query(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of query-string types (values are converted from strings)."""


# ------------------------------------------------------------------ msgspec hooks


def dec_hook(typ: type, obj: Any) -> Any:
    """Decode solders types from base58 strings and u64 amounts from JSON
    integers (msgspec turns the ValueError/TypeError into a ValidationError
    that names the field)."""
    return _decode(typ, obj, from_text=False)


def _text_dec_hook(typ: type, obj: Any) -> Any:
    """For query strings and path segments, where every value is text."""
    return _decode(typ, obj, from_text=True)


def _decode(typ: type, obj: Any, *, from_text: bool) -> Any:
    # A value of the documented shape (base58, length) that does not decode
    # to the right number of bytes is not invalid by the schema -- no pattern
    # can say "decodes to 32 bytes" -- so it is not answered 422 like one.
    # A key that cannot exist is a malformed request (400); so is a signature
    # that cannot exist in a path or query (a transaction's name); in a body
    # (a sign-in proof) it is one that does not verify (401, as for a wrong one).
    if typ is Pubkey:
        if not isinstance(obj, str):
            raise TypeError("expected a base58 public key string")
        try:
            return Pubkey.from_string(obj)
        except ValueError:
            if _PUBKEY_SHAPE.fullmatch(obj):
                raise bad_request(
                    f"{obj} is base58 but does not decode to the 32 bytes of a public key"
                ) from None
            raise ValueError("expected a base58 public key (32 bytes)") from None
    if typ is Signature:
        if not isinstance(obj, str):
            raise TypeError("expected a base58 signature string")
        try:
            return Signature.from_string(obj)
        except ValueError:
            if _SIGNATURE_SHAPE.fullmatch(obj) and from_text:
                raise bad_request(
                    f"{obj} is base58 but does not decode to the 64 bytes of a signature"
                ) from None
            if _SIGNATURE_SHAPE.fullmatch(obj):
                raise unauthorized(
                    "the signature does not verify: it does not decode to the "
                    "64 bytes of an ed25519 signature"
                ) from None
            raise ValueError("expected a base58 ed25519 signature (64 bytes)") from None
    if isinstance(typ, type) and issubclass(typ, U64):
        expected = f"expected an integer {typ.minimum}..{U64_MAX}"
        if (
            from_text
            and isinstance(obj, str)
            and obj.isascii()
            and obj.isdigit()
            and len(obj) <= 20
        ):
            obj = int(obj)
        if type(obj) is not int:
            raise TypeError(expected)
        if not typ.minimum <= obj <= U64_MAX:
            raise ValueError(expected)
        return typ(obj)
    raise NotImplementedError(f"no decoder for {typ!r}")


def schema_hook(typ: type) -> dict[str, Any]:
    # The pattern cannot say "decodes to exactly 32 (64) bytes"; ``format`` names that
    # rule so that schema-driven generators can register a strategy for it.
    if typ is Pubkey:
        return {
            "type": "string",
            "format": "solana-pubkey",
            "pattern": f"^{_B58}{{32,44}}$",
            "minLength": 32,
            "maxLength": 44,
            "description": "base58 public key (decodes to exactly 32 bytes)",
            "examples": ["11111111111111111111111111111111"],
        }
    if typ is Signature:
        return {
            "type": "string",
            "format": "solana-signature",
            "pattern": f"^{_B58}{{64,88}}$",
            "minLength": 64,
            "maxLength": 88,
            "description": "base58 ed25519 signature (decodes to exactly 64 bytes)",
        }
    if isinstance(typ, type) and issubclass(typ, U64):
        return {
            "type": "integer",
            "minimum": typ.minimum,
            "maximum": U64_MAX,
            "description": (typ.__doc__ or "").strip().split("\n")[0],
        }
    raise NotImplementedError(f"no schema for {typ!r}")


_ENCODER: Final = msgspec.json.Encoder(enc_hook=enc_hook)


def encode(value: Any) -> bytes:
    """JSON-encode a response value (structs, solders types, plain data)."""
    return _ENCODER.encode(value)


# ------------------------------------------------------------------ errors

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_NAMED = re.compile(r"^Object (?:contains unknown|missing required) field `(?P<name>[^`]*)`$")


def field_error(exc: msgspec.ValidationError) -> FieldError:
    """One :class:`FieldError` from msgspec's message (``... - at `$.a[0].b```).

    msgspec stops at the first invalid value, so a request gets one error at
    a time; the list shape leaves room for more without changing clients.
    """
    m = _AT.match(str(exc))
    assert m is not None  # the pattern matches any string
    message, path = m["msg"], (m["path"] or "").lstrip(".")
    named = _NAMED.match(message)
    if named:
        path = f"{path}.{named['name']}" if path else named["name"]
    return FieldError(field=path, message=message)


# ------------------------------------------------------------------ bodies

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def check_json_depth(raw: bytes, max_depth: int) -> None:
    """Raise ``malformed`` if arrays/objects nest deeper than ``max_depth``.

    Strings are skipped whole (brackets inside them do not count); the scan
    is a C-speed regex, linear in the body size.
    """
    depth = 0
    for m in _TOKENS.finditer(raw):
        c = m.group()[0]
        if c in b"[{":
            depth += 1
            if depth > max_depth:
                raise bad_request(f"JSON nested deeper than {max_depth} levels")
        elif c in b"]}":
            depth -= 1


def decode_body(raw: bytes, typ: type[T], *, content_type: str | None, max_depth: int) -> T:
    """Parse a JSON request body into ``typ``."""
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media != "application/json" and not (
            media.startswith("application/") and media.endswith("+json")
        ):
            raise Problem(
                "unsupported-media-type",
                f"expected Content-Type application/json, got {media or 'none'}",
            )
    if not raw.strip():
        raise validation([FieldError(field="", message="a JSON body is required")])
    check_json_depth(raw, max_depth)
    try:
        return msgspec.json.decode(raw, type=typ, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        integral = _with_integral_floats(raw, typ)
        if integral is not None:
            return integral
        raise validation([field_error(exc)]) from None
    except msgspec.DecodeError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= U64_MAX:
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def _with_integral_floats(raw: bytes, typ: type[T]) -> T | None:
    """The body decoded with ``1.0`` read as ``1``, or None if that does not
    help.  JSON Schema's ``integer`` admits any number without a fraction
    (``1.0`` included); msgspec's ``int`` does not.  Tried only after the
    fast decode failed, so well-behaved clients pay nothing for it."""
    try:
        loose = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:  # typed decoding stopped before the syntax error
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    fixed = _integral(loose)
    if fixed == loose and repr(fixed) == repr(loose):
        return None
    try:
        return msgspec.convert(fixed, type=typ, dec_hook=dec_hook)
    except msgspec.ValidationError:
        return None


# ------------------------------------------------------------------ query and path


def _is_sequence(tp: Any) -> bool:
    """Whether a field takes repeated query parameters (``?tag=a&tag=b``)."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence(a) for a in typing.get_args(tp) if a is not type(None))
    return False


def _is_datetime(tp: Any) -> bool:
    """Whether a field takes a datetime (``DateTime``, optional or not)."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_is_datetime(a) for a in typing.get_args(tp))
    return tp is datetime


#: RFC 3339 ``date-time``, what the schema's ``format`` promises.  msgspec's
#: lax conversion of query text would also take a number (``to=0.5``: half
#: a second after the epoch) -- a value the schema rejects.
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})"
)

_QUERY_FIELDS: dict[type[Any], dict[str, msgspec.structs.FieldInfo]] = {}


def _query_fields(typ: type[Any]) -> dict[str, msgspec.structs.FieldInfo]:
    """The fields of a query struct by wire name.  Cached per type (routes
    declare a handful) because ``msgspec.structs.fields`` re-resolves the
    string annotations on every call: uncached, that was ~1/4 of the CPU
    time of a cached ``GET /v1/markets`` answer (bench/http.py profile)."""
    found = _QUERY_FIELDS.get(typ)
    if found is None:
        found = _QUERY_FIELDS[typ] = {f.encode_name: f for f in msgspec.structs.fields(typ)}
    return found


#: Control characters: C0 (NUL included), DEL and C1.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _check_text(name: str, value: Any, where: str) -> None:
    if isinstance(value, str) and _CONTROL.search(value) is not None:
        message = "control characters (NUL, line breaks, ...) are not allowed"
        raise validation(
            [FieldError(field=name, message=message)],
            f"invalid {where} parameter {name}: {message}",
        )


def decode_query(args: Any, typ: type[T]) -> T:
    """Convert a query string (werkzeug MultiDict) into the ``typ`` struct.

    A scalar parameter given twice is an error rather than "last one wins":
    caches and proxies disagree about which one that is.
    """
    fields = _query_fields(typ)
    data: dict[str, Any] = {}
    for name in args:
        values: list[str] = args.getlist(name)
        for value in values:
            _check_text(name, value, "query")
        field = fields.get(name)
        if field is not None and _is_sequence(field.type):
            data[name] = values
        elif len(values) > 1:
            raise validation([FieldError(field=name, message="given more than once")])
        else:
            data[name] = values[0]
            if field is not None and _is_datetime(field.type) and not _RFC3339.fullmatch(values[0]):
                message = "expected an RFC 3339 date-time such as 2026-01-01T00:00:00Z"
                raise validation(
                    [FieldError(field=name, message=message)],
                    f"invalid query parameter {name}: {message}",
                )
    return _convert(data, typ, "query")


def decode_path(params: Mapping[str, Any], typ: type[T]) -> T:
    for name, value in params.items():
        _check_text(name, value, "path")
    return _convert(dict(params), typ, "path")


def _convert(data: dict[str, Any], typ: type[T], where: str) -> T:
    try:
        return msgspec.convert(data, type=typ, strict=False, dec_hook=_text_dec_hook)
    except msgspec.ValidationError as exc:
        err = field_error(exc)
        raise validation([err], f"invalid {where} parameter {err.field}: {err.message}") from None
