"""Program ids and program-derived addresses of zmart-core (docs/chain.md §2).

The seed constants are read from ``layout.json`` (hex bytes) rather than
typed in, because the one historical PDA bug of this program was exactly a
seed typo (``global_config`` with an underscore in one deployment).  Every
function returns ``(address, bump)`` with the canonical bump that
``find_program_address`` finds, which is also what the program stores in the
account's ``bump`` field.

Derivations are memoised: the same market/config PDAs are derived over and
over by the indexer and the transaction builders, and ``find_program_address``
may hash up to a few times per call.
"""

from __future__ import annotations

from functools import lru_cache

from solders.pubkey import Pubkey

from zmartd.chain.spec import load_layout
from zmartd.chain.types import VoteType

__all__ = [
    "GLOBAL_CONFIG_SEED",
    "MARKET_SEED",
    "POSITION_SEED",
    "PROGRAM_ID",
    "SYSTEM_PROGRAM_ID",
    "VOTE_SEED",
    "global_config_pda",
    "market_pda",
    "position_pda",
    "vote_record_pda",
]

_LAYOUT = load_layout()

#: The current zmart-core deployment (``declare_id!``; docs/chain.md §1.1).
PROGRAM_ID: Pubkey = Pubkey.from_string(_LAYOUT["program_id"])
SYSTEM_PROGRAM_ID: Pubkey = Pubkey.from_string("11111111111111111111111111111111")


def _const_seed(pda: str) -> bytes:
    seed = _LAYOUT["pdas"][pda]["seeds"][0]
    assert seed["kind"] == "const"
    return bytes.fromhex(seed["hex"])


GLOBAL_CONFIG_SEED: bytes = _const_seed("global_config")  # b"global-config" (hyphen)
MARKET_SEED: bytes = _const_seed("market")  # b"market"
POSITION_SEED: bytes = _const_seed("position")  # b"position"
VOTE_SEED: bytes = _const_seed("vote_record")  # b"vote"


@lru_cache(maxsize=64)
def global_config_pda(program_id: Pubkey = PROGRAM_ID) -> tuple[Pubkey, int]:
    """The single GlobalConfig account: seeds ``["global-config"]``."""
    return Pubkey.find_program_address([GLOBAL_CONFIG_SEED], program_id)


def _market_id_bytes(market_id: bytes) -> bytes:
    b = bytes(market_id)
    if len(b) != 32:
        raise ValueError(f"market_id must be exactly 32 bytes, got {len(b)}")
    return b


@lru_cache(maxsize=65536)
def _market_pda(market_id: bytes, program_id: Pubkey) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([MARKET_SEED, market_id], program_id)


def market_pda(market_id: bytes, program_id: Pubkey = PROGRAM_ID) -> tuple[Pubkey, int]:
    """A market account: seeds ``["market", market_id]`` with the 32 opaque
    ``market_id`` bytes (not the hex string, not the market address)."""
    return _market_pda(_market_id_bytes(market_id), program_id)


@lru_cache(maxsize=65536)
def position_pda(
    market: Pubkey, user: Pubkey, program_id: Pubkey = PROGRAM_ID
) -> tuple[Pubkey, int]:
    """A user's position: seeds ``["position", market account address, user wallet]``."""
    return Pubkey.find_program_address([POSITION_SEED, bytes(market), bytes(user)], program_id)


@lru_cache(maxsize=65536)
def vote_record_pda(
    market: Pubkey, user: Pubkey, vote_type: VoteType, program_id: Pubkey = PROGRAM_ID
) -> tuple[Pubkey, int]:
    """A vote record: seeds ``["vote", market address, user wallet, [vote_type]]``
    where the last seed is one byte, 0 for proposal and 1 for dispute votes."""
    vt = VoteType(vote_type)
    return Pubkey.find_program_address(
        [VOTE_SEED, bytes(market), bytes(user), bytes([vt.value])], program_id
    )
