"""Seed helpers for the /v1 API tests.

The API tests share one database per run, so every helper draws fresh
numbers (:func:`fresh`) for its markets and wallets: tests never see each
other's rows, whatever order they run in.
"""

from __future__ import annotations

import itertools
import secrets
from datetime import timedelta
from typing import Any

from tests.api.conftest import make_config
from tests.storage import factories as f
from zmartd.api.ratelimit import BUCKETS
from zmartd.config import Config
from zmartd.storage import auth as auth_store
from zmartd.storage import markets, positions, trades
from zmartd.storage.database import Database
from zmartd.storage.positions import PositionState
from zmartd.storage.records import MarketChainState

__all__ = [
    "LIMITS",
    "T0",
    "B",
    "config",
    "fresh",
    "headers",
    "seed_market",
    "seed_position",
    "seed_trades",
    "session",
]

B = f.B
T0 = f.T0
_COUNTER = itertools.count(secrets.randbelow(10**5) * 1000)

#: rate limits no test run can reach
LIMITS: dict[str, int] = {
    f"{c}_{s}_{k}": 1_000_000 for c, s in BUCKETS for k in ("burst", "per_minute")
}


def fresh() -> int:
    """A number no other seed of this run uses (for market_id(n), wallet(n)...)."""
    return next(_COUNTER)


#: The vote policy off for tests of voting mechanics (tests/api/test_votes_api.py tests
#: the policy itself): every signed-in wallet's vote counts, any number per address.
OPEN_VOTES: dict[str, Any] = {"eligibility": "any", "max_per_address": 0}


def config(**sections: dict[str, Any]) -> Config:
    sections.setdefault("votes", OPEN_VOTES)
    return make_config(ratelimit=LIMITS, **sections)


async def seed_market(
    db: Database, *, n: int | None = None, creator: int | None = None, **kw: Any
) -> MarketChainState:
    """A market on chain (default ACTIVE, fresh b = 100 SOL state)."""
    state = f.market(
        fresh() if n is None else n, creator=fresh() if creator is None else creator, **kw
    )
    await markets.upsert_markets(db, [state])
    return state


async def seed_trades(
    db: Database,
    market_id: str,
    wallet: str,
    specs: list[dict[str, Any]],
) -> None:
    """Trades of ``wallet`` in the market: dicts of side/outcome/shares/amount/price/at."""
    events = []
    for spec in specs:
        n = fresh()
        t = f.trade(
            n,
            **{k: v for k, v in spec.items() if k != "at"},
            at=spec.get("at", T0 + timedelta(seconds=n % 100_000)),
        )
        events.append(
            type(t)(
                **{
                    **{k: getattr(t, k) for k in t.__struct_fields__},
                    "market_id": market_id,
                    "wallet": wallet,
                }
            )
        )
    await trades.insert_trades(db, events)


async def seed_position(
    db: Database,
    market_id: str,
    wallet: str,
    *,
    yes: int = 0,
    no: int = 0,
    invested: int = 0,
    claimed: int | None = None,
    slot: int = 5,
) -> None:
    await positions.upsert_positions(
        db,
        [
            PositionState(
                market_id=market_id,
                wallet=wallet,
                address=f.address(fresh()),
                shares_yes=yes,
                shares_no=no,
                total_invested=invested,
                trades_count=1,
                last_trade_at=T0,
                slot=slot,
                has_claimed=claimed is not None,
                claimed_amount=claimed or 0,
            )
        ],
    )


async def session(db: Database, wallet: str) -> str:
    token, _ = await auth_store.create_session(db, wallet=wallet, ttl=timedelta(hours=1))
    return token


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
