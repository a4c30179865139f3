"""``--seed demo`` and ``--state FILE``: markets in every state built from
real transactions, fast enough for start-up, and a ledger that survives a
restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tests.devchain.conftest import FakeClock
from zmartd.chain.accounts import decode_account, decode_account_as
from zmartd.chain.pda import position_pda, vote_record_pda
from zmartd.chain.rpc import DataSize, RpcClient
from zmartd.chain.transactions import decode_transaction
from zmartd.chain.types import (
    GlobalConfig,
    MarketAccount,
    MarketState,
    SharesBought,
    UserPosition,
)
from zmartd.devchain.bank import Bank
from zmartd.devchain.node import Node, StateFileError
from zmartd.devchain.rpc_wire import transaction_json
from zmartd.devchain.seed import DEMO_MARKETS, demo_keypair, seed_demo


def _data(node: Node, address: Pubkey) -> bytes:
    """The data of an account that must exist."""
    account = node.get_account(address)
    assert account is not None, f"no account {address}"
    return account.data


def test_demo_has_markets_in_every_state_with_positions_votes_and_history(
    clock: FakeClock,
) -> None:
    node = Node(Bank(), clock=clock)
    started = time.perf_counter()
    seed = seed_demo(node)
    assert time.perf_counter() - started < 2.0
    # the story ends at the present and began days ago
    assert node.unix_timestamp == int(clock.now)
    first_block_time = node.block_time(1)
    assert first_block_time is not None and first_block_time < clock.now - 4 * 86_400
    config = decode_account_as(GlobalConfig, _data(node, seed.global_config))
    assert config.admin == seed.admin.pubkey() == demo_keypair("admin").pubkey()
    states = {}
    for slug, market in seed.markets.items():
        account = decode_account_as(MarketAccount, _data(node, market.address))
        assert account.state is DEMO_MARKETS[slug][1] is market.state
        states[account.state] = slug
    assert set(states) == set(MarketState)
    btc = decode_account_as(MarketAccount, _data(node, seed.markets["btc-100k"].address))
    assert btc.final_outcome is True
    claimed = decode_account_as(
        UserPosition,
        _data(
            node, position_pda(seed.markets["btc-100k"].address, seed.wallets["carol"].pubkey())[0]
        ),
    )
    assert claimed.has_claimed and claimed.claimed_amount > 0
    sol = seed.markets["sol-200"]
    position = decode_account_as(
        UserPosition, _data(node, position_pda(sol.address, seed.wallets["dave"].pubkey())[0])
    )
    assert position.trades_count >= 2 and position.shares_no > 0
    assert node.get_account(vote_record_pda(sol.address, seed.wallets["erin"].pubkey(), 0)[0])
    cup = seed.markets["world-cup"]
    assert node.get_account(vote_record_pda(cup.address, seed.wallets["alice"].pubkey(), 1)[0])
    # a price history: several SharesBought at distinct times on an active market
    events: list[SharesBought] = []
    for record in node.signatures_for_address(sol.address, "processed"):
        decoded = decode_transaction(transaction_json(record))
        assert decoded.err is None and decoded.problems == ()
        events += [e.event for e in decoded.events if isinstance(e.event, SharesBought)]
    assert len(events) >= 6
    assert len({e.timestamp for e in events}) == len(events)
    assert len({e.new_price_yes for e in events}) > 3
    # every program account decodes
    for _key, owned in node.accounts_owned_by(node.bank.program_id):
        decode_account(owned.data)


def test_demo_uses_the_daemon_authority_when_given(clock: FakeClock) -> None:
    authority = Keypair()
    node = Node(Bank(), clock=clock)
    seed = seed_demo(node, authority=authority)
    config = decode_account_as(GlobalConfig, _data(node, seed.global_config))
    assert config.admin == config.backend_authority == authority.pubkey()


async def test_state_file_persists_and_restores_the_whole_ledger(
    serve: Any, tmp_path: Path
) -> None:
    state = tmp_path / "chain" / "ledger.state"
    chain = await serve(seed="demo", state_file=state)
    assert state.exists()  # saved right after seeding
    async with RpcClient([chain.rpc_url], commitment="processed") as rpc:
        markets = await rpc.get_program_accounts(
            chain.node.bank.program_id, filters=[DataSize(488)]
        )
        assert len(markets) == len(DEMO_MARKETS)
        kp = Keypair()
        drop, _ = await rpc.request("zmart_airdrop", [str(kp.pubkey()), 10**9])
        snap, _ = await rpc.request("zmart_snapshot", [])
        assert snap["path"] == str(state)
    slot = chain.node.slot
    restored = Node.from_bytes(state.read_bytes())
    assert restored.slot == slot
    assert restored.get_account(kp.pubkey()).lamports == 10**9  # type: ignore[union-attr]
    # a second devchain on the same file starts from it (no re-seeding)
    again = await serve(seed="demo", state_file=state)
    assert again.seed is None and again.node.slot >= slot
    async with RpcClient([again.rpc_url], commitment="processed") as rpc:
        await rpc.request("zmart_advanceSlots", [1])
        record = await rpc.get_transaction(drop["signature"], commitment="confirmed")
        assert record is not None and record["slot"] == drop["slot"]
        (status,) = await rpc.get_signature_statuses(
            [drop["signature"]], search_transaction_history=True
        )
        assert status is not None and status.slot == drop["slot"]
    state.write_bytes(b"garbage")
    with pytest.raises(StateFileError):
        await serve(state_file=state)
