"""Fixtures for the sender tests: a migrated schema on the real PostgreSQL, a
served devchain seeded with the demo (its slots advancing quickly on their
own, as a cluster's do) whose authority is a test key, and helpers that read
what actually executed on that chain."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
import trio_asyncio
from solders.keypair import Keypair

from tests.devchain.conftest import serve, settings  # noqa: F401  (fixtures)
from tests.storage.conftest import migrated_schema
from tests.test_e2e_daemon import daemon_factory, data_dir  # noqa: F401  (fixtures)
from zmartd.chain import instructions as ix
from zmartd.chain.pda import market_pda
from zmartd.chain.rpc import RpcClient
from zmartd.devchain.actor import Devchain
from zmartd.sender.lifecycle import Executor, SenderSettings, Signers
from zmartd.sender.metrics import SenderMetrics
from zmartd.storage.database import Database
from zmartd.storage.intents import IntentRecord

#: the test chain's admin and backend authority
AUTHORITY = Keypair.from_seed(hashlib.sha256(b"zmartd sender tests authority").digest())
NEW_LANG = hashlib.sha256(b"zmartd demo market new-lang").digest()
SLOT = 0.05
FAST = SenderSettings(rebroadcast_interval=0.3, poll_interval=0.05, max_backoff=0.5)


@pytest.fixture(scope="module")
def module_dsn(pg_dsn: str, request: pytest.FixtureRequest) -> str:
    return migrated_schema(pg_dsn, "snd_" + request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture
async def db(module_dsn: str) -> AsyncIterator[Database]:
    async with trio_asyncio.open_loop():
        database = await Database.connect(module_dsn, min_size=2, max_size=6, statement_timeout=30)

        async def _empty(con: asyncpg.Connection) -> None:
            await con.execute("TRUNCATE intents, vote_aggregations, aggregator_outcomes CASCADE")

        try:
            await database.run("test", _empty)
            yield database
        finally:
            await database.close()


@pytest.fixture
async def demo_chain(serve: Callable[..., Any]) -> Devchain:  # noqa: F811
    chain: Devchain = await serve(
        seed="demo", authority=AUTHORITY, slot_interval=SLOT, finalized_lag=8
    )
    return chain


async def control(chain: Devchain, method: str, *params: Any) -> Any:
    async with RpcClient([chain.rpc_url], timeout=5, max_retries=0) as rpc:
        result, _ = await rpc.request(method, list(params))
        return result


def executor(
    db: Database, rpc: RpcClient, chain: Devchain, tuning: SenderSettings = FAST
) -> Executor:
    return Executor(
        db,
        rpc,
        Signers(backend=AUTHORITY, admin=AUTHORITY),
        program_id=chain.node.bank.program_id,
        settings=tuning,
        metrics=SenderMetrics(),
    )


def aggregate_data(likes: int, dislikes: int) -> bytes:
    return bytes(
        ix.aggregate_proposal_votes(
            backend_authority=AUTHORITY.pubkey(),
            market_id=NEW_LANG,
            final_likes=likes,
            final_dislikes=dislikes,
        ).data
    )


def executions(chain: Devchain, data: bytes, *, market_id: bytes = NEW_LANG) -> list[Any]:
    """Transactions on the chain (any commitment) carrying exactly this
    instruction data: (signature, err) of each."""
    node = chain.node
    market = market_pda(market_id, node.bank.program_id)[0]
    out = []
    for record in node.signatures_for_address(market, "processed", limit=1000):
        message = record.tx.message
        if any(bytes(ci.data) == data for ci in message.instructions):
            out.append((str(record.signature), record.err))
    return out


def effective(chain: Devchain, data: bytes, *, market_id: bytes = NEW_LANG) -> int:
    """How many of those executed without error (an effective execution)."""
    return sum(1 for _, err in executions(chain, data, market_id=market_id) if err is None)


def assert_landed_once(chain: Devchain, intent: IntentRecord | None, data: bytes) -> None:
    assert intent is not None and intent.state == "landed", intent
    runs = executions(chain, data)
    assert effective(chain, data) == 1, runs
    assert intent.signature in {sig for sig, err in runs if err is None}
