"""Bad states the schema itself refuses, whoever writes the SQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.storage.conftest import sql, truncate
from tests.storage.factories import T0, B, market, market_id, signature, wallet
from zmartd.storage import markets
from zmartd.storage.database import Database
from zmartd.storage.records import InvalidArgument

MARKET = dict(
    market_id=market_id(1),
    address=wallet(101),
    creator=wallet(1),
    state=2,
    b_parameter=B,
    initial_liquidity=B,
    current_liquidity=B,
    shares_yes=1,
    shares_no=1,
    created_at=T0,
    slot=1,
)
TRADE = dict(
    market_id=market_id(0),
    wallet=wallet(1),
    side="buy",
    outcome="YES",
    shares=1,
    amount=1,
    price_yes=1,
    block_time=T0,
    slot=1,
    signature=signature(1),
    instruction_index=0,
    event_index=0,
)


async def insert(db: Database, table: str, row: dict[str, Any]) -> None:
    cols = ", ".join(row)
    params = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await sql(db, f"INSERT INTO {table} ({cols}) VALUES ({params})", *row.values())


@pytest.mark.parametrize(
    ("change", "violation"),
    [
        ({"state": 7}, "state_check"),
        ({"state": -1}, "state_check"),
        ({"b_parameter": 0}, "b_parameter_check"),
        ({"current_liquidity": -1}, "u64_check"),
        ({"total_volume": 2**64}, "u64_check"),
        ({"shares_yes": -5}, "u64_check"),
        ({"proposal_likes": 2**32}, "u32_check"),
        ({"market_id": "AB" * 32}, "market_key_check"),
        ({"creator": "0OIl" * 10}, "pubkey_check"),
        ({"slot": -1}, "slot_no_check"),
        ({"price_yes": 1_000_000_001}, "price_e9_check"),
        ({"state": 5}, "markets_resolution_has_outcome"),
        ({"state": 2, "final_outcome": True}, "markets_final_outcome_only_finalized"),
        ({"state": 6}, "markets_cancelled_has_time"),
    ],
)
async def test_market_rows(db: Database, change: dict[str, Any], violation: str) -> None:
    await truncate(db)
    await insert(db, "markets", MARKET)  # the base row is valid
    await truncate(db)
    with pytest.raises(Exception, match=violation):
        await insert(db, "markets", {**MARKET, **change})


@pytest.mark.parametrize(
    ("change", "violation"),
    [
        ({"side": "hold"}, "side_check"),
        ({"outcome": "MAYBE"}, "outcome_check"),
        ({"shares": 0}, "shares_check"),
        ({"amount": -1}, "u64_check"),
        ({"signature": "short"}, "tx_signature_check"),
        ({"instruction_index": -1}, "instruction_index_check"),
        ({"market_id": market_id(9)}, "trades_market_id_fkey"),
    ],
)
async def test_trade_rows(db: Database, change: dict[str, Any], violation: str) -> None:
    await truncate(db)
    await markets.upsert_markets(db, [market(0)])
    await insert(db, "trades", TRADE)
    await truncate(db)
    await markets.upsert_markets(db, [market(0)])
    with pytest.raises(Exception, match=violation):
        await insert(db, "trades", {**TRADE, **change})


async def test_duplicate_event_and_price_point_link(db: Database) -> None:
    await truncate(db)
    await markets.upsert_markets(db, [market(0)])
    await insert(db, "trades", TRADE)
    with pytest.raises(Exception, match="trades_event_once"):
        await insert(db, "trades", TRADE)
    with pytest.raises(Exception, match="price_points_trade_link"):
        await insert(
            db,
            "price_points",
            dict(market_id=market_id(0), at=T0, price_yes=1, source="trade", slot=1),
        )


async def test_auth_rows(db: Database) -> None:
    await truncate(db)
    with pytest.raises(Exception, match="token_hash_check"):
        await sql(
            db,
            "INSERT INTO sessions (token_hash, wallet, expires_at) "
            "VALUES ('short', $1, now() + interval '1 h')",
            wallet(1),
        )
    with pytest.raises(Exception, match="auth_nonces_expiry"):
        await sql(
            db,
            "INSERT INTO auth_nonces (nonce, wallet, domain, expires_at) "
            "VALUES ('abcdefgh12', $1, 'x.io', now() - interval '1 s')",
            wallet(1),
        )
    with pytest.raises(Exception, match="nonce_check"):
        await sql(
            db,
            "INSERT INTO auth_nonces (nonce, wallet, domain, expires_at) "
            "VALUES ('short', $1, 'x.io', now() + interval '1 h')",
            wallet(1),
        )


async def test_violations_through_the_api_are_typed(db: Database) -> None:
    await truncate(db)
    with pytest.raises(InvalidArgument, match="state"):
        await markets.upsert_markets(db, [market(0, state=9)])
