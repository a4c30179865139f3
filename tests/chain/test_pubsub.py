"""PubsubClient against a small Solana-PubSub-like WebSocket server on 127.0.0.1.

The server speaks the JSON-RPC subscription protocol of the Solana docs
(``xxxSubscribe`` -> integer id, ``xxxNotification`` with ``context.slot``),
ticks ``slotNotification`` like a validator does, and can drop connections or
go silent, so reconnect, resubscribe, stall detection and the exact gap
ranges are checked over real sockets.  Timeouts are short real-time values.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from solders.pubkey import Pubkey
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from zmartd.bus import ChainGap, ProgramLogs
from zmartd.chain.pubsub import (
    AccountNote,
    ProgramAccountNote,
    PubsubClient,
    PubsubError,
    SignatureNote,
    open_pubsub,
)
from zmartd.chain.rpc import DataSize, Memcmp

PROGRAM_ID = "6s8bbbCS7oNYNnTUHgrPDHG4jqaSrD6MSxQSPVR1rxw"
MARKET = "CF8kfDGNJxXwx1xtqfkb2yc7NJ3jkmfqdBAXkkgvSzm6"
SIG = "2nqZB1w4kveiJDcu5jg6dwowmPQe9fgqjCdSiRsZPprpV42brD6TDYQzJnUjagpFFW63CSnkopMhTp4JL89fzW7A"
TICK = 0.02  # seconds between slotNotifications while the server is "live"


@dataclass
class Conn:
    """One accepted client connection, with everything sent on it in order."""

    ws: WebSocketConnection
    number: int
    subs: dict[int, tuple[str, list[Any]]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: trio.Lock = field(default_factory=trio.Lock)
    closed: trio.Event = field(default_factory=trio.Event)

    async def send(self, message: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_message(json.dumps(message))
            self.sent.append(message)

    def sub_ids(self, method: str) -> list[int]:
        return [sid for sid, (m, _) in self.subs.items() if m == method]

    def first_slot_after(self, sub_id: int) -> int:
        """The slot of the first slotNotification sent after the confirmation
        of subscription ``sub_id`` -- what the client must report as to_slot."""
        confirmed = next(i for i, m in enumerate(self.sent) if m.get("result") == sub_id)
        for m in self.sent[confirmed + 1 :]:
            if m.get("method") == "slotNotification":
                slot: int = m["params"]["result"]["slot"]
                return slot
        raise AssertionError("no slot sent after the subscription")

    def last_root(self) -> int:
        """The root of the last slotNotification sent: everything the client
        read before the drop, so the floor of the next gap."""
        slots = [m for m in self.sent if m.get("method") == "slotNotification"]
        root: int = slots[-1]["params"]["result"]["root"]
        return root


class FakePubsub:
    def __init__(self) -> None:
        self.slot = 5000
        self.root_lag = 1000  # far behind, so logs slots in the tests stay above it
        self.live = True  # send slot ticks
        self.reject: dict[str, dict[str, Any]] = {}
        self.conns: list[Conn] = []
        self.ids = itertools.count(100)
        self.port = 0
        self.new_conn = trio.Condition()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def current(self) -> Conn:
        return self.conns[-1]

    async def handler(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        conn = Conn(ws, len(self.conns) + 1)
        self.conns.append(conn)
        async with self.new_conn:
            self.new_conn.notify_all()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ticker, conn)
                while True:
                    message = json.loads(await ws.get_message())
                    conn.received.append(message)
                    await self._answer(conn, message)
        except* ConnectionClosed:
            pass
        finally:
            conn.closed.set()

    async def _answer(self, conn: Conn, message: dict[str, Any]) -> None:
        method: str = message["method"]
        if method in self.reject:
            await conn.send({"jsonrpc": "2.0", "error": self.reject[method], "id": message["id"]})
        elif method.endswith("Unsubscribe"):
            found = conn.subs.pop(message["params"][0], None) is not None
            await conn.send({"jsonrpc": "2.0", "result": found, "id": message["id"]})
        else:
            sub_id = next(self.ids)
            conn.subs[sub_id] = (method, message.get("params", []))
            await conn.send({"jsonrpc": "2.0", "result": sub_id, "id": message["id"]})

    async def _ticker(self, conn: Conn) -> None:
        while True:
            await trio.sleep(TICK)
            if not self.live:
                continue
            self.slot += 1
            for sid in conn.sub_ids("slotSubscribe"):
                root = self.slot - self.root_lag
                result = {"parent": self.slot - 1, "root": root, "slot": self.slot}
                await conn.send(
                    {
                        "jsonrpc": "2.0",
                        "method": "slotNotification",
                        "params": {"result": result, "subscription": sid},
                    }
                )

    async def notify(self, kind: str, value: Any, slot: int | None = None) -> int:
        """Send a ``<kind>Notification`` to every subscriber on the current
        connection; returns the slot used."""
        slot = self.slot if slot is None else slot
        conn = self.current
        for sid in conn.sub_ids(f"{kind}Subscribe"):
            await conn.send(
                {
                    "jsonrpc": "2.0",
                    "method": f"{kind}Notification",
                    "params": {
                        "result": {"context": {"slot": slot}, "value": value},
                        "subscription": sid,
                    },
                }
            )
        return slot

    async def drop(self) -> None:
        """Close the current connection from the server side."""
        conn = self.current
        await conn.ws.aclose(code=1011, reason="test drop")
        await conn.closed.wait()

    async def wait_for_conn(self, number: int, timeout: float = 3.0) -> Conn:
        with trio.fail_after(timeout):
            async with self.new_conn:
                while len(self.conns) < number:
                    await self.new_conn.wait()
        return self.conns[number - 1]


@pytest.fixture
async def server() -> AsyncIterator[FakePubsub]:
    fake = FakePubsub()
    async with trio.open_nursery() as nursery:
        ws_server = await nursery.start(serve_websocket, fake.handler, "127.0.0.1", 0, None)
        fake.port = ws_server.port
        yield fake
        nursery.cancel_scope.cancel()


def options(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "heartbeat_timeout": 0.5,
        "backoff_initial": 0.02,
        "backoff_max": 0.1,
        "connect_timeout": 2.0,
        "rng": random.Random(3),
    }
    base.update(kw)
    return base


def logs_value(signature: str = SIG, err: Any = None) -> dict[str, Any]:
    return {
        "signature": signature,
        "err": err,
        "logs": [f"Program {PROGRAM_ID} invoke [1]", "Program log: Instruction: BuyShares"],
    }


async def until(predicate: Any, timeout: float = 3.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.005)


# --------------------------------------------------------------------------- tests


async def test_logs_subscribe_delivers_program_logs(server: FakePubsub) -> None:
    async with (
        open_pubsub(server.url, **options()) as ps,
        ps.logs_subscribe(Pubkey.from_string(PROGRAM_ID)) as sub,
    ):
        conn = server.current
        (logs_id,) = conn.sub_ids("logsSubscribe")
        assert conn.subs[logs_id] == (
            "logsSubscribe",
            [{"mentions": [PROGRAM_ID]}, {"commitment": "confirmed"}],
        )
        assert conn.sub_ids("slotSubscribe")  # the heartbeat subscription
        err = {"InstructionError": [1, {"Custom": 6015}]}
        slot = await server.notify("logs", logs_value(err=err))
        with trio.fail_after(2):
            note = await sub.receive()
    assert note == ProgramLogs(
        signature=SIG,
        slot=slot,
        err=err,
        logs=(f"Program {PROGRAM_ID} invoke [1]", "Program log: Instruction: BuyShares"),
    )


async def test_reconnect_resubscribes_and_reports_the_exact_gap(server: FakePubsub) -> None:
    gap_send, gap_recv = trio.open_memory_channel[ChainGap](math.inf)
    async with (
        open_pubsub(server.url, gap_channel=gap_send, **options()) as ps,
        ps.logs_subscribe(PROGRAM_ID, commitment="finalized", name="zmart-logs") as sub,
    ):
        first = server.current
        (old_id,) = first.sub_ids("logsSubscribe")
        await until(lambda: sub.watermark is not None)  # the first root arrived
        last_seen = await server.notify("logs", logs_value())
        with trio.fail_after(2):
            assert (await sub.receive()).slot == last_seen
        await server.drop()

        second = await server.wait_for_conn(2)
        with trio.fail_after(2):
            gap = await gap_recv.receive()
        (new_id,) = second.sub_ids("logsSubscribe")
        assert new_id != old_id
        assert second.subs[new_id] == first_params(first, old_id)
        assert gap.from_slot == last_seen
        assert gap.to_slot == second.first_slot_after(new_id)
        assert gap.subscription == "zmart-logs"
        assert "closed" in gap.reason

        # the same client-side subscription keeps delivering
        slot = await server.notify("logs", logs_value())
        with trio.fail_after(2):
            assert (await sub.receive()).slot == slot
        assert sub.resubscriptions == 1
        assert ps.connections == 2 and ps.gaps_reported == 1


def first_params(conn: Conn, sub_id: int) -> tuple[str, list[Any]]:
    return conn.subs[sub_id]


async def test_each_disconnect_is_a_gap_and_gaps_chain_without_holes(
    server: FakePubsub,
) -> None:
    gap_send, gap_recv = trio.open_memory_channel[ChainGap](math.inf)
    async with (
        open_pubsub(server.url, gap_channel=gap_send, **options()) as ps,
        ps.logs_subscribe(PROGRAM_ID) as sub,
    ):
        conn1 = server.current
        await until(lambda: sub.watermark is not None)
        await server.drop()
        conn2 = await server.wait_for_conn(2)
        with trio.fail_after(2):
            gap1 = await gap_recv.receive()
        await server.drop()
        conn3 = await server.wait_for_conn(3)
        with trio.fail_after(2):
            gap2 = await gap_recv.receive()
        (id1,) = conn1.sub_ids("logsSubscribe")
        (id2,) = conn2.sub_ids("logsSubscribe")
        (id3,) = conn3.sub_ids("logsSubscribe")
        # no logs: the floor is the last finalized root seen, not the processed slot
        assert gap1.from_slot == conn1.last_root() < conn1.first_slot_after(id1)
        assert gap1.to_slot == conn2.first_slot_after(id2)
        assert gap2.from_slot == conn2.last_root()
        assert gap1.from_slot < gap2.from_slot <= gap1.to_slot  # overlap, never a hole
        assert gap2.to_slot == conn3.first_slot_after(id3)
        assert ps.disconnects == 2


async def test_silent_stall_is_detected_and_reported(server: FakePubsub) -> None:
    gap_send, gap_recv = trio.open_memory_channel[ChainGap](math.inf)
    async with (
        open_pubsub(server.url, gap_channel=gap_send, **options(heartbeat_timeout=0.3)) as ps,
        ps.logs_subscribe(PROGRAM_ID) as sub,
    ):
        await until(lambda: sub.watermark is not None)
        slot = await server.notify("logs", logs_value())
        await sub.receive()
        server.live = False  # connection stays open, pings are answered, nothing is sent
        silent_since = trio.current_time()
        second = await server.wait_for_conn(2)
        detected_after = trio.current_time() - silent_since
        assert 0.25 <= detected_after < 1.5
        server.live = True
        with trio.fail_after(2):
            gap = await gap_recv.receive()
        (new_id,) = second.sub_ids("logsSubscribe")
        assert gap.reason.startswith("stall")
        assert gap.from_slot == slot
        assert gap.to_slot == second.first_slot_after(new_id)
        assert gap.to_slot > gap.from_slot


async def test_a_slow_consumer_is_backpressure_not_a_stall(server: FakePubsub) -> None:
    async with (
        open_pubsub(server.url, **options(heartbeat_timeout=0.3, buffer=1)) as ps,
        ps.logs_subscribe(PROGRAM_ID) as sub,
    ):
        slots = [await server.notify("logs", logs_value(), slot=6000 + i) for i in range(3)]
        await trio.sleep(1.0)  # the reader is blocked on the full buffer meanwhile
        assert ps.connections == 1 and ps.disconnects == 0
        with trio.fail_after(2):
            assert [(await sub.receive()).slot for _ in slots] == slots


async def test_without_slot_tracking_pings_keep_a_quiet_feed_alive(server: FakePubsub) -> None:
    gap_send, gap_recv = trio.open_memory_channel[ChainGap](math.inf)
    opts = options(track_slots=False, heartbeat_timeout=0.3, ping_interval=0.05)
    async with (
        open_pubsub(server.url, gap_channel=gap_send, **opts) as ps,
        ps.logs_subscribe(PROGRAM_ID) as sub,
    ):
        assert server.current.sub_ids("slotSubscribe") == []
        server.live = False
        await trio.sleep(1.0)  # > 3 heartbeat timeouts without a JSON message
        assert ps.connections == 1 and len(server.conns) == 1
        slot = await server.notify("logs", logs_value(), slot=2000)
        assert (await sub.receive()).slot == slot
        await server.drop()
        with trio.fail_after(2):
            gap = await gap_recv.receive()
        assert gap == ChainGap(from_slot=2000, to_slot=None, reason=gap.reason)
        assert len(server.conns) == 2


async def test_account_program_and_signature_subscriptions(server: FakePubsub) -> None:
    data = base64.b64encode(b"\x01\x02\x03").decode()
    account = {
        "data": [data, "base64"],
        "executable": False,
        "lamports": 2324640,
        "owner": PROGRAM_ID,
        "rentEpoch": 18446744073709551615,
        "space": 3,
    }
    async with (
        open_pubsub(server.url, **options()) as ps,
        ps.account_subscribe(MARKET) as acct_sub,
        ps.program_subscribe(
            PROGRAM_ID, filters=[DataSize(83), Memcmp(72, b"\x00")], commitment="processed"
        ) as prog_sub,
        ps.signature_subscribe(SIG) as sig_sub,
    ):
        conn = server.current
        params = {m: p for m, p in conn.subs.values()}
        assert params["accountSubscribe"] == [
            MARKET,
            {"commitment": "confirmed", "encoding": "base64"},
        ]
        assert params["programSubscribe"] == [
            PROGRAM_ID,
            {
                "commitment": "processed",
                "encoding": "base64",
                "filters": [{"dataSize": 83}, {"memcmp": {"offset": 72, "bytes": "1"}}],
            },
        ]
        assert params["signatureSubscribe"] == [SIG, {"commitment": "confirmed"}]

        await server.notify("account", account, slot=1500)
        await server.notify("program", {"pubkey": MARKET, "account": account}, slot=1501)
        await server.notify("signature", {"err": None}, slot=1502)
        with trio.fail_after(2):
            a = await acct_sub.receive()
            p = await prog_sub.receive()
            s = [note async for note in sig_sub]  # ends after the one notification
        assert isinstance(a, AccountNote) and a.slot == 1500
        assert a.account.data == b"\x01\x02\x03" and a.account.lamports == 2324640
        assert isinstance(p, ProgramAccountNote) and p.slot == 1501
        assert p.pubkey == Pubkey.from_string(MARKET)
        assert p.account.owner == Pubkey.from_string(PROGRAM_ID)
        assert s == [SignatureNote(slot=1502, err=None)]

        await server.drop()
        second = await server.wait_for_conn(2)
        await until(lambda: len(second.sub_ids("programSubscribe")) == 1)
        methods = sorted(m for m, _ in second.subs.values())
        # the fulfilled signature subscription is not renewed
        assert methods == ["accountSubscribe", "programSubscribe", "slotSubscribe"]


async def test_rejected_subscription_raises_a_typed_error(server: FakePubsub) -> None:
    server.reject["accountSubscribe"] = {"code": -32602, "message": "Invalid param: Invalid"}
    async with open_pubsub(server.url, **options()) as ps:
        with pytest.raises(PubsubError) as info:
            async with ps.account_subscribe(MARKET):
                pass
        assert info.value.code == -32602
        assert info.value.method == "accountSubscribe"
        assert ps._subs == {}


async def test_a_node_without_slot_subscribe_is_a_configuration_error(
    server: FakePubsub,
) -> None:
    server.reject["slotSubscribe"] = {"code": -32601, "message": "Method not found"}
    client = PubsubClient(server.url, **options())
    with trio.fail_after(3), pytest.raises(PubsubError, match="track_slots=False") as info:
        await client.run()
    assert info.value.code == -32601


async def test_leaving_the_block_unsubscribes(server: FakePubsub) -> None:
    async with open_pubsub(server.url, **options()) as ps:
        async with ps.logs_subscribe(PROGRAM_ID):
            (sub_id,) = server.current.sub_ids("logsSubscribe")
        conn = server.current
        await until(lambda: any(m["method"] == "logsUnsubscribe" for m in conn.received))
        unsub = next(m for m in conn.received if m["method"] == "logsUnsubscribe")
        assert unsub["params"] == [sub_id]
        assert conn.sub_ids("logsSubscribe") == []


async def test_fails_over_to_the_next_url_when_connecting_fails(server: FakePubsub) -> None:
    with trio.socket.socket() as probe:  # a port with nothing listening
        await probe.bind(("127.0.0.1", 0))
        dead = f"ws://127.0.0.1:{probe.getsockname()[1]}"
    async with (
        open_pubsub([dead, server.url], **options()) as ps,
        ps.logs_subscribe(PROGRAM_ID),
    ):
        assert ps.last_connect_error is not None and dead in ps.last_connect_error
        assert len(server.conns) == 1


async def test_subscribing_before_connecting_waits_for_the_connection() -> None:
    fake = FakePubsub()
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fake.port = port
    async with trio.open_nursery() as nursery, open_pubsub(fake.url, **options()) as ps:

        async def start_server_later() -> None:
            await trio.sleep(0.2)
            await nursery.start(serve_websocket, fake.handler, "127.0.0.1", port, None)

        nursery.start_soon(start_server_later)
        with trio.fail_after(3):
            async with ps.logs_subscribe(PROGRAM_ID):
                assert fake.current.sub_ids("logsSubscribe")
        nursery.cancel_scope.cancel()


async def test_cancel_shuts_down_cleanly(server: FakePubsub) -> None:
    client = PubsubClient(server.url, **options())
    client_scope = trio.CancelScope()

    async def run_client(task_status: trio.TaskStatus[None]) -> None:
        with client_scope:
            await client.run(task_status=task_status)

    with trio.fail_after(3):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_client)
            async with client.logs_subscribe(PROGRAM_ID) as sub:
                client_scope.cancel()
                # the run task is gone: the subscription ends instead of hanging
                assert [n async for n in sub] == []
            assert not client.is_connected
        await server.current.closed.wait()  # the socket was closed, not leaked
    with pytest.raises(RuntimeError, match="run"):
        async with client.logs_subscribe(PROGRAM_ID):
            pass


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        PubsubClient("http://not-ws")
    with pytest.raises(ValueError):
        PubsubClient([])
    with pytest.raises(ValueError):
        PubsubClient("ws://x", heartbeat_timeout=0)
    with pytest.raises(ValueError):
        PubsubClient("ws://x", commitment="fast")  # type: ignore[arg-type]
