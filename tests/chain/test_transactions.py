"""Whole-transaction decoding: getTransaction JSON / Helius raw webhook bodies."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from solders.pubkey import Pubkey

from zmartd.chain.borsh import b58encode
from zmartd.chain.events import event_log_line
from zmartd.chain.instructions import create_market
from zmartd.chain.pda import PROGRAM_ID
from zmartd.chain.transactions import (
    TransactionFormatError,
    decode_helius_raw_webhook,
    decode_transaction,
)
from zmartd.chain.types import BuySharesAccounts, BuySharesArgs, MarketCreated, SharesBought

FIXTURE = json.loads(
    (
        Path(__file__).parents[1] / "fixtures" / "chain" / "synthetic_helius_raw_buy_shares.json"
    ).read_text()
)
HEADER = FIXTURE["header"]
USER = Pubkey.from_string("4MkybTASDtmzQnfUWztHmfgyHgBREw74eTKipVADqQLA")
FEE_WALLET = Pubkey.from_string("4WQwPjKHu3x7dHBEehBDgxXHJQoDuBvj6Xhu6C1jjTye")
MARKET = Pubkey.from_string(HEADER["derived"]["market"][0])
POSITION = Pubkey.from_string(HEADER["derived"]["position"][0])


def raw_tx() -> dict[str, Any]:
    return copy.deepcopy(FIXTURE["body"][0])


def test_helius_raw_sample_decodes_to_buy_shares_and_shares_bought() -> None:
    (tx,) = decode_helius_raw_webhook(FIXTURE["body"])
    assert tx.succeeded and tx.err is None and tx.problems == ()
    assert str(tx.signature) == FIXTURE["body"][0]["transaction"]["signatures"][0]
    assert (tx.slot, tx.block_time, tx.index_within_block) == (419000123, 1762790400, 17)
    assert (tx.fee, tx.compute_units_consumed) == (5000, 123606)

    (ix,) = tx.instructions
    assert (ix.instruction_index, ix.inner_index) == (0, None)
    want = HEADER["decoded_instruction"]
    assert ix.decoded.name == want["name"] == "buy_shares"
    assert ix.decoded.args == BuySharesArgs(
        outcome=want["outcome"], target_cost=want["target_cost"]
    )
    assert isinstance(ix.decoded.accounts, BuySharesAccounts)
    assert ix.decoded.accounts.market == MARKET
    assert ix.decoded.accounts.position == POSITION
    assert ix.decoded.accounts.user == USER
    assert ix.decoded.accounts.protocol_fee_wallet == FEE_WALLET

    (ev,) = tx.events
    assert (ev.instruction_index, ev.event_index, ev.log_index) == (0, 0, 8)
    e = HEADER["decoded_event"]
    assert ev.event == SharesBought(
        market_id=bytes.fromhex(e["market_id_hex"]),
        user=Pubkey.from_string(e["user"]),
        outcome=e["outcome"],
        shares=e["shares"],
        cost=e["cost"],
        new_price_yes=e["new_price_yes"],
        timestamp=e["timestamp"],
    )
    # lamport side effects described in docs/chain.md §14.4
    protocol_fee = 27_270_774
    assert tx.balances[USER].delta == -(e["cost"] + tx.fee + 2_157_600)
    assert tx.balances[MARKET].delta == e["cost"] - protocol_fee
    assert tx.balances[FEE_WALLET].delta == protocol_fee
    assert tx.balances[POSITION].delta == 2_157_600
    assert len(tx.balances) == len(tx.account_keys) and set(tx.balances) == set(tx.account_keys)
    assert tx.balances.get(Pubkey.new_unique()) is None and USER in tx.balances
    assert dict(tx.balances)[FEE_WALLET] == tx.balances[FEE_WALLET]


def test_jsonrpc_envelope_and_single_object_body() -> None:
    tx = decode_transaction({"jsonrpc": "2.0", "id": 1, "result": raw_tx()})
    assert tx.events[0].event.timestamp == 1762790400  # type: ignore[union-attr]
    assert len(decode_helius_raw_webhook(raw_tx())) == 1


def test_v0_transaction_with_loaded_addresses() -> None:
    body = raw_tx()
    keys = body["transaction"]["message"]["accountKeys"]
    # static: user, market, position, program | writable: fee wallet | readonly: config, system
    user, market, position, fee, config, system, program = keys
    body["transaction"]["message"]["accountKeys"] = [user, market, position, program]
    body["meta"]["loadedAddresses"] = {"writable": [fee], "readonly": [config, system]}
    body["transaction"]["message"]["instructions"][0].update(
        programIdIndex=3, accounts=[5, 1, 2, 0, 4, 6]
    )
    for group in body["meta"]["innerInstructions"]:
        for inner in group["instructions"]:
            inner["programIdIndex"] = 6
    pre, post = body["meta"]["preBalances"], body["meta"]["postBalances"]
    order = [0, 1, 2, 6, 3, 4, 5]
    body["meta"]["preBalances"] = [pre[i] for i in order]
    body["meta"]["postBalances"] = [post[i] for i in order]
    body["version"] = 0
    tx = decode_transaction(body)
    assert [str(k) for k in tx.account_keys] == [
        user,
        market,
        position,
        program,
        fee,
        config,
        system,
    ]
    (ix,) = tx.instructions
    assert isinstance(ix.decoded.accounts, BuySharesAccounts)
    assert str(ix.decoded.accounts.protocol_fee_wallet) == fee
    assert str(ix.decoded.accounts.global_config) == config
    assert tx.balances[FEE_WALLET].delta == 27_270_774
    assert len(tx.events) == 1


def test_failed_zmart_transaction_maps_the_error_and_drops_events() -> None:
    body = raw_tx()
    body["meta"]["err"] = {"InstructionError": [0, {"Custom": 6010}]}
    tx = decode_transaction(body)
    assert not tx.succeeded
    assert tx.failed_instruction_index == 0
    assert tx.program_error is not None and tx.program_error.name == "ProtocolPaused"
    assert tx.events == ()  # rolled back
    assert tx.instructions[0].decoded.name == "buy_shares"  # still useful for analytics


def test_error_of_a_non_zmart_instruction_is_not_mapped() -> None:
    body = raw_tx()
    msg = body["transaction"]["message"]
    msg["instructions"].insert(
        0, {"programIdIndex": 5, "accounts": [0, 3], "data": "3Bxs4a57fyTVvHx3"}
    )
    body["meta"]["err"] = {"InstructionError": [0, {"Custom": 1}]}
    body["meta"]["innerInstructions"][0]["index"] = 1
    tx = decode_transaction(body)
    assert tx.failed_instruction_index == 0 and tx.program_error is None
    assert tx.instructions[0].instruction_index == 1


def test_inner_zmart_instruction_and_undecodable_parts_become_problems() -> None:
    body = raw_tx()
    market_id = bytes(32)
    cm = create_market(
        creator=USER,
        market_id=market_id,
        b_parameter=100 * 10**9,
        initial_liquidity=1,
        ipfs_question_hash=bytes(46),
    )
    keys = body["transaction"]["message"]["accountKeys"]
    for m in cm.accounts:
        if str(m.pubkey) not in keys:
            keys.append(str(m.pubkey))
    body["meta"]["preBalances"] += [0] * (len(keys) - 7)
    body["meta"]["postBalances"] += [0] * (len(keys) - 7)
    body["meta"]["innerInstructions"][0]["instructions"].append(
        {
            "programIdIndex": 6,
            "accounts": [keys.index(str(m.pubkey)) for m in cm.accounts],
            "data": b58encode(bytes(cm.data)),
            "stackHeight": 2,
        }
    )
    body["transaction"]["message"]["instructions"].append(
        {"programIdIndex": 6, "accounts": [0], "data": b58encode(b"\x00" * 9)}
    )
    body["meta"]["logMessages"][8:8] = [f"Program {PROGRAM_ID} invoke [2]", "Program data: AAAA"]
    body["meta"]["logMessages"][10:10] = [
        event_log_line(MarketCreated(market_id, USER, 100 * 10**9, 0, 1)),
        f"Program {PROGRAM_ID} success",
    ]
    tx = decode_transaction(body)
    assert [(i.instruction_index, i.inner_index, i.decoded.name) for i in tx.instructions] == [
        (0, None, "buy_shares"),
        (0, 3, "create_market"),
    ]
    assert [type(e.event).__name__ for e in tx.events] == ["MarketCreated", "SharesBought"]
    assert [p.where for p in tx.problems] == ["instruction 1", "log line 9"]
    assert "unknown instruction discriminator" in tx.problems[0].message


def test_json_parsed_account_keys() -> None:
    body = raw_tx()
    msg = body["transaction"]["message"]
    msg["accountKeys"] = [
        {"pubkey": k, "signer": i == 0, "writable": i < 4, "source": "transaction"}
        for i, k in enumerate(msg["accountKeys"])
    ]
    tx = decode_transaction(body)
    assert tx.instructions[0].decoded.name == "buy_shares"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("meta"),
        lambda b: b["transaction"].update(signatures=[]),
        lambda b: b["transaction"]["message"].update(accountKeys="nope"),
        lambda b: b["transaction"]["message"]["instructions"][0].update(programIdIndex=99),
        lambda b: b["transaction"]["message"]["accountKeys"].__setitem__(0, "not-a-key"),
        lambda b: b["transaction"].update(signatures=["xyz"]),
    ],
)
def test_malformed_envelopes_raise_transaction_format_error(mutate: Any) -> None:
    body = raw_tx()
    mutate(body)
    with pytest.raises(TransactionFormatError):
        decode_transaction(body)
