"""What the running-daemon schemathesis run found, one test each: the
answers agree with what the OpenAPI document says (``Allow``, links,
request values the schema admits)."""

from __future__ import annotations

import json

from solders.keypair import Keypair

from tests.api import factories as fx
from tests.api.conftest import live_api
from tests.api.test_auth_flow import nonce_for
from tests.storage import factories as f
from zmartd.api.openapi import build_document
from zmartd.api.server import ROUTERS
from zmartd.storage.database import Database


async def test_options_allow_lists_the_documented_methods_of_the_path(db: Database) -> None:
    async with live_api(fx.config(), db) as api:
        doc = (await api.client.get("/openapi.json")).json()
        for path, wanted in [
            ("/v1/users/me", "PATCH"),
            ("/v1/markets", "GET, POST"),
            (f"/v1/users/{f.wallet(fx.fresh())}", "GET"),
            (f"/v1/markets/{'ab' * 32}", "GET, PATCH"),
        ]:
            r = await api.client.options(path)
            assert r.status_code == 200, path
            allowed = {m.strip() for m in r.headers["Allow"].split(",")} - {"HEAD", "OPTIONS"}
            assert allowed == set(wanted.split(", ")), (path, r.headers["Allow"])
        documented = {m.upper() for m in doc["paths"]["/v1/users/me"]}
        assert documented == {"PATCH"}
        # and the method the path does not have is 405, not a user called "me"
        r = await api.client.get("/v1/users/me")
        assert r.status_code == 405
        assert {m.strip() for m in r.headers["Allow"].split(",")} == {"OPTIONS", "PATCH"}


async def test_an_integral_json_number_is_an_integer(db: Database) -> None:
    market = await fx.seed_market(db)
    wallet = f.wallet(fx.fresh())
    token = await fx.session(db, wallet)
    async with live_api(fx.config(), db) as api:
        url = f"/v1/markets/{market.market_id}/discussions"
        first = await api.client.post(url, json={"content": "root"}, headers=fx.headers(token))
        assert first.status_code == 201, first.text
        raw = json.dumps({"content": "reply", "parent_id": float(first.json()["id"])})
        assert ".0" in raw
        reply = await api.client.post(
            url, content=raw, headers={**fx.headers(token), "Content-Type": "application/json"}
        )
        assert reply.status_code == 201, reply.text
        assert reply.json()["parent_id"] == first.json()["id"]
        # a fraction is still no integer, and broken JSON still 400
        bad = raw.replace(".0", ".5")
        r = await api.client.post(
            url, content=bad, headers={**fx.headers(token), "Content-Type": "application/json"}
        )
        assert r.status_code == 422
        r = await api.client.post(
            url,
            content=b'{"content": "x", "parent_id": 1.0',
            headers={**fx.headers(token), "Content-Type": "application/json"},
        )
        assert r.status_code == 400


async def test_a_signature_of_the_right_shape_that_is_no_signature_is_401(db: Database) -> None:
    kp = Keypair()
    async with live_api(fx.config(), db) as api:
        n = await nonce_for(api.client, kp)
        r = await api.client.post(
            "/v1/auth/verify", json={"message": n["message"], "signature": "1" * 87}
        )
        assert r.status_code == 401, r.text
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        r = await api.client.post(
            "/v1/auth/verify", json={"message": n["message"], "signature": "0" * 87}
        )  # not base58: schema-invalid
        assert r.status_code == 422


def test_links_lead_to_documented_operations_and_parameters() -> None:
    doc = build_document([r for router in ROUTERS for r in router.routes])
    ops = {op["operationId"]: op for item in doc["paths"].values() for op in item.values()}
    count = 0
    for op in ops.values():
        for response in op["responses"].values():
            for link in response.get("links", {}).values():
                target = ops[link["operationId"]]
                names = {p["name"] for p in target.get("parameters", [])}
                assert set(link["parameters"]) <= names, link
                count += 1
    assert count >= 15
