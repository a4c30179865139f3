"""The sender's lifecycle against the devchain's faults: each test drives
real intents through simulate -> sign -> store -> send -> rebroadcast ->
confirm (or prove expiry and re-sign) and asserts that the chain executed
each intent's instruction exactly once."""

from __future__ import annotations

import json

import httpx
import trio
from solders.message import MessageV0
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from tests.sender.conftest import (
    AUTHORITY,
    FAST,
    NEW_LANG,
    aggregate_data,
    assert_landed_once,
    control,
    executions,
    executor,
)
from zmartd.chain import instructions as ix
from zmartd.chain.rpc import RpcClient
from zmartd.devchain.actor import Devchain
from zmartd.sender.lifecycle import Executor, Signers, priority_fee
from zmartd.sender.metrics import SenderMetrics
from zmartd.storage import intents as store
from zmartd.storage.database import Database

MARKET = NEW_LANG.hex()


async def submit(db: Database, likes: int, dislikes: int = 0) -> int:
    intent, created = await store.submit_intent(
        db,
        kind="aggregate_proposal_votes",
        market_id=MARKET,
        args={"likes": likes, "dislikes": dislikes},
        key=f"test:{likes}:{dislikes}",
    )
    assert created
    return intent.id


async def drive(
    db: Database, chain: Devchain, intent_id: int, *, timeout: float = 1.0, limit: float = 30.0
) -> store.IntentRecord | None:
    async with RpcClient(
        [chain.rpc_url],
        timeout=timeout,
        max_retries=2,
        backoff_initial=0.05,
        backoff_max=0.2,
        cooldown=0.5,
    ) as rpc:
        with trio.fail_after(limit):
            return await executor(db, rpc, chain).drive(intent_id)


async def test_an_intent_lands_once_and_its_key_is_idempotent(
    db: Database, demo_chain: Devchain
) -> None:
    intent_id = await submit(db, 101, 2)
    again, created = await store.submit_intent(
        db,
        kind="aggregate_proposal_votes",
        market_id=MARKET,
        args={"likes": 101, "dislikes": 2},
        key="test:101:2",
    )
    assert again.id == intent_id and not created
    intent = await drive(db, demo_chain, intent_id)
    assert_landed_once(demo_chain, intent, aggregate_data(101, 2))
    assert intent is not None and intent.attempts == 1 and intent.landed_slot is not None
    assert len(intent.signatures) == 1 and intent.signed_tx is None
    # the counts are on chain; driving it again does nothing
    assert (await drive(db, demo_chain, intent_id)) == intent
    assert len(executions(demo_chain, aggregate_data(101, 2))) == 1


async def test_dropped_sends_are_rebroadcast_with_the_same_bytes(
    db: Database, demo_chain: Devchain
) -> None:
    await control(demo_chain, "zmart_dropSends", 3)
    intent = await drive(db, demo_chain, await submit(db, 102))
    assert_landed_once(demo_chain, intent, aggregate_data(102, 0))
    assert intent is not None and intent.attempts == 1 and intent.sends >= 4
    assert (await control(demo_chain, "zmart_faults"))["dropped"] == 3


async def test_a_send_that_landed_but_timed_out_is_not_sent_twice(
    db: Database, demo_chain: Devchain
) -> None:
    await control(demo_chain, "zmart_timeoutSends", 1, 3)
    intent = await drive(db, demo_chain, await submit(db, 103), timeout=0.5)
    assert_landed_once(demo_chain, intent, aggregate_data(103, 0))
    assert intent is not None and intent.attempts == 1
    assert (await control(demo_chain, "zmart_faults"))["timedOut"] == 1


async def test_429_and_503_bursts(db: Database, demo_chain: Devchain) -> None:
    for status, likes in ((429, 104), (503, 105)):
        await control(demo_chain, "zmart_httpErrors", {"status": status, "rate": 0.6, "count": 60})
        intent = await drive(db, demo_chain, await submit(db, likes))
        assert_landed_once(demo_chain, intent, aggregate_data(likes, 0))
    faults = await control(demo_chain, "zmart_faults")
    assert faults["httpErrors"] > 10


async def test_expired_blockhash_is_proven_then_signed_again(
    db: Database, demo_chain: Devchain
) -> None:
    # every send of the first transaction is dropped until its blockhash (valid for 4
    # blocks here) expires; only then is a second transaction signed, and it lands
    await control(demo_chain, "zmart_blockhashExpiry", 4)
    await control(demo_chain, "zmart_dropSends", 4)
    intent = await drive(db, demo_chain, await submit(db, 106))
    assert_landed_once(demo_chain, intent, aggregate_data(106, 0))
    assert intent is not None and intent.attempts >= 2 and len(intent.signatures) >= 2
    assert intent.signature == intent.signatures[-1]
    # the expired transactions never executed
    landed = {sig for sig, _ in executions(demo_chain, aggregate_data(106, 0))}
    assert landed == {intent.signature}


async def test_delayed_landing_waits_instead_of_re_signing(
    db: Database, demo_chain: Devchain
) -> None:
    await control(demo_chain, "zmart_delayLanding", 12)
    intent_id = await submit(db, 107)
    intent = await drive(db, demo_chain, intent_id)
    assert_landed_once(demo_chain, intent, aggregate_data(107, 0))
    assert intent is not None and intent.attempts == 1 and intent.sends >= 2


async def test_a_deterministic_program_error_fails_the_intent_without_a_send(
    db: Database, demo_chain: Devchain
) -> None:
    # new-lang has 1 like / 1 dislike on chain: 50 % < 70 %, approve_proposal must fail
    intent, _ = await store.submit_intent(
        db, kind="approve_proposal", market_id=MARKET, args={}, key="approve:new-lang"
    )
    final = await drive(db, demo_chain, intent.id)
    assert final is not None and final.state == "failed"
    assert final.error_name == "InsufficientVotes" and final.signatures == ()
    assert "simulation failed" in (final.last_error or "")
    # a human fixed the cause (more likes on chain) and re-queues it
    ok = await drive(db, demo_chain, await submit(db, 9, 1))
    assert ok is not None and ok.state == "landed"
    retried = await store.retry_intent(db, intent.id)
    assert retried.state == "pending"
    landed = await drive(db, demo_chain, intent.id)
    assert landed is not None and landed.state == "landed" and landed.attempts == 1


async def test_a_stored_signature_is_resumed_not_re_signed(
    db: Database, demo_chain: Devchain
) -> None:
    """A sender killed right after storing its signed transaction (before any
    send): the next one finds the stored bytes and sends exactly those."""
    intent_id = await submit(db, 108)
    await control(demo_chain, "zmart_dropSends", 1000)  # nothing lands meanwhile
    async with RpcClient([demo_chain.rpc_url], timeout=1, max_retries=1) as rpc:
        first = executor(db, rpc, demo_chain)
        with trio.move_on_after(1.0):
            await first.drive(intent_id)
    stored = await store.get_intent(db, intent_id)
    assert stored is not None and stored.state == "signed" and stored.signed_tx is not None
    await control(demo_chain, "zmart_clearFaults")
    await control(demo_chain, "zmart_dropSends", 0)
    intent = await drive(db, demo_chain, intent_id)
    assert_landed_once(demo_chain, intent, aggregate_data(108, 0))
    assert intent is not None and intent.signature == stored.signature
    assert intent.attempts == 1


def test_priority_fee_is_a_capped_percentile() -> None:
    assert priority_fee([], 50, 1000) == 0
    assert priority_fee([5, 1, 3, 2, 4], 50, 1000) == 3
    assert priority_fee([5, 1, 3, 2, 4], 100, 1000) == 5
    assert priority_fee([5, 1, 3, 2, 4], 0, 1000) == 1
    assert priority_fee([5000, 9000], 90, 1000) == 1000
    assert FAST.rebroadcast_interval < 1 and AUTHORITY is not None


async def test_a_transaction_that_lands_with_an_error_fails_the_intent_by_name(
    db: Database, demo_chain: Devchain
) -> None:
    """Simulation passed, but the chain changed before landing (the market was
    cancelled meanwhile): the landed transaction's program error names the failure,
    and nothing is signed again."""
    await control(demo_chain, "zmart_delayLanding", 6)
    intent_id = await submit(db, 109)
    async with RpcClient([demo_chain.rpc_url], timeout=1, max_retries=1) as rpc:
        sender = executor(db, rpc, demo_chain)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender.drive, intent_id)
                while (await store.get_intent(db, intent_id)).state != "signed":  # type: ignore[union-attr]
                    await trio.sleep(0.02)
                node = demo_chain.node
                cancel = ix.cancel_market(admin=AUTHORITY.pubkey(), market_id=NEW_LANG)
                message = MessageV0.try_compile(AUTHORITY.pubkey(), [cancel], [], node.blockhash)
                assert node.submit(VersionedTransaction(message, [AUTHORITY])).err is None
    intent = await store.get_intent(db, intent_id)
    assert intent is not None and intent.state == "failed", intent
    assert intent.error_name == "InvalidStateForVoting" and intent.attempts == 1
    assert "landed with an error" in (intent.last_error or "")
    runs = executions(demo_chain, aggregate_data(109, 0))
    assert [sig for sig, err in runs] == [intent.signature] and runs[0][1] is not None


async def test_an_unknown_signature_from_a_lagging_node_proves_nothing(db: Database) -> None:
    """Expiry is proven only by a status answer from a node at least as current as
    the one that showed the block height (several endpoints may disagree)."""
    answers = {"getSlot": 100, "getSignatureStatuses": {"context": {"slot": 90}, "value": [None]}}

    def handler(request: httpx.Request) -> httpx.Response:
        doc = json.loads(request.content)
        return httpx.Response(
            200, json={"jsonrpc": "2.0", "id": doc["id"], "result": answers[doc["method"]]}
        )

    intent_id = await submit(db, 110)
    await store.record_signed(
        db,
        intent_id,
        signature=str(Signature.new_unique()),
        signed_tx=b"\x01",
        last_valid_block_height=50,
    )
    intent = await store.get_intent(db, intent_id)
    assert intent is not None and intent.signature is not None
    async with RpcClient(["http://lagging.test"], transport=httpx.MockTransport(handler)) as rpc:
        sender = Executor(
            db,
            rpc,
            Signers(backend=AUTHORITY, admin=None),
            program_id=AUTHORITY.pubkey(),
            settings=FAST,
            metrics=SenderMetrics(),
        )
        signature = Signature.from_string(intent.signature)
        assert await sender._expired(intent, signature, height=60) is False
    after = await store.get_intent(db, intent_id)
    assert after is not None and after.state == "signed" and after.signature == intent.signature
