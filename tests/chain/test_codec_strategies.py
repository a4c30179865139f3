"""Hypothesis strategies for every codec type, built from the codecs' own
layout types (shared by the codec test modules), plus a check that they
cover every type.  Named ``test_codec_*`` only to live beside the tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from solders.pubkey import Pubkey

from zmartd.chain.accounts import ACCOUNT_CODECS
from zmartd.chain.borsh import BorshType, StructCodec
from zmartd.chain.events import EVENT_CODECS
from zmartd.chain.instructions import INSTRUCTIONS

ALL_CODECS: list[StructCodec[Any]] = [
    *ACCOUNT_CODECS.values(),
    *EVENT_CODECS.values(),
    *(spec.args for spec in INSTRUCTIONS.values()),
]

pubkeys = st.binary(min_size=32, max_size=32).map(Pubkey.from_bytes)


def for_type(t: BorshType) -> st.SearchStrategy[Any]:
    if t.kind == "int":
        return st.integers(t.lo, t.hi)
    if t.kind == "bool":
        return st.booleans()
    if t.kind == "pubkey":
        return pubkeys
    if t.kind == "bytes":
        return st.binary(min_size=t.size, max_size=t.size)
    if t.kind == "enum":
        assert t.enum is not None
        return st.sampled_from(list(t.enum))
    assert t.kind == "option" and t.inner is not None
    return st.none() | for_type(t.inner)


def values_of(codec: StructCodec[Any]) -> st.SearchStrategy[Any]:
    return st.builds(codec.cls, *[for_type(t) for t in codec.types])


def test_strategies_cover_every_codec() -> None:
    assert len(ACCOUNT_CODECS) == 4
    assert len(EVENT_CODECS) == 18
    assert len(INSTRUCTIONS) == 18
    assert len(ALL_CODECS) == 40
