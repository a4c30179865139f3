"""Users: public profiles with activity and P&L, portfolios, and editing one's profile.

P&L (lamports, average-cost method, per market and outcome), from the
wallet's indexed trades and positions:

* ``cost(n) = bought x n // bought_shares`` -- the average fee-inclusive cost of
  ``n`` share-units of that outcome;
* **realized** = sum over sells of ``proceeds - cost(shares sold)``, plus, for
  every *settled* market (FINALIZED, CANCELLED, or claimed), what the
  position paid or is owed (``claimed_amount``; else winning share-units at 1
  lamport each, the ``total_invested`` refund of an INVALID outcome, 0 for
  CANCELLED) minus ``cost(shares held)``;
* **unrealized** = for open markets, the held shares at the last displayed
  price (``shares x price / 10^9``) minus ``cost(shares held)``.

``cost(shares held)`` caps the held shares at the shares bought, so a position
whose early trades were not indexed is not charged more than what was seen.
Win rate = winning / (winning + losing) positions in FINALIZED markets.
"""

from __future__ import annotations

from collections.abc import Mapping

from zmartd.api import problems, text
from zmartd.model import views
from zmartd.storage import positions as position_store
from zmartd.storage import stats as stats_store
from zmartd.storage import trades as trade_store
from zmartd.storage import users as store
from zmartd.storage.database import Database
from zmartd.storage.records import NotPermitted, Page
from zmartd.storage.stats import MarketFlows

__all__ = ["pnl", "positions", "profile", "trades", "update_profile"]


def _cost(bought: int, bought_shares: int, shares: int) -> int:
    return bought * min(shares, bought_shares) // bought_shares if bought_shares else 0


def pnl(flows: tuple[MarketFlows, ...] | list[MarketFlows]) -> tuple[int, int]:
    """``(realized, unrealized)`` lamports by the rule in the module docstring."""
    realized = unrealized = 0
    for f in flows:
        realized += f.sold_yes - _cost(f.bought_yes, f.bought_yes_shares, f.sold_yes_shares)
        realized += f.sold_no - _cost(f.bought_no, f.bought_no_shares, f.sold_no_shares)
        basis = _cost(f.bought_yes, f.bought_yes_shares, f.shares_yes) + _cost(
            f.bought_no, f.bought_no_shares, f.shares_no
        )
        value = views.position_value(
            state=f.market_state,
            price_yes=f.market_price_yes,
            final_outcome=f.market_final_outcome,
            shares_yes=f.shares_yes,
            shares_no=f.shares_no,
            total_invested=f.total_invested,
            has_claimed=False,
        )
        if f.has_claimed:
            realized += f.claimed_amount - basis
        elif f.market_state in (5, 6):
            realized += value - basis
        else:
            unrealized += value - basis
    return realized, unrealized


async def profile(db: Database, wallet: str) -> views.UserProfile:
    """Any valid wallet has a profile (``registered: false`` until it signs in)."""
    user = await store.get_user(db, wallet)
    counts = await stats_store.user_stats(db, wallet)
    realized, unrealized = pnl(await stats_store.user_market_flows(db, wallet))
    return views.user_view(
        wallet, user, views.user_stats_view(counts, realized=realized, unrealized=unrealized)
    )


async def update_profile(
    db: Database, wallet: str, changes: Mapping[str, str | None]
) -> views.UserProfile:
    """Set the given fields (null clears one); 409 for a display name in use.

    Display names are stored NFKC-normalised, must show something, and are unique by
    their confusable skeleton (:mod:`zmartd.api.text`)."""
    stored: dict[str, str | None] = dict(changes)
    if "display_name" in changes:
        name = changes["display_name"]
        if name is None:
            stored["display_name_key"] = None
        else:
            name = text.normalize(name)
            if not text.shows_something(name):
                # 400, not 422: valid by the schema, refused by a rule no schema states
                raise problems.bad_request("display_name must contain a visible character")
            stored["display_name"] = name
            stored["display_name_key"] = text.name_key(name)
    try:
        record = await store.update_profile(db, wallet, stored)
    except NotPermitted:
        raise problems.conflict(
            "that display name (or one that looks the same) is already taken"
        ) from None
    return views.user_view(wallet, record)


async def positions(
    db: Database,
    wallet: str,
    *,
    open_only: bool,
    limit: int,
    cursor: str | None,
    sells_work: bool = False,
) -> Page[views.Position]:
    """``sells_work``: the configured program pays sells (``can_sell`` may be true)."""
    page = await position_store.list_user_positions(
        db, wallet, open_only=open_only, limit=limit, cursor=cursor
    )
    return Page(
        items=tuple(views.position_view(p, sells_work=sells_work) for p in page.items),
        next_cursor=page.next_cursor,
    )


async def trades(db: Database, wallet: str, *, limit: int, cursor: str | None) -> Page[views.Trade]:
    page = await trade_store.list_user_trades(db, wallet, limit=limit, cursor=cursor)
    return Page(items=tuple(views.trade_view(t) for t in page.items), next_cursor=page.next_cursor)
