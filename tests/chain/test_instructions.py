"""Instruction builders (all 18): data, account order, signer/writable flags
and PDAs; and decoding back into typed args with named accounts."""

from __future__ import annotations

from typing import Any

import pytest
from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from zmartd.chain.borsh import DecodeError, EncodeError
from zmartd.chain.instructions import (
    BUILDERS,
    INSTRUCTIONS,
    buy_shares,
    decode_instruction,
    decode_instruction_args,
    decode_solders_instruction,
    encode_instruction_data,
)
from zmartd.chain.pda import (
    PROGRAM_ID,
    SYSTEM_PROGRAM_ID,
    global_config_pda,
    market_pda,
    position_pda,
    vote_record_pda,
)
from zmartd.chain.spec import load_layout
from zmartd.chain.types import BuySharesAccounts, BuySharesArgs, UpdateGlobalConfigArgs, VoteType

ADMIN = Pubkey.from_string("4WQwPjKHu3x7dHBEehBDgxXHJQoDuBvj6Xhu6C1jjTye")
USER = Pubkey.from_string("4MkybTASDtmzQnfUWztHmfgyHgBREw74eTKipVADqQLA")
BACKEND = Pubkey.new_unique()
FEE_WALLET = Pubkey.new_unique()
RESOLVER = Pubkey.new_unique()
MARKET_ID = bytes.fromhex("f473f749977fd490f6e65c89632fcec3bbcbccd7b4f951ebbda6e07dcda5c0aa")
CID = b"QmTestHash123456789012345678901234567890".ljust(46, b"0")

KWARGS: dict[str, dict[str, Any]] = {
    "initialize_global_config": {
        "admin": ADMIN,
        "backend_authority": BACKEND,
        "protocol_fee_wallet": FEE_WALLET,
    },
    "update_global_config": {
        "admin": ADMIN,
        "protocol_fee_bps": 300,
        "resolver_reward_bps": 200,
        "liquidity_provider_fee_bps": 500,
        "proposal_approval_threshold": 7000,
        "dispute_success_threshold": 6000,
        "dispute_period": 120,
    },
    "emergency_pause": {"admin": ADMIN},
    "create_market": {
        "creator": USER,
        "market_id": MARKET_ID,
        "b_parameter": 100 * 10**9,
        "initial_liquidity": 10**8,
        "ipfs_question_hash": CID,
    },
    "approve_proposal": {"admin": ADMIN, "market_id": MARKET_ID},
    "activate_market": {"authority": USER, "market_id": MARKET_ID},
    "buy_shares": {
        "user": USER,
        "market_id": MARKET_ID,
        "outcome": True,
        "target_cost": 10**9,
        "protocol_fee_wallet": FEE_WALLET,
    },
    "sell_shares": {
        "user": USER,
        "market_id": MARKET_ID,
        "outcome": False,
        "shares_to_sell": 5,
        "min_proceeds": 1,
        "protocol_fee_wallet": FEE_WALLET,
    },
    "resolve_market": {
        "resolver": RESOLVER,
        "market_id": MARKET_ID,
        "proposed_outcome": True,
        "ipfs_evidence_hash": CID,
    },
    "initiate_dispute": {"initiator": USER, "market_id": MARKET_ID},
    "finalize_market": {
        "backend_authority": BACKEND,
        "market_id": MARKET_ID,
        "dispute_agree": 6,
        "dispute_disagree": 4,
    },
    "claim_winnings": {"user": USER, "market_id": MARKET_ID, "resolver": RESOLVER},
    "withdraw_liquidity": {"creator": USER, "market_id": MARKET_ID},
    "submit_proposal_vote": {"user": USER, "market_id": MARKET_ID, "vote": True},
    "aggregate_proposal_votes": {
        "backend_authority": BACKEND,
        "market_id": MARKET_ID,
        "final_likes": 7,
        "final_dislikes": 3,
    },
    "submit_dispute_vote": {"user": USER, "market_id": MARKET_ID, "vote": False},
    "aggregate_dispute_votes": {
        "backend_authority": BACKEND,
        "market_id": MARKET_ID,
        "final_agrees": 1,
        "final_disagrees": 2,
    },
    "cancel_market": {"admin": ADMIN, "market_id": MARKET_ID},
}

LAYOUT_IX = {e["name"]: e for e in load_layout()["instructions"]}


def _expected_address(
    name: str, account: dict[str, Any], kwargs: dict[str, Any], program_id: Pubkey
) -> Pubkey:
    """Where each account must point, derived independently from the layout entry."""
    market = market_pda(MARKET_ID, program_id)[0]
    pda = account.get("pda")
    if pda == "global_config":
        return global_config_pda(program_id)[0]
    if pda == "market":
        return market
    if pda == "position":
        return position_pda(market, kwargs["user"], program_id)[0]
    if pda == "vote_record":
        return vote_record_pda(market, kwargs["user"], VoteType(account["vote_type"]), program_id)[
            0
        ]
    if account.get("address"):
        return Pubkey.from_string(account["address"])
    wallet: Pubkey = kwargs[account["name"]]  # passed by the caller under the same name
    return wallet


def test_every_instruction_has_a_builder() -> None:
    assert set(BUILDERS) == set(INSTRUCTIONS) == set(KWARGS) == set(LAYOUT_IX)
    assert len(BUILDERS) == 18


@pytest.mark.parametrize("program_id", [PROGRAM_ID, Pubkey.new_unique()], ids=["current", "other"])
@pytest.mark.parametrize("name", sorted(KWARGS))
def test_builder(name: str, program_id: Pubkey) -> None:
    kwargs = KWARGS[name]
    ix = BUILDERS[name](**kwargs, program_id=program_id)
    assert isinstance(ix, Instruction)
    assert ix.program_id == program_id
    layout = LAYOUT_IX[name]
    assert bytes(ix.data[:8]).hex() == layout["discriminator_hex"]
    assert layout["data_len_min"] <= len(ix.data) <= layout["data_len_max"]
    assert len(ix.accounts) == len(layout["accounts"])
    for meta, acc in zip(ix.accounts, layout["accounts"], strict=True):
        assert (meta.is_signer, meta.is_writable) == (acc["signer"], acc["writable"]), acc["name"]
        assert meta.pubkey == _expected_address(name, acc, kwargs, program_id), acc["name"]

    decoded = decode_solders_instruction(ix, program_id=program_id, strict=True)
    assert decoded.name == name
    for field, value in kwargs.items():
        if hasattr(decoded.args, field):
            assert getattr(decoded.args, field) == value
        else:
            assert field == "market_id" or getattr(decoded.accounts, field) == value
    assert decoded.remaining_accounts == () and decoded.trailing_data == b""
    assert encode_instruction_data(decoded.args) == bytes(ix.data)


def test_buy_shares_matches_the_synthetic_helius_instruction() -> None:
    ix = buy_shares(**KWARGS["buy_shares"])
    assert bytes(ix.data).hex() == "28ef8a9a08256a6c0100ca9a3b00000000"
    assert str(ix.accounts[1].pubkey) == "GcBBKsgxhio6Wn2esEpEiMJwfkEyrma66jznvtbxYR1p"
    assert str(ix.accounts[2].pubkey) == "Gu2TMFhc6S1fsMgwuUdWWj1o51a5sqPZrHVN1yyV1C1R"
    assert ix.accounts[5].pubkey == SYSTEM_PROGRAM_ID


def test_update_global_config_options() -> None:
    data = bytes(BUILDERS["update_global_config"](**KWARGS["update_global_config"]).data)
    assert len(data) == 8 + 10 + 1 + 9
    args, _ = decode_instruction_args(data)
    assert isinstance(args, UpdateGlobalConfigArgs)
    assert (args.min_resolution_delay, args.dispute_period) == (None, 120)


def test_trailing_data_and_remaining_accounts_are_kept_not_dropped() -> None:
    ix = buy_shares(**KWARGS["buy_shares"])
    keys = [m.pubkey for m in ix.accounts]
    extra = Pubkey.new_unique()
    data = bytes(ix.data) + b"\xff\xee"
    decoded = decode_instruction(data, [*keys, extra])
    assert decoded.trailing_data == b"\xff\xee"
    assert decoded.remaining_accounts == (extra,)
    assert isinstance(decoded.accounts, BuySharesAccounts)
    assert decoded.accounts.user == USER
    with pytest.raises(DecodeError, match="trailing"):
        decode_instruction(data, keys, strict=True)
    with pytest.raises(DecodeError, match="extra account"):
        decode_instruction(bytes(ix.data), [*keys, extra], strict=True)


def test_too_few_accounts_names_the_missing_one() -> None:
    ix = buy_shares(**KWARGS["buy_shares"])
    with pytest.raises(DecodeError) as info:
        decode_instruction(bytes(ix.data), [m.pubkey for m in ix.accounts][:4])
    assert (info.value.type_name, info.value.field, info.value.offset) == (
        "buy_shares",
        "protocol_fee_wallet",
        4,
    )


def test_unknown_discriminator_and_wrong_program() -> None:
    with pytest.raises(DecodeError, match="unknown instruction discriminator"):
        decode_instruction_args(bytes(16))
    other = Instruction(Pubkey.new_unique(), bytes(8), [AccountMeta(USER, True, True)])
    with pytest.raises(DecodeError, match="not"):
        decode_solders_instruction(other)


def test_builder_rejects_bad_args() -> None:
    with pytest.raises(EncodeError, match="target_cost"):
        buy_shares(**{**KWARGS["buy_shares"], "target_cost": -5})
    with pytest.raises(ValueError, match="32 bytes"):
        buy_shares(**{**KWARGS["buy_shares"], "market_id": b"short"})
    with pytest.raises(EncodeError, match="exactly 46 bytes"):
        BUILDERS["resolve_market"](**{**KWARGS["resolve_market"], "ipfs_evidence_hash": b"Qm"})
    assert BuySharesArgs(outcome=True, target_cost=1) == BuySharesArgs(True, 1)
