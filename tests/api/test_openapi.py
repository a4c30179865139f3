"""The generated OpenAPI 3.1 document, /docs with its offline assets, and a
schemathesis smoke run of the auth routes against a live server."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate

from tests.api.conftest import live_api, make_config, register_schemathesis_formats
from zmartd.api.openapi import build_document
from zmartd.api.rest import auth
from zmartd.storage.database import Database

LIMITS = {f"auth_{s}_{k}": 1_000_000 for s in ("ip", "wallet") for k in ("burst", "per_minute")}


def test_document_is_valid_openapi_31_and_complete() -> None:
    doc = build_document(auth.router.routes, server_url="http://zmart.test")
    validate(doc)  # OpenAPI 3.1 meta-schema, offline
    assert doc["openapi"] == "3.1.0"
    ops = {(m, p): op for p, item in doc["paths"].items() for m, op in item.items()}
    assert set(ops) == {
        ("post", "/v1/auth/nonce"),
        ("post", "/v1/auth/verify"),
        ("get", "/v1/auth/session"),
        ("post", "/v1/auth/logout"),
    }
    nonce = ops[("post", "/v1/auth/nonce")]
    assert set(nonce["responses"]) == {"201", "400", "413", "415", "422", "429", "503"}
    assert nonce["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NonceRequest"
    }
    assert "RateLimit-Remaining" in nonce["responses"]["201"]["headers"]
    session = ops[("get", "/v1/auth/session")]
    assert set(session["responses"]) == {"200", "304", "401", "422", "429", "503"}
    assert session["security"] == [{"session": []}]
    assert "ETag" in session["responses"]["200"]["headers"]
    assert set(ops[("post", "/v1/auth/logout")]["responses"]) == {"204", "401", "422", "429", "503"}
    schemas = doc["components"]["schemas"]
    assert schemas["NonceRequest"]["properties"]["wallet"]["pattern"].startswith("^[1-9A-H")
    assert schemas["NonceRequest"]["additionalProperties"] is False
    assert "urn:zmart:problem:validation" in schemas["ProblemDoc"]["properties"]["type"]["enum"]
    rate = doc["components"]["responses"]["RateLimited"]
    assert "Retry-After" in rate["headers"]
    assert "application/problem+json" in rate["content"]
    assert nonce["summary"].startswith("Start signing in")


async def test_openapi_and_docs_are_served_offline(db: Database) -> None:
    async with live_api(make_config(), db) as api:
        c = api.client
        r = await c.get("/openapi.json")
        assert r.status_code == 200 and r.json()["paths"]["/v1/auth/nonce"]
        validate(r.json())
        page = await c.get("/docs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "https:" not in csp
        assert "<script>" not in page.text and "http" not in page.text.replace(
            "http-equiv", ""
        )  # no inline script, no CDN URL
        for asset in (
            "swagger-ui-bundle.js",
            "swagger-ui.css",
            "init.js",
            "swagger-ui-standalone-preset.js",
        ):
            a = await c.get(f"/docs/assets/{asset}")
            assert a.status_code == 200 and len(a.content) > 100, asset
        bundle = await c.get("/docs/assets/swagger-ui-bundle.js")
        assert b"isOAS31" in bundle.content  # Swagger UI 5: renders OpenAPI 3.1
        missing = await c.get("/docs/assets/../../etc/passwd")
        assert missing.status_code == 404
        assert (await c.get("/docs/assets/nope.js")).status_code == 404


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_schemathesis_smoke_on_auth_routes(db: Database) -> None:
    import schemathesis
    from schemathesis.core.result import Ok

    register_schemathesis_formats()
    cfg = make_config(ratelimit=LIMITS)
    async with live_api(cfg, db, routers=(auth.router,)) as api:
        url = api.url

        def run() -> list[str]:
            schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
            failures: list[str] = []
            modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
            for result in schema.get_all_operations():
                # an operation schemathesis cannot load is a broken document
                assert isinstance(result, Ok), result.err()
                op = result.ok()
                for mode in modes:

                    @settings(
                        max_examples=20,
                        deadline=None,
                        database=None,
                        suppress_health_check=list(HealthCheck),
                    )
                    @given(case=op.as_strategy(generation_mode=mode))
                    def check(case: Any) -> None:
                        response = case.call(base_url=url)
                        assert response.status_code < 500, (case.path, response.text)
                        case.validate_response(response)

                    try:
                        check()
                    except Exception as exc:  # collect every operation's first failure
                        failures.append(f"{mode.value} {op.method} {op.path}: {exc}")
            return failures

        failures = await trio.to_thread.run_sync(run)
        assert failures == []
