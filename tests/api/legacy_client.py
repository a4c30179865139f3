"""The original frontend's requests, byte for byte where it matters: axios GETs
carry ``Accept`` and (with a wallet connected) ``Authorization: Signature ...``
but no ``Content-Type``; the sidebars' raw ``fetch()`` sends neither; and the
wallet-signature header as ``requestWalletToken`` builds it."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from solders.keypair import Keypair

from zmartd.model import views

ORIGIN = "http://localhost:3000"
AXIOS_ACCEPT = "application/json, text/plain, */*"
HEX = set("0123456789abcdef")


def signature_header(
    key: Keypair, *, ms: int | None = None, message: str | None = None, wallet: str | None = None
) -> str:
    """``Signature message=<encodeURIComponent>&signature=<bs58>&wallet=<bs58>``."""
    ms = int(time.time() * 1000) if ms is None else ms
    text = message if message is not None else f"Sign in to ZMART\nTimestamp: {ms}"
    sig = key.sign_message(text.encode())
    encoded = quote(text, safe="-_.!~*'()")  # encodeURIComponent
    return f"Signature message={encoded}&signature={sig}&wallet={wallet or key.pubkey()}"


def axios_headers(key: Keypair | None = None) -> dict[str, str]:
    headers = {"Accept": AXIOS_ACCEPT, "Origin": ORIGIN}
    if key is not None:
        headers["Authorization"] = signature_header(key)
    return headers


def fetch_headers() -> dict[str, str]:
    return {"Origin": ORIGIN}


def is_u64_text(value: Any) -> bool:
    return isinstance(value, str) and value.isdigit() and int(value) < 2**64


def check_market(m: dict[str, Any]) -> None:
    """Every field the frontend's market transform reads, with its type."""
    assert isinstance(m["id"], str) and len(m["id"]) == 64 and set(m["id"]) <= HEX
    assert isinstance(m["question"], str) and m["question"]
    assert isinstance(m["description"], str)
    assert isinstance(m["state"], int) and 0 <= m["state"] <= 6
    assert m["status"] == views.STATE_NAMES[m["state"]]
    assert isinstance(m["creator_wallet"], str) and m["creator_wallet"]
    assert is_u64_text(m["b_parameter"]) and int(m["b_parameter"]) > 0
    for name in ("shares_yes", "shares_no", "total_volume", "initial_liquidity"):
        assert is_u64_text(m[name]), name
    assert isinstance(m["created_at"], str) and m["created_at"].endswith("Z")
    for name in ("activated_at", "resolution_proposed_at"):
        assert m[name] is None or isinstance(m[name], str)
    assert isinstance(m["on_chain_address"], str)
