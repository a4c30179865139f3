"""Answers given before the request body was read keep the connection usable.

The reproduction: write a request head, pause, write its body (as
requests/urllib3 do); zmartd answers from the head (401, 405, ...) before
the body arrives; then the next request on the same connection got no
answer, ever, and the server's socket stayed in CLOSE-WAIT after the client
gave up.  Every early-answer path is checked here on zmartd's own server,
with raw sockets, three ways: head and body split, everything pipelined in
one write, and head then body-plus-next-request.  A small unread body is
read away and the connection kept; a large one closes it after the answer
(``zmartd/api/bodydrain.py``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from tests.api import factories as fx
from tests.api.conftest import make_config
from tests.api.rawhttp import RawConnection, Served, head, serve_zmartd
from tests.storage import factories as f
from zmartd.api.bodydrain import DRAIN_LIMIT, BodyDrain
from zmartd.api.fastpath import FastPath
from zmartd.api.middleware import LoadShedder
from zmartd.config import Config
from zmartd.storage.database import Database

ZEROS = "0" * 64
HEALTH = b"GET /health HTTP/1.1\r\nHost: zmart.test\r\n\r\n"
JSON_1070 = json.dumps({"title": "x" * 1050}).encode()


@dataclass
class Env:
    served: Served
    db: Database
    token: str
    foreign_market: str  # on chain, created by someone else


@dataclass
class Request:
    head: bytes
    body: bytes
    status: int
    #: whether the connection stays open after the answer
    keeps: bool = True


Case = Callable[[Env], Awaitable[Request]]


def _layers(served: Served) -> tuple[LoadShedder, FastPath]:
    drain = served.app.asgi_app
    assert isinstance(drain, BodyDrain)
    shedder = drain.app
    assert isinstance(shedder, LoadShedder)
    fast = shedder.app
    assert isinstance(fast, FastPath)
    return shedder, fast


async def _401_metadata_patch(env: Env) -> Request:  # the reproduction
    return Request(head("PATCH", f"/v1/markets/{ZEROS}", JSON_1070, token="abc"), JSON_1070, 401)


async def _401_webhook(env: Env) -> Request:  # the connection-leak attack's request
    return Request(head("POST", "/v1/webhooks/helius", b"[]"), b"[]", 401)


async def _403_foreign_market(env: Env) -> Request:
    body = json.dumps(
        {
            "market_id": env.foreign_market,
            "title": "Mine now",
            "resolution_source": "https://example.com",
        }
    ).encode()
    return Request(head("POST", "/v1/markets", body, token=env.token), body, 403)


async def _404_unknown_path(env: Env) -> Request:
    return Request(head("POST", "/v1/nothing-here", b'{"a": 1}'), b'{"a": 1}', 404)


async def _405_nonce_patch(env: Env) -> Request:
    return Request(head("PATCH", "/v1/auth/nonce", b"{}"), b"{}", 405)


async def _405_market_post(env: Env) -> Request:
    return Request(head("POST", f"/v1/markets/{ZEROS}", JSON_1070), JSON_1070, 405)


async def _405_chunked(env: Env) -> Request:
    body = b"4\r\n{}{}\r\n0\r\n\r\n"
    raw = (
        b"PATCH /v1/auth/nonce HTTP/1.1\r\nHost: zmart.test\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    return Request(raw, body, 405)


async def _413_small(env: Env) -> Request:  # max_body_bytes = 1024 here; drained
    body = b'{"wallet": "' + b"1" * 3000 + b'"}'
    return Request(head("POST", "/v1/auth/nonce", body), body, 413)


async def _413_large(env: Env) -> Request:  # not worth reading: answered, then closed
    body = b"[" + b"0," * 10_000
    return Request(
        head("POST", "/v1/auth/nonce", body, length=4 * DRAIN_LIMIT), body, 413, keeps=False
    )


async def _415_text(env: Env) -> Request:
    return Request(
        head("POST", "/v1/auth/nonce", b"hello", content_type="text/plain"), b"hello", 415
    )


async def _422_path(env: Env) -> Request:
    return Request(
        head("PATCH", "/v1/markets/not-a-market", JSON_1070, token=env.token), JSON_1070, 422
    )


async def _429_logout(env: Env) -> Request:  # session bucket of 1: the warm-up took it
    conn = await RawConnection.open(env.served.port)
    await conn.send(head("POST", "/v1/auth/logout", b"{}", token="abc") + b"{}")
    assert (await conn.answer()).status in (401, 429)
    await conn.aclose()
    return Request(head("POST", "/v1/auth/logout", b"{}", token="abc"), b"{}", 429)


async def _503_shed(env: Env) -> Request:
    shedder, _ = _layers(env.served)
    shedder.in_flight = shedder.limit  # as if that many requests were running
    return Request(head("POST", "/v1/auth/nonce", b'{"wallet": "x"}'), b'{"wallet": "x"}', 503)


async def _fast_path(env: Env, status: int) -> Request:
    path = f"/v1/markets/{env.foreign_market}"
    conn = await RawConnection.open(env.served.port)
    await conn.send(head("GET", path))
    assert (await conn.answer()).status in (200, 429)  # a fresh hot-cache entry now
    await conn.aclose()
    return Request(head("GET", path, b'{"ignored": true}'), b'{"ignored": true}', status)


async def _fast_path_hit(env: Env) -> Request:
    return await _fast_path(env, 200)


async def _fast_path_429(env: Env) -> Request:  # reads bucket of 1: the warm-up took it
    return await _fast_path(env, 429)


CASES: dict[str, tuple[Case, dict[str, Any]]] = {
    "401-patch-metadata": (_401_metadata_patch, {}),
    "401-webhook": (_401_webhook, {}),
    "403-foreign-market": (_403_foreign_market, {}),
    "404-unknown-path": (_404_unknown_path, {}),
    "405-patch-nonce": (_405_nonce_patch, {}),
    "405-post-market": (_405_market_post, {}),
    "405-chunked-body": (_405_chunked, {}),
    "413-small-body": (_413_small, {"http": {"max_body_bytes": 1024}}),
    "413-large-body": (_413_large, {"http": {"max_body_bytes": 1024}}),
    "415-text-body": (_415_text, {}),
    "422-bad-path": (_422_path, {}),
    "429-rate-limited": (
        _429_logout,
        {"ratelimit": {"session_ip_burst": 1, "session_ip_per_minute": 1}},
    ),
    "503-shed": (_503_shed, {}),
    "fast-path-hit": (_fast_path_hit, {}),
    "fast-path-429": (
        _fast_path_429,
        {"ratelimit": {"reads_ip_burst": 1, "reads_ip_per_minute": 1}},
    ),
}


def _config(tweaks: dict[str, dict[str, Any]]) -> Config:
    return make_config(
        http={"host": "127.0.0.1", "port": 0, **tweaks.get("http", {})},
        ratelimit={**fx.LIMITS, **tweaks.get("ratelimit", {})},
    )


async def _exchange(conn: RawConnection, request: Request, mode: str) -> None:
    """Send ``request`` then ``GET /health`` on one connection, in ``mode``."""
    if mode == "split":
        await conn.send(request.head)
        await trio.sleep(0.05)
        await conn.send(request.body)
    elif mode == "pipelined":
        await conn.send(request.head + request.body + (HEALTH if request.keeps else b""))
    else:  # split-pipelined: the next request right behind the late body
        await conn.send(request.head)
        await trio.sleep(0.05)
        await conn.send(request.body + (HEALTH if request.keeps else b""))
    answer = await conn.answer()
    assert answer.status == request.status, answer
    if answer.status >= 400:
        assert answer.headers["content-type"] == "application/problem+json"
    if not request.keeps:
        assert answer.headers.get("connection") == "close"
        assert await conn.closed_by_server(2.0)
        return
    if mode == "split":
        await conn.send(HEALTH)
    health = await conn.answer()
    assert health.status == 200 and json.loads(health.body)["status"]
    assert "connection" not in health.headers  # and the connection stays usable
    await conn.send(HEALTH)
    assert (await conn.answer()).status == 200


@pytest.mark.parametrize("name", list(CASES))
async def test_an_early_answer_keeps_the_connection_usable(db: Database, name: str) -> None:
    case, tweaks = CASES[name]
    creator, me = fx.fresh(), fx.fresh()
    market = await fx.seed_market(db, creator=creator)
    token = await fx.session(db, f.wallet(me))
    async with serve_zmartd(_config(tweaks), db) as served:
        env = Env(served, db, token, market.market_id)
        shedder, fast = _layers(served)
        for mode in ("split", "pipelined", "split-pipelined"):
            request = await case(env)
            conn = await RawConnection.open(served.port)
            try:
                await _exchange(conn, request, mode)
            finally:
                await conn.aclose()
                shedder.in_flight = 0
        if name.startswith("fast-path"):
            assert fast.served >= (3 if name == "fast-path-hit" else 0)
        with trio.fail_after(2):  # every connection is gone: nothing leaked
            while served.connections():
                await trio.sleep(0.02)
