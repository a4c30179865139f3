"""PDA seeds pinned against real addresses (devnet_facts.json) and docs/chain.md §2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from zmartd.chain.pda import (
    GLOBAL_CONFIG_SEED,
    MARKET_SEED,
    POSITION_SEED,
    PROGRAM_ID,
    VOTE_SEED,
    global_config_pda,
    market_pda,
    position_pda,
    vote_record_pda,
)
from zmartd.chain.types import VoteType

FIXTURES = Path(__file__).parents[1] / "fixtures" / "chain"
FACTS = json.loads((FIXTURES / "devnet_facts.json").read_text())
HELIUS = json.loads((FIXTURES / "synthetic_helius_raw_buy_shares.json").read_text())


def pk(s: str) -> Pubkey:
    return Pubkey.from_string(s)


def test_program_id_and_seed_bytes() -> None:
    assert str(PROGRAM_ID) == "6s8bbbCS7oNYNnTUHgrPDHG4jqaSrD6MSxQSPVR1rxw"
    assert GLOBAL_CONFIG_SEED == b"global-config"  # hyphen, not underscore
    assert (MARKET_SEED, POSITION_SEED, VOTE_SEED) == (b"market", b"position", b"vote")


def test_global_config_of_current_program() -> None:
    assert global_config_pda() == (pk("HJUjpSEUaZCunLAhwJu1G44nUQ4R8JCLvSJNJzWWDpNP"), 255)


@pytest.mark.parametrize("fact", FACTS["global_config_accounts"], ids=lambda f: f["program"][:6])
def test_global_config_of_every_known_deployment(fact: dict[str, object]) -> None:
    assert global_config_pda(pk(str(fact["program"]))) == (pk(str(fact["address"])), fact["bump"])


def test_underscore_seed_would_give_another_address() -> None:
    wrong, _ = Pubkey.find_program_address([b"global_config"], PROGRAM_ID)
    assert wrong != global_config_pda()[0]


def test_market_pda_from_real_market_id() -> None:
    fact = FACTS["market_accounts"][0]
    market_id = bytes.fromhex(fact["market_id_hex"])
    assert market_pda(market_id, pk(fact["program"])) == (pk(fact["address"]), fact["bump"])


def test_position_pda_from_real_devnet_position() -> None:
    fact = FACTS["market_accounts"][2]
    pos = fact["position_pda_of_creator"]
    got = position_pda(pk(fact["address"]), pk(pos["user"]), pk(fact["program"]))
    assert got == (pk(pos["address"]), pos["bump"])


def test_current_program_pdas_of_the_synthetic_sample() -> None:
    derived = HELIUS["header"]["derived"]
    user = pk("4MkybTASDtmzQnfUWztHmfgyHgBREw74eTKipVADqQLA")
    market, bump = market_pda(bytes.fromhex(derived["market_id_hex"]))
    assert (str(market), bump) == tuple(derived["market"])
    assert [str(position_pda(market, user)[0]), position_pda(market, user)[1]] == derived[
        "position"
    ]
    for vt, key in (
        (VoteType.PROPOSAL, "proposal_vote_record"),
        (VoteType.DISPUTE, "dispute_vote_record"),
    ):
        addr, b = vote_record_pda(market, user, vt)
        assert [str(addr), b] == derived[key]


def test_market_id_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        market_pda(b"\x01" * 31)
    with pytest.raises(ValueError):
        vote_record_pda(PROGRAM_ID, PROGRAM_ID, 2)
