"""zmartd's configuration: one TOML file, typed, validated, with secrets kept out of sight.

Why a hand-written schema instead of msgspec's decoder: operators need every problem of a
file at once, each naming the key path, the bad value and what was expected
(``http.port: expected integer 1..65535, got "80a"``). msgspec stops at the first error
and phrases it for programmers. So each section is a frozen dataclass whose fields carry
a *kind* (how to check, convert and print one value), a raw TOML default and an
operator-facing description. That one table drives validation, defaults, ``config dump``,
the reference in ``config/README.md``, ``config/defaults.toml`` and ``zmartd.toml.example``
(regenerate them with ``python -m zmartd.config --write-docs``; a test fails when they
drift).

Secrets (database DSN, Redis URL, keypair, webhook secrets, SMTP password, alert URL) are
wrapped in :class:`Secret`, whose ``repr``/``str`` never show the value, and are never
echoed in error messages. Each secret ``K`` of section ``S`` is taken from, highest first:
the environment variable ``ZMARTD_<S>_<K>``, the file named by ``K_file`` (content
stripped), the inline ``K``. Only secrets are read from the environment.

Paths in the file are resolved against the config file's directory and stored absolute,
so the daemon behaves the same whatever its working directory.
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
import hmac
import ipaddress
import json
import math
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any, Final, Literal, final
from urllib.parse import urlsplit

import tomli_w
from solders.keypair import Keypair
from solders.pubkey import Pubkey

__all__ = [
    "REDACTED",
    "SECTIONS",
    "AdminConfig",
    "AggregatorConfig",
    "AuthConfig",
    "ChainConfig",
    "ChainEndpoints",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "DatabaseConfig",
    "DevchainConfig",
    "FieldSpec",
    "HttpConfig",
    "LogConfig",
    "MetricsConfig",
    "MonitorConfig",
    "RateLimitConfig",
    "RedisConfig",
    "Secret",
    "SnapshotterConfig",
    "WsConfig",
    "chain_endpoints",
    "changed_sections",
    "default_config",
    "dump_toml",
    "field_specs",
    "load_config",
    "parse_config",
    "parse_keypair",
    "secret_sources",
    "to_dict",
]

REDACTED: Final = "<redacted>"
ENV_PREFIX: Final = "ZMARTD_"
_MAX_SECRET_FILE_BYTES: Final = 64 * 1024

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

_BAD: Final = object()  # marker for "this value failed validation; error already recorded"


def _show(value: Any, depth: int = 0) -> str:
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
        items = [_show(v, depth + 1) for v in value[:3]]
        if len(value) > 3:
            items.append("...")
        return "[" + ", ".join(items) + "]"
    if isinstance(value, Mapping):
        if depth > 0:
            return "{...}" if value else "{}"
        pairs = [f"{k} = {_show(v, depth + 1)}" for k, v in list(value.items())[:3]]
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


def _toml_inline(value: Any) -> str:
    """One-line TOML for a raw value (arrays stay on one line, unlike tomli_w)."""
    if isinstance(value, list):
        return "[" + ", ".join(_toml_inline(v) for v in value) + "]"
    return tomli_w.dumps({"v": value})[len("v = ") :].rstrip("\n")


# ---------------------------------------------------------------------------------------
# Kinds: how one value is checked, converted and written back.


@dataclass
class _Ctx:
    base_dir: Path
    errors: list[str]

    def bad(self, path: str, expected: str, got: Any) -> object:
        self.errors.append(f"{path}: expected {expected}, got {_show(got)}")
        return _BAD


class Kind(abc.ABC):
    """Base of the value kinds. ``expected`` is the phrase used in messages and docs."""

    expected: str = "value"

    @abc.abstractmethod
    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
        """The validated value, or ``_BAD`` after recording an error in ``ctx``."""

    def dump(self, value: Any) -> Any:
        return value


class BoolKind(Kind):
    expected = "true or false"

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
        return raw if isinstance(raw, bool) else ctx.bad(path, self.expected, raw)


class IntKind(Kind):
    """An integer in ``lo..hi`` (``hi`` None = unbounded). ``zero_ok`` admits 0 outside the
    range without advertising it (port 0 = ephemeral, for tests)."""

    def __init__(self, lo: int, hi: int | None = None, *, zero_ok: bool = False) -> None:
        self.lo, self.hi, self.zero_ok = lo, hi, zero_ok
        self.expected = f"integer {lo}..{hi}" if hi is not None else f"integer >= {lo}"

    def _in_range(self, v: int) -> bool:
        return (v == 0 and self.zero_ok) or (v >= self.lo and (self.hi is None or v <= self.hi))

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
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

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
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

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
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

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
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

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
        if isinstance(raw, str) and ((raw == "" and self.empty_ok) or _url_ok(raw, self.schemes)):
            return raw
        return ctx.bad(path, self.expected, raw)


class PathKind(Kind):
    """A filesystem path, resolved against the config file's directory (``~`` expanded).
    With ``empty_ok``, "" means "not set" and is stored as None."""

    def __init__(self, *, empty_ok: bool = False) -> None:
        self.empty_ok = empty_ok
        self.expected = 'path or "" (unset)' if empty_ok else "non-empty path"

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
        if not isinstance(raw, str) or "\0" in raw or (raw == "" and not self.empty_ok):
            return ctx.bad(path, self.expected, raw)
        if raw == "":
            return None
        return Path(os.path.normpath(ctx.base_dir / Path(raw).expanduser()))

    def dump(self, value: Any) -> Any:
        return "" if value is None else str(value)


class PubkeyKind(Kind):
    expected = "base58 public key (32 bytes)"

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
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

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
        if isinstance(raw, str) and (m := self._RE.fullmatch(raw)):
            return dtime(int(m[1]), int(m[2]))
        return ctx.bad(path, self.expected, raw)

    def dump(self, value: Any) -> Any:
        assert isinstance(value, dtime)
        return value.strftime("%H:%M")


class NetworkKind(Kind):
    expected = 'IP address or CIDR network (e.g. "10.0.0.0/8")'

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
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

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
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


_EMAIL_RE: Final = r"[^@\s\"<>,;]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"


class ListKind(Kind):
    """An array whose items are all of ``item`` kind; stored as a tuple (hashable, frozen)."""

    def __init__(self, item: Kind, *, max_len: int = 100) -> None:
        self.item, self.max_len = item, max_len
        self.expected = f"array of {item.expected}"

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
        if not isinstance(raw, list | tuple):
            return ctx.bad(path, self.expected, raw)
        if len(raw) > self.max_len:
            return ctx.bad(path, f"at most {self.max_len} items", raw)
        values = [self.item.parse(v, f"{path}[{i}]", ctx) for i, v in enumerate(raw)]
        return _BAD if any(v is _BAD for v in values) else tuple(values)

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

    def parse(self, raw: Any, path: str, ctx: _Ctx) -> Any:
        if isinstance(raw, str):
            return raw
        ctx.errors.append(f"{path}: expected {self.expected}, got {_type_name(raw)} ({REDACTED})")
        return _BAD

    def dump(self, value: Any) -> Any:  # pragma: no cover - to_dict handles secrets itself
        raise TypeError("secrets are dumped by to_dict")


# -- secret content checks (reasons never quote the value) -------------------------------


def _check_dsn(text: str) -> str | None:
    if _url_ok(text, ("postgresql", "postgres")):
        return None
    return "not a postgresql:// URL with a host"


def _check_redis(text: str) -> str | None:
    try:
        parts = urlsplit(text)
    except ValueError:
        return "not a URL"
    if parts.scheme == "unix" and parts.path:
        return None
    if _url_ok(text, ("redis", "rediss")):
        return None
    return "not a redis://, rediss:// or unix:// URL"


def _check_http_url(text: str) -> str | None:
    return None if _url_ok(text, ("http", "https")) else "not an http(s) URL"


def _check_keypair(text: str) -> str | None:
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


# ---------------------------------------------------------------------------------------
# The schema. Field order is the canonical key order (docs, dump, example).


@dataclass(frozen=True)
class _Meta:
    kind: Kind
    default: Any
    doc: str
    example: Any


def _m(kind: Kind, default: Any, doc: str, *, example: Any = None) -> dict[str, _Meta]:
    """Field metadata: how the key is checked, its raw TOML default and its description.
    (Written as ``field(metadata=_m(...))`` so linters see an ordinary dataclass field.)"""
    return {"spec": _Meta(kind, default, doc, example)}


_HOST: Final = StrKind("host name or IP address (no scheme, no port)", r"[A-Za-z0-9_.:%-]+")
_PORT: Final = IntKind(1, 65535, zero_ok=True)
_ANY_STR: Final = StrKind("string")
_OPT_FILE: Final = PathKind(empty_ok=True)
_HTTP_URL_OR_EMPTY: Final = UrlKind(("http", "https"), "http(s)", empty_ok=True)
_PORT_DOC: Final = " 0 picks a free port (tests only)."


def _file_doc(section: str, key: str) -> str:
    return (
        f"File whose content (whitespace stripped) is {section}.{key}; relative to this "
        f'file. Use either {key} or {key}_file, not both. "" = unset.'
    )


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    data_dir: Path = field(
        metadata=_m(
            PathKind(),
            "var",
            "Directory for local state (embedded PostgreSQL in <data_dir>/postgres, local "
            "snapshots); relative paths are taken from this file's directory.",
        )
    )
    shutdown_timeout: float = field(
        metadata=_m(
            FloatKind(0.1, 600),
            10.0,
            "On SIGTERM/SIGINT, how long actors get to finish before they are cancelled.",
        )
    )
    max_restarts: int = field(
        metadata=_m(
            IntKind(0, 1000),
            5,
            "Supervisor intensity: more than this many actor restarts within restart_window "
            "makes zmartd exit non-zero (so systemd restarts the whole process).",
        )
    )
    restart_window: float = field(
        metadata=_m(FloatKind(0, 86400, lo_open=True), 60.0, "Window for max_restarts.")
    )
    backoff_initial: float = field(
        metadata=_m(
            FloatKind(0, 3600, lo_open=True), 0.5, "First delay before restarting a crashed actor."
        )
    )
    backoff_max: float = field(
        metadata=_m(
            FloatKind(0, 3600, lo_open=True),
            30.0,
            "Cap of the exponential restart delay; must be >= backoff_initial.",
        )
    )
    backoff_jitter: float = field(
        metadata=_m(
            FloatKind(0, 1, unit="fraction"),
            0.2,
            "Random spread applied to each restart delay (0.2 = +/-20 %).",
        )
    )
    instance_name: str = field(
        metadata=_m(
            StrKind("name of letters, digits, '.', '_' or '-' (1..64)", r"[A-Za-z0-9._-]{1,64}"),
            "zmartd",
            "Name of this instance in logs, metrics and leader election (set one per host "
            "when several zmartd share a database).",
        )
    )


@dataclass(frozen=True, slots=True)
class HttpConfig:
    enabled: bool = field(
        metadata=_m(BoolKind(), True, "Serve the REST API, /health, /ready, /metrics, webhooks.")
    )
    host: str = field(metadata=_m(_HOST, "127.0.0.1", "Address to listen on."))
    port: int = field(metadata=_m(_PORT, 8080, "TCP port to listen on." + _PORT_DOC))
    graceful_timeout: float = field(
        metadata=_m(
            FloatKind(0, 60),
            2.0,
            "On shutdown, how long in-flight requests may finish. Idle keep-alive connections "
            "(scrapers, proxies) make every shutdown take exactly this long, so keep it small.",
        )
    )
    public_url: str = field(
        metadata=_m(
            UrlKind(("http", "https"), "http(s)"),
            "http://127.0.0.1:8080",
            "URL clients use to reach this API; its host is the Sign-In-With-Solana domain "
            "and the URL its URI.",
        )
    )
    trusted_proxies: tuple[IpNetwork, ...] = field(
        metadata=_m(
            ListKind(NetworkKind()),
            ["127.0.0.1", "::1"],
            "Peers whose X-Forwarded-For is believed (for client IPs in rate limits and logs).",
        )
    )
    cors_origins: tuple[str, ...] = field(
        metadata=_m(
            ListKind(OriginKind()),
            [],
            "Origins allowed by CORS; [] = no CORS headers.",
            example=["https://app.example.com"],
        )
    )
    max_body_bytes: int = field(
        metadata=_m(IntKind(1024, 1 << 30), 1 << 20, "Largest request body accepted (413 above).")
    )
    max_in_flight: int = field(
        metadata=_m(
            IntKind(1, 100_000),
            512,
            "Requests handled at once; beyond that the API answers 503 at once (load "
            "shedding) instead of queueing. /health, /ready and metrics are exempt.",
        )
    )
    max_connections: int = field(
        metadata=_m(
            IntKind(0, 1_000_000),
            512,
            "Client connections served at once; past that a new connection is answered 503 "
            "(raw bytes, a fraction of a request's cost) and closed, so that overload ends in "
            "fast 503s rather than every answer slowing down. 0 = no limit. Keep it above "
            "the proxy's upstream keep-alive pool.",
        )
    )
    max_json_depth: int = field(
        metadata=_m(
            IntKind(1, 1000), 32, "Deepest nesting of arrays/objects accepted in a JSON body."
        )
    )
    keep_alive_timeout: float = field(
        metadata=_m(
            FloatKind(0.5, 3600),
            5.0,
            "How long an idle keep-alive connection is kept for its next request (closed "
            "after that, so it stops counting against max_connections). A proxy pooling "
            "upstream connections should close them sooner than this.",
        )
    )
    header_timeout: float = field(
        metadata=_m(
            FloatKind(0.5, 600),
            10.0,
            "A request head must be complete this long after its first byte (after the "
            "connection opened, for its first request); a slower client is disconnected.",
        )
    )
    body_timeout: float = field(
        metadata=_m(
            FloatKind(0.5, 600),
            10.0,
            "A client that sends no byte of a started request body for this long is "
            "disconnected; also the longest time spent reading away a small body that an "
            "early answer (401, 404, ...) left unread.",
        )
    )
    cache_ttl: float = field(
        metadata=_m(
            FloatKind(0, 3600),
            30.0,
            "Longest time a hot read (market detail, first page of markets, quote inputs) is "
            "served from memory; events invalidate it sooner. 0 = no caching. While the database "
            "is down, older entries are still served.",
        )
    )
    cache_max_entries: int = field(
        metadata=_m(IntKind(1, 10_000_000), 10_000, "Hot-read responses kept in memory.")
    )
    required: bool = field(
        metadata=_m(BoolKind(), True, "/ready answers 503 while this actor is down.")
    )


@dataclass(frozen=True, slots=True)
class AuthConfig:
    domain: str = field(
        metadata=_m(
            StrKind(
                'host[:port] or "" (derive)',
                r"([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?|",
            ),
            "",
            "Sign-In-With-Solana domain that messages must name; it must be the web app's "
            'host (and port, if any) as the wallet sees it. "" = the host[:port] of '
            "http.public_url.",
            example="app.example.com",
        )
    )
    statement: str = field(
        metadata=_m(
            StrKind("one line of text (1..200 characters)", r"[^\r\n]{1,200}"),
            "Sign in to ZMART.",
            "Statement shown to the user in the sign-in message.",
        )
    )
    chain_id: Literal["mainnet", "devnet", "testnet", "localnet"] = field(
        metadata=_m(
            ChoiceKind("mainnet", "devnet", "testnet", "localnet"),
            "devnet",
            "Chain ID written in sign-in messages (the cluster the session is bound to).",
        )
    )
    nonce_ttl: float = field(
        metadata=_m(
            FloatKind(10, 3600),
            300.0,
            "How long a sign-in nonce (and its message) stays valid; each is single-use.",
        )
    )
    session_ttl: float = field(
        metadata=_m(
            FloatKind(60, 90 * 86400),
            7 * 86400.0,
            "Lifetime of a session token issued by POST /v1/auth/verify.",
        )
    )


_RATE: Final = IntKind(1, 1_000_000)


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    enabled: bool = field(
        metadata=_m(BoolKind(), True, "Apply the token buckets below (false = no 429s).")
    )
    reads_ip_per_minute: int = field(
        metadata=_m(_RATE, 600, "Reads (GET) per minute per client IP (token refill rate).")
    )
    reads_ip_burst: int = field(metadata=_m(_RATE, 120, "Bucket size of reads per client IP."))
    reads_wallet_per_minute: int = field(
        metadata=_m(_RATE, 600, "Reads per minute per signed-in wallet.")
    )
    reads_wallet_burst: int = field(metadata=_m(_RATE, 120, "Bucket size of reads per wallet."))
    writes_ip_per_minute: int = field(
        metadata=_m(_RATE, 60, "Writes (votes, posts, profile) per minute per client IP.")
    )
    writes_ip_burst: int = field(metadata=_m(_RATE, 20, "Bucket size of writes per client IP."))
    writes_wallet_per_minute: int = field(
        metadata=_m(_RATE, 30, "Writes per minute per signed-in wallet.")
    )
    writes_wallet_burst: int = field(metadata=_m(_RATE, 10, "Bucket size of writes per wallet."))
    auth_ip_per_minute: int = field(
        metadata=_m(_RATE, 30, "Sign-in requests (nonce, verify, logout) per minute per client IP.")
    )
    auth_ip_burst: int = field(metadata=_m(_RATE, 10, "Bucket size of sign-in requests per IP."))
    auth_wallet_per_minute: int = field(
        metadata=_m(_RATE, 10, "Sign-in requests per minute per wallet signing in.")
    )
    auth_wallet_burst: int = field(
        metadata=_m(_RATE, 5, "Bucket size of sign-in requests per wallet.")
    )


@dataclass(frozen=True, slots=True)
class WsConfig:
    enabled: bool = field(metadata=_m(BoolKind(), True, "Serve the WebSocket hub."))
    host: str = field(metadata=_m(_HOST, "127.0.0.1", "Address to listen on."))
    port: int = field(
        metadata=_m(
            _PORT,
            8081,
            "TCP port to listen on (must differ from http.port on the same host)." + _PORT_DOC,
        )
    )
    heartbeat_interval: float = field(
        metadata=_m(FloatKind(1, 3600), 30.0, "Seconds between pings to each client.")
    )
    heartbeat_misses: int = field(
        metadata=_m(IntKind(1, 100), 2, "Unanswered pings after which a client is disconnected.")
    )
    max_subscriptions: int = field(
        metadata=_m(IntKind(1, 10_000), 50, "Channels one connection may join.")
    )
    max_message_bytes: int = field(
        metadata=_m(IntKind(256, 16 << 20), 65536, "Largest client message accepted (bytes).")
    )
    max_connections_per_ip: int = field(
        metadata=_m(IntKind(1, 100_000), 100, "Concurrent connections from one client IP.")
    )
    send_queue: int = field(
        metadata=_m(
            IntKind(1, 100_000),
            256,
            "Messages buffered per client; a client that falls further behind is disconnected.",
        )
    )
    replay_buffer_size: int = field(
        metadata=_m(
            IntKind(0, 1_000_000),
            1000,
            "Recent messages per channel kept for resume-after-reconnect (0 = no replay).",
        )
    )
    replay_buffer_age: float = field(
        metadata=_m(FloatKind(0, 86400, lo_open=True), 300.0, "Age limit of replayable messages.")
    )
    required: bool = field(
        metadata=_m(BoolKind(), True, "/ready answers 503 while this actor is down.")
    )


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    dsn: Secret = field(
        metadata=_m(
            SecretKind("PostgreSQL URL postgresql://user:password@host:port/db", _check_dsn),
            "",
            'PostgreSQL to use. "" = run the embedded PostgreSQL in <data_dir>/postgres '
            "(needs embedded = true).",
        )
    )
    dsn_file: Path | None = field(metadata=_m(_OPT_FILE, "", _file_doc("database", "dsn")))
    pool_min: int = field(metadata=_m(IntKind(1, 100), 2, "Connections kept open."))
    pool_max: int = field(
        metadata=_m(IntKind(1, 1000), 10, "Connection limit; must be >= pool_min.")
    )
    statement_timeout: float = field(
        metadata=_m(FloatKind(0, 3600, lo_open=True), 10.0, "Server-side limit per SQL statement.")
    )
    embedded: bool = field(
        metadata=_m(
            BoolKind(),
            True,
            'Allow the embedded PostgreSQL when dsn is "". false makes an empty dsn an error '
            "(production guard).",
        )
    )
    required: bool = field(
        metadata=_m(BoolKind(), True, "/ready answers 503 while the database is down.")
    )


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: Secret = field(
        metadata=_m(
            SecretKind("redis://, rediss:// or unix:// URL", _check_redis),
            "",
            "Redis shared by several zmartd: pub/sub, cache invalidation and rate-limit buckets. "
            '"" = no Redis (in-process only).',
        )
    )
    url_file: Path | None = field(metadata=_m(_OPT_FILE, "", _file_doc("redis", "url")))
    key_prefix: str = field(
        metadata=_m(_ANY_STR, "zmartd:", "Prefix of every Redis key and channel.")
    )
    required: bool = field(
        metadata=_m(BoolKind(), False, "/ready answers 503 while Redis is down.")
    )


@dataclass(frozen=True, slots=True)
class ChainConfig:
    mode: Literal["local", "rpc"] = field(
        metadata=_m(
            ChoiceKind("local", "rpc"),
            "local",
            '"local" = run the built-in local chain double ([devchain]); "rpc" = use a real '
            "cluster through rpc_urls.",
        )
    )
    program_id: Pubkey = field(
        metadata=_m(
            PubkeyKind(),
            "6s8bbbCS7oNYNnTUHgrPDHG4jqaSrD6MSxQSPVR1rxw",
            "The ZMART program (current devnet deployment).",
        )
    )
    rpc_urls: tuple[str, ...] = field(
        metadata=_m(
            ListKind(UrlKind(("http", "https"), "http(s)"), max_len=20),
            [],
            'JSON-RPC endpoints, primary first; at least one when mode = "rpc" (ignored in '
            "local mode).",
            example=["https://api.devnet.solana.com"],
        )
    )
    ws_url: str = field(
        metadata=_m(
            UrlKind(("ws", "wss"), "ws(s)", empty_ok=True),
            "",
            'PubSub endpoint. "" = derive from the first rpc url (http->ws, https->wss, '
            "explicit port + 1 as solana-test-validator does).",
        )
    )
    commitment: Literal["processed", "confirmed", "finalized"] = field(
        metadata=_m(
            ChoiceKind("processed", "confirmed", "finalized"),
            "confirmed",
            "Commitment for reads and subscriptions.",
        )
    )
    request_timeout: float = field(
        metadata=_m(FloatKind(0, 300, lo_open=True), 10.0, "Timeout of one RPC request.")
    )
    max_retries: int = field(
        metadata=_m(IntKind(0, 20), 5, "Retries of a failed RPC request (with backoff).")
    )
    keypair: Secret = field(
        metadata=_m(
            SecretKind(
                "Solana keypair (base58 secret key, or JSON array of 64 integers as written by "
                "solana-keygen)",
                _check_keypair,
            ),
            "",
            'Backend authority that signs transactions. "" = read-only (no transactions sent).',
        )
    )
    keypair_file: Path | None = field(
        metadata=_m(
            _OPT_FILE, "", _file_doc("chain", "keypair") + " A solana-keygen JSON file works as is."
        )
    )
    webhook_secret: Secret = field(
        metadata=_m(
            SecretKind("any text"),
            "",
            'Expected Authorization header of incoming chain webhooks. "" = webhooks refused.',
        )
    )
    webhook_secret_file: Path | None = field(
        metadata=_m(_OPT_FILE, "", _file_doc("chain", "webhook_secret"))
    )
    reconcile_interval: float = field(
        metadata=_m(
            FloatKind(1, 86400), 300.0, "Seconds between full getProgramAccounts reconciliations."
        )
    )
    required: bool = field(
        metadata=_m(BoolKind(), True, "/ready answers 503 while the chain is unreachable.")
    )

    def signer(self) -> Keypair | None:
        """The backend authority keypair, or None when running read-only."""
        return parse_keypair(self.keypair.reveal()) if self.keypair else None


@dataclass(frozen=True, slots=True)
class DevchainConfig:
    host: str = field(
        metadata=_m(_HOST, "127.0.0.1", "Address of the local chain double's JSON-RPC/PubSub.")
    )
    port: int = field(metadata=_m(_PORT, 8899, "JSON-RPC port." + _PORT_DOC))
    ws_port: int = field(
        metadata=_m(_PORT, 8900, "PubSub port; must differ from port." + _PORT_DOC)
    )
    seed: Literal["demo", "none"] = field(
        metadata=_m(
            ChoiceKind("demo", "none"),
            "demo",
            '"demo" = start with a global config and sample markets; "none" = empty chain.',
        )
    )
    state_file: Path | None = field(
        metadata=_m(
            _OPT_FILE, "", 'File the chain state is saved to and restored from; "" = in memory.'
        )
    )
    slot_interval: float = field(metadata=_m(FloatKind(0.01, 60), 0.4, "Seconds per slot."))
    finalized_lag: int = field(
        metadata=_m(IntKind(0, 1000), 32, "Slots between confirmed and finalized.")
    )
    program_variant: Literal["deployed", "patched"] = field(
        metadata=_m(
            ChoiceKind("deployed", "patched"),
            "deployed",
            '"deployed" = behave like the program on devnet, bugs included. "patched" fixes the '
            "fund-moving bugs of PROGRAM.md section 11 and is NOT the deployed behaviour.",
        )
    )
    webhook_url: str = field(
        metadata=_m(
            _HTTP_URL_OR_EMPTY,
            "",
            'Where to POST Helius-style webhooks for each transaction; "" = off.',
        )
    )
    webhook_auth_header: Secret = field(
        metadata=_m(SecretKind("any text"), "", "Authorization header sent with those webhooks.")
    )
    webhook_auth_header_file: Path | None = field(
        metadata=_m(_OPT_FILE, "", _file_doc("devchain", "webhook_auth_header"))
    )
    webhook_duplicates: int = field(
        metadata=_m(IntKind(1, 10), 1, "Times each webhook is delivered (tests idempotency).")
    )
    webhook_shuffle: bool = field(
        metadata=_m(BoolKind(), False, "Deliver webhooks out of order (tests ordering).")
    )


@dataclass(frozen=True, slots=True)
class AggregatorConfig:
    enabled: bool = field(metadata=_m(BoolKind(), True, "Run the vote aggregator (leader only)."))
    interval: float = field(metadata=_m(FloatKind(1, 86400), 300.0, "Seconds between tallies."))
    proposal_threshold_bps: int = field(
        metadata=_m(
            IntKind(0, 10000), 7000, "Share of likes (basis points) that approves a proposal."
        )
    )
    dispute_threshold_bps: int = field(
        metadata=_m(
            IntKind(0, 10000), 6000, "Share of agree votes (basis points) that upholds a dispute."
        )
    )
    min_votes: int = field(metadata=_m(IntKind(0), 10, "Votes needed before a tally can act."))


@dataclass(frozen=True, slots=True)
class SnapshotterConfig:
    enabled: bool = field(
        metadata=_m(BoolKind(), True, "Run the daily discussion snapshot (leader only).")
    )
    at: dtime = field(metadata=_m(TimeKind(), "00:00", "Time of day (UTC) of the snapshot."))
    ipfs_api_url: str = field(
        metadata=_m(
            _HTTP_URL_OR_EMPTY,
            "",
            'IPFS HTTP API to pin snapshots to; "" = compute CIDs and keep files locally only.',
            example="http://127.0.0.1:5001",
        )
    )
    retention_days: int = field(
        metadata=_m(IntKind(1, 36500), 90, "Days local snapshot files are kept.")
    )


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    enabled: bool = field(
        metadata=_m(BoolKind(), True, "Run deadline checks and alerts (leader only).")
    )
    interval: float = field(metadata=_m(FloatKind(1, 86400), 60.0, "Seconds between checks."))
    alert_webhook_url: Secret = field(
        metadata=_m(
            SecretKind("http(s) URL", _check_http_url),
            "",
            "URL alerts are POSTed to (Slack/Discord style); a secret because such URLs carry "
            'tokens. "" = off.',
        )
    )
    alert_webhook_url_file: Path | None = field(
        metadata=_m(_OPT_FILE, "", _file_doc("monitor", "alert_webhook_url"))
    )
    alert_email_to: tuple[str, ...] = field(
        metadata=_m(
            ListKind(StrKind("e-mail address", _EMAIL_RE)),
            [],
            "Alert e-mail recipients; [] = no e-mail. Needs smtp_host.",
            example=["ops@example.com"],
        )
    )
    smtp_host: str = field(
        metadata=_m(
            StrKind('host name or IP address, or ""', r"[A-Za-z0-9_.:%-]*"),
            "",
            'SMTP server for alert e-mail; "" = none.',
        )
    )
    smtp_port: int = field(metadata=_m(IntKind(1, 65535), 587, "SMTP port."))
    smtp_tls: Literal["starttls", "tls", "none"] = field(
        metadata=_m(
            ChoiceKind("starttls", "tls", "none"),
            "starttls",
            '"starttls" (port 587), "tls" (implicit TLS, port 465) or "none" (local relay).',
        )
    )
    smtp_user: str = field(metadata=_m(_ANY_STR, "", 'SMTP login; "" = no authentication.'))
    smtp_password: Secret = field(metadata=_m(SecretKind("any text"), "", "SMTP password."))
    smtp_password_file: Path | None = field(
        metadata=_m(_OPT_FILE, "", _file_doc("monitor", "smtp_password"))
    )
    alert_from: str = field(
        metadata=_m(
            StrKind("e-mail address", _EMAIL_RE), "zmartd@localhost", "From address of alerts."
        )
    )


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = field(
        metadata=_m(ChoiceKind("debug", "info", "warning", "error"), "info", "Lowest level logged.")
    )
    format: Literal["auto", "json", "console"] = field(
        metadata=_m(
            ChoiceKind("auto", "json", "console"),
            "auto",
            '"auto" = console when stdout is a terminal, else JSON lines.',
        )
    )


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    enabled: bool = field(
        metadata=_m(BoolKind(), True, "Expose Prometheus metrics on the HTTP server.")
    )
    path: str = field(
        metadata=_m(
            StrKind('URL path starting with "/"', r"/[A-Za-z0-9._~/-]*"),
            "/metrics",
            "Path of the metrics endpoint.",
        )
    )


@dataclass(frozen=True, slots=True)
class AdminConfig:
    wallets: tuple[Pubkey, ...] = field(
        metadata=_m(
            ListKind(PubkeyKind()),
            [],
            "Wallets allowed to use /admin (after Sign-In-With-Solana).",
            example=["6s8bbbCS7oNYNnTUHgrPDHG4jqaSrD6MSxQSPVR1rxw"],
        )
    )


SectionConfig = (
    DaemonConfig
    | HttpConfig
    | AuthConfig
    | RateLimitConfig
    | WsConfig
    | DatabaseConfig
    | RedisConfig
    | ChainConfig
    | DevchainConfig
    | AggregatorConfig
    | SnapshotterConfig
    | MonitorConfig
    | LogConfig
    | MetricsConfig
    | AdminConfig
)

_SECTION_TYPES: Final[dict[str, type[Any]]] = {
    "daemon": DaemonConfig,
    "http": HttpConfig,
    "auth": AuthConfig,
    "ratelimit": RateLimitConfig,
    "ws": WsConfig,
    "database": DatabaseConfig,
    "redis": RedisConfig,
    "chain": ChainConfig,
    "devchain": DevchainConfig,
    "aggregator": AggregatorConfig,
    "snapshotter": SnapshotterConfig,
    "monitor": MonitorConfig,
    "log": LogConfig,
    "metrics": MetricsConfig,
    "admin": AdminConfig,
}
SECTIONS: Final[tuple[str, ...]] = tuple(_SECTION_TYPES)

_SECTION_DOCS: Final[dict[str, str]] = {
    "daemon": "The process: where local state lives, shutdown and the supervisor's restart policy.",
    "http": "REST API, health/readiness, metrics and webhooks (quart-trio on hypercorn).",
    "auth": "Sign-In With Solana: the message wallets sign and the sessions it opens.",
    "ratelimit": "Token buckets per route class (reads, writes, auth), per client IP and per "
    "signed-in wallet; shared through Redis when [redis] url is set (in memory otherwise, and "
    "while Redis fails). A full bucket answers 429 with Retry-After.",
    "ws": "WebSocket hub for live updates.",
    "database": "PostgreSQL, the source of truth for reads.",
    "redis": "Optional Redis, to share pub/sub between several zmartd processes.",
    "chain": "The Solana cluster and the ZMART program.",
    "devchain": 'The built-in local chain double, used when chain.mode = "local".',
    "aggregator": "Tallies proposal and dispute votes and turns them into transactions.",
    "snapshotter": "Daily content-addressed snapshots of discussions.",
    "monitor": "Deadline checks and operator alerts.",
    "log": "Logging.",
    "metrics": "Prometheus metrics.",
    "admin": "Administration.",
}


@dataclass(frozen=True, slots=True)
class Config:
    """The whole effective configuration; one attribute per section, in SECTIONS order."""

    daemon: DaemonConfig
    http: HttpConfig
    auth: AuthConfig
    ratelimit: RateLimitConfig
    ws: WsConfig
    database: DatabaseConfig
    redis: RedisConfig
    chain: ChainConfig
    devchain: DevchainConfig
    aggregator: AggregatorConfig
    snapshotter: SnapshotterConfig
    monitor: MonitorConfig
    log: LogConfig
    metrics: MetricsConfig
    admin: AdminConfig
    source_path: Path | None = field(default=None, compare=False)


@dataclass(frozen=True)
class FieldSpec:
    """One key of the schema, as used by validation, docs and tests."""

    section: str
    key: str
    kind: Kind
    default: Any  # raw TOML value
    doc: str
    example: Any  # raw TOML value shown commented-out in the example file, or None
    python_type: str

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def secret(self) -> bool:
        return isinstance(self.kind, SecretKind)

    @property
    def env_var(self) -> str | None:
        return f"{ENV_PREFIX}{self.section}_{self.key}".upper() if self.secret else None


def _build_specs() -> dict[str, dict[str, FieldSpec]]:
    specs: dict[str, dict[str, FieldSpec]] = {}
    for name, cls in _SECTION_TYPES.items():
        section: dict[str, FieldSpec] = {}
        for f in dataclasses.fields(cls):
            m: _Meta = f.metadata["spec"]
            section[f.name] = FieldSpec(
                name, f.name, m.kind, m.default, m.doc, m.example, str(f.type)
            )
        for key, spec in section.items():
            if spec.secret and f"{key}_file" not in section:
                raise AssertionError(f"secret {name}.{key} lacks {key}_file")
        specs[name] = section
    return specs


_SPECS: Final = _build_specs()


def field_specs() -> tuple[FieldSpec, ...]:
    """Every key of the schema in canonical order."""
    return tuple(s for section in _SPECS.values() for s in section.values())


# ---------------------------------------------------------------------------------------
# Rules that involve several keys (checked only when each involved key parsed fine).

_Parsed = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class _Rule:
    doc: str
    check: Callable[[_Parsed, list[str]], None]


def _ok(*values: Any) -> bool:
    return all(v is not _BAD for v in values)


def _rule_backoff(p: _Parsed, errors: list[str]) -> None:
    d = p["daemon"]
    if _ok(d["backoff_initial"], d["backoff_max"]) and d["backoff_max"] < d["backoff_initial"]:
        errors.append(
            f"daemon.backoff_max: expected number >= daemon.backoff_initial "
            f"({_show(d['backoff_initial'])}), got {_show(d['backoff_max'])}"
        )


def _rule_ports(p: _Parsed, errors: list[str]) -> None:
    h, w = p["http"], p["ws"]
    if (
        _ok(h["enabled"], w["enabled"], h["host"], w["host"], h["port"], w["port"])
        and h["enabled"]
        and w["enabled"]
        and h["host"] == w["host"]
        and h["port"] == w["port"] != 0
    ):
        errors.append(
            f"ws.port: expected a port other than http.port ({h['port']}) on the same host, "
            f"got {w['port']}"
        )
    d = p["devchain"]
    if _ok(d["port"], d["ws_port"]) and d["port"] == d["ws_port"] != 0:
        errors.append(
            f"devchain.ws_port: expected a port other than devchain.port ({d['port']}), "
            f"got {d['ws_port']}"
        )


def _rule_pool(p: _Parsed, errors: list[str]) -> None:
    db = p["database"]
    if _ok(db["pool_min"], db["pool_max"]) and db["pool_max"] < db["pool_min"]:
        errors.append(
            f"database.pool_max: expected integer >= database.pool_min ({db['pool_min']}), "
            f"got {db['pool_max']}"
        )


def _rule_embedded(p: _Parsed, errors: list[str]) -> None:
    db = p["database"]
    if _ok(db["dsn"], db["embedded"]) and not db["dsn"] and not db["embedded"]:
        errors.append(
            'database.dsn: expected a PostgreSQL URL when database.embedded = false, got ""'
        )


def _rule_rpc_urls(p: _Parsed, errors: list[str]) -> None:
    c = p["chain"]
    if _ok(c["mode"], c["rpc_urls"]) and c["mode"] == "rpc" and not c["rpc_urls"]:
        errors.append(
            'chain.rpc_urls: expected at least one http(s) URL when chain.mode = "rpc", got []'
        )


def _rule_smtp(p: _Parsed, errors: list[str]) -> None:
    m = p["monitor"]
    if _ok(m["alert_email_to"], m["smtp_host"]) and m["alert_email_to"] and not m["smtp_host"]:
        errors.append(
            'monitor.smtp_host: expected an SMTP host when monitor.alert_email_to is set, got ""'
        )


_RULES: Final = (
    _Rule("daemon.backoff_max >= daemon.backoff_initial.", _rule_backoff),
    _Rule(
        "ws.port differs from http.port when both are enabled on the same host; "
        "devchain.ws_port differs from devchain.port (0 excepted).",
        _rule_ports,
    ),
    _Rule("database.pool_max >= database.pool_min.", _rule_pool),
    _Rule(
        "database.dsn (after env and dsn_file) is set when database.embedded = false.",
        _rule_embedded,
    ),
    _Rule('chain.rpc_urls has at least one URL when chain.mode = "rpc".', _rule_rpc_urls),
    _Rule("monitor.smtp_host is set when monitor.alert_email_to is not empty.", _rule_smtp),
)


# ---------------------------------------------------------------------------------------
# Parsing


def _unknown(path: str, name: str, valid: Iterable[str], what: str) -> str:
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    hint = f'did you mean "{close[0]}"? ' if close else ""
    label = "sections" if what == "section" else "keys"
    return f"{path}: unknown {what} ({hint}valid {label}: {', '.join(valid)})"


def _read_secret_file(path: Path) -> str:
    with open(path, "rb") as fh:
        data = fh.read(_MAX_SECRET_FILE_BYTES + 1)
    if len(data) > _MAX_SECRET_FILE_BYTES:
        raise ValueError(f"a file larger than {_MAX_SECRET_FILE_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("a file that is not UTF-8 text") from None


def _resolve_secrets(parsed: _Parsed, env: Mapping[str, str], errors: list[str]) -> None:
    """Replace each secret's inline string by a Secret from env > K_file > inline."""
    for spec in field_specs():
        if not isinstance(spec.kind, SecretKind):
            continue
        vals = parsed[spec.section]
        inline, fpath = vals[spec.key], vals[f"{spec.key}_file"]
        env_name = spec.env_var
        assert env_name is not None
        if isinstance(inline, str) and inline and isinstance(fpath, Path):
            errors.append(
                f"{spec.path}: expected either {spec.key} or {spec.key}_file, not both, "
                "got both set"
            )
            vals[spec.key] = _BAD
            continue
        env_value = env.get(env_name, "")
        if env_value:
            text, source, label = env_value, f"env {env_name}", f"{spec.path} (from {env_name})"
        elif inline is _BAD or fpath is _BAD:
            vals[spec.key] = _BAD
            continue
        elif fpath is not None:
            label = f"{spec.path}_file ({fpath})"
            try:
                text = _read_secret_file(fpath)
            except OSError as e:
                errors.append(
                    f"{spec.path}_file: expected a readable file, got {json.dumps(str(fpath))} "
                    f"({e.strerror or type(e).__name__})"
                )
                vals[spec.key] = _BAD
                continue
            except ValueError as e:
                errors.append(f"{label}: expected a text file holding the secret, got {e}")
                vals[spec.key] = _BAD
                continue
            if not text:
                errors.append(f"{label}: expected {spec.kind.content}, got an empty file")
                vals[spec.key] = _BAD
                continue
            source = f"file {fpath}"
        else:
            text, source, label = inline, "inline", spec.path
        if text and spec.kind.check is not None:
            reason = spec.kind.check(text)
            if reason is not None:
                errors.append(f"{label}: expected {spec.kind.content}, got {REDACTED} ({reason})")
                vals[spec.key] = _BAD
                continue
        vals[spec.key] = Secret(text, source)


def _check_env(env: Mapping[str, str], errors: list[str]) -> None:
    """``ZMARTD_<SECTION>_*`` names are reserved for secrets. Anything else under such a
    prefix is an error, so that a typo cannot leave a secret silently unset and nobody
    believes ``ZMARTD_HTTP_PORT`` changed the port."""
    secrets = {s.env_var: s for s in field_specs() if s.secret}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in secrets or not env[name]:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        for section in SECTIONS:
            if rest.startswith(section + "_"):
                key = rest[len(section) + 1 :]
                valid = ", ".join(str(v) for v in secrets)
                if key in _SPECS[section]:
                    errors.append(
                        f"env {name}: {section}.{key} cannot be set from the environment "
                        f"(only secrets can: {valid}); set it in the config file"
                    )
                else:
                    close = difflib.get_close_matches(name, list(map(str, secrets)), n=1)
                    hint = f'did you mean "{close[0]}"? ' if close else ""
                    errors.append(f"env {name}: unknown variable ({hint}valid: {valid})")
                break


def parse_config(
    data: Mapping[str, Any], *, base_dir: Path, env: Mapping[str, str] | None = None
) -> Config:
    """Validate a decoded TOML document; raise ConfigError listing every problem.

    ``base_dir`` anchors relative paths (normally the config file's directory); ``env``
    (default ``os.environ``) supplies ``ZMARTD_*`` secrets.
    """
    env = os.environ if env is None else env
    ctx = _Ctx(Path(os.path.abspath(Path(base_dir).expanduser())), [])
    for name in data:
        if name not in _SPECS:
            ctx.errors.append(_unknown(name, name, SECTIONS, "section"))
    parsed: _Parsed = {}
    for section, specs in _SPECS.items():
        raw = data.get(section, {})
        if not isinstance(raw, Mapping):
            ctx.errors.append(f"{section}: expected table [{section}], got {_show(raw)}")
            parsed[section] = dict.fromkeys(specs, _BAD)
            continue
        for key in raw:
            if key not in specs:
                ctx.errors.append(_unknown(f"{section}.{key}", key, specs, "key"))
        parsed[section] = {
            key: spec.kind.parse(raw.get(key, spec.default), spec.path, ctx)
            for key, spec in specs.items()
        }
    _resolve_secrets(parsed, env, ctx.errors)
    _check_env(env, ctx.errors)
    for rule in _RULES:
        rule.check(parsed, ctx.errors)
    if ctx.errors:
        raise ConfigError(ctx.errors)
    return Config(**{s: _SECTION_TYPES[s](**parsed[s]) for s in SECTIONS})


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate a TOML config file; relative paths are taken from its
    directory. Raises ConfigError (missing/unreadable file, TOML syntax error with line
    and column, or every validation problem)."""
    p = Path(os.path.abspath(Path(path).expanduser()))
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{p}: config file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{p}: expected a config file, got a directory"]) from None
    except OSError as e:
        raise ConfigError([f"{p}: cannot read config file ({e.strerror})"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([f"{p}: not UTF-8 text (bad byte at offset {e.start})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # Python 3.11's message ends with "(at line L, column C)"; it never quotes values.
        raise ConfigError([f"{p}: invalid TOML: {e}"]) from None
    cfg = parse_config(data, base_dir=p.parent, env=env)
    return dataclasses.replace(cfg, source_path=p)


def default_config(*, base_dir: Path | None = None) -> Config:
    """The configuration of an empty file: no environment secrets read, relative paths
    anchored at ``base_dir`` (default: the current directory)."""
    return parse_config({}, base_dir=Path.cwd() if base_dir is None else base_dir, env={})


# ---------------------------------------------------------------------------------------
# Writing back, comparing


def to_dict(cfg: Config, *, redact: bool = True) -> dict[str, Any]:
    """The effective configuration as TOML-serialisable data (unset values are "").

    With ``redact`` (the default) a set secret is "<redacted>" and an unset one "".
    With ``redact=False`` (internal use only) a secret read from ``K_file`` is written as
    that file's path (K = "") and any other as its value, so that loading the dump under
    the same environment and files gives back an equal Config.
    """
    out: dict[str, Any] = {}
    for section, specs in _SPECS.items():
        values = getattr(cfg, section)
        sec: dict[str, Any] = {}
        for key, spec in specs.items():
            value = getattr(values, key)
            if isinstance(value, Secret):
                if redact:
                    sec[key] = REDACTED if value else ""
                elif getattr(values, f"{key}_file") is not None:
                    sec[key] = ""
                else:
                    sec[key] = value.reveal()
            else:
                sec[key] = spec.kind.dump(value)
        out[section] = sec
    return out


def dump_toml(cfg: Config, *, redact: bool = True) -> str:
    """``zmartd config dump``: the effective configuration as TOML."""
    return tomli_w.dumps(to_dict(cfg, redact=redact))


def changed_sections(old: Config, new: Config) -> frozenset[str]:
    """Sections whose effective values differ (secret values included), for SIGHUP reload."""
    return frozenset(s for s in SECTIONS if getattr(old, s) != getattr(new, s))


def secret_sources(cfg: Config) -> dict[str, str]:
    """Where each secret came from, e.g. {"database.dsn": "env ZMARTD_DATABASE_DSN"}:
    safe to print (``check-config``), never the value."""
    out: dict[str, str] = {}
    for spec in field_specs():
        if spec.secret:
            secret: Secret = getattr(getattr(cfg, spec.section), spec.key)
            out[spec.path] = secret.source
    return out


@dataclass(frozen=True, slots=True)
class ChainEndpoints:
    rpc_urls: tuple[str, ...]
    ws_url: str


def _client_host(host: str) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


def chain_endpoints(cfg: Config) -> ChainEndpoints:
    """The JSON-RPC URLs and PubSub URL the chain client should use.

    Local mode points at [devchain] (a wildcard listen address becomes loopback; a port
    of 0 must be replaced by the caller with the port actually bound). RPC mode uses
    chain.rpc_urls and chain.ws_url, deriving the latter from the first RPC URL when
    empty: http->ws, https->wss, and an explicit port p becomes p + 1 (the
    solana-test-validator convention, 8899 -> 8900).
    """
    if cfg.chain.mode == "local":
        host = _client_host(cfg.devchain.host)
        return ChainEndpoints(
            (f"http://{host}:{cfg.devchain.port}",), f"ws://{host}:{cfg.devchain.ws_port}"
        )
    urls = cfg.chain.rpc_urls
    if cfg.chain.ws_url:
        return ChainEndpoints(urls, cfg.chain.ws_url)
    parts = urlsplit(urls[0])
    scheme = "wss" if parts.scheme == "https" else "ws"
    netloc = parts.netloc
    if parts.port is not None:
        netloc = netloc[: netloc.rindex(":")] + f":{parts.port + 1}"
    return ChainEndpoints(urls, parts._replace(scheme=scheme, netloc=netloc).geturl())


# ---------------------------------------------------------------------------------------
# Generated documents: config/README.md, config/defaults.toml, zmartd.toml.example

_GENERATED_BY: Final = "python -m zmartd.config --write-docs"


def _raw_defaults() -> dict[str, dict[str, Any]]:
    return {s: {k: spec.default for k, spec in specs.items()} for s, specs in _SPECS.items()}


def render_defaults() -> str:
    lines = [
        f"# zmartd effective defaults. Generated by `{_GENERATED_BY}`; do not edit.",
        "# An empty config file means exactly this. Relative paths are taken from the",
        "# config file's directory.",
    ]
    for section, values in _raw_defaults().items():
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {_toml_inline(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _wrap(text: str, prefix: str, width: int = 92) -> list[str]:
    words, lines, cur = text.split(), [], prefix.rstrip()
    for w in words:
        if len(cur) + 1 + len(w) > width and cur != prefix.rstrip():
            lines.append(cur)
            cur = prefix + w
        else:
            cur = (cur + " " + w) if cur != prefix.rstrip() else prefix + w
    lines.append(cur)
    return lines


def render_example() -> str:
    lines = [
        "# zmartd configuration example. Generated by "
        f"`{_GENERATED_BY}`; the reference is config/README.md.",
        "#",
        '# As is, this runs everything locally: the built-in chain double (chain.mode = "local"),',
        "# the embedded PostgreSQL under var/ (database.dsn empty) and no Redis.",
        "# Relative paths are taken from this file's directory. Secrets (marked below) may",
        "# instead come from ZMARTD_<SECTION>_<KEY> environment variables or <key>_file files;",
        "# precedence: environment > <key>_file > inline value. Unknown keys are errors.",
    ]
    for section, specs in _SPECS.items():
        lines += ["", *_wrap(_SECTION_DOCS[section], "# "), f"[{section}]"]
        for key, spec in specs.items():
            note = f"{spec.doc} Type: {spec.kind.expected}."
            if spec.secret:
                note += f" SECRET: also from env {spec.env_var} or {key}_file."
            if key != next(iter(specs)):
                lines.append("")
            lines += _wrap(note, "# ")
            lines.append(f"{key} = {_toml_inline(spec.default)}")
            if spec.example is not None:
                lines.append(f"# {key} = {_toml_inline(spec.example)}")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def render_reference() -> str:
    out = [
        "# zmartd configuration reference",
        "",
        f"Generated from the schema in `zmartd/config.py` by `{_GENERATED_BY}`; a test fails",
        "when this file, `config/defaults.toml` or `zmartd.toml.example` drift from the schema.",
        "",
        "zmartd reads one TOML file (`zmartd run -c zmartd.toml`). Every key is optional; the",
        "defaults (`config/defaults.toml`) run everything locally. Rules:",
        "",
        "- Unknown sections and keys are errors (with a did-you-mean suggestion).",
        "- All problems of a file are reported at once, one per line, as",
        '  `path: expected ..., got ...` (e.g. `http.port: expected integer 1..65535, got "80a"`).',
        "- Booleans are not integers (`port = true` is an error); integers are accepted where",
        "  numbers are expected.",
        "- Paths are taken relative to the config file's directory (`~` is expanded).",
        "- `zmartd config dump` prints the effective configuration as TOML, secrets redacted.",
        "- On SIGHUP the file is re-read; only sections whose values changed are restarted.",
        "",
        "## Secrets",
        "",
        "Secret values are never printed, logged or quoted in error messages. Each secret `K` of",
        "section `S` is taken from, highest first:",
        "",
        "1. the environment variable `ZMARTD_<S>_<K>` (upper case; empty counts as unset),",
        "2. the file named by `K_file` (content with surrounding whitespace stripped; at most",
        "   64 KiB; a missing or unreadable file is an error),",
        "3. the inline `K`.",
        "",
        "Setting both `K` and `K_file` in the file is an error. Only secrets come from the",
        "environment: any other `ZMARTD_<SECTION>_*` variable is an error, so a typo cannot",
        "leave a secret silently unset.",
        "",
        "| secret | environment variable | file key |",
        "|---|---|---|",
    ]
    for spec in field_specs():
        if spec.secret:
            out.append(f"| `{spec.path}` | `{spec.env_var}` | `{spec.path}_file` |")
    out += ["", "## Rules between keys", ""]
    out += [f"- {rule.doc}" for rule in _RULES]
    for section, specs in _SPECS.items():
        out += [
            "",
            f"## [{section}]",
            "",
            _SECTION_DOCS[section],
            "",
            "| key | type and range | default | meaning |",
            "|---|---|---|---|",
        ]
        for key, spec in specs.items():
            doc = spec.doc + (" **Secret.**" if spec.secret else "")
            out.append(
                f"| `{key}` | {_cell(spec.kind.expected)} | `{_cell(_toml_inline(spec.default))}`"
                f" | {_cell(doc)} |"
            )
    return "\n".join(out) + "\n"


def generated_documents(root: Path) -> dict[Path, str]:
    """The generated files, relative to the repository ``root``, with their content."""
    return {
        root / "config" / "README.md": render_reference(),
        root / "config" / "defaults.toml": render_defaults(),
        root / "zmartd.toml.example": render_example(),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m zmartd.config --write-docs | --check-docs [--root DIR]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m zmartd.config")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write-docs", action="store_true", help="regenerate the documents")
    group.add_argument("--check-docs", action="store_true", help="exit 1 if any is stale")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated_documents(args.root).items():
        current = path.read_text("utf-8") if path.exists() else None
        if current == text:
            continue
        if args.write_docs:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, "utf-8")
            print(f"wrote {path}")
        else:
            stale.append(path)
    for path in stale:
        print(f"stale: {path} (run {_GENERATED_BY})", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
