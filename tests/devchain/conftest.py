"""Fixtures for the devchain node tests: a bare :class:`Node` on a fake
clock, and a served devchain (JSON-RPC + PubSub on free ports) whose slots
advance only when a test says so (``zmart_advanceSlots`` / ``node.advance_slot``),
so nothing here depends on timing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import trio
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from zmartd.devchain.actor import Devchain, DevchainSettings, serve_devchain
from zmartd.devchain.bank import Bank
from zmartd.devchain.node import Node

SOL = 1_000_000_000
#: Slots never advance by themselves in these tests.
MANUAL = 3600.0


@dataclass
class FakeClock:
    now: float = 1_762_790_400.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def node(clock: FakeClock) -> Node:
    return Node(Bank(), confirmed_lag=1, finalized_lag=4, clock=clock)


def signed(
    payer: Keypair, instructions: list[Instruction], blockhash: Hash, *extra: Keypair
) -> VersionedTransaction:
    message = MessageV0.try_compile(payer.pubkey(), instructions, [], blockhash)
    return VersionedTransaction(message, [payer, *extra])


def transfer_tx(payer: Keypair, to: Pubkey, lamports: int, blockhash: Hash) -> VersionedTransaction:
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))
    return signed(payer, [ix], blockhash)


def funded(node: Node, lamports: int = 10 * SOL) -> Keypair:
    kp = Keypair()
    node.faucet_transfer(kp.pubkey(), lamports)
    return kp


def settings(**overrides: object) -> DevchainSettings:
    base: dict[str, object] = dict(
        port=0, ws_port=0, seed="none", slot_interval=MANUAL, finalized_lag=4
    )
    base.update(overrides)
    return DevchainSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
async def serve(nursery: trio.Nursery) -> AsyncIterator[Callable[..., object]]:
    """``await serve(**settings overrides)`` -> a running :class:`Devchain`."""
    stops: list[trio.Event] = []

    async def start(**overrides: object) -> Devchain:
        stopping = trio.Event()
        stops.append(stopping)
        chain: Devchain = await nursery.start(serve_devchain, settings(**overrides), stopping)
        return chain

    yield start
    for stopping in stops:
        stopping.set()


@pytest.fixture
async def chain(serve: Callable[..., object]) -> Devchain:
    result = await serve()  # type: ignore[misc]
    assert isinstance(result, Devchain)
    return result
