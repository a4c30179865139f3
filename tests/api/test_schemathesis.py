"""Schema-driven fuzzing of every /v1 domain operation against a live server.

schemathesis reads the served ``/openapi.json`` and generates requests from
it, positive (valid by the schema) and negative (violating it), for every
operation; each answer must be below 500 and conform to the document
(status documented, body matching its schema, problem+json for errors).
The database is seeded with markets in several states, trades, positions,
votes and posts, and the path parameters' schemas are widened with the
seeded ids, so positive cases reach real rows instead of answering 404 only.
The one check left out is "schema-valid data must not get a 4xx": some rules
cannot be written in JSON Schema (an opaque cursor must be one the server
issued, a buy below the chain's 10,000-lamport minimum is ``TradeTooSmall``,
a candle window has at most 5,000 buckets), so a schema-valid request can
rightly get a 422 -- which must still be a documented problem document.
Requests carry a session token of the seeded markets' creator, so writes run
for real too.  At least :data:`MIN_CASES` cases are sent.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings

from tests.api import factories as fx
from tests.api.conftest import live_api, register_schemathesis_formats
from tests.devchain import conftest as chain_fixtures
from tests.storage import factories as f
from zmartd.chain.pda import global_config_pda
from zmartd.model.services import LOCAL_CHAIN
from zmartd.storage import discussions, votes
from zmartd.storage import indexer as indexer_store
from zmartd.storage.database import Database
from zmartd.storage.indexer import GlobalConfigState

#: the served chain double the /v1/tx routes simulate and relay on
serve = chain_fixtures.serve

MIN_CASES = 1000
#: the domain routes under test (auth and webhooks have their own tests)
DOMAIN = ("/v1/markets", "/v1/users", "/v1/discussions", "/v1/stats", "/v1/snapshots", "/v1/tx")
#: examples per operation and generation mode (operations with a small input
#: space, like GET /v1/stats, use fewer: hypothesis stops when it has tried them all)
EXAMPLES = {"positive": 32, "negative": 25}


async def _seed(db: Database) -> dict[str, list[Any]]:
    creator = fx.fresh()
    wallet = f.wallet(creator)
    trader = f.wallet(fx.fresh())
    proposed = await fx.seed_market(db, creator=creator, state=0)
    active = await fx.seed_market(
        db,
        creator=creator,
        shares_yes=f.B // 1000 + 3 * 10**9,
        current_liquidity=10**12,
        price_yes=520_000_000,
    )
    disputed = await fx.seed_market(
        db, creator=creator, state=4, resolution_proposed_at=fx.T0 + timedelta(days=1)
    )
    await fx.seed_trades(
        db,
        active.market_id,
        trader,
        [{"price": 510_000_000 + i, "at": fx.T0 + timedelta(minutes=i)} for i in range(5)],
    )
    await fx.seed_position(db, active.market_id, trader, yes=5 * 10**9, invested=10**9)
    await fx.seed_position(db, active.market_id, wallet, yes=10**9, invested=10**8)
    await votes.cast_vote(
        db, kind="proposal", market_id=proposed.market_id, wallet=trader, vote=True
    )
    # the program's config, so that /v1/tx builds reach the chain's simulation
    config = GlobalConfigState(
        address=str(global_config_pda()[0]),
        admin=wallet,
        backend_authority=wallet,
        protocol_fee_wallet=trader,
        protocol_fee_bps=300,
        resolver_reward_bps=200,
        liquidity_provider_fee_bps=500,
        proposal_approval_threshold=7000,
        dispute_success_threshold=6000,
        min_resolution_delay=0,
        dispute_period=86400,
        is_paused=False,
        slot=1,
    )
    await db.run("test.config", lambda con: indexer_store.write_global_config(con, config))
    post = await discussions.post(db, market_id=active.market_id, wallet=wallet, content="hi")
    reply = await discussions.post(
        db, market_id=active.market_id, wallet=trader, content="hello", parent_id=post.id
    )
    return {
        "market_id": [m.market_id for m in (proposed, active, disputed)] + [active.address],
        "wallet": [wallet, trader],
        "post_id": [post.id, reply.id],
    }


def _widen(doc: dict[str, Any], seeds: dict[str, list[Any]]) -> dict[str, Any]:
    """Let path parameters take the seeded values as well as anything valid."""
    doc = copy.deepcopy(doc)
    doc["paths"] = {p: item for p, item in doc["paths"].items() if p.startswith(DOMAIN)}
    for item in doc["paths"].values():
        for op in item.values():
            for param in op.get("parameters", []):
                values = seeds.get(param["name"])
                if param["in"] == "path" and values:
                    param["schema"] = {"anyOf": [{"enum": values}, param["schema"]]}
    return doc


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_schemathesis_every_domain_operation(db: Database, serve: Any) -> None:
    import schemathesis
    from schemathesis.core.result import Ok
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    register_schemathesis_formats()
    seeds = await _seed(db)
    token = await fx.session(db, seeds["wallet"][0])
    chain = await serve(seed="demo")
    async with live_api(fx.config(), db) as api:
        api.ctx.services.provide(LOCAL_CHAIN, chain)
        url = api.url
        doc = (await api.client.get("/openapi.json")).json()
        schema = schemathesis.openapi.from_dict(_widen(doc, seeds))

        def run() -> tuple[int, list[str], int]:
            failures: list[str] = []
            calls = 0
            operations = 0
            for result in schema.get_all_operations():
                if not isinstance(result, Ok):
                    failures.append(f"unloadable operation: {result.err()}")
                    continue
                op = result.ok()
                operations += 1
                modes = [schemathesis.GenerationMode.POSITIVE]
                if op.path_parameters or op.query or op.body:  # else nothing can be invalid
                    modes.append(schemathesis.GenerationMode.NEGATIVE)
                for mode in modes:

                    @settings(
                        max_examples=EXAMPLES[mode.value],
                        deadline=None,
                        database=None,
                        suppress_health_check=list(HealthCheck),
                    )
                    @given(case=op.as_strategy(generation_mode=mode))
                    def check(case: Any) -> None:
                        nonlocal calls
                        calls += 1
                        response = case.call(
                            base_url=url, headers={"Authorization": f"Bearer {token}"}
                        )
                        assert response.status_code < 500, (case.method, case.path, response.text)
                        case.validate_response(response, excluded_checks=[positive_data_acceptance])

                    try:
                        check()
                    except Exception as exc:  # collect every operation's first failure
                        failures.append(f"{mode.value} {op.method} {op.path}: {exc}")
            return calls, failures, operations

        calls, failures, operations = await trio.to_thread.run_sync(run)
    assert failures == []
    assert operations == 35
    print(f"schemathesis: {calls} cases over {operations} operations")
    assert calls >= MIN_CASES, calls
