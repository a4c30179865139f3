"""The Borsh layer: round trips for every type, typed errors naming type,
field and offset, and base58."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from tests.chain.test_codec_strategies import ALL_CODECS, values_of
from zmartd.chain.accounts import ACCOUNT_CODECS
from zmartd.chain.borsh import DecodeError, EncodeError, StructCodec, b58decode, b58encode
from zmartd.chain.events import EVENT_CODECS
from zmartd.chain.instructions import INSTRUCTIONS
from zmartd.chain.types import (
    BuySharesArgs,
    FinalizeMarketArgs,
    MarketAccount,
    MarketFinalized,
    VoteRecord,
)

MARKET = ACCOUNT_CODECS[MarketAccount]
VOTE = ACCOUNT_CODECS[VoteRecord]
FINALIZED = EVENT_CODECS[MarketFinalized]
BUY = INSTRUCTIONS["buy_shares"].args
FINALIZE = INSTRUCTIONS["finalize_market"].args


@pytest.mark.parametrize("codec", ALL_CODECS, ids=[f"{c.kind}-{c.name}" for c in ALL_CODECS])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_trip(codec: StructCodec[Any], data: st.DataObject) -> None:
    value = data.draw(values_of(codec))
    raw = codec.encode(value)
    assert codec.min_size <= len(raw) <= codec.max_size
    assert raw[:8] == codec.discriminator
    assert codec.decode_exact(raw) == value


def test_option_sizes_move_later_fields() -> None:
    base = FinalizeMarketArgs(dispute_agree=None, dispute_disagree=None)
    assert FINALIZE.encode(base)[8:] == b"\x00\x00"
    some = FinalizeMarketArgs(dispute_agree=7, dispute_disagree=None)
    assert FINALIZE.encode(some)[8:] == b"\x01\x07\x00\x00\x00\x00"
    assert FINALIZE.decode_exact(FINALIZE.encode(some)) == some


def _err(codec: StructCodec[Any], data: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        codec.decode_exact(data)
    assert isinstance(info.value, ValueError)
    return info.value


def test_truncation_names_the_field_and_offset() -> None:
    raw = BUY.encode(BuySharesArgs(outcome=True, target_cost=5))
    e = _err(BUY, raw[:12])
    assert (e.type_name, e.field, e.offset) == ("buy_shares", "target_cost", 9)
    assert "truncated" in str(e) and "buy_shares.target_cost" in str(e)
    e = _err(BUY, raw[:5])
    assert (e.field, e.offset) == ("discriminator", 0)


def test_wrong_discriminator() -> None:
    raw = bytearray(BUY.encode(BuySharesArgs(outcome=True, target_cost=5)))
    raw[0] ^= 1
    e = _err(BUY, bytes(raw))
    assert e.field == "discriminator" and "expected 28ef8a9a08256a6c" in e.reason


def test_invalid_bool_byte() -> None:
    raw = bytearray(BUY.encode(BuySharesArgs(outcome=True, target_cost=5)))
    raw[8] = 2
    e = _err(BUY, bytes(raw))
    assert (e.field, e.offset) == ("outcome", 8)
    assert "invalid bool" in e.reason


def test_invalid_option_tag_and_option_payload() -> None:
    e = _err(FINALIZE, FINALIZE.discriminator + b"\x02\x00")
    assert (e.field, e.offset) == ("dispute_agree", 8)
    assert "Option tag 2" in e.reason
    e = _err(FINALIZE, FINALIZE.discriminator + b"\x00\x01\x05")
    assert (e.field, e.offset) == ("dispute_disagree", 9)
    assert "truncated" in e.reason
    # Option<bool> payload must itself be a valid bool
    raw = bytearray(FINALIZED.encode(MarketFinalized(bytes(32), True, False, 1)))
    raw[41] = 7
    e = _err(FINALIZED, bytes(raw))
    assert (e.field, e.offset) == ("final_outcome", 41)


def test_invalid_enum_variant() -> None:
    from tests.chain.test_accounts import sample_vote_record

    raw = bytearray(VOTE.encode(sample_vote_record()))
    raw[72] = 2
    e = _err(VOTE, bytes(raw))
    assert (e.type_name, e.field, e.offset) == ("VoteRecord", "vote_type", 72)
    assert "VoteType" in e.reason


def test_trailing_bytes_rejected_by_decode_exact() -> None:
    raw = BUY.encode(BuySharesArgs(outcome=False, target_cost=1))
    e = _err(BUY, raw + b"\x00")
    assert e.field is None and e.offset == 17 and "trailing" in e.reason


@pytest.mark.parametrize(
    ("value", "field", "reason"),
    [
        (BuySharesArgs(outcome=1, target_cost=5), "outcome", "expected bool"),  # type: ignore[arg-type]
        (BuySharesArgs(outcome=True, target_cost=-1), "target_cost", "out of range"),
        (BuySharesArgs(outcome=True, target_cost=2**64), "target_cost", "out of range"),
        (BuySharesArgs(outcome=True, target_cost=True), "target_cost", "expected int"),
    ],
)
def test_encode_errors(value: BuySharesArgs, field: str, reason: str) -> None:
    with pytest.raises(EncodeError, match=reason) as info:
        BUY.encode(value)
    assert info.value.field == field


def test_encode_rejects_wrong_byte_length_and_pubkey_type() -> None:
    from tests.chain.test_accounts import sample_vote_record

    with pytest.raises(EncodeError, match="exactly 32 bytes"):
        FINALIZED.encode(MarketFinalized(bytes(31), None, False, 0))
    bad = sample_vote_record()
    object.__setattr__(bad, "user", str(bad.user))
    with pytest.raises(EncodeError, match="Pubkey"):
        VOTE.encode(bad)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_base58_round_trip(raw: bytes) -> None:
    assert b58decode(b58encode(raw)) == raw


def test_base58_known_values() -> None:
    key = Pubkey.from_string("HJUjpSEUaZCunLAhwJu1G44nUQ4R8JCLvSJNJzWWDpNP")
    assert b58encode(bytes(key)) == str(key)
    assert b58encode(bytes.fromhex("95089ccaa0fcb0d9")) == "Rvp9zjtEEBA"
    assert b58encode(b"\x00\x00\x01") == "112"
    assert b58decode("") == b""
    with pytest.raises(ValueError, match="invalid base58"):
        b58decode("0OIl")
