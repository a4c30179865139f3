"""Signing in with Sign-In-With-Solana over HTTP, as a wallet app does."""

from __future__ import annotations

import httpx
from solders.keypair import Keypair

__all__ = ["sign_in"]


def sign_in(base_url: str, kp: Keypair | None = None) -> str:
    """A session token for ``kp`` (a new wallet by default), through
    ``POST /v1/auth/nonce`` and ``POST /v1/auth/verify`` on ``base_url``."""
    kp = kp or Keypair()
    with httpx.Client(base_url=base_url, timeout=10) as client:
        nonce = client.post("/v1/auth/nonce", json={"wallet": str(kp.pubkey())})
        nonce.raise_for_status()
        message = nonce.json()["message"]
        session = client.post(
            "/v1/auth/verify",
            json={"message": message, "signature": str(kp.sign_message(message.encode()))},
        )
        session.raise_for_status()
        token: str = session.json()["token"]
        return token
