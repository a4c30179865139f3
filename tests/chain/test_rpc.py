"""RpcClient against recorded Solana JSON-RPC responses served by httpx.MockTransport.

The fixtures in tests/fixtures/rpc/ follow the response shapes of the Solana
RPC documentation.  Time-dependent behaviour (backoff, Retry-After, cooldown,
timeouts) runs on trio's autojump clock, so the tests are instant and exact.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from zmartd.chain.endpoints import EndpointPool
from zmartd.chain.rpc import (
    ConfirmedTransaction,
    DataSize,
    Memcmp,
    PreflightFailed,
    RpcClient,
    RpcError,
    RpcHttpError,
    RpcResponseError,
    RpcTransportError,
    SimulationFailed,
    TransactionFailed,
    b58encode,
    decode_tx_error,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rpc"
PROGRAM_ID = "6s8bbbCS7oNYNnTUHgrPDHG4jqaSrD6MSxQSPVR1rxw"
TX_SIG = "2nqZB1w4kveiJDcu5jg6dwowmPQe9fgqjCdSiRsZPprpV42brD6TDYQzJnUjagpFFW63CSnkopMhTp4JL89fzW7A"
A = "https://rpc-a.example"
B = "https://rpc-b.example"


def fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return doc


@dataclass
class Call:
    url: str
    method: str
    params: list[Any]
    at: float


Reply = httpx.Response | dict[str, Any] | Exception
Handler = Callable[[Call], Reply | Awaitable[Reply]]


class FakeNode:
    """A MockTransport handler: records every call and answers per method.

    A route is a fixture name, a JSON body, a callable, or a list of those
    consumed one per call (the last one repeats).
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.routes: dict[tuple[str | None, str], list[Any]] = {}

    def on(self, method: str, *replies: Any, url: str | None = None) -> None:
        self.routes[(url, method)] = list(replies)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        url = str(request.url).rstrip("/")
        call = Call(url, body["method"], body["params"], trio.current_time())
        self.calls.append(call)
        replies = self.routes.get((url, call.method)) or self.routes.get((None, call.method))
        if not replies:
            raise AssertionError(f"unexpected call {call.method} to {url}")
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if callable(reply):
            reply = reply(call)
            if isinstance(reply, Awaitable):
                reply = await reply
        if isinstance(reply, str):
            reply = fixture(reply)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        reply = {**reply, "id": body["id"]}
        return httpx.Response(200, json=reply)

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


def client(node: FakeNode, urls: list[str] | None = None, **kw: Any) -> RpcClient:
    kw.setdefault("rng", random.Random(7))
    return RpcClient(urls or [A], transport=httpx.MockTransport(node), **kw)


def ok(result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "result": result, "id": 0}


def signed_tx() -> VersionedTransaction:
    raw = base64.b64decode(fixture("getTransaction_base64")["result"]["transaction"][0])
    return VersionedTransaction.from_bytes(raw)


# --------------------------------------------------------------------------- happy paths


async def test_latest_blockhash_and_commitment_per_call(node: FakeNode) -> None:
    node.on("getLatestBlockhash", "getLatestBlockhash")
    async with client(node) as rpc:
        bh = await rpc.get_latest_blockhash()
        await rpc.get_latest_blockhash("finalized")
    assert bh.blockhash == Hash.from_string("EkSnNWid2cvwEVnVx9aBqawnmiCNiDgp3gUdkDPTKN1N")
    assert bh.last_valid_block_height == 319461098
    assert [c.params for c in node.calls] == [
        [{"commitment": "confirmed"}],
        [{"commitment": "finalized"}],
    ]


async def test_default_commitment_is_configurable(node: FakeNode) -> None:
    node.on("getSlot", "getSlot")
    async with client(node, commitment="processed") as rpc:
        assert await rpc.get_slot() == 341197053
    assert node.calls[0].params == [{"commitment": "processed"}]


async def test_slot_height_and_priority_fees(node: FakeNode) -> None:
    node.on("getSlot", "getSlot")
    node.on("getBlockHeight", "getBlockHeight")
    node.on("getRecentPrioritizationFees", "getRecentPrioritizationFees")
    async with client(node) as rpc:
        assert await rpc.get_slot("finalized") == 341197053
        assert await rpc.get_block_height() == 319460950
        fees = await rpc.get_recent_prioritization_fees([Pubkey.from_string(PROGRAM_ID)])
        no_accounts = await rpc.get_recent_prioritization_fees()
    assert [(f.slot, f.prioritization_fee) for f in fees] == [
        (341197049, 0),
        (341197050, 1000),
        (341197051, 25000),
    ]
    assert len(no_accounts) == 3
    assert node.calls[2].params == [[PROGRAM_ID]]
    assert node.calls[3].params == []


async def test_send_transaction(node: FakeNode) -> None:
    node.on("sendTransaction", "sendTransaction")
    tx = signed_tx()
    async with client(node) as rpc:
        sig = await rpc.send_transaction(tx, max_retries=0)
    assert sig == Signature.from_string(TX_SIG) == tx.signatures[0]
    wire, config = node.calls[0].params
    assert base64.b64decode(wire) == bytes(tx)
    assert config == {
        "encoding": "base64",
        "skipPreflight": False,
        "preflightCommitment": "confirmed",
        "maxRetries": 0,
    }


async def test_preflight_failure_is_decoded_and_not_retried(node: FakeNode) -> None:
    node.on("sendTransaction", "sendTransaction_preflight_failure")
    async with client(node, [A, B]) as rpc:
        with pytest.raises(PreflightFailed) as info:
            await rpc.send_transaction(signed_tx())
    e = info.value
    assert isinstance(e, RpcError) and isinstance(e, SimulationFailed)
    assert isinstance(e, TransactionFailed)
    assert e.code == -32002
    assert e.instruction_index == 1
    assert e.custom_code == 6015
    assert e.program_error is not None and e.program_error.name == "SlippageExceeded"
    assert e.logs[-1].endswith("custom program error: 0x177f")
    assert e.units_consumed == 51384
    assert "instruction 1 failed: SlippageExceeded (6015)" in str(e)
    assert len(node.calls) == 1  # the node answered; another endpoint would answer the same


async def test_preflight_failure_without_program_error(node: FakeNode) -> None:
    node.on("sendTransaction", "error_blockhash_not_found")
    async with client(node) as rpc:
        with pytest.raises(PreflightFailed) as info:
            await rpc.send_transaction(signed_tx())
    assert info.value.err == "BlockhashNotFound"
    assert info.value.program_error is None
    assert info.value.instruction_index is None


async def test_simulate_ok_and_failure(node: FakeNode) -> None:
    node.on("simulateTransaction", "simulateTransaction_ok", "simulateTransaction_program_error")
    async with client(node) as rpc:
        result = await rpc.simulate_transaction(signed_tx(), replace_recent_blockhash=True)
        with pytest.raises(SimulationFailed) as info:
            await rpc.simulate_transaction(signed_tx(), sig_verify=True)
    assert result["unitsConsumed"] == 48361
    assert result["logs"][-1] == f"Program {PROGRAM_ID} success"
    assert info.value.program_error is not None
    assert info.value.program_error.name == "SlippageExceeded"
    assert info.value.err == {"InstructionError": [1, {"Custom": 6015}]}
    assert node.calls[0].params[1] == {
        "commitment": "confirmed",
        "encoding": "base64",
        "sigVerify": False,
        "replaceRecentBlockhash": True,
    }
    with pytest.raises(ValueError, match="mutually exclusive"):
        await client(node).simulate_transaction(
            signed_tx(), sig_verify=True, replace_recent_blockhash=True
        )


@pytest.mark.parametrize(
    ("err", "logs", "index", "code", "name"),
    [
        ({"InstructionError": [0, {"Custom": 6029}]}, [], 0, 6029, "Unauthorized"),
        ({"InstructionError": [2, {"Custom": 3012}]}, None, 2, 3012, "AccountNotInitialized"),
        ({"InstructionError": [0, {"Custom": 1}]}, [], 0, 1, None),  # System Program code
        ({"InstructionError": [1, "InvalidAccountData"]}, [], 1, None, None),
        ("AccountNotFound", [], None, None, None),
        ({"InsufficientFundsForRent": {"account_index": 1}}, [], None, None, None),
    ],
)
def test_decode_tx_error_shapes(
    err: Any, logs: list[str] | None, index: int | None, code: int | None, name: str | None
) -> None:
    failure = decode_tx_error(err, logs)
    assert failure.instruction_index == index
    assert failure.custom_code == code
    assert (failure.program_error.name if failure.program_error else None) == name
    assert failure.describe()


def test_logs_take_precedence_over_the_bare_custom_code() -> None:
    logs = [f"Program {PROGRAM_ID} failed: custom program error: 0x1782"]
    failure = decode_tx_error({"InstructionError": [0, {"Custom": 6018}]}, logs)
    assert failure.program_error is not None and failure.program_error.name == "TradeTooSmall"


async def test_signature_statuses_keep_order_and_chunk_at_256(node: FakeNode) -> None:
    node.on("getSignatureStatuses", "getSignatureStatuses")
    async with client(node) as rpc:
        statuses = await rpc.get_signature_statuses([TX_SIG, TX_SIG, Signature.default()])
    assert statuses[0] is not None and statuses[0].slot == 341197001
    assert statuses[1] is None
    assert statuses[2] is not None and statuses[2].err is not None
    assert node.calls[0].params[1] == {"searchTransactionHistory": False}

    def answer(call: Call) -> dict[str, Any]:
        return ok({"context": {"slot": 1}, "value": [None] * len(call.params[0])})

    node.on("getSignatureStatuses", answer)
    async with client(node) as rpc:
        many = await rpc.get_signature_statuses([Signature.default()] * 300)
    assert len(many) == 300
    assert [len(c.params[0]) for c in node.calls[1:]] == [256, 44]


async def test_get_transaction_json_returns_the_node_json(node: FakeNode) -> None:
    node.on("getTransaction", "getTransaction_json")
    async with client(node) as rpc:
        tx = await rpc.get_transaction(TX_SIG)
    assert tx == fixture("getTransaction_json")["result"]
    assert tx is not None
    meta = tx["meta"]
    assert meta["logMessages"][3] == "Program log: Instruction: BuyShares"
    assert meta["innerInstructions"][0]["index"] == 1
    assert meta["loadedAddresses"] == {"writable": [], "readonly": []}
    assert node.calls[0].params == [
        TX_SIG,
        {"commitment": "confirmed", "encoding": "json", "maxSupportedTransactionVersion": 0},
    ]


async def test_get_transaction_base64_decodes_the_transaction(node: FakeNode) -> None:
    node.on("getTransaction", "getTransaction_base64", "getTransaction_not_found")
    async with client(node) as rpc:
        tx = await rpc.get_transaction(
            Signature.from_string(TX_SIG), encoding="base64", commitment="finalized"
        )
        missing = await rpc.get_transaction(TX_SIG, encoding="base64")
    assert isinstance(tx, ConfirmedTransaction)
    assert tx.slot == 341197001 and tx.block_time == 1731000000 and tx.version == 0
    assert tx.transaction.signatures[0] == Signature.from_string(TX_SIG)
    assert tx.transaction.message.account_keys[2] == Pubkey.from_string(PROGRAM_ID)
    assert tx.meta is not None and tx.meta.fee == 5000
    assert tx.raw_meta is not None and tx.raw_meta["computeUnitsConsumed"] == 48361
    assert missing is None
    assert node.calls[0].params[1]["encoding"] == "base64"
    assert node.calls[0].params[1]["commitment"] == "finalized"
    with pytest.raises(ValueError, match="processed"):
        await client(node).get_transaction(TX_SIG, commitment="processed")


async def test_signatures_page_and_iterate_backwards(node: FakeNode) -> None:
    page1 = fixture("getSignaturesForAddress_page1")["result"]
    page2 = fixture("getSignaturesForAddress_page2")["result"]

    def answer(call: Call) -> str:
        before = call.params[1].get("before")
        if before is None:
            return "getSignaturesForAddress_page1"
        if before == page1[-1]["signature"]:
            return "getSignaturesForAddress_page2"
        assert before == page2[-1]["signature"]
        return "getSignaturesForAddress_empty"

    node.on("getSignaturesForAddress", answer)
    async with client(node) as rpc:
        one = await rpc.get_signatures_for_address(PROGRAM_ID, limit=3, until=TX_SIG)
        seen = [s async for s in rpc.iter_signatures_for_address(PROGRAM_ID, page_size=3)]
    assert [str(s.signature) for s in one] == [e["signature"] for e in page1]
    assert one[2].err is not None
    assert node.calls[0].params == [
        PROGRAM_ID,
        {"commitment": "confirmed", "until": TX_SIG, "limit": 3},
    ]
    assert [str(s.signature) for s in seen] == [e["signature"] for e in page1 + page2]
    assert [s.slot for s in seen] == sorted((s.slot for s in seen), reverse=True)
    assert len(node.calls) == 1 + 3  # two pages and the empty one that ends the walk
    with pytest.raises(ValueError, match="limit"):
        await client(node).get_signatures_for_address(PROGRAM_ID, limit=1001)


async def test_account_info(node: FakeNode) -> None:
    node.on("getAccountInfo", "getAccountInfo", "getAccountInfo_null")
    async with client(node) as rpc:
        acct = await rpc.get_account_info(PROGRAM_ID, commitment="finalized")
        missing = await rpc.get_account_info(Pubkey.default())
    assert isinstance(acct, Account)
    assert acct.data == bytes(range(16))
    assert acct.owner == Pubkey.from_string(PROGRAM_ID)
    assert acct.lamports == 2324640
    assert missing is None
    assert node.calls[0].params == [PROGRAM_ID, {"commitment": "finalized", "encoding": "base64"}]


async def test_multiple_accounts_fixture(node: FakeNode) -> None:
    node.on("getMultipleAccounts", "getMultipleAccounts")
    async with client(node) as rpc:
        accts = await rpc.get_multiple_accounts([PROGRAM_ID, str(Pubkey.default())])
    assert accts[0] is not None and accts[0].lamports == 2324640
    assert accts[1] is None


async def test_multiple_accounts_chunks_at_100_and_keeps_order(node: FakeNode) -> None:
    keys = [Keypair.from_seed(i.to_bytes(32, "big")).pubkey() for i in range(1, 251)]
    index = {str(k): i for i, k in enumerate(keys)}
    template = fixture("getAccountInfo")["result"]["value"]

    def answer(call: Call) -> dict[str, Any]:
        values = [
            None if index[k] % 7 == 0 else {**template, "lamports": index[k]}
            for k in call.params[0]
        ]
        return ok({"context": {"slot": 5}, "value": values})

    node.on("getMultipleAccounts", answer)
    async with client(node) as rpc:
        accts = await rpc.get_multiple_accounts(keys)
    assert [len(c.params[0]) for c in node.calls] == [100, 100, 50]
    assert len(accts) == 250
    for i, acct in enumerate(accts):
        if i % 7 == 0:
            assert acct is None
        else:
            assert acct is not None and acct.lamports == i


async def test_multiple_accounts_rejects_a_short_answer(node: FakeNode) -> None:
    node.on("getMultipleAccounts", "getMultipleAccounts")  # two values
    async with client(node) as rpc:
        with pytest.raises(RpcResponseError, match="asked 3 keys, got 2"):
            await rpc.get_multiple_accounts([PROGRAM_ID] * 3)


async def test_program_accounts_with_filters(node: FakeNode) -> None:
    node.on("getProgramAccounts", "getProgramAccounts")
    market = Pubkey.from_string("CF8kfDGNJxXwx1xtqfkb2yc7NJ3jkmfqdBAXkkgvSzm6")
    async with client(node) as rpc:
        pairs = await rpc.get_program_accounts(
            PROGRAM_ID, filters=[DataSize(83), Memcmp(8, market), Memcmp(72, b"\x00")]
        )
    assert [(str(k), a.lamports) for k, a in pairs] == [
        (str(market), 2324640),
        ("HJUjpSEUaZCunLAhwJu1G44nUQ4R8JCLvSJNJzWWDpNP", 1141440),
    ]
    assert node.calls[0].params == [
        PROGRAM_ID,
        {
            "commitment": "confirmed",
            "encoding": "base64",
            "filters": [
                {"dataSize": 83},
                {"memcmp": {"offset": 8, "bytes": str(market)}},
                {"memcmp": {"offset": 72, "bytes": "1"}},
            ],
        },
    ]


def test_filters_and_base58_validate_input() -> None:
    assert b58encode(bytes(Pubkey.from_string(PROGRAM_ID))) == PROGRAM_ID
    assert b58encode(b"\x00\x00\x01") == "112"
    assert b58encode(b"") == ""
    with pytest.raises(ValueError):
        Memcmp(0, b"").to_json()
    with pytest.raises(ValueError):
        Memcmp(0, b"x" * 129).to_json()
    with pytest.raises(ValueError):
        Memcmp(-1, b"x").to_json()
    with pytest.raises(ValueError):
        DataSize(-1).to_json()


async def test_bad_arguments_are_rejected_before_sending(node: FakeNode) -> None:
    with pytest.raises(ValueError, match="commitment"):
        RpcClient([A], commitment="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        RpcClient([])
    with pytest.raises(TypeError):
        RpcClient(A)
    async with client(node) as rpc:
        with pytest.raises(ValueError, match="commitment"):
            await rpc.get_slot("recent")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="128"):
            await rpc.get_recent_prioritization_fees([PROGRAM_ID] * 129)
    assert node.calls == []


# ------------------------------------------------------------- errors, retries, failover


async def test_jsonrpc_error_is_typed_and_not_retried(node: FakeNode) -> None:
    node.on("getAccountInfo", "error_invalid_params")
    async with client(node, [A, B]) as rpc:
        with pytest.raises(RpcError) as info:
            await rpc.get_account_info("not-a-key")
        assert rpc.health()[0].consecutive_failures == 0
    assert info.value.code == -32602
    assert info.value.message == "Invalid param: WrongSize"
    assert info.value.url == A and info.value.method == "getAccountInfo"
    assert len(node.calls) == 1


async def test_malformed_result_is_a_response_error(node: FakeNode) -> None:
    node.on("getSlot", ok("not a slot"))
    async with client(node) as rpc:
        with pytest.raises(RpcResponseError, match="getSlot"):
            await rpc.get_slot()


async def test_429_waits_exactly_retry_after(node: FakeNode, autojump_clock: Any) -> None:
    node.on("getSlot", httpx.Response(429, headers={"Retry-After": "3"}), "getSlot")
    async with client(node) as rpc:
        start = trio.current_time()
        assert await rpc.get_slot() == 341197053
    assert [c.at - start for c in node.calls] == [0, 3]


async def test_429_fails_over_at_once_when_another_endpoint_is_healthy(
    node: FakeNode, autojump_clock: Any
) -> None:
    node.on("getSlot", httpx.Response(429, headers={"Retry-After": "30"}), url=A)
    node.on("getSlot", "getSlot", url=B)
    async with client(node, [A, B]) as rpc:
        start = trio.current_time()
        await rpc.get_slot()
        await rpc.get_slot()  # A is still throttled: straight to B
        await trio.sleep(30)
        node.on("getSlot", "getSlot", url=A)
        await rpc.get_slot()  # A may be asked again, and the primary is preferred
    assert [(c.url, c.at - start) for c in node.calls] == [(A, 0), (B, 0), (B, 0), (A, 30)]


async def test_5xx_retries_with_backoff_then_fails_over(
    node: FakeNode, autojump_clock: Any
) -> None:
    node.on("getBlockHeight", httpx.Response(503), "getBlockHeight", url=A)
    node.on("getBlockHeight", httpx.Response(502), "getBlockHeight", url=B)
    async with client(node, [A, B], backoff_initial=1.0) as rpc:
        assert await rpc.get_block_height() == 319460950
        health = rpc.health()
    urls = [c.url for c in node.calls]
    assert urls[:2] == [A, B]  # immediate failover, no wait
    assert urls[2] in (A, B)
    waited = node.calls[2].at - node.calls[1].at
    assert 0.5 <= waited <= 1.0  # backoff 1 s with equal jitter
    assert len(urls) == 3
    assert health[0].last_error == "HTTP 503" and health[1].last_error == "HTTP 502"
    winner = health[0] if urls[2] == A else health[1]
    assert winner.consecutive_failures == 0 and winner.healthy


async def test_connection_error_fails_over(node: FakeNode) -> None:
    node.on("getSlot", httpx.ConnectError("connection refused"), url=A)
    node.on("getSlot", "getSlot", url=B)
    async with client(node, [A, B]) as rpc:
        assert await rpc.get_slot() == 341197053
        health = rpc.health()
    assert [c.url for c in node.calls] == [A, B]
    assert "ConnectError" in (health[0].last_error or "")
    assert health[1].requests == 1 and health[1].failures == 0


async def test_timeout_fails_over(node: FakeNode, autojump_clock: Any) -> None:
    async def hang(call: Call) -> Reply:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    node.on("getSlot", hang, url=A)
    node.on("getSlot", "getSlot", url=B)
    async with client(node, [A, B], timeout=2.0) as rpc:
        start = trio.current_time()
        assert await rpc.get_slot() == 341197053
        assert trio.current_time() - start == pytest.approx(2.0)
        assert "timed out" in (rpc.health()[0].last_error or "")


async def test_node_behind_fails_over(node: FakeNode) -> None:
    node.on("getSlot", "error_node_unhealthy", url=A)
    node.on("getSlot", "getSlot", url=B)
    async with client(node, [A, B]) as rpc:
        assert await rpc.get_slot() == 341197053
    assert [c.url for c in node.calls] == [A, B]


async def test_node_behind_everywhere_raises_the_rpc_error(
    node: FakeNode, autojump_clock: Any
) -> None:
    node.on("getSlot", "error_node_unhealthy")
    async with client(node, max_retries=2) as rpc:
        with pytest.raises(RpcError) as info:
            await rpc.get_slot()
    assert info.value.code == -32005
    assert info.value.data == {"numSlotsBehind": 42}
    assert len(node.calls) == 3


async def test_gives_up_with_transport_error(node: FakeNode, autojump_clock: Any) -> None:
    node.on("getSlot", httpx.Response(500, text="<html>oops</html>"))
    async with client(node, [A, B], max_retries=3) as rpc:
        with pytest.raises(RpcTransportError) as info:
            await rpc.get_slot()
    assert len(info.value.attempts) == 4 == len(node.calls)
    assert info.value.attempts[0] == f"{A}: HTTP 500"


async def test_non_json_200_is_retried(node: FakeNode) -> None:
    node.on("getSlot", httpx.Response(200, text="<html>captive portal</html>"), url=A)
    node.on("getSlot", "getSlot", url=B)
    async with client(node, [A, B]) as rpc:
        assert await rpc.get_slot() == 341197053


async def test_client_errors_are_not_retried(node: FakeNode) -> None:
    node.on("getSlot", httpx.Response(401, text="invalid api key"))
    async with client(node, [A, B]) as rpc:
        with pytest.raises(RpcHttpError) as info:
            await rpc.get_slot()
    assert info.value.status == 401 and info.value.url == A
    assert len(node.calls) == 1


async def test_endpoint_goes_down_after_repeated_failures_and_recovers(
    node: FakeNode, autojump_clock: Any
) -> None:
    node.on("getSlot", httpx.ConnectError("refused"), url=A)
    node.on("getSlot", "getSlot", url=B)
    async with client(node, [A, B], failure_threshold=2, cooldown=20.0, max_retries=0) as rpc:
        with pytest.raises(RpcTransportError):
            await rpc.get_slot()  # A fails once: still healthy, backing off
        assert rpc.health()[0].healthy
        await trio.sleep(5)
        with pytest.raises(RpcTransportError):
            await rpc.get_slot()  # A again (backoff over): second failure, goes down
        h = rpc.health()[0]
        assert not h.healthy and h.consecutive_failures == 2 and h.retry_in == 20.0
        await rpc.get_slot()
        assert node.calls[-1].url == B  # while A is down
        await trio.sleep(20)
        node.on("getSlot", "getSlot", url=A)
        await rpc.get_slot()
        assert node.calls[-1].url == A
        assert rpc.health()[0].healthy and rpc.health()[0].consecutive_failures == 0


def test_retry_after_http_date() -> None:
    from zmartd.chain.rpc import _retry_after

    assert _retry_after("2.5") == 2.5
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert _retry_after("soon") is None
    assert _retry_after(None) is None


def test_endpoint_pool_backoff_grows_and_is_capped() -> None:
    pool = EndpointPool(["x"], clock=lambda: 0.0, backoff_initial=1, backoff_max=8)
    for attempt, cap in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 8)]:
        delay = pool.backoff(attempt)
        assert cap / 2 <= delay <= cap


async def test_shared_http_client_is_not_closed(node: FakeNode) -> None:
    node.on("getSlot", "getSlot")
    async with httpx.AsyncClient(transport=httpx.MockTransport(node)) as http:
        async with RpcClient([A], http=http) as rpc:
            await rpc.get_slot()
        assert not http.is_closed
