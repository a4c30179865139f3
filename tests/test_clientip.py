"""One client-IP rule for HTTP, the fast path and the WebSocket hub.

Each row of :data:`CASES` is checked through every consumer: the resolver itself, the
raw-header form the fast path uses, a real request through the Quart app (what rate
limits key on), and the hub's per-address accounting. Before the resolver was shared,
the hub answered the proxy's address where HTTP answered the client's (all hops trusted,
a hop with a port) and read the last of repeated headers where HTTP read the first.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from tests.api.conftest import make_config, make_ctx
from tests.asgi import call
from zmartd import clientip
from zmartd.api.routing import Call, Router
from zmartd.api.server import create_app
from zmartd.ws.hub import Hub, HubLimits
from zmartd.ws.replay import ReplayBuffers

TRUSTED = "127.0.0.1/32, 10.0.0.0/8, ::1/128"
NETS = tuple(ipaddress.ip_network(n.strip()) for n in TRUSTED.split(","))

# (peer, X-Forwarded-For header lines in order, expected client)
CASES: list[tuple[str, list[str], str]] = [
    # a direct client cannot choose its IP
    ("203.0.113.9", ["1.1.1.1"], "203.0.113.9"),
    # through a trusted proxy: the address it appended
    ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
    # a client-forged first hop is ignored: the right-most untrusted address wins
    ("127.0.0.1", ["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
    # chains of trusted proxies are walked through
    ("127.0.0.1", ["198.51.100.7, 10.1.2.3"], "198.51.100.7"),
    # every hop trusted: the left-most (where the trusted chain starts)
    ("127.0.0.1", ["10.0.0.1"], "10.0.0.1"),
    ("127.0.0.1", ["10.0.0.5, 10.0.0.1"], "10.0.0.5"),
    # garbage stops the walk at the last address read
    ("127.0.0.1", ["198.51.100.7, garbage"], "127.0.0.1"),
    ("127.0.0.1", ["garbage, 10.0.0.3"], "10.0.0.3"),
    # hops with ports, bracketed IPv6, IPv4-mapped peers
    ("127.0.0.1", ["198.51.100.7:5555"], "198.51.100.7"),
    ("::1", ["[2001:db8::1]:443"], "2001:db8::1"),
    ("::ffff:127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
    ("::ffff:203.0.113.9", [], "203.0.113.9"),
    # no header
    ("127.0.0.1", [], "127.0.0.1"),
    # repeated header lines are one list, in order: the last line's last hop is nearest
    ("127.0.0.1", ["6.6.6.6", "198.51.100.7"], "198.51.100.7"),
    ("127.0.0.1", ["198.51.100.7", "10.0.0.2"], "198.51.100.7"),
    ("127.0.0.1", ["198.51.100.7, 10.0.0.9", "10.0.0.2"], "198.51.100.7"),
]


@pytest.mark.parametrize(("peer", "lines", "expected"), CASES)
def test_resolver(peer: str, lines: list[str], expected: str) -> None:
    assert clientip.resolve(peer, lines, NETS) == expected


@pytest.mark.parametrize(("peer", "lines", "expected"), CASES)
def test_raw_headers_as_the_fast_path_reads_them(
    peer: str, lines: list[str], expected: str
) -> None:
    headers = [(b"host", b"x"), *((b"X-Forwarded-For", line.encode()) for line in lines)]
    assert clientip.resolve_asgi(peer, headers, NETS) == expected


def test_no_peer_and_socket_peers() -> None:
    assert clientip.resolve(None, ["1.1.1.1"], NETS) == "unknown"
    assert clientip.resolve("/run/zmartd.sock", ["1.1.1.1"], NETS) == "/run/zmartd.sock"


@dataclass
class _Remote:
    address: str
    port: int = 40000


@dataclass
class _WsRequest:
    remote: _Remote
    headers: list[tuple[bytes, bytes]]


@pytest.mark.parametrize(("peer", "lines", "expected"), CASES)
def test_hub_per_address_accounting(peer: str, lines: list[str], expected: str) -> None:
    hub = Hub(HubLimits(), ReplayBuffers(16, 300, lambda: 0.0), trusted_proxies=NETS)
    request: Any = _WsRequest(
        _Remote(peer), [(b"x-forwarded-for", line.encode()) for line in lines]
    )
    assert hub.client_ip(request) == expected


seen = Router("seen", prefix="/v1/seen", tags=["test"])


class Seen(msgspec.Struct, frozen=True):
    ip: str


@seen.get("/", response=Seen, rate=None)
async def get_seen(call: Call[None, None]) -> Seen:
    """Answers with the client IP that rate limits would key on."""
    return Seen(ip=call.client_ip)


async def _ask(app: Any, peer: str, lines: list[str]) -> str:
    answer = await call(
        app, "/v1/seen", headers=[("X-Forwarded-For", line) for line in lines], client=peer
    )
    assert answer.status == 200, answer
    return str(msgspec.json.decode(answer.body)["ip"])


async def test_http_requests_resolve_by_the_same_table() -> None:
    cfg = make_config(http={"trusted_proxies": [n.strip() for n in TRUSTED.split(",")]})
    app = create_app(make_ctx(cfg), routers=[seen])
    async with app.test_app():
        for peer, lines, expected in CASES:
            assert await _ask(app, peer, lines) == expected, (peer, lines)


async def test_by_default_no_peer_chooses_its_own_address() -> None:
    """Regression: loopback used to be trusted by default, so any local process picked
    its client IP with X-Forwarded-For (40 nonces with rotating addresses all passed the
    per-IP limit; 20 WebSockets passed the per-address cap)."""
    cfg = make_config()
    assert cfg.http.trusted_proxies == ()
    app = create_app(make_ctx(cfg), routers=[seen])
    async with app.test_app():
        for n in range(40):
            assert await _ask(app, "127.0.0.1", [f"203.0.113.{n}"]) == "127.0.0.1"
    hub = Hub(
        HubLimits(), ReplayBuffers(16, 300, lambda: 0.0), trusted_proxies=cfg.http.trusted_proxies
    )
    request: Any = _WsRequest(_Remote("127.0.0.1"), [(b"x-forwarded-for", b"203.0.113.9")])
    assert hub.client_ip(request) == "127.0.0.1"
