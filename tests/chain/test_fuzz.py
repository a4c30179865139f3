"""Fuzzing the decoders: arbitrary bytes must yield a value or a DecodeError,
never another exception, and a value must re-encode to the bytes it came
from (so nothing is silently skipped or partially read)."""

from __future__ import annotations

import base64
import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chain.test_codec_strategies import ALL_CODECS, values_of
from zmartd.chain.accounts import ALLOCATED_LEN, decode_account, encode_account
from zmartd.chain.borsh import DecodeError
from zmartd.chain.events import decode_event, decode_event_base64, encode_event, parse_logs
from zmartd.chain.instructions import decode_instruction_args, encode_instruction_data
from zmartd.chain.pda import PROGRAM_ID
from zmartd.chain.types import ACCOUNT_TYPES, EVENT_TYPES

DISCRIMINATORS = [c.discriminator for c in ALL_CODECS]

#: bytes that start with a real discriminator, so the fuzzer reaches the field decoders
discriminated = st.builds(
    lambda d, rest: d + rest, st.sampled_from(DISCRIMINATORS), st.binary(max_size=500)
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid encoding of a random type with a few bytes changed and/or cut."""
    codec = draw(st.sampled_from(ALL_CODECS))
    raw = bytearray(codec.encode(draw(values_of(codec))))
    for _ in range(draw(st.integers(0, 3))):
        raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(raw)))
    return bytes(raw[: cut if draw(st.booleans()) else len(raw)])


fuzz_bytes = st.one_of(st.binary(max_size=600), discriminated, mutated())
FUZZ = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(decode: Any, encode: Any, data: bytes) -> Any:
    try:
        value = decode(data)
    except DecodeError:
        return None
    assert encode(value) == data
    return value


@FUZZ
@given(fuzz_bytes)
def test_decode_account_fuzz(data: bytes) -> None:
    try:
        value = decode_account(data)
    except DecodeError:
        return
    assert type(value) in ACCOUNT_TYPES
    assert encode_account(value, pad=False) == data[: len(encode_account(value, pad=False))]
    assert len(data) <= ALLOCATED_LEN[type(value)]
    assert not data[len(encode_account(value, pad=False)) :].strip(b"\x00")
    try:
        decode_account(data, lenient=True)
    except DecodeError:
        raise AssertionError("lenient must accept what strict accepts") from None


@FUZZ
@given(fuzz_bytes)
def test_decode_event_fuzz(data: bytes) -> None:
    value = _check(decode_event, encode_event, data)
    assert value is None or type(value) in EVENT_TYPES


@FUZZ
@given(fuzz_bytes)
def test_decode_instruction_fuzz(data: bytes) -> None:
    try:
        args, trailing = decode_instruction_args(data)
    except DecodeError:
        return
    assert encode_instruction_data(args) + trailing == data


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | fuzz_bytes.map(lambda b: base64.b64encode(b).decode()))
def test_decode_event_base64_fuzz(text: str) -> None:
    with contextlib.suppress(DecodeError):
        decode_event_base64(text)


log_lines = st.one_of(
    st.sampled_from(
        [
            f"Program {PROGRAM_ID} invoke [1]",
            f"Program {PROGRAM_ID} invoke [2]",
            f"Program {PROGRAM_ID} success",
            f"Program {PROGRAM_ID} failed: custom program error: 0x1770",
            "Program 11111111111111111111111111111111 invoke [2]",
            "Program 11111111111111111111111111111111 success",
            "Program log: Instruction: BuyShares",
            "Log truncated",
            "Program  invoke [",
            "Program data: ",
        ]
    ),
    fuzz_bytes.map(lambda b: "Program data: " + base64.b64encode(b).decode()),
    st.text(max_size=60).map(lambda t: "Program " + t),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(log_lines, max_size=25))
def test_parse_logs_fuzz(logs: list[str]) -> None:
    parsed = parse_logs(logs, strict=False)
    assert [e.event_index for e in parsed.events] == list(range(len(parsed.events)))
    try:
        strict = parse_logs(logs)
    except DecodeError:
        assert parsed.problems
    else:
        assert strict.events == parsed.events and not parsed.problems
