"""The 65 encodings of ``borsh_golden.json`` (verified with the official Anchor
0.32.1 coders): each must decode to its listed values and re-encode to the
very same bytes (accounts including their zero tail)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from solders.pubkey import Pubkey

from zmartd.chain.accounts import ACCOUNT_CODECS, decode_account, encode_account
from zmartd.chain.borsh import BorshType, StructCodec
from zmartd.chain.events import EVENT_CODECS, decode_event, encode_event
from zmartd.chain.instructions import (
    INSTRUCTIONS,
    decode_instruction_args,
    encode_instruction_data,
)

GOLDEN = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "chain" / "borsh_golden.json").read_text()
)
SAMPLES = GOLDEN["samples"]


def _typed(t: BorshType, raw: Any) -> Any:
    """Golden JSON value (decimal strings, base58, byte lists, variant names) → Python."""
    if raw is None:
        assert t.kind == "option"
        return None
    if t.kind == "option":
        assert t.inner is not None
        return _typed(t.inner, raw)
    if t.kind == "int":
        return int(raw)
    if t.kind == "bool":
        assert isinstance(raw, bool)
        return raw
    if t.kind == "pubkey":
        return Pubkey.from_string(raw)
    if t.kind == "bytes":
        return bytes(raw)
    assert t.kind == "enum" and t.enum is not None
    return t.enum[raw.upper()]


def _expected(codec: StructCodec[Any], decoded: dict[str, Any]) -> Any:
    assert list(decoded) == list(codec.field_names)
    return codec.cls(
        *[_typed(t, decoded[n]) for n, t in zip(codec.field_names, codec.types, strict=True)]
    )


def test_golden_file_has_all_65_samples() -> None:
    assert len(SAMPLES) == 65
    kinds = [s["kind"] for s in SAMPLES]
    assert kinds.count("account") == 11
    assert kinds.count("event") == 36
    assert kinds.count("instruction") == 18
    assert {s["name"] for s in SAMPLES if s["kind"] == "event"} == {
        c.name for c in EVENT_CODECS.values()
    }
    assert {s["name"] for s in SAMPLES if s["kind"] == "instruction"} == set(INSTRUCTIONS)
    # every combination of the three MarketAccount options is present
    combos = {
        tuple(
            s["decoded"][f] is None for f in ("proposed_outcome", "final_outcome", "cancelled_at")
        )
        for s in SAMPLES
        if s["name"] == "MarketAccount"
    }
    assert len(combos) == 8


@pytest.mark.parametrize(
    "sample", SAMPLES, ids=[f"{i:02d}-{s['kind']}-{s['name']}" for i, s in enumerate(SAMPLES)]
)
def test_golden_sample_decodes_and_reencodes(sample: dict[str, Any]) -> None:
    data = bytes.fromhex(sample["hex"])
    if sample["kind"] == "account":
        codec = next(c for c in ACCOUNT_CODECS.values() if c.name == sample["name"])
        value = decode_account(data)
        assert value == _expected(codec, sample["decoded"])
        assert encode_account(value) == data  # padded to the allocated length
        assert len(data) == {"GlobalConfig": 206, "MarketAccount": 488}.get(
            sample["name"], len(data)
        )
    elif sample["kind"] == "event":
        codec = next(c for c in EVENT_CODECS.values() if c.name == sample["name"])
        event = decode_event(data)
        assert event == _expected(codec, sample["decoded"])
        assert encode_event(event) == data
    else:
        spec = INSTRUCTIONS[sample["name"]]
        args, trailing = decode_instruction_args(data, strict=True)
        assert trailing == b""
        assert args == _expected(spec.args, sample["decoded"])
        assert encode_instruction_data(args) == data
