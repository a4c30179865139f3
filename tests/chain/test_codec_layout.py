"""The hand-written classes and the codecs agree with ``layout.json`` field by
field: names, order, Python types, offsets, sizes and discriminators, so a
drift in either is caught here (docs/chain.md §1.3, §3, §4, §5)."""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from typing import Any

import pytest

from tests.chain.test_codec_strategies import ALL_CODECS
from zmartd.chain import types as T
from zmartd.chain.accounts import ACCOUNT_CODECS, ALLOCATED_LEN, RENT_EXEMPT_LAMPORTS, gpa_filters
from zmartd.chain.borsh import LayoutMismatch, StructCodec
from zmartd.chain.events import EVENT_CODECS
from zmartd.chain.instructions import INSTRUCTIONS
from zmartd.chain.spec import load_layout

LAYOUT = load_layout()


def _entry(codec: StructCodec[Any]) -> dict[str, Any]:
    section = {"account": "accounts", "event": "events", "instruction": "instructions"}[codec.kind]
    return next(e for e in LAYOUT[section] if e["name"] == codec.name)


def _layout_fields(codec: StructCodec[Any]) -> list[dict[str, Any]]:
    e = _entry(codec)
    return list(e["args"] if codec.kind == "instruction" else e["fields"])


def _ids(codecs: list[StructCodec[Any]]) -> list[str]:
    return [f"{c.kind}-{c.name}" for c in codecs]


@pytest.mark.parametrize("codec", ALL_CODECS, ids=_ids(ALL_CODECS))
def test_discriminator_is_sha256_of_namespace_and_name(codec: StructCodec[Any]) -> None:
    namespace = {"account": "account", "event": "event", "instruction": "global"}[codec.kind]
    expected = hashlib.sha256(f"{namespace}:{codec.name}".encode()).digest()[:8]
    assert codec.discriminator == expected
    assert codec.discriminator.hex() == _entry(codec)["discriminator_hex"]


@pytest.mark.parametrize("codec", ALL_CODECS, ids=_ids(ALL_CODECS))
def test_class_fields_match_layout_names_order_and_types(codec: StructCodec[Any]) -> None:
    fields = _layout_fields(codec)
    cls_fields = dataclasses.fields(codec.cls)
    assert [f.name for f in cls_fields] == [f["name"] for f in fields]
    hints = typing.get_type_hints(codec.cls, vars(T))
    for f, t in zip(fields, codec.types, strict=True):
        assert t.text == f["type"]
        expected = eval(t.python_type, vars(T))  # e.g. "bool | None", "Pubkey", "MarketState"
        assert hints[f["name"]] == expected, f"{codec.cls.__name__}.{f['name']}"
    params = codec.cls.__dataclass_params__
    assert params.frozen


@pytest.mark.parametrize("codec", ALL_CODECS, ids=_ids(ALL_CODECS))
def test_offsets_and_sizes_match_layout(codec: StructCodec[Any]) -> None:
    for computed, f in zip(codec.field_layouts(), _layout_fields(codec), strict=True):
        if f.get("offset") is not None:
            assert computed.offset_min == computed.offset_max == f["offset"], f["name"]
        else:
            assert (computed.offset_min, computed.offset_max) == (
                f["offset_min"],
                f["offset_max"],
            ), f["name"]
        if f.get("size") is not None:
            assert computed.type.min_size == computed.type.max_size == f["size"], f["name"]
        else:
            assert (computed.type.min_size, computed.type.max_size) == (
                f["size_min"],
                f["size_max"],
            )
    e = _entry(codec)
    if codec.kind == "instruction":
        assert (codec.min_size, codec.max_size) == (e["data_len_min"], e["data_len_max"])
    else:
        assert (codec.min_size, codec.max_size) == (
            e["size_with_discriminator_min"],
            e["size_with_discriminator_max"],
        )


def test_spec_sizes() -> None:
    """docs/chain.md §3 and §5 tables, typed in independently of layout.json."""
    sizes = {c.name: (c.min_size, c.max_size) for c in ACCOUNT_CODECS.values()}
    assert sizes == {
        "GlobalConfig": (198, 198),
        "MarketAccount": (473, 483),
        "UserPosition": (182, 182),
        "VoteRecord": (83, 83),
    }
    assert {c.name: v for c, v in ((ACCOUNT_CODECS[k], v) for k, v in ALLOCATED_LEN.items())} == {
        "GlobalConfig": 206,
        "MarketAccount": 488,
        "UserPosition": 182,
        "VoteRecord": 83,
    }
    for cls, lamports in RENT_EXEMPT_LAMPORTS.items():
        assert lamports == (128 + ALLOCATED_LEN[cls]) * 6960
    ev = {c.name: (c.min_size, c.max_size) for c in EVENT_CODECS.values()}
    assert ev["SharesBought"] == (105, 105)
    assert ev["WinningsClaimed"] == (89, 90)
    assert ev["MarketFinalized"] == (50, 51)
    assert ev["DisputeInitiated"] == (81, 82)
    assert ev["MarketResolved"] == (127, 127)
    ix = {n: (s.args.min_size, s.args.max_size) for n, s in INSTRUCTIONS.items()}
    assert ix["buy_shares"] == (17, 17)
    assert ix["create_market"] == (102, 102)
    assert ix["update_global_config"] == (20, 36)
    assert ix["finalize_market"] == (10, 18)


def test_enums_match_layout() -> None:
    for enum in (T.MarketState, T.VoteType):
        table = LAYOUT["enums"][enum.__name__]
        assert {m.name: m.value for m in enum} == {k.upper(): v for k, v in table.items()}


def test_instruction_account_lists_match_layout() -> None:
    for entry in LAYOUT["instructions"]:
        spec = INSTRUCTIONS[entry["name"]]
        expected = [(a["name"], a["signer"], a["writable"]) for a in entry["accounts"]]
        assert [(a.name, a.signer, a.writable) for a in spec.accounts] == expected
        assert [f.name for f in dataclasses.fields(spec.accounts_cls)] == [e[0] for e in expected]


def test_gpa_filters_match_layout() -> None:
    for entry in LAYOUT["accounts"]:
        cls = getattr(T, entry["name"])
        want = entry["gpa_filters"]
        assert gpa_filters(cls) == [
            {"dataSize": want["dataSize"]},
            {"memcmp": {"offset": 0, "bytes": want["memcmp"]["bytes_base58"]}},
        ]


def test_codec_refuses_a_class_that_drifted_from_the_layout() -> None:
    @dataclasses.dataclass(frozen=True)
    class Swapped:
        target_cost: int
        outcome: bool

    with pytest.raises(LayoutMismatch, match="differ from layout"):
        StructCodec(
            kind="instruction",
            name="buy_shares",
            cls=Swapped,
            discriminator=bytes(8),
            fields=[("outcome", "bool"), ("target_cost", "u64")],
            enums={},
        )
