"""RpcClient.batch: JSON-RPC batches, per-call errors, refusals and retries."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from zmartd.chain.rpc import RpcBatchRefused, RpcClient, RpcError, RpcTransportError

URL = "https://rpc.example"
Answer = Callable[[list[dict[str, Any]]], Any]


def serve(*answers: Answer) -> tuple[RpcClient, list[list[dict[str, Any]]]]:
    """A client whose node answers the n-th POST with ``answers[n]`` (the
    last one repeats); returns it and the list of request bodies seen."""
    seen: list[list[dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        reply = answers[min(len(seen), len(answers)) - 1](body)
        return reply if isinstance(reply, httpx.Response) else httpx.Response(200, json=reply)

    return RpcClient(
        [URL],
        transport=httpx.MockTransport(handler),
        max_retries=2,
        backoff_initial=0.001,
        backoff_max=0.001,
    ), seen


def results(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Answers in reverse order (ids, not positions, must match them up)."""
    return [
        {"jsonrpc": "2.0", "id": c["id"], "result": {"echo": c["params"][0]}}
        for c in reversed(body)
    ]


async def test_results_come_back_in_call_order() -> None:
    rpc, seen = serve(results)
    async with rpc:
        out = await rpc.batch([("getTransaction", [f"sig{i}"]) for i in range(5)])
    assert out == [{"echo": f"sig{i}"} for i in range(5)]
    assert len(seen) == 1 and [c["method"] for c in seen[0]] == ["getTransaction"] * 5
    assert len({c["id"] for c in seen[0]}) == 5


async def test_an_error_answers_only_its_own_call() -> None:
    def answer(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = results(body)
        out[1] = {
            "jsonrpc": "2.0",
            "id": body[-2]["id"],
            "error": {"code": -32602, "message": "Invalid param"},
        }
        return out

    rpc, _ = serve(answer)
    async with rpc:
        out = await rpc.batch([("getTransaction", [f"s{i}"]) for i in range(3)])
    assert out[0] == {"echo": "s0"} and out[2] == {"echo": "s2"}
    assert isinstance(out[1], RpcError) and out[1].code == -32602
    assert out[1].method == "getTransaction"


async def test_null_results_stay_null() -> None:
    rpc, _ = serve(lambda body: [{"jsonrpc": "2.0", "id": c["id"], "result": None} for c in body])
    async with rpc:
        assert await rpc.batch([("getTransaction", ["a"]), ("getTransaction", ["b"])]) == [
            None,
            None,
        ]


async def test_a_refused_batch_is_its_own_error() -> None:
    refusal = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "batch requests are not allowed"},
    }
    rpc, seen = serve(lambda body: refusal)
    async with rpc:
        with pytest.raises(RpcBatchRefused) as info:
            await rpc.batch([("getTransaction", ["a"])])
    assert info.value.error.code == -32600
    assert len(seen) == 1  # the node's answer: not retried


async def test_a_node_behind_is_retried_as_a_whole() -> None:
    def behind(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = results(body)
        out[0] = {
            "jsonrpc": "2.0",
            "id": body[-1]["id"],
            "error": {"code": -32005, "message": "Node is behind"},
        }
        return out

    rpc, seen = serve(behind, results)
    async with rpc:
        assert await rpc.batch([("getTransaction", ["a"]), ("getTransaction", ["b"])]) == [
            {"echo": "a"},
            {"echo": "b"},
        ]
    assert len(seen) == 2


@pytest.mark.parametrize(
    "bad",
    [
        lambda body: {"jsonrpc": "2.0", "id": 1, "result": 5},  # an object, not an array
        lambda body: results(body)[1:],  # an answer missing
        lambda body: [{"jsonrpc": "2.0", "id": c["id"]} for c in body],  # neither result nor error
        lambda body: httpx.Response(503, text="busy"),
    ],
)
async def test_malformed_or_failed_answers_are_retried_then_give_up(bad: Answer) -> None:
    rpc, seen = serve(bad)
    async with rpc:
        with pytest.raises(RpcTransportError):
            await rpc.batch([("getTransaction", ["a"]), ("getTransaction", ["b"])])
    assert len(seen) == 3  # first attempt + max_retries


async def test_empty_batch_sends_nothing() -> None:
    rpc, seen = serve(results)
    async with rpc:
        assert await rpc.batch([]) == []
    assert seen == []
