"""Issue 22, finding 5: forged cursors and control characters are the client's error (422),
never a 500, and they never write a traceback to the log."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import structlog
from structlog.testing import capture_logs

from tests.api import factories as fx
from tests.api.conftest import live_api
from tests.api.test_auth_flow import assert_problem
from tests.storage import factories as f
from zmartd.api.routing import Call, Router
from zmartd.api.server import ROUTERS
from zmartd.storage.cursors import Cursors
from zmartd.storage.database import Database

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def unkeyed(kind: str, key: tuple[Any, ...]) -> str:
    """The attacker's cursor: the format zmartd issued, with the unkeyed checksum anyone
    could compute."""
    body = bytes([1]) + msgspec.msgpack.encode((kind, key))
    check = hashlib.blake2b(body, digest_size=6).digest()
    return base64.urlsafe_b64encode(body + check).rstrip(b"=").decode("ascii")


@contextmanager
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    structlog.reset_defaults()
    with capture_logs() as captured:
        yield captured


def tracebacks(captured: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in captured if e.get("exc_info") or e.get("exception")]


def assert_cursor_refused(r: Any) -> None:
    # a cursor is schema-valid text; one this server did not issue is a 400 (RFC 9457:
    # malformed), never a 500
    body = assert_problem(r, 400, "malformed")
    assert "restart from the first page" in body["detail"]


async def test_forged_cursors_are_400_without_tracebacks(db: Database) -> None:
    m = await fx.seed_market(db)
    w = f.wallet(fx.fresh())
    await fx.seed_trades(db, m.market_id, w, [{}, {}, {}])
    await fx.seed_position(db, m.market_id, w, yes=10**9)
    trades = f"/v1/markets/{m.market_id}/trades"
    with logs() as captured:
        async with live_api(fx.config(), db) as api:
            c = api.client
            page = (await c.get(trades, params={"limit": 1})).json()
            assert page["next_cursor"] is not None
            # the server's own cursors work
            r = await c.get(trades, params={"limit": 1, "cursor": page["next_cursor"]})
            assert r.status_code == 200 and len(r.json()["items"]) == 1
            # the attack: a checksum-valid cursor holding 2^64-1 gave 500
            # "DataError: value out of int64 range"
            attack = unkeyed("trades:market", (NOW, 2**64 - 1))
            assert_cursor_refused(await c.get(trades, params={"cursor": attack}))
            # the current format, signed with another key
            other = Cursors.ephemeral().encode("trades:market", (NOW, 1))
            assert_cursor_refused(await c.get(trades, params={"cursor": other}))
            # even signed with this server's key, out-of-range fields are refused
            # (NUL in text keys was the other 500)
            signed = db.cursors.encode
            for path, cursor in [
                (trades, signed("trades:market", (NOW, 2**64 - 1))),
                (f"/v1/users/{w}/votes", signed("votes:wallet", (NOW, "a\x00", "proposal"))),
                (f"/v1/users/{w}/positions", signed("positions:wallet", (NOW, "a\x00"))),
                (f"/v1/markets/{m.market_id}/holders", signed("holders", (-1, "a"))),
                ("/v1/markets", signed("markets:newest", (NOW, "\x00"))),
                (
                    f"/v1/markets/{m.market_id}/discussions",
                    signed("discussions:market", (NOW, 2**63)),
                ),
            ]:
                assert_cursor_refused(await c.get(path, params={"cursor": cursor}))
    assert tracebacks(captured) == []


async def test_control_characters_in_text_parameters_are_422(db: Database) -> None:
    m = await fx.seed_market(db)
    w = f.wallet(fx.fresh())
    market = f"/v1/markets/{m.market_id}"
    cases: list[tuple[str, dict[str, str], str]] = [
        ("/v1/markets", {"q": "bitcoin\x00"}, "q"),
        ("/v1/markets", {"q": "a\x01b"}, "q"),
        ("/v1/markets", {"q": "line\nbreak"}, "q"),
        ("/v1/markets", {"tag": "\x7f"}, "tag"),
        (f"{market}/holders", {"cursor": "abc\x00"}, "cursor"),
        (f"{market}/discussions", {"cursor": "\x00"}, "cursor"),
        (f"{market}/trades", {"limit": "1\x00"}, "limit"),
        (f"/v1/users/{w}/votes", {"kind": "proposal\x00"}, "kind"),
        (f"/v1/users/{w}/positions", {"open": "true\x00"}, "open"),
        (f"/v1/users/{w}/positions", {"cursor": "\x00"}, "cursor"),
        ("/v1/markets/%00", {}, "market_id"),
    ]
    with logs() as captured:
        async with live_api(fx.config(), db) as api:
            for path, params, name in cases:
                r = await api.client.get(path, params=params)
                body = assert_problem(r, 422, "validation")
                assert body["errors"][0]["field"] == name, (path, params, body)
                assert "control characters" in body["detail"], (path, params, body)
    assert tracebacks(captured) == []


async def test_only_real_server_errors_log_a_traceback(db: Database) -> None:
    """The log side: a value the database refuses (validation missed it) is a 422 and one
    line; a bug is a 500 with its traceback -- the capture does see tracebacks."""
    router = Router("t", prefix="/t")

    @router.get("/refused")
    async def refused(call: Call[None, None]) -> None:
        try:
            raise OverflowError("value out of int64 range")
        except OverflowError as exc:  # how asyncpg reports a parameter it cannot encode
            raise asyncpg.exceptions.DataError(
                "invalid input for query argument $1: 18446744073709551615"
            ) from exc

    @router.get("/bug")
    async def bug(call: Call[None, None]) -> None:
        raise RuntimeError("a bug")

    with logs() as captured:
        async with live_api(fx.config(), db, routers=(*ROUTERS, router)) as api:
            assert_problem(await api.client.get("/t/refused"), 422, "validation")
            assert tracebacks(captured) == []
            assert [e["event"] for e in captured] == ["the database refused a request parameter"]
            assert captured[0]["log_level"] == "warning"
            assert_problem(await api.client.get("/t/bug"), 500, "internal")
    assert [e["event"] for e in tracebacks(captured)] == ["unhandled error in a request"]
