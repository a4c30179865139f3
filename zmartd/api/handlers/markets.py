"""Markets: lookups by id or address, lists, trades, candles, holders, and the
creator's off-chain metadata.

A market is named in URLs by its 64-hex ``market_id`` (what the chain's
PDA seeds, the frontend's links and every table use) or by its base58
account address (what explorers and wallets show); :func:`resolve` accepts
both and everything below works on the record it returns, so an unknown
market is one 404 in one place.

Metadata rules: metadata belongs to the market's on-chain creator.  ``POST``
registers it once per wallet: for a market the caller created on chain, or,
for a ``market_id`` not indexed yet, as a *claim* bound to the caller that is
shown only if the indexed market turns out to be the caller's (other wallets'
claims never block it and are dropped when the market is indexed: market ids
are visible at ``processed`` before zmartd indexes them at ``confirmed``).
``PATCH`` changes the caller's own registration while the market is PROPOSED
(or not yet on chain).  Another wallet's market is 403, a market past
PROPOSED is 409.  A change of a market that is on chain is
published as :class:`~zmartd.bus.MarketStateChanged` so that caches and
WebSocket clients see it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from zmartd.api import problems
from zmartd.bus import Bus, MarketStateChanged
from zmartd.model import views
from zmartd.storage import claims as claims_store
from zmartd.storage import markets as store
from zmartd.storage import positions as position_store
from zmartd.storage import prices as price_store
from zmartd.storage import trades as trade_store
from zmartd.storage.database import Database
from zmartd.storage.markets import MarketMetadataInput, MarketSort
from zmartd.storage.prices import CandleInterval
from zmartd.storage.records import (
    HolderRecord,
    MarketMetadataRecord,
    MarketRecord,
    Page,
    TradeRecord,
)

__all__ = [
    "DEFAULT_CANDLES",
    "aware_utc",
    "candles",
    "get",
    "holders",
    "is_market_id",
    "list_markets",
    "publish_market",
    "register_metadata",
    "resolve",
    "trades",
    "update_metadata",
]

_HEX: Final = re.compile(r"^[0-9a-f]{64}$")
#: Candles returned when ``from`` is not given: ``to - DEFAULT_CANDLES x interval``.
DEFAULT_CANDLES: Final = 500


def is_market_id(ref: str) -> bool:
    """True for the 64-hex market_id form, False for a base58 address."""
    return bool(_HEX.match(ref))


def now() -> datetime:
    return datetime.now(UTC)


async def resolve(db: Database, ref: str) -> MarketRecord:
    """The market named by ``ref`` (64-hex market_id or base58 address), or 404."""
    if is_market_id(ref):
        market = await store.get_market(db, ref)
    else:
        market = await store.get_market_by_address(db, ref)
    if market is None:
        raise problems.not_found(f"no market {ref}")
    return market


async def get(db: Database, ref: str) -> views.Market:
    return views.market_view(await resolve(db, ref))


async def list_markets(
    db: Database,
    *,
    state: int | None,
    category: str | None,
    creator: str | None,
    tag: str | None,
    q: str | None,
    sort: MarketSort,
    limit: int,
    cursor: str | None,
) -> Page[views.Market]:
    page = await store.list_markets(
        db,
        state=state,
        category=category,
        creator=creator,
        tag=tag,
        q=q,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=tuple(views.market_view(m) for m in page.items), next_cursor=page.next_cursor)


async def trades(db: Database, ref: str, *, limit: int, cursor: str | None) -> Page[views.Trade]:
    market = await resolve(db, ref)
    page: Page[TradeRecord] = await trade_store.list_market_trades(
        db, market.market_id, limit=limit, cursor=cursor
    )
    return Page(items=tuple(views.trade_view(t) for t in page.items), next_cursor=page.next_cursor)


async def holders(db: Database, ref: str, *, limit: int, cursor: str | None) -> Page[views.Holder]:
    market = await resolve(db, ref)
    page: Page[HolderRecord] = await position_store.list_holders(
        db, market.market_id, limit=limit, cursor=cursor
    )
    return Page(items=tuple(views.holder_view(h) for h in page.items), next_cursor=page.next_cursor)


async def candles(
    db: Database,
    ref: str,
    *,
    interval: CandleInterval,
    start: datetime | None,
    end: datetime | None,
) -> views.Candles:
    """YES-price candles over ``[start, end)``; ``end`` defaults to now and
    ``start`` to :data:`DEFAULT_CANDLES` intervals before ``end``; a wider
    window than ``MAX_CANDLES`` intervals keeps the latest of them."""
    step = price_store.INTERVALS[interval]
    start, end = aware_utc(start, "from"), aware_utc(end, "to")
    end = end or now()
    if start is None:
        try:
            start = end - step * DEFAULT_CANDLES
        except OverflowError:
            raise problems.bad_request(
                f"to is too early to go back {DEFAULT_CANDLES} intervals; give from"
            ) from None
    if end <= start:
        # 400, not 422: each time is valid, their order is beyond the schema
        raise problems.bad_request("to must be after from")
    if (end - start) / step > price_store.MAX_CANDLES:
        # Clipped, not refused: no schema can say "at most 5,000 intervals
        # between from and to", and the answer's ``start`` says where it begins.
        start = end - step * price_store.MAX_CANDLES
    market = await resolve(db, ref)
    rows = await price_store.candles(db, market.market_id, interval=interval, start=start, end=end)
    return views.Candles(
        market_id=market.market_id,
        interval=interval,
        start=start,
        end=end,
        candles=[views.candle_view(c) for c in rows],
    )


def _field(name: str, message: str) -> problems.Problem:
    return problems.validation([problems.FieldError(field=name, message=message)])


def aware_utc(value: datetime | None, field: str) -> datetime | None:
    """A client's datetime in UTC; 422 when it has no zone or leaves the datetime range.
    The one time-zone rule of every market input (metadata ``end_time``, candle bounds)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise _field(field, "a time zone is required (e.g. 2026-01-01T00:00:00Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise _field(field, "out of the supported time range") from None


# ---------------------------------------------------------------- metadata


def _check_creator(market: MarketRecord | None, wallet: str) -> None:
    """403 unless ``wallet`` created the market (when it is on chain); 409 once the
    market has left PROPOSED."""
    if market is None:
        return
    if market.creator != wallet:
        raise problems.forbidden("only the market's creator may register or edit its metadata")
    if market.state != 0:
        raise problems.conflict(
            f"metadata is editable only while the market is PROPOSED (it is "
            f"{views.STATE_NAMES[market.state]})"
        )


async def register_metadata(
    db: Database,
    bus: Bus,
    *,
    market_id: str,
    wallet: str,
    metadata: MarketMetadataInput,
) -> views.MarketMetadata:
    """First registration; 409 if the market already has metadata (use PATCH)."""

    def decide(
        market: MarketRecord | None, existing: MarketMetadataRecord | None
    ) -> MarketMetadataInput:
        _check_creator(market, wallet)
        if existing is not None:  # the caller's own registration (claims are per wallet)
            raise problems.conflict("metadata is already registered; change it with PATCH")
        return metadata

    saved, shown = await store.edit_metadata(db, market_id=market_id, creator=wallet, decide=decide)
    if shown is not None:
        await publish_market(bus, shown)
    return views.metadata_view(saved)


async def update_metadata(
    db: Database,
    bus: Bus,
    *,
    ref: str,
    wallet: str,
    changes: dict[str, object],
) -> views.MarketMetadata:
    """Apply ``changes`` (only the fields given) to registered metadata."""
    market_id = ref if is_market_id(ref) else (await resolve(db, ref)).market_id

    def decide(
        market: MarketRecord | None, existing: MarketMetadataRecord | None
    ) -> MarketMetadataInput:
        _check_creator(market, wallet)
        if existing is None:  # the caller has registered nothing for this market
            raise problems.not_found(
                f"market {market_id} has no metadata of yours; register it with POST"
            )
        return _merge(existing, changes)

    saved, shown = await store.edit_metadata(db, market_id=market_id, creator=wallet, decide=decide)
    if shown is not None:
        await publish_market(bus, shown)
    return views.metadata_view(saved)


def _merge(existing: MarketMetadataRecord, changes: dict[str, object]) -> MarketMetadataInput:
    fields = {name: getattr(existing, name) for name in MarketMetadataInput.__struct_fields__}
    fields.update(changes)
    return MarketMetadataInput(**fields)


async def publish_market(bus: Bus, market: MarketRecord) -> None:
    """Tell caches and WebSocket clients that a market's visible fields changed."""
    await bus.publish(
        "events",
        MarketStateChanged(
            market_id=market.market_id,
            slot=market.slot,
            at=now().isoformat(),
            data=views.to_builtins(views.market_view(market)),
        ),
    )


async def claims(db: Database, ref: str) -> views.ClaimTotals:
    """A FINALIZED market's claim totals; 409 before it is finalized."""
    market = await resolve(db, ref)
    totals = await claims_store.claim_totals(db, market.market_id)
    if totals is None:
        raise problems.conflict(
            f"claims open once the market is FINALIZED; it is {views.STATE_NAMES[market.state]}"
        )
    return views.claim_totals_view(totals, market.final_outcome, market.finalized_at)
