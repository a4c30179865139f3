"""The legacy wallet-signature header (valid, expired, forged, wrong wallet, replayed;
never on /v1), CORS preflights, no compression, and the legacy rate class keyed on
the forwarded client IP and on the signing wallet."""

from __future__ import annotations

import time
from typing import Any

from solders.keypair import Keypair

from tests.api import factories as fx
from tests.api.conftest import live_api, make_config
from tests.api.legacy_client import ORIGIN, axios_headers, signature_header
from tests.storage import factories as f
from zmartd.storage.database import Database

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/plain, */*"}


def signed(key: Keypair, **kw: Any) -> dict[str, str]:
    return {**JSON, "Authorization": signature_header(key, **kw)}


async def test_signature_header_cases(db: Database) -> None:
    proposed = await fx.seed_market(db, state=0)
    disputed = await fx.seed_market(db, state=4)
    me, other = Keypair(), Keypair()
    vote = f"/api/markets/{proposed.market_id}/vote"
    async with live_api(fx.config(), db) as api:
        c = api.client
        # valid: D9 approve
        header = signed(me)
        r = await c.post(vote, json={"approve": True}, headers=header)
        assert r.status_code == 200, r.text
        assert r.json()["user_wallet"] == str(me.pubkey()) and r.json()["vote"] is True
        tally = (await c.get(f"/v1/markets/{proposed.market_id}/votes")).json()["proposal"]
        assert (tally["yes"], tally["no"]) == (1, 0)
        # replayed: the very same header again
        r = await c.post(vote, json={"approve": False}, headers=header)
        assert r.status_code == 401 and "already used" in r.json()["message"]
        assert r.headers["www-authenticate"].startswith("Signature")
        # a fresh signature changes the vote
        r = await c.post(vote, json={"approve": False}, headers=signed(me))
        assert r.status_code == 200 and r.json()["vote"] is False
        now_ms = int(time.time() * 1000)
        refused = {
            "expired": signed(me, ms=now_ms - 6 * 60 * 1000),
            "future": signed(me, ms=now_ms + 6 * 60 * 1000),
            # signed by another key, claiming my wallet
            "forged": signed(other, wallet=str(me.pubkey())),
            # my signature, presented for another wallet
            "wrong wallet": {
                **JSON,
                "Authorization": signature_header(me).replace(
                    str(me.pubkey()), str(other.pubkey())
                ),
            },
            # the message says another time than the one signed
            "tampered": {
                **JSON,
                "Authorization": signature_header(me).replace(
                    f"%3A%20{str(now_ms)[:5]}", f"%3A%20{int(str(now_ms)[:5]) + 1}"
                ),
            },
            "other text": signed(
                me, message=f"Sign this message to authenticate with ZMART {now_ms}"
            ),
            "no header": JSON,
            "bearer": {**JSON, "Authorization": "Bearer abc"},
        }
        for case, headers in refused.items():
            r = await c.post(vote, json={"approve": True}, headers=headers)
            assert r.status_code == 401, case
            assert r.json()["message"], case
        # D10 on a DISPUTED market
        r = await c.post(
            f"/api/markets/{disputed.market_id}/dispute/vote",
            json={"supportDispute": True},
            headers=signed(other),
        )
        assert r.status_code == 200 and r.json()["vote_type"] == "dispute"
        # wrong state -> 409 with a message
        r = await c.post(
            f"/api/markets/{disputed.market_id}/vote", json={"approve": True}, headers=signed(other)
        )
        assert r.status_code == 409 and "PROPOSED" in r.json()["message"]
        # /v1 never accepts the header (SIWS sessions only)
        r = await c.post(
            f"/v1/markets/{proposed.market_id}/votes/proposal",
            json={"vote": "like"},
            headers=signed(other),
        )
        assert r.status_code == 401


async def test_discussions_d4_d5(db: Database) -> None:
    m = await fx.seed_market(db)
    me = Keypair()
    path = f"/api/markets/{m.market_id}/discussions"
    async with live_api(fx.config(), db) as api:
        c = api.client
        r = await c.get(path, headers=axios_headers())
        assert r.status_code == 200 and r.json() == []
        r = await c.post(path, json={"content": "first!"}, headers=signed(me))
        assert r.status_code == 201, r.text
        root = r.json()
        assert root["author"] == str(me.pubkey()) and root["content"] == "first!"
        r = await c.post(
            path, json={"content": "reply", "parentId": root["id"]}, headers=signed(me)
        )
        assert r.status_code == 201 and r.json()["parentId"] == root["id"]
        r = await c.post(path, json={"content": "anonymous"}, headers=JSON)
        assert r.status_code == 401
        posts = (await c.get(path)).json()
        assert [p["id"] for p in posts] == [root["id"]]
        assert posts[0]["marketId"] == m.market_id and posts[0]["upvotes"] == 0
        assert [x["content"] for x in posts[0]["replies"]] == ["reply"]
        unknown = f"/api/markets/{f.market_id(fx.fresh())}/discussions"
        assert (await c.get(unknown)).status_code == 404
        # D6/D7 (post votes, flags): zmartd has neither, so they are not routes
        for tail in ("vote", "flag"):
            r = await c.post(f"{path}/{root['id']}/{tail}", json={"vote": "up"}, headers=signed(me))
            assert r.status_code in (404, 405) and r.json()["message"]


async def test_cors_preflight_no_compression(db: Database) -> None:
    m = await fx.seed_market(db)
    async with live_api(fx.config(http={"cors_origins": [ORIGIN]}), db) as api:
        c = api.client
        for path in (
            "/api/markets",
            f"/api/markets/{m.market_id}",
            f"/api/users/{f.wallet(1)}/positions",
        ):
            r = await c.options(
                path,
                headers={
                    "Origin": ORIGIN,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization,content-type",
                },
            )
            assert r.status_code in (200, 204), path
            assert r.headers["access-control-allow-origin"] == ORIGIN
            allowed = r.headers["access-control-allow-headers"].lower()
            assert "authorization" in allowed and "content-type" in allowed
            assert "GET" in r.headers["access-control-allow-methods"]
        r = await c.options(
            "/api/markets",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in r.headers
        r = await c.get(
            "/api/markets",
            headers={**axios_headers(Keypair()), "Accept-Encoding": "gzip, deflate, br"},
        )
        assert r.status_code == 200 and "content-encoding" not in r.headers
        assert r.headers["access-control-allow-origin"] == ORIGIN
        # a client that sends Content-Type on a GET is not refused either
        r = await c.get("/api/markets", headers={"Content-Type": "application/json"})
        assert r.status_code == 200
        r = await c.get("/api/nothing-here", follow_redirects=False)
        assert r.status_code == 404 and r.json()["message"]


async def test_legacy_rate_limits_key_on_forwarded_ip_and_wallet(db: Database) -> None:
    m = await fx.seed_market(db, state=0)
    limits = {
        **fx.LIMITS,
        "legacy_ip_burst": 2,
        "legacy_ip_per_minute": 1,
        "legacy_wallet_burst": 1,
        "legacy_wallet_per_minute": 1,
    }
    cfg = make_config(ratelimit=limits, http={"trusted_proxies": ["127.0.0.1"]})
    async with live_api(cfg, db) as api:
        c = api.client

        async def get(ip: str) -> int:
            r = await c.get("/api/markets/activity", headers={"X-Forwarded-For": ip})
            return r.status_code

        # two users behind the trusted proxy have a bucket each
        assert [await get("203.0.113.1") for _ in range(3)] == [200, 200, 429]
        assert await get("203.0.113.2") == 200
        # a signed write takes from the wallet's bucket, whatever the IP
        me = Keypair()
        vote = f"/api/markets/{m.market_id}/vote"
        r = await c.post(
            vote, json={"approve": True}, headers={**signed(me), "X-Forwarded-For": "203.0.113.3"}
        )
        assert r.status_code == 200
        r = await c.post(
            vote, json={"approve": True}, headers={**signed(me), "X-Forwarded-For": "203.0.113.4"}
        )
        assert r.status_code == 429 and "Retry-After" in r.headers
    # an untrusted peer's X-Forwarded-For is ignored: one bucket for the peer
    async with live_api(make_config(ratelimit=limits), db) as api:
        codes = [
            (
                await api.client.get(
                    "/api/markets/activity", headers={"X-Forwarded-For": f"198.51.100.{n}"}
                )
            ).status_code
            for n in range(3)
        ]
        assert codes == [200, 200, 429]


async def test_proxy_mode_requests(db: Database) -> None:
    """What the frontend's Vercel Edge proxy forwards: the browser's headers (minus host,
    origin and referer; Authorization and X-Forwarded-For included), Origin set to the
    backend's own URL, redirects not followed. The answer must be usable as is."""
    m = await fx.seed_market(db)
    me = Keypair()
    cfg = make_config(ratelimit=fx.LIMITS, http={"trusted_proxies": ["127.0.0.1"]})
    async with live_api(cfg, db) as api:
        forwarded = {
            **axios_headers(me),
            "Origin": api.url,
            "X-Forwarded-For": "203.0.113.7",
            "Accept-Encoding": "gzip, deflate, br, zstd",
            "Accept-Language": "en-US",
            "User-Agent": "Mozilla/5.0",
            "Cookie": "theme=dark",
        }
        for path in (
            "/api/markets",
            f"/api/markets/{m.market_id}",
            f"/api/users/{me.pubkey()}/positions",
            "/api/markets/activity?limit=20",
        ):
            r = await api.client.get(path, headers=forwarded, follow_redirects=False)
            assert r.status_code == 200, (path, r.text)
            assert "content-encoding" not in r.headers and "location" not in r.headers
            assert r.headers["content-type"] == "application/json"
        vote = await api.client.post(
            f"/api/markets/{m.market_id}/vote",
            json={"approve": True},
            headers={**forwarded, **signed(me)},
        )
        assert vote.status_code == 409  # ACTIVE, not PROPOSED: reached the handler
