"""Pagination cursors: signed with the server's key, range-checked, the key generated once."""

from __future__ import annotations

import base64
import hashlib
import stat
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from zmartd.config import Config, ConfigError, parse_config
from zmartd.storage.cursors import (
    BIGINT,
    SECRET_FILE,
    TEXT,
    TIME,
    U64,
    Cursors,
    KeyField,
    cursors_for,
)
from zmartd.storage.records import InvalidCursor

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def unkeyed(kind: str, key: tuple[object, ...], version: int = 1) -> str:
    """A cursor as anyone could write one before they were keyed (blake2b checksum)."""
    body = bytes([version]) + msgspec.msgpack.encode((kind, key))
    check = hashlib.blake2b(body, digest_size=6).digest()
    return base64.urlsafe_b64encode(body + check).rstrip(b"=").decode("ascii")


def test_a_cursor_round_trips_and_is_bound_to_its_list() -> None:
    c = Cursors.ephemeral()
    cursor = c.encode("trades:market", (NOW, 42))
    assert c.decode(cursor, "trades:market", (TIME, BIGINT)) == (NOW, 42)
    with pytest.raises(InvalidCursor, match="belongs to"):
        c.decode(cursor, "trades:wallet", (TIME, BIGINT))
    with pytest.raises(InvalidCursor, match="length"):
        c.decode(cursor, "trades:market", (TIME, BIGINT, TEXT))


def test_forged_cursors_fail_their_mac() -> None:
    c = Cursors.ephemeral()
    # the old unkeyed format, and the current format with a checksum anyone can compute
    for version in (1, 2):
        with pytest.raises(InvalidCursor, match="not issued by this server"):
            c.decode(
                unkeyed("trades:market", (NOW, 2**64 - 1), version), "trades:market", (TIME, BIGINT)
            )
    # signed by another server (or before the key was rotated)
    other = Cursors.ephemeral().encode("trades:market", (NOW, 1))
    with pytest.raises(InvalidCursor, match="not issued by this server"):
        c.decode(other, "trades:market", (TIME, BIGINT))
    good = c.encode("trades:market", (NOW, 1))
    flipped = good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:]
    for bad in (flipped, "", "!!!", "AAAA", "x" * 600):
        with pytest.raises(InvalidCursor):
            c.decode(bad, "trades:market", (TIME, BIGINT))


@pytest.mark.parametrize(
    ("key", "fields"),
    [
        ((NOW, 2**64 - 1), (TIME, BIGINT)),  # issue 22: 500 "value out of int64 range"
        ((NOW, 2**63), (TIME, BIGINT)),
        ((-1, "w"), (U64, TEXT)),
        ((NOW, "a\x00b"), (TIME, TEXT)),  # PostgreSQL text cannot hold NUL
        ((NOW, "a\nb"), (TIME, TEXT)),
        ((NOW, "x" * 129), (TIME, TEXT)),
        ((NOW, True), (TIME, BIGINT)),  # bool is not an integer here
        ((NOW, "1"), (TIME, BIGINT)),
        ((123, "abc"), (TIME, TEXT)),
    ],
)
def test_every_decoded_field_is_range_checked(
    key: tuple[int | str | datetime, ...], fields: tuple[KeyField, ...]
) -> None:
    c = Cursors.ephemeral()
    with pytest.raises(InvalidCursor, match="out of range"):
        c.decode(c.encode("k", key), "k", fields)


def test_in_range_edges_pass() -> None:
    c = Cursors.ephemeral()
    cases: list[tuple[tuple[int | str | datetime, ...], tuple[KeyField, ...]]] = [
        ((NOW, 2**63 - 1), (TIME, BIGINT)),
        ((2**64 - 1, "w"), (U64, TEXT)),
        ((0, "x" * 128), (U64, TEXT)),
    ]
    for key, fields in cases:
        assert c.decode(c.encode("k", key), "k", fields) == key


def _cfg(tmp_path: Path, **database: object) -> Config:
    return parse_config(
        {"daemon": {"data_dir": str(tmp_path / "data")}, "database": database},
        base_dir=tmp_path,
        env={},
    )


def test_the_secret_is_generated_once_into_the_data_dir(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    first = cursors_for(cfg)
    path = tmp_path / "data" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32
    cursor = first.encode("k", (1,))
    # a restart reads the same secret: open cursors stay valid
    assert cursors_for(cfg).decode(cursor, "k", (BIGINT,)) == (1,)
    assert sorted(p.name for p in path.parent.iterdir()) == [SECRET_FILE]  # no temp left
    # rotating it (a new file) invalidates them, and only them
    path.unlink()
    with pytest.raises(InvalidCursor):
        cursors_for(cfg).decode(cursor, "k", (BIGINT,))


def test_a_configured_secret_wins_and_is_shared(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, cursor_secret="s" * 24)
    a, b = cursors_for(cfg), cursors_for(_cfg(tmp_path / "other", cursor_secret="s" * 24))
    assert b.decode(a.encode("k", (7,)), "k", (BIGINT,)) == (7,)
    assert not (tmp_path / "data").exists()  # nothing generated
    with pytest.raises(InvalidCursor):
        cursors_for(_cfg(tmp_path, cursor_secret="t" * 24)).decode(
            a.encode("k", (7,)), "k", (BIGINT,)
        )


def test_short_secrets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cursor_secret"):
        _cfg(tmp_path, cursor_secret="short")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / SECRET_FILE).write_text("short\n")
    with pytest.raises(OSError, match="fewer than 16"):
        cursors_for(_cfg(tmp_path))
