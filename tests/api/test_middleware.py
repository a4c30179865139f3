"""Client IP behind proxies, CORS, security headers and load shedding."""

from __future__ import annotations

import ipaddress
from typing import Any

import msgspec
import trio
import trio.testing

from tests.api.conftest import live_api, make_config, make_ctx
from zmartd.api.bodydrain import BodyDrain
from zmartd.api.middleware import (
    API_CSP,
    LoadShedder,
    cors_headers,
    preflight_headers,
    security_headers,
)
from zmartd.api.routing import Call, Router
from zmartd.api.server import LISTEN_BACKLOG, hypercorn_config

NETS = (
    ipaddress.ip_network("127.0.0.1/32"),
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


def test_cors_allowlist() -> None:
    allowed = ("https://app.example.com",)
    assert cors_headers("https://app.example.com", allowed)["Access-Control-Allow-Origin"] == (
        "https://app.example.com"
    )
    assert (
        "ETag" in cors_headers("https://app.example.com", allowed)["Access-Control-Expose-Headers"]
    )
    assert cors_headers("https://evil.example", allowed) == {}
    assert cors_headers(None, allowed) == {}
    assert cors_headers("https://x", ("*",))["Access-Control-Allow-Origin"] == "*"
    pre = preflight_headers("https://app.example.com", "POST", allowed)
    assert pre is not None and "Authorization" in pre["Access-Control-Allow-Headers"]
    assert preflight_headers("https://evil.example", "POST", allowed) is None


def test_security_headers() -> None:
    h = security_headers(docs=False, https=True)
    assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"
    assert h["Content-Security-Policy"] == API_CSP and "max-age" in h["Strict-Transport-Security"]
    assert "Strict-Transport-Security" not in security_headers(docs=False, https=False)
    assert (
        "script-src 'self'" in security_headers(docs=True, https=False)["Content-Security-Policy"]
    )


async def test_load_shedder_answers_503_past_the_limit() -> None:
    release = trio.Event()
    entered = 0

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal entered
        entered += 1
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    shedder = LoadShedder(slow_app, limit=2, exempt={"/health"})
    statuses: list[int] = []
    bodies: list[bytes] = []

    async def call(path: str) -> None:
        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
                headers = dict(message["headers"])
                if message["status"] == 503:
                    assert headers[b"retry-after"] == b"1"
                    assert headers[b"content-type"] == b"application/problem+json"
            else:
                bodies.append(message["body"])

        await shedder({"type": "http", "path": path}, None, send)

    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(call, "/v1/x")
        await trio.testing.wait_all_tasks_blocked()
        await call("/v1/x")  # answered at once, without reaching the app
        assert statuses == [503] and shedder.in_flight == 2 and entered == 2
        nursery.start_soon(call, "/health")  # exempt: still served
        await trio.testing.wait_all_tasks_blocked()
        assert entered == 3
        release.set()
    assert sorted(statuses) == [200, 200, 200, 503] and shedder.in_flight == 0
    problem = msgspec.json.decode(next(b for b in bodies if b != b"ok"))
    assert problem["type"] == "urn:zmart:problem:overloaded" and problem["status"] == 503
    assert shedder.shed == 1


held = Router("held", prefix="/v1/held", tags=["test"])
hold: dict[str, trio.Event] = {}


class Held(msgspec.Struct, frozen=True):
    ok: bool


@held.get("/", response=Held, rate=None)
async def get_held(call: Call[None, None]) -> Held:
    """Answers once the test lets it."""
    await hold["release"].wait()
    return Held(ok=True)


async def test_shed_requests_are_counted_in_metrics() -> None:
    hold["release"] = trio.Event()
    cfg = make_config(http={"max_in_flight": 1})
    async with live_api(cfg, None, routers=[held]) as api:
        registry = api.ctx.metrics.registry
        assert registry.get_sample_value("zmartd_http_shed_total") == 0
        statuses: list[int] = []

        async def get() -> None:
            statuses.append((await api.client.get("/v1/held")).status_code)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(get)
                drain = api.app.asgi_app
                assert isinstance(drain, BodyDrain)
                shedder = drain.app
                assert isinstance(shedder, LoadShedder)
                while shedder.in_flight < 1:  # the first one holds the only slot
                    await trio.sleep(0.01)
                await get()
                await get()
                hold["release"].set()
        assert statuses == [503, 503, 200]
        assert registry.get_sample_value("zmartd_http_shed_total") == 2
        # the 503s bypass Quart, so the per-route counter never saw them
        assert (
            registry.get_sample_value(
                "zmartd_http_requests_total",
                {"route": "/v1/held", "method": "GET", "status": "503"},
            )
            is None
        )


def test_hypercorn_listen_backlog_absorbs_connect_bursts() -> None:
    hc = hypercorn_config(make_ctx(make_config()))
    assert hc.backlog == LISTEN_BACKLOG >= 1000  # hypercorn's default of 100 overflowed
