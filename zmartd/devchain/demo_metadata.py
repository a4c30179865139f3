"""The ``demo_metadata`` actor: titles and descriptions for the demo markets.

Market questions are off-chain data (the program stores only a CID), so the
demo chain alone would show a new Quickstart user eight untitled markets.
When the local chain double was seeded with ``seed = "demo"``, this actor
registers each demo market's off-chain metadata through storage, once and
without overwriting anything a creator registered.  It runs only in local
mode; against a real cluster there is nothing to import.

It also writes a few discussion posts (:data:`DEMO_POSTS`) in markets that have none,
once the indexer has mirrored those markets (posts reference them), so that the
Quickstart has something to read and ``zmartd snapshot --date <today>`` something to
snapshot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio

from zmartd.context import ActorContext
from zmartd.devchain.actor import DEVCHAIN
from zmartd.devchain.seed import DemoSeed
from zmartd.model.demo import demo_keypair
from zmartd.storage import discussions as discussion_storage
from zmartd.storage import markets as market_storage
from zmartd.storage.database import DATABASE, Database
from zmartd.storage.markets import MarketMetadataInput

__all__ = ["DEMO_DETAILS", "DEMO_POSTS", "demo_metadata", "run", "seed_discussions"]

#: slug -> (category, tags, description, resolution source, days until the market closes)
DEMO_DETAILS: dict[str, tuple[str, tuple[str, ...], str, str, int]] = {
    "sol-200": (
        "crypto",
        ("solana", "price"),
        "Resolves YES if SOL/USD closes above $200 on December 31 (UTC).",
        "https://www.coingecko.com/en/coins/solana",
        35,
    ),
    "eth-etf": (
        "crypto",
        ("ethereum", "etf"),
        "Resolves YES if a US spot ETH ETF with staking starts trading before the year ends.",
        "https://www.sec.gov",
        35,
    ),
    "rain-paris": (
        "weather",
        ("paris",),
        "Resolves YES if Météo-France records any precipitation in Paris tomorrow.",
        "https://meteofrance.com",
        1,
    ),
    "world-cup": (
        "sports",
        ("football", "brazil"),
        "Resolves YES if Brazil plays in the World Cup final.",
        "https://www.fifa.com",
        20,
    ),
    "btc-100k": (
        "crypto",
        ("bitcoin", "price"),
        "Resolves YES if BTC/USD traded above $100,000 at any time last month.",
        "https://www.coingecko.com",
        -5,
    ),
    "mars-2030": (
        "science",
        ("space",),
        "Resolves YES if a crewed landing on Mars happens before January 1, 2031.",
        "https://www.nasa.gov",
        1500,
    ),
    "new-lang": (
        "tech",
        ("engineering",),
        "Resolves YES if the Rust rewrite ships to production this quarter.",
        "https://github.com",
        60,
    ),
    "community-pick": (
        "community",
        ("hackathon",),
        "Resolves YES if the community picks ZMART for the next hackathon.",
        "https://github.com",
        45,
    ),
    "dup-market": (
        "crypto",
        ("solana",),
        "A duplicate of sol-200, cancelled by the admin.",
        "https://www.coingecko.com/en/coins/solana",
        35,
    ),
}

#: slug -> posts as (author wallet name, text, index of the post it replies to)
DEMO_POSTS: dict[str, tuple[tuple[str, str, int | None], ...]] = {
    "sol-200": (
        ("alice", "ETF inflows keep coming; I bought YES at 0.41.", None),
        ("bob", "Dec 31 is far off and $200 is a big round number. Holding NO.", 0),
        ("carol", "Which close settles it: the CoinGecko daily close at 00:00 UTC?", None),
    ),
    "rain-paris": (
        ("dave", "The forecast says 60 % chance of showers after 15:00.", None),
        ("erin", "Does drizzle count? The description says any precipitation.", 0),
    ),
    "world-cup": (("frank", "Brazil's squad looks deep this time.", None),),
}


async def seed_discussions(
    db: Database, seed: DemoSeed, *, wait: float = 120.0, poll: float = 0.5
) -> int:
    """Post :data:`DEMO_POSTS` in each demo market that has no post yet, waiting (up to
    ``wait`` seconds per market) for the indexer to mirror it.  Returns posts written."""
    written = 0
    for slug, posts in DEMO_POSTS.items():
        market = seed.markets.get(slug)
        if market is None:
            continue
        market_id = market.market_id.hex()
        if not await _indexed(db, market_id, wait, poll):
            continue  # not mirrored (yet): the next start tries again
        if (await discussion_storage.list_threads(db, market_id, limit=1)).items:
            continue
        ids: list[int] = []
        for author, text, reply_to in posts:
            record = await discussion_storage.post(
                db,
                market_id=market_id,
                wallet=str(demo_keypair(author).pubkey()),
                content=text,
                parent_id=None if reply_to is None else ids[reply_to],
            )
            ids.append(record.id)
            written += 1
    return written


async def _indexed(db: Database, market_id: str, wait: float, poll: float) -> bool:
    """Whether the market is in the database, polling for up to ``wait`` seconds."""
    deadline = trio.current_time() + wait
    while True:
        if await market_storage.get_market(db, market_id) is not None:
            return True
        if trio.current_time() >= deadline:
            return False
        await trio.sleep(poll)


def demo_metadata(
    seed: DemoSeed, now: datetime | None = None
) -> list[tuple[str, str, MarketMetadataInput]]:
    """``(market_id hex, creator, metadata)`` for every seeded demo market."""
    now = now or datetime.now(UTC)
    items = []
    for slug, market in seed.markets.items():
        category, tags, description, source, days = DEMO_DETAILS.get(
            slug, ("general", (), market.question, "", 30)
        )
        items.append(
            (
                market.market_id.hex(),
                str(demo_keypair(market.creator).pubkey()),
                MarketMetadataInput(
                    title=market.question,
                    description=description,
                    category=category,
                    tags=tags,
                    resolution_source=source or None,
                    end_time=now + timedelta(days=days),
                ),
            )
        )
    return items


async def run(
    ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
) -> None:
    devchain = await ctx.services.get(DEVCHAIN)
    seed = devchain.seed
    if isinstance(seed, DemoSeed):
        db = await ctx.services.get(DATABASE)
        inserted = await market_storage.import_metadata(db, demo_metadata(seed))
        ctx.log.info(
            "demo market metadata registered", inserted=inserted, markets=len(seed.markets)
        )
    task_status.started()
    async with trio.open_nursery() as nursery:
        if isinstance(seed, DemoSeed):
            nursery.start_soon(_discussions, ctx, seed)
        await stopping.wait()
        nursery.cancel_scope.cancel()


async def _discussions(ctx: ActorContext, seed: DemoSeed) -> None:
    db = await ctx.services.get(DATABASE)
    written = await seed_discussions(db, seed)
    ctx.log.info("demo discussion posts written", posts=written)
