"""ChainSource.transactions: batched getTransaction, and what happens when an
endpoint limits batches or fails one call of a batch."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from solders.pubkey import Pubkey

from zmartd.chain.rpc import RpcClient, RpcError
from zmartd.indexer.source import ChainSource

URL = "https://rpc.example"


class Node:
    """Answers getTransaction with ``{"sig": <signature>}``; ``max_batch``
    refuses larger batches like hosted RPCs do; ``broken`` signatures get a
    JSON-RPC error; ``missing`` ones a null result."""

    def __init__(
        self,
        max_batch: int = 1000,
        broken: frozenset[str] = frozenset(),
        missing: frozenset[str] = frozenset(),
    ) -> None:
        self.max_batch = max_batch
        self.broken = broken
        self.missing = missing
        self.posts: list[int] = []  # calls per POST (0 = a single call)

    def answer(self, call: dict[str, Any]) -> dict[str, Any]:
        sig = call["params"][0]
        assert call["method"] == "getTransaction"
        assert call["params"][1]["commitment"] == "confirmed"
        if sig in self.broken:
            return {
                "jsonrpc": "2.0",
                "id": call["id"],
                "error": {"code": -32009, "message": f"slot skipped for {sig}"},
            }
        result = None if sig in self.missing else {"sig": sig}
        return {"jsonrpc": "2.0", "id": call["id"], "result": result}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if isinstance(body, dict):
            self.posts.append(0)
            return httpx.Response(200, json=self.answer(body))
        self.posts.append(len(body))
        if len(body) > self.max_batch:
            return httpx.Response(
                200,
                json={
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": f"batch larger than {self.max_batch}"},
                },
            )
        return httpx.Response(200, json=[self.answer(c) for c in body])


def source(node: Node, **kw: Any) -> tuple[RpcClient, ChainSource]:
    rpc = RpcClient([URL], transport=httpx.MockTransport(node), max_retries=0)
    return rpc, ChainSource(rpc, Pubkey.new_unique(), **kw)


async def test_fetches_in_batches_and_keeps_order() -> None:
    node = Node(missing=frozenset({"s7"}))
    rpc, src = source(node, batch_size=4)
    sigs = [f"s{i}" for i in range(10)]
    async with rpc:
        out = await src.transactions(sigs)
    assert out == [None if s == "s7" else {"sig": s} for s in sigs]
    assert sorted(node.posts) == [2, 4, 4]


async def test_a_refusing_endpoint_gets_smaller_batches() -> None:
    node = Node(max_batch=10)
    rpc, src = source(node, batch_size=100)
    sigs = [f"s{i}" for i in range(30)]
    async with rpc:
        assert await src.transactions(sigs) == [{"sig": s} for s in sigs]
        assert src.batch_size == 15  # halved once, remembered
        node.posts.clear()
        assert await src.transactions(sigs[:25]) == [{"sig": s} for s in sigs[:25]]
    # 15 is still too large: refused again, halved to 7 ...
    assert src.batch_size == 7
    assert 0 in node.posts  # ... and the refused calls were fetched one by one


async def test_one_failing_call_is_asked_again_alone_and_its_error_surfaces() -> None:
    node = Node(broken=frozenset({"s2"}))
    rpc, src = source(node, batch_size=10)
    async with rpc:
        with pytest.raises(RpcError) as info:
            await src.transactions([f"s{i}" for i in range(5)])
    assert info.value.code == -32009
    assert node.posts.count(0) == 1  # the single retry of s2


async def test_batch_size_one_sends_single_calls() -> None:
    node = Node()
    rpc, src = source(node, batch_size=1)
    async with rpc:
        assert await src.transactions(["a", "b"]) == [{"sig": "a"}, {"sig": "b"}]
    assert node.posts == [0, 0]
