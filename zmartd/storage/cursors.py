"""Pagination cursors: opaque to clients, authenticated by the server, range-checked.

A cursor names the position after the last item of a page: base64url of a version
byte, the msgpack of ``(list kind, sort key)`` and a MAC -- BLAKE2b keyed with the
server's cursor key.  The storage functions put a decoded sort key straight into
their SQL, so a cursor must be one this server issued: with an unkeyed checksum
anyone could write one, and a sort key of 2^64-1 (``value out of int64 range``) or
a NUL in a text key (PostgreSQL text cannot hold one) turned into a 500 with a
traceback per request.  Now a cursor the server did not sign fails its MAC, and
every decoded field is range-checked against what its column can hold anyway (a
leaked key, or a bug that signs a bad key, must still not reach PostgreSQL).
Every failure is :class:`~zmartd.storage.records.InvalidCursor` (the API answers
422 "restart from the first page").

Where the key comes from (:func:`cursors_for`): ``[database] cursor_secret`` (or
its ``_file``), else a random secret generated once into
``<data_dir>/cursor_secret`` (mode 0600).  The key lives on the
:class:`~zmartd.storage.database.Database` the storage actor provides, so list
functions reach it as ``db.cursors``.  Rotating it only invalidates the cursors
clients hold; nothing is stored under it.  Instances that share a database behind
one proxy must share the secret, or a page fetched from one instance cannot be
continued on another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from zmartd.config import Config
from zmartd.storage.records import InvalidCursor

__all__ = [
    "BIGINT",
    "MAX_CURSOR_LEN",
    "SECRET_FILE",
    "TEXT",
    "TIME",
    "U64",
    "Cursors",
    "Int",
    "KeyField",
    "Text",
    "Time",
    "cursors_for",
    "secret_path",
]

_VERSION: Final = 2  # 1 was the unkeyed checksum
_MAC_LEN: Final = 16
_PERSON: Final = b"zmartd.cursor"
#: Longest cursor accepted (the API's query type says the same).
MAX_CURSOR_LEN: Final = 512
#: Name of the generated secret in the data dir.
SECRET_FILE: Final = "cursor_secret"

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Int:
    """An integer sort-key field within ``low..high`` (the column's range)."""

    low: int
    high: int

    def accepts(self, value: Any) -> bool:
        return type(value) is int and self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class Text:
    """A text sort-key field: bounded, without control characters (no NUL)."""

    max_length: int

    def accepts(self, value: Any) -> bool:
        return (
            type(value) is str and len(value) <= self.max_length and _CONTROL.search(value) is None
        )


@dataclass(frozen=True, slots=True)
class Time:
    """A timestamp sort-key field (timezone-aware)."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, datetime) and value.tzinfo is not None


KeyField = Int | Text | Time

#: ``bigint`` columns (ids).
BIGINT: Final = Int(-(1 << 63), (1 << 63) - 1)
#: u64 amounts (``numeric(20,0)`` columns).
U64: Final = Int(0, (1 << 64) - 1)
#: Text keys (market ids, wallets, vote kinds): far shorter than this.
TEXT: Final = Text(128)
TIME: Final = Time()


class Cursors:
    """Signs and checks the cursors of one server (one key)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a cursor key needs at least 16 bytes")
        self._key = hashlib.blake2b(key, digest_size=32, person=_PERSON).digest()

    @classmethod
    def from_secret(cls, secret: str) -> Cursors:
        return cls(secret.encode("utf-8"))

    @classmethod
    def ephemeral(cls) -> Cursors:
        """A random key: cursors valid for this object's life only (tools, tests)."""
        return cls(secrets.token_bytes(32))

    def _mac(self, body: bytes) -> bytes:
        return hashlib.blake2b(body, digest_size=_MAC_LEN, key=self._key).digest()

    def encode(self, kind: str, key: Sequence[int | str | datetime]) -> str:
        """Opaque cursor for the position after the item whose sort key is ``key``."""
        body = bytes([_VERSION]) + msgspec.msgpack.encode((kind, tuple(key)))
        return base64.urlsafe_b64encode(body + self._mac(body)).rstrip(b"=").decode("ascii")

    def decode(self, cursor: str, kind: str, fields: Sequence[KeyField]) -> tuple[Any, ...]:
        """The sort key in ``cursor``, checked against ``kind`` and the key's ``fields``."""
        if not cursor or len(cursor) > MAX_CURSOR_LEN:
            raise InvalidCursor("cursor is empty or too long")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError) as exc:
            raise InvalidCursor("cursor is not base64url") from exc
        body, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        if len(body) < 2 or not hmac.compare_digest(self._mac(body), mac):
            raise InvalidCursor("cursor was not issued by this server (or its key changed)")
        if body[0] != _VERSION:
            raise InvalidCursor(f"unsupported cursor version {body[0]}")
        try:
            got_kind, key = msgspec.msgpack.decode(body[1:], type=tuple[str, tuple[Any, ...]])
        except msgspec.DecodeError as exc:
            raise InvalidCursor("cursor body does not decode") from exc
        if got_kind != kind:
            raise InvalidCursor(f"cursor belongs to {got_kind!r}, not {kind!r}")
        if len(key) != len(fields):
            raise InvalidCursor("cursor key has the wrong length")
        for value, field in zip(key, fields, strict=True):
            if not field.accepts(value):
                raise InvalidCursor("cursor key is out of range")
        return tuple(key)


def secret_path(cfg: Config) -> Path:
    return cfg.daemon.data_dir / SECRET_FILE


def cursors_for(cfg: Config) -> Cursors:
    """The cursor key ``cfg`` configures, generating the data dir's secret on first use.

    Blocking file I/O (run it in a thread).  Raises OSError when the data dir
    cannot hold the generated secret (set ``[database] cursor_secret`` then).
    """
    configured = cfg.database.cursor_secret
    if configured:
        return Cursors.from_secret(configured.reveal())
    path = secret_path(cfg)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        text = _generate(path)
    if len(text) < 16:
        raise OSError(
            f"{path} holds fewer than 16 characters; delete it to generate a new cursor secret"
        )
    return Cursors.from_secret(text)


def _generate(path: Path) -> str:
    """Write a new random secret to ``path`` (0600), unless another process just did.

    Written to a temporary file and hard-linked into place, so that a concurrent
    start sees either no file or the whole secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:  # a concurrent start won: use its secret
            return path.read_text(encoding="utf-8").strip()
    finally:
        tmp.unlink(missing_ok=True)
    return text
