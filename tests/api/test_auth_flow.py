"""Sign In With Solana end to end: a live server, the real PostgreSQL, real signatures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import trio
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tests.api.conftest import LiveApi, live_api, make_config
from zmartd.api.auth import SiwsMessage, build_message, parse_message
from zmartd.api.problems import type_uri
from zmartd.api.ratelimit import MemoryBuckets
from zmartd.bus import SessionEnded
from zmartd.model.services import DATABASE
from zmartd.storage import auth as store
from zmartd.storage.database import Database

PROBLEM = "application/problem+json"


async def nonce_for(client: httpx.AsyncClient, kp: Keypair | Pubkey) -> dict[str, Any]:
    wallet = kp.pubkey() if isinstance(kp, Keypair) else kp
    r = await client.post("/v1/auth/nonce", json={"wallet": str(wallet)})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def sign(kp: Keypair, message: str) -> str:
    return str(kp.sign_message(message.encode()))


async def sign_in(client: httpx.AsyncClient, kp: Keypair) -> dict[str, Any]:
    n = await nonce_for(client, kp)
    r = await client.post(
        "/v1/auth/verify", json={"message": n["message"], "signature": sign(kp, n["message"])}
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def assert_problem(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["type"] == type_uri(slug) and body["status"] == status
    return body


async def test_nonce_message_is_the_siws_text(db: Database) -> None:
    kp = Keypair()
    async with live_api(make_config(), db) as api:
        n = await nonce_for(api.client, kp)
    lines = n["message"].split("\n")
    assert lines[0] == "zmart.test:8080 wants you to sign in with your Solana account:"
    assert lines[1] == str(kp.pubkey())
    assert lines[2:5] == ["", "Sign in to ZMART.", ""]
    assert lines[5:9] == [
        "URI: http://zmart.test:8080",
        "Version: 1",
        "Chain ID: devnet",
        f"Nonce: {n['nonce']}",
    ]
    assert lines[9].startswith("Issued At: ") and lines[10].startswith("Expiration Time: ")
    msg = parse_message(n["message"])
    assert msg.expiration_time is not None
    assert timedelta(seconds=299) < msg.expiration_time - msg.issued_at <= timedelta(seconds=300)
    assert (n["domain"], n["uri"], n["chain_id"], n["wallet"]) == (
        "zmart.test:8080",
        "http://zmart.test:8080",
        "devnet",
        str(kp.pubkey()),
    )


async def test_sign_in_session_logout(db: Database) -> None:
    kp, admin = Keypair(), Keypair()
    cfg = make_config(admin={"wallets": [str(admin.pubkey())]})
    async with live_api(cfg, db) as api:
        c = api.client
        s = await sign_in(c, kp)
        assert s["token_type"] == "Bearer" and s["wallet"] == str(kp.pubkey())
        assert s["admin"] is False
        auth = {"Authorization": f"Bearer {s['token']}"}
        r = await c.get("/v1/auth/session", headers=auth)
        assert r.status_code == 200 and r.json()["wallet"] == str(kp.pubkey())
        assert "ETag" in r.headers and "RateLimit-Remaining" in r.headers
        # the token is stored hashed, never as is
        assert await store.get_session(db, s["token"]) is not None
        notices = api.ctx.bus.topic("auth.sessions").subscribe("test")
        r = await c.post("/v1/auth/logout", headers=auth)
        assert r.status_code == 204 and r.content == b""
        # the WebSocket hub hears of it and ends the token's user: subscriptions
        assert notices.receive_nowait() == SessionEnded(wallet=str(kp.pubkey()))
        assert_problem(await c.get("/v1/auth/session", headers=auth), 401, "unauthorized")
        assert_problem(await c.post("/v1/auth/logout", headers=auth), 401, "unauthorized")
        s2 = await sign_in(c, admin)
        assert s2["admin"] is True
        r = await c.get("/v1/auth/session", headers={"Authorization": f"Bearer {s2['token']}"})
        assert r.json()["admin"] is True


async def test_replayed_signature_fails(db: Database) -> None:
    kp = Keypair()
    async with live_api(make_config(), db) as api:
        n = await nonce_for(api.client, kp)
        proof = {"message": n["message"], "signature": sign(kp, n["message"])}
        assert (await api.client.post("/v1/auth/verify", json=proof)).status_code == 201
        body = assert_problem(
            await api.client.post("/v1/auth/verify", json=proof), 401, "unauthorized"
        )
        assert "already used" in body["detail"]


async def test_concurrent_replays_yield_one_session(db: Database) -> None:
    kp = Keypair()
    cfg = make_config(ratelimit={"auth_wallet_burst": 10})
    async with live_api(cfg, db) as api:
        n = await nonce_for(api.client, kp)
        proof = {"message": n["message"], "signature": sign(kp, n["message"])}
        codes: list[int] = []

        async def attempt() -> None:
            codes.append((await api.client.post("/v1/auth/verify", json=proof)).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(attempt)
        assert sorted(codes) == [201, 401, 401, 401, 401]


def _altered(message: str, **changes: Any) -> str:
    m = parse_message(message)
    fields = {f: getattr(m, f) for f in SiwsMessage.__slots__}
    fields.update(changes)
    return build_message(SiwsMessage(**fields))


async def test_wrong_domain_uri_chain_and_expired_messages_fail(db: Database) -> None:
    kp = Keypair()
    async with live_api(make_config(ratelimit={"auth_wallet_burst": 10}), db) as api:
        n = await nonce_for(api.client, kp)
        msg = parse_message(n["message"])
        cases = {
            "domain": _altered(n["message"], domain="evil.example"),
            "URI": _altered(n["message"], uri="https://evil.example"),
            "chain": _altered(n["message"], chain_id="mainnet"),
            "expired": _altered(n["message"], expiration_time=msg.issued_at - timedelta(1)),
            "future": _altered(
                n["message"],
                issued_at=msg.issued_at + timedelta(hours=1),
                expiration_time=msg.issued_at + timedelta(hours=2),
            ),
        }
        for reason, text in cases.items():
            r = await api.client.post(
                "/v1/auth/verify", json={"message": text, "signature": sign(kp, text)}
            )
            body = assert_problem(r, 401, "unauthorized")
            assert reason in body["detail"], (reason, body)
        # none of those burnt the nonce: the genuine message still works
        r = await api.client.post(
            "/v1/auth/verify", json={"message": n["message"], "signature": sign(kp, n["message"])}
        )
        assert r.status_code == 201


async def test_wrong_signer_and_foreign_nonce_fail(db: Database) -> None:
    alice, mallory = Keypair(), Keypair()
    async with live_api(make_config(), db) as api:
        n = await nonce_for(api.client, alice)
        # mallory signs alice's message: the signature does not verify for alice
        r = await api.client.post(
            "/v1/auth/verify",
            json={"message": n["message"], "signature": sign(mallory, n["message"])},
        )
        assert "signature" in assert_problem(r, 401, "unauthorized")["detail"]
        # mallory puts her own address on alice's nonce: bound to alice, refused
        text = _altered(n["message"], address=str(mallory.pubkey()))
        r = await api.client.post(
            "/v1/auth/verify", json={"message": text, "signature": sign(mallory, text)}
        )
        assert "nonce" in assert_problem(r, 401, "unauthorized")["detail"]
        # alice can still use it
        r = await api.client.post(
            "/v1/auth/verify",
            json={"message": n["message"], "signature": sign(alice, n["message"])},
        )
        assert r.status_code == 201


async def test_expired_nonce_fails_even_if_the_message_claims_longer(db: Database) -> None:
    kp = Keypair()
    cfg = make_config()
    record = await store.create_nonce(
        db, wallet=str(kp.pubkey()), domain="zmart.test:8080", ttl=timedelta(milliseconds=200)
    )
    text = build_message(
        SiwsMessage(
            domain="zmart.test:8080",
            address=str(kp.pubkey()),
            statement="Sign in to ZMART.",
            uri="http://zmart.test:8080",
            version="1",
            chain_id="devnet",
            nonce=record.nonce,
            issued_at=record.issued_at,
            expiration_time=record.issued_at + timedelta(seconds=200),
        )
    )
    await trio.sleep(0.3)
    async with live_api(cfg, db) as api:
        r = await api.client.post(
            "/v1/auth/verify", json={"message": text, "signature": sign(kp, text)}
        )
        assert "expired" in assert_problem(r, 401, "unauthorized")["detail"]


async def test_bad_input_gets_typed_problems(db: Database) -> None:
    kp = Keypair()
    cfg = make_config(
        http={"max_body_bytes": 2048, "max_json_depth": 4}, ratelimit={"auth_ip_burst": 100}
    )
    async with live_api(cfg, db) as api:
        c = api.client
        body = assert_problem(
            await c.post("/v1/auth/nonce", json={"wallet": "abc"}), 422, "validation"
        )
        assert body["errors"] == [
            {"field": "wallet", "message": "expected a base58 public key (32 bytes)"}
        ]
        body = assert_problem(
            await c.post("/v1/auth/nonce", json={"wallet": str(kp.pubkey()), "extra": 1}),
            422,
            "validation",
        )
        assert body["errors"][0]["field"] == "extra"
        assert_problem(await c.post("/v1/auth/nonce", json={}), 422, "validation")
        assert_problem(await c.post("/v1/auth/nonce", content=b""), 422, "validation")
        assert_problem(
            await c.post(
                "/v1/auth/nonce", content=b"{not json", headers={"Content-Type": "application/json"}
            ),
            400,
            "malformed",
        )
        assert_problem(
            await c.post("/v1/auth/nonce", json={"wallet": [[[[[1]]]]]}), 400, "malformed"
        )
        assert_problem(
            await c.post(
                "/v1/auth/nonce", content=b"wallet=x", headers={"Content-Type": "text/plain"}
            ),
            415,
            "unsupported-media-type",
        )
        assert_problem(
            await c.post("/v1/auth/nonce", json={"wallet": "x" * 4000}), 413, "payload-too-large"
        )
        body = assert_problem(
            await c.post(
                "/v1/auth/verify",
                json={"message": "hello", "signature": str(kp.sign_message(b"hello"))},
            ),
            401,
            "unauthorized",
        )
        assert "not a Sign-In-With-Solana message" in body["detail"]
        body = assert_problem(
            await c.post("/v1/auth/verify", json={"message": "hello", "signature": "notbase58!"}),
            422,
            "validation",
        )
        assert body["errors"][0]["field"] == "signature"
        assert_problem(
            await c.post("/v1/auth/nonce?x=1", json={"wallet": str(kp.pubkey())}), 422, "validation"
        )
        assert_problem(await c.get("/v1/auth/session"), 401, "unauthorized")
        r = await c.get("/v1/auth/session", headers={"Authorization": "Basic abc"})
        assert_problem(r, 401, "unauthorized")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert_problem(
            await c.get("/v1/auth/session", headers={"Authorization": "Bearer " + "A" * 43}),
            401,
            "unauthorized",
        )
        assert_problem(await c.get("/v1/nope"), 404, "not-found")
        r = await c.get("/v1/auth/nonce")
        assert_problem(r, 405, "method-not-allowed")
        assert "POST" in r.headers["Allow"]


#: the client IP is taken from X-Forwarded-For only behind a trusted proxy (here: loopback)
BEHIND_PROXY = {"trusted_proxies": ["127.0.0.1", "::1"]}


def from_ip(ip: str, token: str | None = None) -> dict[str, str]:
    headers = {"X-Forwarded-For": ip}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


class Clock:
    """The rate limiter's clock, moved by the test (minutes of an attack in milliseconds)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def with_clock(api: LiveApi) -> Clock:
    clock = Clock()
    api.state.limiter.memory = MemoryBuckets(clock=clock)
    return clock


async def nonce_from(client: httpx.AsyncClient, kp: Keypair, ip: str) -> dict[str, Any]:
    r = await client.post("/v1/auth/nonce", json={"wallet": str(kp.pubkey())}, headers=from_ip(ip))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def verify_from(
    client: httpx.AsyncClient, kp: Keypair, message: str, ip: str
) -> httpx.Response:
    return await client.post(
        "/v1/auth/verify",
        headers=from_ip(ip),
        json={"message": message, "signature": sign(kp, message)},
    )


async def test_rate_limit_answers_429_with_headers(db: Database) -> None:
    cfg = make_config(http=BEHIND_PROXY, ratelimit={"auth_ip_burst": 2, "auth_ip_per_minute": 1})
    async with live_api(cfg, db) as api:
        c = api.client
        for _ in range(2):  # nonces are charged to the client IP, whatever wallet they name
            r = await c.post(
                "/v1/auth/nonce",
                json={"wallet": str(Keypair().pubkey())},
                headers=from_ip("198.51.100.1"),
            )
            assert r.status_code == 201
            assert r.headers["RateLimit-Limit"] == "2"
        r = await c.post(
            "/v1/auth/nonce",
            json={"wallet": str(Keypair().pubkey())},
            headers=from_ip("198.51.100.1"),
        )
        assert_problem(r, 429, "rate-limited")
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["RateLimit-Remaining"] == "0"
        # another IP still gets through
        r = await c.post(
            "/v1/auth/nonce",
            json={"wallet": str(Keypair().pubkey())},
            headers=from_ip("198.51.100.2"),
        )
        assert r.status_code == 201


async def test_nonces_requested_for_a_victim_do_not_lock_the_victim_out(db: Database) -> None:
    """Issue 22, finding 3: nonces for the victim's wallet every 2 s from one IP made the
    victim's own nonce/verify from other IPs answer 429, and the signed-in victim could not
    log out.  Default limits; the limiter's clock follows the attack's 2-s cadence."""
    victim = Keypair()
    attacker_ip, victim_ip = "203.0.113.66", "198.51.100.7"
    async with live_api(make_config(http=BEHIND_PROXY), db) as api:
        clock = with_clock(api)
        c = api.client
        n = await nonce_from(c, victim, victim_ip)
        first = await verify_from(c, victim, n["message"], victim_ip)
        assert first.status_code == 201
        token = first.json()["token"]
        for i in range(1, 121):  # four minutes of attack: 120 nonces for the victim's wallet
            clock.t += 2.0
            r = await c.post(
                "/v1/auth/nonce",
                json={"wallet": str(victim.pubkey())},
                headers=from_ip(attacker_ip),
            )
            assert r.status_code == 201, (i, r.text)  # 30/min: within the IP's own budget
            if i % 20 == 0:  # meanwhile the victim signs in again from elsewhere
                n = await nonce_from(c, victim, victim_ip)
                r = await verify_from(c, victim, n["message"], victim_ip)
                assert r.status_code == 201, (i, r.text)
        # the signed-in victim checks and ends the first session, even from the attacker's
        # IP (a shared NAT): sign-in traffic does not spend the session buckets
        r = await c.get("/v1/auth/session", headers=from_ip(attacker_ip, token))
        assert r.status_code == 200, r.text
        r = await c.post("/v1/auth/logout", headers=from_ip(attacker_ip, token))
        assert r.status_code == 204, r.text
        assert (await store.get_session(db, token)) is None


async def test_the_wallet_bucket_is_spent_only_by_valid_signatures(db: Database) -> None:
    victim, mallory = Keypair(), Keypair()
    cfg = make_config(
        http=BEHIND_PROXY,
        ratelimit={"auth_ip_burst": 100, "auth_wallet_burst": 2, "auth_wallet_per_minute": 1},
    )
    async with live_api(cfg, db) as api:
        with_clock(api)
        c = api.client
        n = await nonce_from(c, victim, "203.0.113.66")
        for _ in range(10):  # signatures that do not verify cost the wallet nothing
            r = await c.post(
                "/v1/auth/verify",
                headers=from_ip("203.0.113.66"),
                json={"message": n["message"], "signature": sign(mallory, n["message"])},
            )
            assert_problem(r, 401, "unauthorized")
        for _ in range(2):
            n = await nonce_from(c, victim, "198.51.100.7")
            assert (await verify_from(c, victim, n["message"], "198.51.100.7")).status_code == 201
        # the key's holder does spend it: a third sign-in within the minute is refused
        n = await nonce_from(c, victim, "198.51.100.7")
        assert_problem(
            await verify_from(c, victim, n["message"], "198.51.100.7"), 429, "rate-limited"
        )


async def test_nonces_for_all_clients_have_a_ceiling(db: Database) -> None:
    kp = Keypair()
    cfg = make_config(
        http=BEHIND_PROXY, ratelimit={"auth_global_burst": 3, "auth_global_per_minute": 1}
    )
    async with live_api(cfg, db) as api:
        with_clock(api)
        c = api.client
        n = await nonce_from(c, kp, "198.51.100.1")
        for i in (2, 3):
            await nonce_from(c, Keypair(), f"198.51.100.{i}")
        r = await c.post(
            "/v1/auth/nonce", json={"wallet": str(kp.pubkey())}, headers=from_ip("198.51.100.4")
        )
        assert_problem(r, 429, "rate-limited")
        # verify is not charged to it: a nonce already issued can still be used
        assert (await verify_from(c, kp, n["message"], "198.51.100.4")).status_code == 201


async def test_database_down_is_503_and_recovers(db: Database) -> None:
    kp = Keypair()
    async with live_api(make_config(), db) as api:
        api.ctx.services.withdraw(DATABASE)
        r = await api.client.post("/v1/auth/nonce", json={"wallet": str(kp.pubkey())})
        assert_problem(r, 503, "unavailable")
        assert r.headers["Retry-After"] == "5"
        api.ctx.services.provide(DATABASE, db)
        assert (await sign_in(api.client, kp))["wallet"] == str(kp.pubkey())
