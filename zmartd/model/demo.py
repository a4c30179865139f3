"""The demo wallets' keys: deterministic, so the chain double's demo seed creates them and
the transaction sender signs with the demo authority in a Quickstart without any key
configured (``chain.mode = "local"``, ``devchain.seed = "demo"``). Never a real key."""

from __future__ import annotations

import hashlib

from solders.keypair import Keypair

__all__ = ["demo_keypair"]


def demo_keypair(name: str) -> Keypair:
    """The deterministic demo wallet called ``name``."""
    return Keypair.from_seed(hashlib.sha256(f"zmartd demo {name}".encode()).digest())
