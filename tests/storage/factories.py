"""Valid chain-shaped test data: base58 keys, hex market ids, market states."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from solders.pubkey import Pubkey
from solders.signature import Signature

from zmartd.storage.records import MarketChainState
from zmartd.storage.trades import TradeEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)
B = 100_000_000_000


def wallet(n: int) -> str:
    return str(Pubkey(hashlib.sha256(f"wallet{n}".encode()).digest()))


def market_id(n: int) -> str:
    return hashlib.sha256(f"market{n}".encode()).hexdigest()


def address(n: int) -> str:
    return str(Pubkey(hashlib.sha256(f"address{n}".encode()).digest()))


def signature(n: int) -> str:
    return str(Signature(hashlib.sha512(f"sig{n}".encode()).digest()))


def market(
    n: int,
    *,
    state: int = 2,
    slot: int = 1,
    volume: int = 0,
    liquidity: int = B,
    created: datetime | None = None,
    creator: int = 0,
    **extra: object,
) -> MarketChainState:
    fields: dict[str, object] = dict(
        market_id=market_id(n),
        address=address(n),
        creator=wallet(creator),
        state=state,
        b_parameter=B,
        initial_liquidity=B,
        current_liquidity=liquidity,
        shares_yes=B // 1000,
        shares_no=B // 1000,
        total_volume=volume,
        created_at=created or T0 + timedelta(seconds=n),
        slot=slot,
    )
    if state in (3, 4, 5):
        fields["proposed_outcome"] = True
        fields["resolution_proposed_at"] = T0
    if state == 6:
        fields["cancelled_at"] = T0
    fields.update(extra)
    return MarketChainState(**fields)  # type: ignore[arg-type]


def trade(
    n: int,
    *,
    market: int = 0,
    who: int = 1,
    side: str = "buy",
    outcome: str = "YES",
    shares: int = 10**9,
    amount: int = 5 * 10**8,
    price: int = 500_000_000,
    at: datetime | None = None,
    slot: int = 10,
) -> TradeEvent:
    return TradeEvent(
        market_id=market_id(market),
        wallet=wallet(who),
        side=side,  # type: ignore[arg-type]
        outcome=outcome,  # type: ignore[arg-type]
        shares=shares,
        amount=amount,
        price_yes=price,
        block_time=at or T0 + timedelta(seconds=n),
        slot=slot,
        signature=signature(n),
        instruction_index=0,
    )
