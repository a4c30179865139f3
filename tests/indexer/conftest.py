"""Fixtures for the indexer tests: the real PostgreSQL (one migrated schema per
module, emptied before each test), a served devchain whose slots advance only
when a test says so, a :class:`Driver` that lands signed zmart transactions
on it, and :func:`assert_db_matches_chain`, the projection every test ends
with: the database rows equal what the double's own accounts and
transactions say."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
import trio_asyncio
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.transaction import VersionedTransaction

from tests.devchain.conftest import serve, settings  # noqa: F401  (fixtures)
from tests.storage.conftest import migrated_schema
from zmartd.bus import Bus
from zmartd.chain import instructions as ix
from zmartd.chain import types as t
from zmartd.chain.accounts import decode_account
from zmartd.chain.events import parse_logs
from zmartd.chain.rpc import RpcClient
from zmartd.devchain.actor import Devchain
from zmartd.devchain.node import TxRecord
from zmartd.indexer.pipeline import Indexer
from zmartd.indexer.source import ChainSource
from zmartd.storage.database import Database

SOL = 1_000_000_000
B = 100 * SOL

CHAIN_TABLES = (
    "webhook_inbox",
    "trade_fees",
    "global_config",
    "failed_transactions",
    "chain_events",
    "price_points",
    "trades",
    "proposal_votes",
    "dispute_votes",
    "positions",
    "market_metadata",
    "markets",
    "processed_transactions",
    "chain_cursors",
    "dead_letters",
)


@pytest.fixture(scope="module")
def module_dsn(pg_dsn: str, request: pytest.FixtureRequest) -> str:
    return migrated_schema(pg_dsn, "ix_" + request.module.__name__.rsplit(".", 1)[-1])


async def empty(db: Database) -> None:
    async def _run(con: asyncpg.Connection) -> None:
        for table in CHAIN_TABLES:
            await con.execute(f"DELETE FROM {table}")

    await db.run("test", _run)


@pytest.fixture
async def db(module_dsn: str) -> AsyncIterator[Database]:
    async with trio_asyncio.open_loop():
        database = await Database.connect(module_dsn, min_size=2, max_size=6, statement_timeout=30)
        try:
            await empty(database)
            yield database
        finally:
            await database.close()


async def rows(db: Database, query: str, *args: Any) -> list[dict[str, Any]]:
    async def _run(con: asyncpg.Connection) -> list[dict[str, Any]]:
        return [dict(r) for r in await con.fetch(query, *args)]

    return await db.run("test", _run, transaction=False)


# ---------------------------------------------------------------- the chain


class Driver:
    """Lands zmart transactions on a devchain node (in process: fast)."""

    def __init__(self, chain: Devchain) -> None:
        self.chain = chain
        self.node = chain.node
        self.pid = chain.node.bank.program_id
        self.admin = self.fund(1000 * SOL)
        self.treasury = self.fund(SOL)

    def fund(self, lamports: int = 1000 * SOL) -> Keypair:
        kp = Keypair()
        self.node.faucet_transfer(kp.pubkey(), lamports)
        return kp

    def send(
        self,
        payer: Keypair,
        instruction: Instruction,
        *,
        confirm: bool = True,
        expect_ok: bool = True,
    ) -> TxRecord:
        message = MessageV0.try_compile(payer.pubkey(), [instruction], [], self.node.blockhash)
        record = self.node.submit(VersionedTransaction(message, [payer]), verify=False)
        if expect_ok:
            assert record.err is None, (record.err, record.logs[-4:])
        if confirm:
            self.node.advance_slot()
        return record

    def init_config(self) -> None:
        self.send(
            self.admin,
            ix.initialize_global_config(
                admin=self.admin.pubkey(),
                backend_authority=self.admin.pubkey(),
                protocol_fee_wallet=self.treasury.pubkey(),
                program_id=self.pid,
            ),
        )

    def active_market(self, creator: Keypair, seed: int, voters: list[Keypair]) -> bytes:
        market_id = seed.to_bytes(32, "big")
        self.send(
            creator,
            ix.create_market(
                creator=creator.pubkey(),
                market_id=market_id,
                b_parameter=B,
                initial_liquidity=SOL // 10,
                ipfs_question_hash=b"QmQ".ljust(46, b"0"),
                program_id=self.pid,
            ),
        )
        for v in voters:
            self.send(
                v,
                ix.submit_proposal_vote(
                    user=v.pubkey(), market_id=market_id, vote=True, program_id=self.pid
                ),
            )
        self.send(
            self.admin,
            ix.aggregate_proposal_votes(
                backend_authority=self.admin.pubkey(),
                market_id=market_id,
                final_likes=len(voters),
                final_dislikes=0,
                program_id=self.pid,
            ),
        )
        self.send(
            self.admin,
            ix.approve_proposal(
                admin=self.admin.pubkey(), market_id=market_id, program_id=self.pid
            ),
        )
        self.send(
            creator,
            ix.activate_market(
                authority=creator.pubkey(), market_id=market_id, program_id=self.pid
            ),
        )
        return market_id

    def buy(
        self,
        user: Keypair,
        market_id: bytes,
        outcome: bool,
        amount: int,
        *,
        confirm: bool = True,
        expect_ok: bool = True,
    ) -> TxRecord:
        return self.send(
            user,
            ix.buy_shares(
                user=user.pubkey(),
                market_id=market_id,
                outcome=outcome,
                target_cost=amount,
                protocol_fee_wallet=self.treasury.pubkey(),
                program_id=self.pid,
            ),
            confirm=confirm,
            expect_ok=expect_ok,
        )

    def confirm(self) -> None:
        self.node.advance_slot()


def run_lifecycle(d: Driver) -> dict[str, Any]:
    """Config → market proposed/approved/active → buys → a sell that reverts
    (deployed program, docs/chain.md §11.1) → resolve → dispute → votes →
    finalize → claim → withdraw; plus a second market that is cancelled and
    a config update."""
    d.init_config()
    creator, alice, bob, carol = (d.fund() for _ in range(4))
    m1 = d.active_market(creator, 1, [alice, bob, carol])
    d.buy(alice, m1, True, SOL)
    d.buy(bob, m1, False, SOL // 2)
    d.buy(carol, m1, True, 2 * SOL)
    sell = d.send(
        alice,
        ix.sell_shares(
            user=alice.pubkey(),
            market_id=m1,
            outcome=True,
            shares_to_sell=10**8,
            min_proceeds=0,
            protocol_fee_wallet=d.treasury.pubkey(),
            program_id=d.pid,
        ),
        expect_ok=False,
    )
    d.send(
        d.admin,
        ix.update_global_config(
            admin=d.admin.pubkey(),
            protocol_fee_bps=300,
            resolver_reward_bps=200,
            liquidity_provider_fee_bps=400,
            proposal_approval_threshold=7000,
            dispute_success_threshold=6000,
        ),
    )
    d.buy(bob, m1, True, SOL)  # under the new fee bps
    d.node.warp_clock(10)
    d.send(
        carol,
        ix.resolve_market(
            resolver=carol.pubkey(),
            market_id=m1,
            proposed_outcome=True,
            ipfs_evidence_hash=b"QmE".ljust(46, b"0"),
            program_id=d.pid,
        ),
    )
    d.node.warp_clock(10)
    d.send(bob, ix.initiate_dispute(initiator=bob.pubkey(), market_id=m1, program_id=d.pid))
    for voter, vote in ((alice, False), (bob, True)):
        d.send(
            voter,
            ix.submit_dispute_vote(user=voter.pubkey(), market_id=m1, vote=vote, program_id=d.pid),
        )
    d.send(
        d.admin,
        ix.finalize_market(
            backend_authority=d.admin.pubkey(),
            market_id=m1,
            dispute_agree=1,
            dispute_disagree=1,
            program_id=d.pid,
        ),
    )
    d.send(
        alice,
        ix.claim_winnings(
            user=alice.pubkey(), market_id=m1, resolver=carol.pubkey(), program_id=d.pid
        ),
    )
    d.send(creator, ix.withdraw_liquidity(creator=creator.pubkey(), market_id=m1, program_id=d.pid))
    m2 = (2).to_bytes(32, "big")
    d.send(
        creator,
        ix.create_market(
            creator=creator.pubkey(),
            market_id=m2,
            b_parameter=B,
            initial_liquidity=SOL,
            ipfs_question_hash=b"QmQ2".ljust(46, b"0"),
            program_id=d.pid,
        ),
    )
    d.send(d.admin, ix.cancel_market(admin=d.admin.pubkey(), market_id=m2, program_id=d.pid))
    d.confirm()
    return {"markets": [m1.hex(), m2.hex()], "sell": str(sell.signature)}


@pytest.fixture
async def chain(serve: Callable[..., Any]) -> Devchain:  # noqa: F811
    result: Devchain = await serve(confirmed_lag=1)
    return result


@pytest.fixture
async def rpc(chain: Devchain) -> AsyncIterator[RpcClient]:
    async with RpcClient([chain.rpc_url], commitment="confirmed", timeout=10) as client:
        yield client


def make_indexer(db: Database, rpc: RpcClient, chain: Devchain, bus: Bus | None = None) -> Indexer:
    return Indexer(
        db, ChainSource(rpc, chain.node.bank.program_id), bus, None, publish=bus is not None
    )


# ---------------------------------------------------------------- the projection


def _program_txs(chain: Devchain) -> list[TxRecord]:
    node, pid = chain.node, chain.node.bank.program_id
    confirmed = node.commitment_slot("confirmed")
    return [
        r for r in node.signatures_for_address(pid, "confirmed", limit=10**9) if r.slot <= confirmed
    ]


async def assert_db_matches_chain(db: Database, chain: Devchain) -> dict[str, int]:
    """Markets, positions, trades, votes and failures in the DB equal the
    double's confirmed accounts and transaction logs.  Returns counts."""
    node, pid = chain.node, chain.node.bank.program_id
    accounts = {k: decode_account(a.data) for k, a in node.accounts_owned_by(pid, "confirmed")}
    markets = {
        a.market_id.hex(): (k, a) for k, a in accounts.items() if isinstance(a, t.MarketAccount)
    }
    by_addr = {k: a.market_id.hex() for k, a in accounts.items() if isinstance(a, t.MarketAccount)}
    db_markets = {r["market_id"]: r for r in await rows(db, "SELECT * FROM markets")}
    assert set(db_markets) == set(markets)
    for market_id, (key, m) in markets.items():
        r = db_markets[market_id]
        assert r["address"] == str(key)
        assert r["state"] == int(m.state)
        for f in (
            "shares_yes",
            "shares_no",
            "current_liquidity",
            "total_volume",
            "accumulated_resolver_fees",
            "accumulated_lp_fees",
            "proposal_likes",
            "dispute_agree",
            "dispute_disagree",
        ):
            assert int(r[f]) == getattr(m, f), (market_id, f)
        assert r["final_outcome"] == m.final_outcome and r["proposed_outcome"] == m.proposed_outcome
    positions = {
        (by_addr[a.market], str(a.user)): a
        for a in accounts.values()
        if isinstance(a, t.UserPosition)
    }
    db_pos = {(r["market_id"], r["wallet"]): r for r in await rows(db, "SELECT * FROM positions")}
    assert set(db_pos) == set(positions)
    for k, p in positions.items():
        r = db_pos[k]
        assert (
            int(r["shares_yes"]),
            int(r["shares_no"]),
            int(r["total_invested"]),
            r["trades_count"],
            r["has_claimed"],
            int(r["claimed_amount"]),
        ) == (
            p.shares_yes,
            p.shares_no,
            p.total_invested,
            p.trades_count,
            p.has_claimed,
            p.claimed_amount,
        )
    # events of every successful confirmed transaction
    trades: set[tuple[str, int]] = set()
    votes: set[tuple[str, str, str]] = set()
    n_events = 0
    failed = set()
    for rec in _program_txs(chain):
        if rec.err is not None:
            failed.add(str(rec.signature))
            continue
        for ev in parse_logs(rec.logs, pid).events:
            n_events += 1
            e = ev.event
            if isinstance(e, t.SharesBought | t.SharesSold):
                trades.add((str(rec.signature), e.shares))
            elif isinstance(e, t.ProposalVoteSubmitted):
                votes.add(("proposal", e.market_id.hex(), str(e.user)))
            elif isinstance(e, t.DisputeVoteSubmitted):
                votes.add(("dispute", e.market_id.hex(), str(e.user)))
    db_trades = await rows(db, "SELECT signature, shares FROM trades")
    assert len(db_trades) == len(trades), "duplicated or missing trades"
    assert {(r["signature"], int(r["shares"])) for r in db_trades} == trades
    db_votes = await rows(
        db,
        "SELECT 'proposal' AS k, market_id, wallet FROM proposal_votes "
        "WHERE source = 'onchain' UNION ALL SELECT 'dispute', market_id, "
        "wallet FROM dispute_votes WHERE source = 'onchain'",
    )
    assert {(r["k"], r["market_id"], r["wallet"]) for r in db_votes} == votes
    db_failed = {
        r["signature"] for r in await rows(db, "SELECT signature FROM failed_transactions")
    }
    assert db_failed == failed
    (count,) = await rows(db, "SELECT count(*) AS n FROM chain_events")
    assert count["n"] == n_events
    return {
        "markets": len(markets),
        "positions": len(positions),
        "trades": len(trades),
        "votes": len(votes),
        "events": n_events,
        "failed": len(failed),
    }
