"""Account decoding policy (allocated length, zero tail), type detection and
getProgramAccounts filters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from tests.chain.test_codec_strategies import values_of
from zmartd.chain.accounts import (
    ACCOUNT_CODECS,
    account_type_of,
    decode_account,
    decode_account_as,
    encode_account,
    market_filters,
    position_filters,
    vote_record_filters,
)
from zmartd.chain.borsh import DecodeError, b58encode
from zmartd.chain.types import (
    GlobalConfig,
    MarketAccount,
    MarketState,
    UserPosition,
    VoteRecord,
    VoteType,
)

USER = Pubkey.from_string("4MkybTASDtmzQnfUWztHmfgyHgBREw74eTKipVADqQLA")
MARKET = Pubkey.from_string("GcBBKsgxhio6Wn2esEpEiMJwfkEyrma66jznvtbxYR1p")


def sample_vote_record() -> VoteRecord:
    return VoteRecord(
        market=MARKET, user=USER, vote_type=VoteType.DISPUTE, vote=True, voted_at=5, bump=255
    )


def sample_market(**changes: object) -> MarketAccount:
    fields: dict[str, object] = {
        "market_id": bytes(range(32)),
        "creator": USER,
        "state": MarketState.ACTIVE,
        "b_parameter": 100 * 10**9,
        "initial_liquidity": 10**8,
        "current_liquidity": 10**8,
        "shares_yes": 10**8,
        "shares_no": 10**8,
        "total_volume": 0,
        "created_at": 1,
        "approved_at": 2,
        "activated_at": 3,
        "resolution_proposed_at": 0,
        "resolved_at": 0,
        "finalized_at": 0,
        "resolver": Pubkey.default(),
        "proposed_outcome": None,
        "final_outcome": None,
        "ipfs_evidence_hash": b"Q" * 46,
        "dispute_initiated_at": 0,
        "dispute_initiator": Pubkey.default(),
        "accumulated_protocol_fees": 0,
        "accumulated_resolver_fees": 0,
        "accumulated_lp_fees": 0,
        "proposal_likes": 0,
        "proposal_dislikes": 0,
        "proposal_total_votes": 0,
        "resolution_agree": 0,
        "resolution_disagree": 0,
        "resolution_total_votes": 0,
        "dispute_agree": 0,
        "dispute_disagree": 0,
        "dispute_total_votes": 0,
        "was_disputed": False,
        "is_cancelled": False,
        "cancelled_at": None,
        "is_locked": False,
        "reserved": bytes(119),
        "bump": 254,
    }
    fields.update(changes)
    return MarketAccount(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", list(ACCOUNT_CODECS), ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_account_round_trip_padded_and_bare(cls: type, data: st.DataObject) -> None:
    value = data.draw(values_of(ACCOUNT_CODECS[cls]))
    padded = encode_account(value)
    assert (
        len(padded)
        == {GlobalConfig: 206, MarketAccount: 488, UserPosition: 182, VoteRecord: 83}[cls]
    )
    assert decode_account(padded) == value
    assert decode_account_as(cls, padded) == value
    bare = encode_account(value, pad=False)
    assert padded.startswith(bare) and not padded[len(bare) :].strip(b"\x00")
    assert decode_account(bare) == value
    assert account_type_of(padded) is cls


def test_option_fields_shift_the_bump_by_up_to_ten_bytes() -> None:
    none = encode_account(sample_market(), pad=False)
    some = encode_account(
        sample_market(proposed_outcome=True, final_outcome=False, cancelled_at=-1), pad=False
    )
    assert (len(none), len(some)) == (473, 483)
    assert none[-1] == some[-1] == 254  # bump is the last payload byte
    assert none[201] == 0 and some[201:203] == b"\x01\x01"


def test_nonzero_tail_is_rejected_unless_lenient() -> None:
    data = bytearray(encode_account(sample_market()))
    data[480] = 9
    with pytest.raises(DecodeError) as info:
        decode_account(bytes(data))
    assert (info.value.type_name, info.value.offset) == ("MarketAccount", 480)
    assert "non-zero byte 9" in info.value.reason
    # what Anchor itself accepts: the tail is ignored
    assert decode_account(bytes(data), lenient=True) == sample_market()


def test_longer_than_allocated_is_rejected_unless_lenient() -> None:
    data = encode_account(sample_vote_record()) + b"\x00"
    with pytest.raises(DecodeError, match="longer than the allocated 83"):
        decode_account(data)
    assert decode_account(data, lenient=True) == sample_vote_record()


def test_truncated_account() -> None:
    data = encode_account(sample_market())[:300]
    with pytest.raises(DecodeError) as info:
        decode_account(data)
    assert info.value.field == "accumulated_resolver_fees" and info.value.offset == 297


def test_wrong_or_unknown_discriminator() -> None:
    vote = encode_account(sample_vote_record())
    with pytest.raises(DecodeError, match="expected c94ebbe1f0c6c9fb"):
        decode_account_as(MarketAccount, vote)
    with pytest.raises(DecodeError, match="unknown account discriminator"):
        decode_account(b"\x00" * 83)
    assert account_type_of(b"\x00" * 8) is None


def test_market_filters() -> None:
    f = market_filters(state=MarketState.ACTIVE, creator=USER)
    assert f[0] == {"dataSize": 488}
    assert f[1] == {"memcmp": {"offset": 0, "bytes": "afwFqcydEve"}}
    assert f[2] == {"memcmp": {"offset": 72, "bytes": b58encode(b"\x02")}}
    assert f[3] == {"memcmp": {"offset": 40, "bytes": str(USER)}}
    # the memcmp really matches the encoded account at those offsets
    data = encode_account(sample_market())
    assert data[72] == MarketState.ACTIVE and data[40:72] == bytes(USER)


def test_position_and_vote_filters() -> None:
    assert position_filters(market=MARKET, user=USER)[2:] == [
        {"memcmp": {"offset": 8, "bytes": str(MARKET)}},
        {"memcmp": {"offset": 40, "bytes": str(USER)}},
    ]
    f = vote_record_filters(market=MARKET, vote_type=VoteType.PROPOSAL)
    assert f[0] == {"dataSize": 83}
    assert f[2:] == [
        {"memcmp": {"offset": 8, "bytes": str(MARKET)}},
        {"memcmp": {"offset": 72, "bytes": "1"}},
    ]
