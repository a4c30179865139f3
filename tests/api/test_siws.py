"""SIWS message building, strict parsing and the checks that need no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from solders.keypair import Keypair

from tests.api.conftest import make_config
from zmartd.api.auth import (
    SiwsError,
    SiwsMessage,
    bearer_token,
    build_message,
    format_time,
    parse_message,
    siws_domain,
    verify_signature,
)
from zmartd.api.handlers.auth import check_message
from zmartd.api.problems import Problem

T0 = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
KP = Keypair()


def msg(**kw: object) -> SiwsMessage:
    base: dict[str, object] = dict(
        domain="zmart.test:8080",
        address=str(KP.pubkey()),
        statement="Sign in to ZMART.",
        uri="http://zmart.test:8080",
        version="1",
        chain_id="devnet",
        nonce="abcDEF123456",
        issued_at=T0,
        expiration_time=T0 + timedelta(minutes=5),
    )
    base.update(kw)
    return SiwsMessage(**base)  # type: ignore[arg-type]


def test_build_matches_the_wallet_standard_layout() -> None:
    text = build_message(msg(resources=("https://a", "https://b")))
    assert text == (
        "zmart.test:8080 wants you to sign in with your Solana account:\n"
        f"{KP.pubkey()}\n\nSign in to ZMART.\n\n"
        "URI: http://zmart.test:8080\nVersion: 1\nChain ID: devnet\nNonce: abcDEF123456\n"
        "Issued At: 2025-01-02T03:04:05.678Z\nExpiration Time: 2025-01-02T03:09:05.678Z\n"
        "Resources:\n- https://a\n- https://b"
    )
    assert parse_message(text) == msg(resources=("https://a", "https://b"))
    no_statement = msg(statement=None)
    assert parse_message(build_message(no_statement)) == no_statement
    assert format_time(datetime(2025, 1, 1, tzinfo=UTC)) == "2025-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace(
            "wants you to sign in with your Solana account:", "wants you to log in:"
        ),
        lambda t: t.replace(str(KP.pubkey()), "not-an-address"),
        lambda t: t.replace("Version: 1\n", ""),
        lambda t: t.replace("Nonce: abcDEF123456", "Nonce: short"),
        lambda t: t.replace("Nonce: abcDEF123456", "Nonce: has space in it"),
        lambda t: t.replace(
            "Chain ID: devnet\nNonce: abcDEF123456", "Nonce: abcDEF123456\nChain ID: devnet"
        ),
        lambda t: t.replace("\n", "\r\n"),
        lambda t: t + "\n",
        lambda t: t.replace("Issued At: 2025-01-02T03:04:05.678Z", "Issued At: yesterday"),
        lambda t: t.replace(".678Z\nExp", ".678+00:00\nExp"),  # valid time, not canonical
        lambda t: t + "\nSurprise: field",
        lambda t: "x" * 5000,
    ],
)
def test_parse_is_strict(mutate: object) -> None:
    text = build_message(msg())
    with pytest.raises(SiwsError):
        parse_message(mutate(text))  # type: ignore[operator]


def test_signature_over_exact_bytes() -> None:
    text = build_message(msg())
    sig = KP.sign_message(text.encode())
    assert verify_signature(text, sig, KP.pubkey())
    assert not verify_signature(text + " ", sig, KP.pubkey())
    assert not verify_signature(text, sig, Keypair().pubkey())


def test_check_message_times_and_fields() -> None:
    cfg = make_config()
    now = T0 + timedelta(minutes=1)

    def check(m: SiwsMessage, at: datetime = now, signer: Keypair = KP) -> str:
        text = build_message(m)
        try:
            check_message(cfg, text, signer.sign_message(text.encode()), now=at)
        except Problem as p:
            return f"{p.status} {p.detail}"
        return "ok"

    assert check(msg()) == "ok"
    assert "expired" in check(msg(), at=T0 + timedelta(minutes=5))
    assert check(msg(), at=T0 - timedelta(seconds=59)) == "ok"  # clock skew tolerated
    assert "future" in check(msg(), at=T0 - timedelta(minutes=2))
    assert "Not Before" in check(msg(not_before=T0 + timedelta(minutes=3)))
    assert "no Expiration" in check(msg(expiration_time=None))
    assert "domain" in check(msg(domain="evil.test"))
    assert "version" in check(msg(version="2"))
    assert check(msg(), signer=Keypair()).startswith("401 the signature")
    assert siws_domain(make_config(auth={"domain": "app.example.com"})) == "app.example.com"
    assert siws_domain(cfg) == "zmart.test:8080"


def test_bearer_token_parsing() -> None:
    assert bearer_token(None) is None
    assert bearer_token("Bearer " + "a" * 43) == "a" * 43
    assert bearer_token("bearer  " + "a-_b" * 10) == "a-_b" * 10
    for bad in (
        "Basic abc",
        "Bearer",
        "Bearer short",
        "Bearer " + "a" * 43 + "!",
        "Signature message=x&signature=y&wallet=z",
    ):
        with pytest.raises(ValueError):
            bearer_token(bad)


@pytest.mark.parametrize(
    "hidden", ["\u202e", "\u2066", "\u200b", "\u2028", "\u2029", "\x07", "\x00", "\ufeff"]
)
def test_statements_with_hidden_characters_are_refused(hidden: str) -> None:
    """Regression: bidi overrides, zero-width and control characters and line separators
    passed in the statement, so a wallet could show the user a different text."""
    text = build_message(msg(statement=f"Sign in to ZMART.{hidden}Transfer all"))
    with pytest.raises(SiwsError, match="control or invisible character"):
        parse_message(text)


def test_an_expiration_far_after_issuance_is_refused() -> None:
    """Regression: an Expiration Time 10 years ahead was accepted."""
    cfg = make_config()
    now = T0 + timedelta(seconds=1)
    decade = msg(expiration_time=T0 + timedelta(days=3650))
    text = build_message(decade)
    sig = KP.sign_message(text.encode())
    with pytest.raises(Problem) as info:
        check_message(cfg, text, sig, now=now)
    assert "auth.nonce_ttl" in str(info.value.detail)
    ok = build_message(msg(expiration_time=T0 + timedelta(seconds=cfg.auth.nonce_ttl)))
    assert check_message(cfg, ok, KP.sign_message(ok.encode()), now=now).nonce == "abcDEF123456"
