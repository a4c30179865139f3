"""The raw-webhook emitter: Helius' body shape (decodable by the indexer's
``decode_helius_raw_webhook``), the auth header echoed verbatim, delivery
only at confirmed, duplicates, shuffling, retries -- against a real HTTP
receiver served by the devchain's own ASGI stack."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import trio
from solders.keypair import Keypair

from tests.devchain.conftest import SOL, funded, transfer_tx
from zmartd.chain import instructions as ix
from zmartd.chain.transactions import decode_helius_raw_webhook
from zmartd.chain.types import GlobalConfigInitialized
from zmartd.devchain.node import Node
from zmartd.devchain.rpc_server import serve_http
from zmartd.devchain.webhooks import WebhookEmitter

FIXTURE_KEYS = {"blockTime", "indexWithinBlock", "slot", "meta", "transaction", "version"}


class Receiver:
    """A tiny ASGI app that records POSTs and fails the first ``fail`` of them."""

    def __init__(self, fail: int = 0) -> None:
        self.bodies: list[Any] = []
        self.auth: list[str | None] = []
        self.fail = fail

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status = 200
        if self.fail > 0:
            self.fail -= 1
            status = 503
        else:
            headers = dict(scope["headers"])
            self.auth.append(headers.get(b"authorization", b"").decode() or None)
            self.bodies.append(json.loads(body))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def start_receiver(nursery: trio.Nursery, receiver: Receiver) -> tuple[str, trio.Event]:
    stop = trio.Event()
    urls = await nursery.start(
        lambda task_status: serve_http(
            receiver, "127.0.0.1", 0, shutdown_trigger=stop.wait, task_status=task_status
        )
    )
    return urls[0], stop


def program_tx(node: Node, admin: Keypair) -> Any:
    instruction = ix.initialize_global_config(
        admin=admin.pubkey(),
        backend_authority=admin.pubkey(),
        protocol_fee_wallet=admin.pubkey(),
        program_id=node.bank.program_id,
    )
    from tests.devchain.conftest import signed

    return signed(admin, [instruction], node.blockhash)


async def wait_for(pred: Any, timeout: float = 5) -> None:
    with trio.fail_after(timeout):
        while not pred():
            await trio.sleep(0.01)


async def test_confirmed_program_transactions_are_delivered_in_helius_raw_shape(
    nursery: trio.Nursery, node: Node
) -> None:
    receiver = Receiver()
    url, stop = await start_receiver(nursery, receiver)
    emitter = WebhookEmitter(
        node, url, program_id=node.bank.program_id, auth_header="Bearer s3cret"
    )
    await nursery.start(emitter.run)
    admin = funded(node)
    record = node.submit(program_tx(node, admin))
    node.submit(transfer_tx(admin, Keypair().pubkey(), SOL, node.blockhash))  # not the program
    await trio.sleep(0.1)
    assert receiver.bodies == []  # processed only: nothing yet
    node.advance_slot()
    await wait_for(lambda: receiver.bodies)
    await trio.sleep(0.1)
    assert len(receiver.bodies) == 1 and receiver.auth == ["Bearer s3cret"]
    (body,) = receiver.bodies
    assert isinstance(body, list) and len(body) == 1
    assert set(body[0]) == FIXTURE_KEYS
    assert body[0]["indexWithinBlock"] == record.index
    (decoded,) = decode_helius_raw_webhook(body, program_id=node.bank.program_id)
    assert decoded.signature == record.signature and decoded.slot == record.slot
    assert decoded.index_within_block == record.index
    assert isinstance(decoded.events[0].event, GlobalConfigInitialized)
    assert emitter.stats.delivered == 1
    stop.set()


async def test_failed_transactions_are_delivered_too_and_retries(
    nursery: trio.Nursery, node: Node
) -> None:
    receiver = Receiver(fail=2)
    url, stop = await start_receiver(nursery, receiver)
    emitter = WebhookEmitter(node, url, program_id=node.bank.program_id, retry_delay=0.01)
    await nursery.start(emitter.run)
    admin = funded(node)
    node.submit(program_tx(node, admin))
    node.advance_slot()
    second = Keypair()
    node.faucet_transfer(second.pubkey(), SOL)
    failed = node.submit(program_tx(node, second))  # config exists: System 0x0
    assert failed.err == {"InstructionError": [0, {"Custom": 0}]}
    node.advance_slot()
    await wait_for(lambda: len(receiver.bodies) == 2)
    assert receiver.auth == [None, None]
    decoded = decode_helius_raw_webhook(receiver.bodies[1], program_id=node.bank.program_id)
    assert decoded[0].err == failed.err and decoded[0].events == ()
    assert emitter.stats.attempts == 4 and emitter.stats.failed == 0
    stop.set()


async def test_duplicates_and_shuffle(nursery: trio.Nursery, node: Node) -> None:
    receiver = Receiver()
    url, stop = await start_receiver(nursery, receiver)
    emitter = WebhookEmitter(
        node,
        url,
        program_id=node.bank.program_id,
        duplicates=2,
        shuffle=True,
        shuffle_window=0.1,
        rng=random.Random(3),
    )
    await nursery.start(emitter.run)
    signatures = []
    for _ in range(6):
        admin = funded(node)
        # each in its own slot, all program transactions (5 of 6 fail: config exists)
        signatures.append(str(node.submit(program_tx(node, admin)).signature))
        node.advance_slot()
    await wait_for(lambda: len(receiver.bodies) == 12)
    delivered = [b[0]["transaction"]["signatures"][0] for b in receiver.bodies]
    assert sorted(delivered) == sorted(signatures * 2)
    assert delivered != [s for s in signatures for _ in range(2)]  # reordered
    stop.set()


async def test_undeliverable_webhooks_are_dropped_after_retries(node: Node) -> None:
    calls = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(500)

    http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    emitter = WebhookEmitter(
        node,
        "http://hook.invalid/",
        program_id=node.bank.program_id,
        max_attempts=3,
        retry_delay=0.01,
        http=http,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(emitter.run)
        node.submit(program_tx(node, funded(node)))
        node.advance_slot()
        await wait_for(lambda: emitter.stats.failed == 1)
        nursery.cancel_scope.cancel()
    assert calls == 3 and emitter.stats.delivered == 0
    await http.aclose()
