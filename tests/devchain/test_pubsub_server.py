"""PubSub over WebSocket, through the project's ``PubsubClient`` (the part-2
end-to-end tests the chain layer promised) and raw frames for the protocol
details: notifications arrive exactly when their commitment is reached."""

from __future__ import annotations

import json
from typing import Any

import trio
from solders.keypair import Keypair
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.devchain.conftest import SOL, funded, transfer_tx
from zmartd.bus import ChainGap, ProgramLogs
from zmartd.chain.pubsub import open_pubsub
from zmartd.chain.rpc import DataSize, RpcClient
from zmartd.devchain.actor import Devchain
from zmartd.devchain.bank import Account

SYSTEM = "11111111111111111111111111111111"


async def test_logs_and_signatures_arrive_at_their_commitment(chain: Devchain) -> None:
    node = chain.node
    payer = funded(node)
    node.advance_slot(5)
    async with open_pubsub(chain.ws_url, backoff_initial=0.01) as ps:
        async with (
            ps.logs_subscribe(payer.pubkey(), commitment="processed") as processed,
            ps.logs_subscribe(payer.pubkey(), commitment="confirmed") as confirmed,
        ):
            record = node.submit(transfer_tx(payer, Keypair().pubkey(), SOL, node.blockhash))
            with trio.fail_after(5):
                note: ProgramLogs = await processed.receive()
            assert note.signature == str(record.signature) and note.slot == record.slot
            assert note.err is None and tuple(record.logs) == note.logs
            with trio.move_on_after(0.2):
                await confirmed.receive()
                raise AssertionError("confirmed before the slot was confirmed")
            node.advance_slot()
            with trio.fail_after(5):
                late: ProgramLogs = await confirmed.receive()
            assert late.signature == str(record.signature)
        # a signature already confirmed is notified at once, then the subscription ends
        async with ps.signature_subscribe(record.signature, commitment="confirmed") as sig:
            with trio.fail_after(5):
                done = await sig.receive()
            assert done.err is None and done.slot == record.slot
        # a pending one waits for finalization
        other = node.submit(transfer_tx(payer, Keypair().pubkey(), SOL, node.blockhash))
        async with ps.signature_subscribe(other.signature, commitment="finalized") as fin:
            node.advance_slot(3)
            with trio.move_on_after(0.2):
                await fin.receive()
                raise AssertionError("finalized too early")
            node.advance_slot(1)
            with trio.fail_after(5):
                assert (await fin.receive()).slot == other.slot


async def test_account_and_program_notifications(chain: Devchain) -> None:
    node = chain.node
    owner = Keypair().pubkey()
    key = Keypair().pubkey()
    async with (
        open_pubsub(chain.ws_url, backoff_initial=0.01) as ps,
        ps.account_subscribe(key, commitment="confirmed") as acct,
        ps.program_subscribe(owner, filters=[DataSize(3)], commitment="processed") as prog,
    ):
        node.set_account(key, Account(10**6, b"abc", owner))
        node.set_account(Keypair().pubkey(), Account(10**6, b"toolong", owner))  # filtered
        with trio.fail_after(5):
            pnote = await prog.receive()
        assert pnote.pubkey == key and pnote.account.data == b"abc"
        node.set_account(key, Account(2 * 10**6, b"xyz", owner))  # same slot
        node.advance_slot()
        with trio.fail_after(5):
            anote = await acct.receive()
        # one confirmed notification with the end-of-slot state
        assert anote.account.lamports == 2 * 10**6 and anote.account.data == b"xyz"
        with trio.fail_after(5):
            assert (await prog.receive()).account.data == b"xyz"


async def test_dropped_connections_are_reported_as_gaps_and_resubscribed(chain: Devchain) -> None:
    node = chain.node
    payer = funded(node)
    gaps_send, gaps_recv = trio.open_memory_channel[ChainGap](10)
    async with (
        open_pubsub(
            chain.ws_url, backoff_initial=0.01, backoff_max=0.05, gap_channel=gaps_send
        ) as ps,
        ps.logs_subscribe(payer.pubkey(), commitment="processed", name="payer") as sub,
    ):
        node.advance_slot()
        first = node.submit(transfer_tx(payer, Keypair().pubkey(), SOL, node.blockhash))
        with trio.fail_after(5):
            assert (await sub.receive()).signature == str(first.signature)
        async with RpcClient([chain.rpc_url]) as rpc:
            dropped, _ = await rpc.request("zmart_dropConnections", [])
        assert dropped["dropped"] == 1
        with trio.fail_after(5):
            while not (ps.is_connected and chain.pubsub.subscription_count >= 2):
                await trio.sleep(0.01)
        node.advance_slot()
        with trio.fail_after(5):
            gap = await gaps_recv.receive()
        assert gap.subscription == "payer" and gap.to_slot == node.slot
        second = node.submit(transfer_tx(payer, Keypair().pubkey(), SOL, node.blockhash))
        with trio.fail_after(5):
            assert (await sub.receive()).signature == str(second.signature)


async def _request(ws: Any, method: str, params: list[Any] | None = None, rid: int = 1) -> Any:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        message["params"] = params
    await ws.send_message(json.dumps(message))
    while True:
        doc = json.loads(await ws.get_message())
        if doc.get("id") == rid:
            return doc


async def test_raw_protocol(chain: Devchain) -> None:
    node = chain.node
    async with open_websocket_url(chain.ws_url) as ws:
        sub = (await _request(ws, "slotSubscribe"))["result"]
        root = (await _request(ws, "rootSubscribe", [], 2))["result"]
        node.advance_slot(5)
        with trio.fail_after(5):
            seen = [json.loads(await ws.get_message()) for _ in range(6)]
        slots = [m["params"]["result"] for m in seen if m["method"] == "slotNotification"]
        assert slots[0] == {"parent": 0, "root": 0, "slot": 1}
        assert slots[-1] == {"parent": 4, "root": 1, "slot": 5}
        assert all(m["params"]["subscription"] in (sub, root) for m in seen)
        assert (await _request(ws, "slotUnsubscribe", [sub], 3))["result"] is True
        again = await _request(ws, "slotUnsubscribe", [sub], 4)
        assert again["error"] == {"code": -32602, "message": "Invalid subscription id."}
        assert (await _request(ws, "nope", [], 5))["error"]["code"] == -32601
        bad = await _request(ws, "logsSubscribe", [{"mentions": [SYSTEM, SYSTEM]}], 6)
        assert bad["error"]["code"] == -32602
        await ws.send_message("{broken")
        parse = json.loads(await ws.get_message())
        assert parse["error"]["code"] == -32700
        # logs "all" at the default commitment (finalized)
        all_logs = (await _request(ws, "logsSubscribe", ["all"], 7))["result"]
        payer = funded(node)
        node.advance_slot(4)
        with trio.fail_after(5):
            while True:
                msg = json.loads(await ws.get_message())
                if msg.get("method") == "logsNotification":
                    break
        assert msg["params"]["subscription"] == all_logs
        assert msg["params"]["result"]["value"]["err"] is None
        assert payer is not None


async def test_drop_connections_cuts_without_close_frame(chain: Devchain) -> None:
    async with open_websocket_url(chain.ws_url) as ws:
        await _request(ws, "slotSubscribe")
        assert chain.pubsub.drop_connections() == 1
        with trio.fail_after(5):
            try:
                while True:
                    await ws.get_message()
            except ConnectionClosed as closed:
                # abnormal closure: no close frame
                assert closed.reason is not None and closed.reason.code == 1006
    assert chain.pubsub.subscription_count == 0
