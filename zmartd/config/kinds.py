"""Value kinds: how one configuration value is checked, converted and printed, and the
Secret wrapper. The vocabulary the section schema (:mod:`zmartd.config.sections`) is
written in."""

from __future__ import annotations

import abc
import hmac
import ipaddress
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any, Final, final
from urllib.parse import urlsplit

import tomli_w
from solders.keypair import Keypair
from solders.pubkey import Pubkey

REDACTED: Final = "<redacted>"
ENV_PREFIX: Final = "ZMARTD_"
MAX_SECRET_FILE_BYTES: Final = 64 * 1024

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """Every problem found in a configuration, not just the first.

    ``errors`` holds one line per problem, each ``path: expected ..., got ...`` (or a
    file-level message). ``str(e)`` is those lines joined with newlines, ready to print.
    """

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors: list[str] = list(errors)
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


@final
class Secret:
    """A secret string that does not leak through ``repr``, ``str``, f-strings or logs.

    Call :meth:`reveal` at the single place that needs the value (opening the pool,
    signing). Equality compares the values (in constant time) so that
    :func:`changed_sections` notices a rotated password; ``source`` says where the
    value came from ("env ZMARTD_...", "file /path", "inline" or "unset") and is not
    part of equality.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "inline") -> None:
        self._value = value
        self.source = source if value else "unset"

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return REDACTED if self._value else "<unset>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> Any:
        # Pickling would write the value to wherever the pickle goes; nothing needs it.
        raise TypeError("Secret values cannot be pickled")


# ---------------------------------------------------------------------------------------
# Showing bad values the way the operator wrote them (TOML-ish, abbreviated).

BAD: Final = object()  # marker for "this value failed validation; error already recorded"


def show(value: Any, depth: int = 0) -> str:
    """Render a user-supplied value TOML-style for an error message, abbreviated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        if depth > 0:
            return "[...]" if value else "[]"
        items = [show(v, depth + 1) for v in value[:3]]
        if len(value) > 3:
            items.append("...")
        return "[" + ", ".join(items) + "]"
    if isinstance(value, Mapping):
        if depth > 0:
            return "{...}" if value else "{}"
        pairs = [f"{k} = {show(v, depth + 1)}" for k, v in list(value.items())[:3]]
        if len(value) > 3:
            pairs.append("...")
        return "{" + ", ".join(pairs) + "}"
    return repr(value)


def _type_name(value: Any) -> str:
    """The TOML type of a value, for messages about secrets (whose value is never shown)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return "a date/time"


def toml_inline(value: Any) -> str:
    """One-line TOML for a raw value (arrays stay on one line, unlike tomli_w)."""
    if isinstance(value, list):
        return "[" + ", ".join(toml_inline(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[len("v = ") :].rstrip("\n")


# ---------------------------------------------------------------------------------------
# Kinds: how one value is checked, converted and written back.


@dataclass
class Ctx:
    base_dir: Path
    errors: list[str]

    def bad(self, path: str, expected: str, got: Any) -> object:
        self.errors.append(f"{path}: expected {expected}, got {show(got)}")
        return BAD


class Kind(abc.ABC):
    """Base of the value kinds. ``expected`` is the phrase used in messages and docs."""

    expected: str = "value"

    @abc.abstractmethod
    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        """The validated value, or ``BAD`` after recording an error in ``ctx``."""

    def dump(self, value: Any) -> Any:
        return value


class BoolKind(Kind):
    expected = "true or false"

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        return raw if isinstance(raw, bool) else ctx.bad(path, self.expected, raw)


class IntKind(Kind):
    """An integer in ``lo..hi`` (``hi`` None = unbounded). ``zero_ok`` admits 0 outside the
    range without advertising it (port 0 = ephemeral, for tests)."""

    def __init__(self, lo: int, hi: int | None = None, *, zero_ok: bool = False) -> None:
        self.lo, self.hi, self.zero_ok = lo, hi, zero_ok
        self.expected = f"integer {lo}..{hi}" if hi is not None else f"integer >= {lo}"

    def _in_range(self, v: int) -> bool:
        return (v == 0 and self.zero_ok) or (v >= self.lo and (self.hi is None or v <= self.hi))

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(raw, int) and not isinstance(raw, bool) and self._in_range(raw):
            return raw
        return ctx.bad(path, self.expected, raw)


class FloatKind(Kind):
    """A finite number in a range; integers are accepted and stored as floats."""

    def __init__(
        self, lo: float, hi: float | None = None, *, lo_open: bool = False, unit: str = "seconds"
    ) -> None:
        self.lo, self.hi, self.lo_open = lo, hi, lo_open
        low = f"> {_num(lo)}" if lo_open else f">= {_num(lo)}"
        if hi is None:
            rng = low
        elif lo_open:
            rng = f"{low} and <= {_num(hi)}"
        else:
            rng = f"{_num(lo)}..{_num(hi)}"
        self.expected = f"number {rng}" + (f" ({unit})" if unit else "")

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            v = float(raw)
            if (
                math.isfinite(v)
                and (v > self.lo if self.lo_open else v >= self.lo)
                and (self.hi is None or v <= self.hi)
            ):
                return v
        return ctx.bad(path, self.expected, raw)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


class ChoiceKind(Kind):
    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self.expected = "one of " + ", ".join(json.dumps(c) for c in choices)

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        return (
            raw
            if raw in self.choices and isinstance(raw, str)
            else ctx.bad(path, self.expected, raw)
        )


class StrKind(Kind):
    """A string matching ``pattern`` (full match); ``pattern`` None accepts any string."""

    def __init__(self, expected: str, pattern: str | None = None) -> None:
        self.expected = expected
        self.pattern = re.compile(pattern) if pattern is not None else None

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(raw, str) and (self.pattern is None or self.pattern.fullmatch(raw)):
            return raw
        return ctx.bad(path, self.expected, raw)


def _url_ok(text: str, schemes: tuple[str, ...]) -> bool:
    if not text or any(c.isspace() for c in text):
        return False
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname)


class UrlKind(Kind):
    def __init__(self, schemes: tuple[str, ...], label: str, *, empty_ok: bool = False) -> None:
        self.schemes, self.empty_ok = schemes, empty_ok
        self.expected = f"{label} URL" + (' or ""' if empty_ok else "")

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(raw, str) and ((raw == "" and self.empty_ok) or _url_ok(raw, self.schemes)):
            return raw
        return ctx.bad(path, self.expected, raw)


class PathKind(Kind):
    """A filesystem path, resolved against the config file's directory (``~`` expanded).
    With ``empty_ok``, "" means "not set" and is stored as None."""

    def __init__(self, *, empty_ok: bool = False) -> None:
        self.empty_ok = empty_ok
        self.expected = 'path or "" (unset)' if empty_ok else "non-empty path"

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        if not isinstance(raw, str) or "\0" in raw or (raw == "" and not self.empty_ok):
            return ctx.bad(path, self.expected, raw)
        if raw == "":
            return None
        return Path(os.path.normpath(ctx.base_dir / Path(raw).expanduser()))

    def dump(self, value: Any) -> Any:
        return "" if value is None else str(value)


class PubkeyKind(Kind):
    expected = "base58 public key (32 bytes)"

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(raw, str):
            try:
                return Pubkey.from_string(raw)
            except ValueError:
                pass
        return ctx.bad(path, self.expected, raw)

    def dump(self, value: Any) -> Any:
        return str(value)


class TimeKind(Kind):
    expected = 'time "HH:MM" (UTC, 24-hour)'
    _RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(raw, str) and (m := self._RE.fullmatch(raw)):
            return dtime(int(m[1]), int(m[2]))
        return ctx.bad(path, self.expected, raw)

    def dump(self, value: Any) -> Any:
        assert isinstance(value, dtime)
        return value.strftime("%H:%M")


class NetworkKind(Kind):
    expected = 'IP address or CIDR network (e.g. "10.0.0.0/8")'

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(raw, str):
            try:
                return ipaddress.ip_network(raw, strict=True)
            except ValueError:
                pass
        return ctx.bad(path, self.expected, raw)

    def dump(self, value: Any) -> Any:
        assert isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network)
        if value.prefixlen == value.max_prefixlen:
            return str(value.network_address)
        return str(value)


class OriginKind(Kind):
    expected = '"*" or an origin such as "https://app.example.com" (scheme://host[:port])'

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(raw, str) and (raw == "*" or self._is_origin(raw)):
            return raw
        return ctx.bad(path, self.expected, raw)

    @staticmethod
    def _is_origin(text: str) -> bool:
        # Browsers send Origin as scheme://host[:port] exactly: no path, query or userinfo.
        if not _url_ok(text, ("http", "https")):
            return False
        parts = urlsplit(text)
        return not (parts.path or parts.query or parts.fragment or "@" in parts.netloc)


EMAIL_RE: Final = r"[^@\s\"<>,;]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"


class ListKind(Kind):
    """An array whose items are all of ``item`` kind; stored as a tuple (hashable, frozen)."""

    def __init__(self, item: Kind, *, max_len: int = 100) -> None:
        self.item, self.max_len = item, max_len
        self.expected = f"array of {item.expected}"

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        if not isinstance(raw, list | tuple):
            return ctx.bad(path, self.expected, raw)
        if len(raw) > self.max_len:
            return ctx.bad(path, f"at most {self.max_len} items", raw)
        values = [self.item.parse(v, f"{path}[{i}]", ctx) for i, v in enumerate(raw)]
        return BAD if any(v is BAD for v in values) else tuple(values)

    def dump(self, value: Any) -> Any:
        return [self.item.dump(v) for v in value]


class SecretKind(Kind):
    """A secret string. The inline value must be a string; its content is checked by
    ``check`` (which returns a reason without quoting the value, or None) wherever it
    came from. Messages never contain the value."""

    def __init__(self, content: str, check: Callable[[str], str | None] | None = None) -> None:
        self.content = content
        self.check = check
        self.expected = f'secret string: {content}, or "" (unset)'

    def parse(self, raw: Any, path: str, ctx: Ctx) -> Any:
        if isinstance(raw, str):
            return raw
        ctx.errors.append(f"{path}: expected {self.expected}, got {_type_name(raw)} ({REDACTED})")
        return BAD

    def dump(self, value: Any) -> Any:  # pragma: no cover - to_dict handles secrets itself
        raise TypeError("secrets are dumped by to_dict")


# -- secret content checks (reasons never quote the value) -------------------------------


def check_dsn(text: str) -> str | None:
    if _url_ok(text, ("postgresql", "postgres")):
        return None
    return "not a postgresql:// URL with a host"


def check_cursor_secret(text: str) -> str | None:
    return None if len(text) >= 16 else "shorter than 16 characters"


def check_redis(text: str) -> str | None:
    try:
        parts = urlsplit(text)
    except ValueError:
        return "not a URL"
    if parts.scheme == "unix" and parts.path:
        return None
    if _url_ok(text, ("redis", "rediss")):
        return None
    return "not a redis://, rediss:// or unix:// URL"


def check_http_url(text: str) -> str | None:
    return None if _url_ok(text, ("http", "https")) else "not an http(s) URL"


def check_keypair(text: str) -> str | None:
    try:
        parse_keypair(text)
    except ValueError as e:
        return str(e)
    return None


_B58_RE: Final = re.compile(r"[1-9A-HJ-NP-Za-km-z]+")


def parse_keypair(text: str) -> Keypair:
    """Parse a keypair written as a base58 secret key (Phantom's export) or as the JSON
    array of 64 integers that ``solana-keygen`` writes. ValueError messages never quote
    the input, because the input is the secret."""
    text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            raise ValueError("a JSON array that does not parse") from None
        if not isinstance(items, list) or len(items) != 64:
            n = len(items) if isinstance(items, list) else 0
            raise ValueError(f"a JSON array of {n} items, not 64")
        if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in items):
            raise ValueError("a JSON array whose items are not all integers 0..255")
        data = bytes(items)
    elif _B58_RE.fullmatch(text):
        try:
            return Keypair.from_base58_string(text)
        except ValueError:
            raise ValueError(
                "base58 text that is not a 64-byte secret key with its public key"
            ) from None
    else:
        raise ValueError("neither base58 text nor a JSON array")
    try:
        return Keypair.from_bytes(data)
    except ValueError:
        raise ValueError("64 bytes whose public half does not match the secret half") from None
