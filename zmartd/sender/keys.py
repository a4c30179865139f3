"""Which keys the sender signs with, and which steps are left to a human.

* **backend authority** (``aggregate_proposal_votes``, ``finalize_market``):
  ``[chain] keypair``.  In local mode with the demo seed and no keypair, the
  demo's well-known admin key, which the seed made both admin and backend
  authority of the local chain (a public test key, never valid elsewhere).
* **admin** (``approve_proposal``, ``cancel_market``): ``[admin] keypair``;
  when unset, the backend key if the program's GlobalConfig names it as the
  admin too (the same key holds both roles, as on the old devnet
  deployments); otherwise nobody -- those steps wait for a human.
"""

from __future__ import annotations

from dataclasses import replace

from zmartd.config import Config
from zmartd.model.demo import demo_keypair
from zmartd.sender.lifecycle import Signers

__all__ = ["configured_signers", "effective_signers", "uses_demo_key"]


def uses_demo_key(cfg: Config) -> bool:
    return cfg.chain.mode == "local" and cfg.devchain.seed == "demo" and not cfg.chain.keypair


def configured_signers(cfg: Config) -> Signers:
    """The keys the configuration gives (before looking at the chain)."""
    backend = cfg.chain.signer()
    if backend is None and uses_demo_key(cfg):
        backend = demo_keypair("admin")
    return Signers(backend=backend, admin=cfg.admin.signer())


def effective_signers(signers: Signers, chain_admin: str | None) -> Signers:
    """``signers`` with the backend key also signing as admin when the chain's
    GlobalConfig.admin (``chain_admin``, base58) is that key."""
    if (
        signers.admin is None
        and signers.backend is not None
        and chain_admin is not None
        and str(signers.backend.pubkey()) == chain_admin
    ):
        return replace(signers, admin=signers.backend)
    return signers
