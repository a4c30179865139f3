"""Events: the base64 payload codec and the invoke-stack log walk."""

from __future__ import annotations

import base64

import pytest
from solders.pubkey import Pubkey

from zmartd.chain.borsh import DecodeError
from zmartd.chain.events import (
    decode_event,
    decode_event_base64,
    encode_event,
    encode_event_base64,
    event_log_line,
    parse_logs,
)
from zmartd.chain.pda import PROGRAM_ID
from zmartd.chain.types import MarketCreated, SharesBought, WinningsClaimed

PID = str(PROGRAM_ID)
SYS = "11111111111111111111111111111111"
OTHER = str(Pubkey.new_unique())
USER = Pubkey.from_string("4MkybTASDtmzQnfUWztHmfgyHgBREw74eTKipVADqQLA")
HELIUS_LINE = (
    "8GJFCv3q4kH0c/dJl3/UkPbmXIljL87Du8vM17T5Ueu9puB9zaXAqjHkZofCt5uN8GRW8aVkG5S+3NmmcwfQ"
    "wqsM0R/5ZVLzAdZvbG0AAAAAPLKZOwAAAAB0bBMeAAAAAAAMEmkAAAAA"
)
BOUGHT = SharesBought(
    market_id=bytes.fromhex("f473f749977fd490f6e65c89632fcec3bbcbccd7b4f951ebbda6e07dcda5c0aa"),
    user=USER,
    outcome=True,
    shares=1835823062,
    cost=999928380,
    new_price_yes=504589428,
    timestamp=1762790400,
)
CREATED = MarketCreated(bytes(32), USER, 100 * 10**9, 0, 1)


def test_decode_base64_payload_of_the_helius_sample() -> None:
    assert decode_event_base64(HELIUS_LINE) == BOUGHT
    assert encode_event_base64(BOUGHT) == HELIUS_LINE
    assert event_log_line(BOUGHT) == "Program data: " + HELIUS_LINE


def test_market_created_state_is_a_plain_u8() -> None:
    odd = MarketCreated(bytes(32), USER, 1, 47, 1)  # not a MarketState value, still valid u8
    assert decode_event(encode_event(odd)) == odd


def test_event_errors() -> None:
    raw = encode_event(BOUGHT)
    with pytest.raises(DecodeError, match="trailing"):
        decode_event(raw + b"\x00")
    with pytest.raises(DecodeError) as info:
        decode_event(raw[:100])
    assert (info.value.type_name, info.value.field, info.value.offset) == (
        "SharesBought",
        "timestamp",
        97,
    )
    with pytest.raises(DecodeError, match="unknown event discriminator"):
        decode_event(bytes(8) + raw[8:])
    with pytest.raises(DecodeError, match="invalid base64"):
        decode_event_base64("not base64!!")
    claimed = WinningsClaimed(USER, USER, None, 1, 2)
    broken = bytearray(encode_event(claimed))
    broken[72] = 3
    with pytest.raises(DecodeError, match="Option tag 3"):
        decode_event(bytes(broken))


def _zmart(*inner: str, ok: bool = True, depth: int = 1) -> list[str]:
    end = f"Program {PID} success" if ok else f"Program {PID} failed: custom program error: 0x1777"
    return [
        f"Program {PID} invoke [{depth}]",
        "Program log: Instruction: BuyShares",
        *inner,
        f"Program {PID} consumed 1 of 200000 compute units",
        end,
    ]


def test_only_lines_of_zmart_itself_are_taken() -> None:
    foreign = "Program data: " + encode_event_base64(CREATED)  # valid zmart bytes, wrong emitter
    logs = [
        "Program ComputeBudget111111111111111111111111111111 invoke [1]",
        "Program ComputeBudget111111111111111111111111111111 success",
        f"Program {OTHER} invoke [1]",
        foreign,  # another program's data line is not a zmart event
        f"Program {OTHER} success",
        *_zmart(
            f"Program {SYS} invoke [2]",
            foreign,  # System Program CPI running inside zmart: not zmart
            f"Program {SYS} success",
            event_log_line(BOUGHT),
        ),
        *_zmart(event_log_line(CREATED)),
    ]
    parsed = parse_logs(logs)
    assert not parsed.truncated and parsed.problems == ()
    assert [(e.event, e.instruction_index, e.event_index) for e in parsed.events] == [
        (BOUGHT, 2, 0),
        (CREATED, 3, 1),
    ]
    assert all(e.invocation_succeeded and e.stack_height == 1 for e in parsed.events)
    assert parsed.events[0].log_index == logs.index(event_log_line(BOUGHT))


def test_zmart_invoked_by_cpi_is_still_zmart() -> None:
    logs = [
        f"Program {OTHER} invoke [1]",
        *_zmart(event_log_line(CREATED), depth=2),
        f"Program {OTHER} success",
    ]
    (e,) = parse_logs(logs).events
    assert (e.event, e.instruction_index, e.stack_height) == (CREATED, 0, 2)


def test_instruction_index_uses_program_ids_when_given() -> None:
    # a precompile at index 0 writes no invoke line
    ed25519 = "Ed25519SigVerify111111111111111111111111111"
    parsed = parse_logs(_zmart(event_log_line(CREATED)), instruction_program_ids=[ed25519, PID])
    assert parsed.events[0].instruction_index == 1
    assert parse_logs(_zmart(event_log_line(CREATED))).events[0].instruction_index == 0


def test_failed_invocation_and_truncated_logs() -> None:
    failed = parse_logs(_zmart(event_log_line(CREATED), ok=False))
    assert failed.events[0].invocation_succeeded is False
    logs = [*_zmart(event_log_line(CREATED)), f"Program {PID} invoke [1]", event_log_line(BOUGHT)]
    logs.append("Log truncated")
    logs.append(event_log_line(CREATED))  # never happens, but must be ignored after truncation
    parsed = parse_logs(logs)
    assert parsed.truncated
    assert [e.event for e in parsed.events] == [CREATED, BOUGHT]
    assert parsed.events[1].invocation_succeeded is None


def test_bad_zmart_data_line_strict_and_lenient() -> None:
    bad = "Program data: " + base64.b64encode(b"\x01" * 20).decode()
    logs = _zmart(bad, event_log_line(CREATED))
    with pytest.raises(DecodeError, match="log line 2"):
        parse_logs(logs)
    parsed = parse_logs(logs, strict=False)
    assert [e.event for e in parsed.events] == [CREATED]
    (problem,) = parsed.problems
    assert problem.log_index == 2 and problem.instruction_index == 0
    assert "unknown event discriminator" in str(problem.error)


def test_other_program_id() -> None:
    other = Pubkey.new_unique()
    logs = [
        f"Program {other} invoke [1]",
        event_log_line(CREATED),
        f"Program {other} success",
    ]
    assert parse_logs(logs).events == ()
    assert parse_logs(logs, other).events[0].event == CREATED
