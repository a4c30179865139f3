"""Without the admin key, an approval is a human's: reported on the market and
on /ready, never attempted; and the backend key signs approvals only when the
chain's GlobalConfig names it as the admin."""

from __future__ import annotations

from typing import Any

from solders.keypair import Keypair

from tests.api import factories as fx
from tests.api.conftest import make_config, make_ctx
from tests.sender.conftest import AUTHORITY
from tests.storage import factories as f
from zmartd.aggregator.actor import Aggregator
from zmartd.chain.rpc import RpcClient
from zmartd.devchain.actor import Devchain
from zmartd.model.demo import demo_keypair
from zmartd.sender.actor import check_keys
from zmartd.sender.keys import configured_signers, effective_signers
from zmartd.sender.lifecycle import Executor, SenderSettings, Signers
from zmartd.sender.metrics import SenderMetrics
from zmartd.sender.service import SenderService
from zmartd.storage import aggregator as store
from zmartd.storage import indexer as indexer_store
from zmartd.storage import votes as vote_store
from zmartd.storage.database import Database

BACKEND = Keypair.from_seed(bytes(range(7, 39)))
ADMIN = Keypair.from_seed(bytes(range(9, 41)))


async def global_config(db: Database, admin: str) -> None:
    state = indexer_store.GlobalConfigState(
        address=f.wallet(fx.fresh()),
        admin=admin,
        backend_authority=str(BACKEND.pubkey()),
        protocol_fee_wallet=f.wallet(fx.fresh()),
        protocol_fee_bps=300,
        resolver_reward_bps=200,
        liquidity_provider_fee_bps=500,
        proposal_approval_threshold=7000,
        dispute_success_threshold=6000,
        min_resolution_delay=86_400,
        dispute_period=259_200,
        is_paused=False,
        slot=1,
    )

    async def _run(con: Any) -> None:
        await con.execute("DELETE FROM global_config")
        await indexer_store.write_global_config(con, state)

    await db.run("test", _run)


async def test_an_approval_without_the_admin_key_is_reported_not_sent(
    db: Database, demo_chain: Devchain
) -> None:
    m = await fx.seed_market(db, state=0, proposal_likes=10, proposal_dislikes=0)
    for _ in range(10):
        await vote_store.cast_vote(
            db, kind="proposal", market_id=m.market_id, wallet=f.wallet(fx.fresh()), vote=True
        )
    await global_config(db, admin=str(ADMIN.pubkey()))
    cfg = make_config(chain={"keypair": str(BACKEND)}, aggregator={"min_votes": 10})
    ctx = make_ctx(cfg)
    ctx.name = "aggregator"
    async with RpcClient([demo_chain.rpc_url], timeout=5) as rpc:
        aggregator = Aggregator(ctx, db, rpc, SenderMetrics())
        assert await aggregator.cycle()
    [outcome] = await store.read_outcomes(db, m.market_id)
    assert outcome.outcome == "needs_admin" and outcome.intent_id is None
    assert "a human must send it" in outcome.detail and (outcome.yes, outcome.no) == (10, 0)
    problem = ctx.health.degraded["aggregator"]
    assert "no admin key is configured" in problem and m.market_id in problem

    async def _intents(con: Any) -> int:
        return int(await con.fetchval("SELECT count(*) FROM intents"))

    assert await db.run("test", _intents) == 0  # nothing was attempted


def test_the_backend_key_signs_as_admin_only_when_the_chain_says_so() -> None:
    cfg = make_config(chain={"keypair": str(BACKEND)})
    signers = configured_signers(cfg)
    assert signers.backend is not None and signers.admin is None
    assert effective_signers(signers, str(ADMIN.pubkey())).admin is None
    same = effective_signers(signers, str(BACKEND.pubkey()))
    assert same.admin is not None and same.admin.pubkey() == BACKEND.pubkey()
    with_admin = configured_signers(
        make_config(chain={"keypair": str(BACKEND)}, admin={"keypair": str(ADMIN)})
    )
    assert with_admin.for_kind("approve_proposal").pubkey() == ADMIN.pubkey()  # type: ignore[union-attr]
    assert with_admin.for_kind("finalize_market").pubkey() == BACKEND.pubkey()  # type: ignore[union-attr]
    # local mode with the demo seed and no key: the demo's public admin key
    demo = configured_signers(make_config())
    assert demo.backend is not None and demo.backend.pubkey() == demo_keypair("admin").pubkey()
    assert (
        configured_signers(make_config(chain={"mode": "rpc", "rpc_urls": ["http://x"]})).backend
        is None
    )


async def test_the_sender_reports_keys_that_are_not_the_programs(
    db: Database, demo_chain: Devchain
) -> None:
    ctx = make_ctx(make_config())
    async with RpcClient([demo_chain.rpc_url], timeout=5) as rpc:
        for backend, admin, problem in (
            (AUTHORITY, None, None),  # the chain's backend, and (so) its admin too
            (BACKEND, None, f"[chain] keypair {BACKEND.pubkey()} is not the program's backend"),
            (AUTHORITY, ADMIN, f"[admin] keypair {ADMIN.pubkey()} is not the program's admin"),
        ):
            signers = Signers(backend=backend, admin=admin)
            service = SenderService(db, signers)
            executor = Executor(
                db,
                rpc,
                signers,
                program_id=demo_chain.node.bank.program_id,
                settings=SenderSettings(),
                metrics=SenderMetrics(),
            )
            await check_keys(ctx, service, executor)
            assert service.keys_checked
            if problem is None:
                assert service.key_problem is None
                assert executor.signers.admin is AUTHORITY  # the backend key signs as admin
            else:
                assert service.key_problem is not None and problem in service.key_problem
