"""Votes (one per wallet per market per kind, changeable until aggregated) and discussions."""

from __future__ import annotations

import pytest

from tests.storage.conftest import sql, truncate
from tests.storage.factories import T0, market, market_id, signature, wallet
from zmartd.storage import discussions, markets, votes
from zmartd.storage.database import Database
from zmartd.storage.records import InvalidArgument, NotFound, NotPermitted, VoteLocked
from zmartd.storage.votes import ChainVote


async def test_offchain_votes_change_until_aggregated(db: Database) -> None:
    await truncate(db)
    await markets.upsert_markets(db, [market(0, state=0), market(1, state=2), market(2, state=4)])
    mid = market_id(0)
    first = await votes.cast_vote(db, kind="proposal", market_id=mid, wallet=wallet(1), vote=True)
    changed = await votes.cast_vote(
        db, kind="proposal", market_id=mid, wallet=wallet(1), vote=False
    )
    assert (first.vote, changed.vote, changed.created_at) == (True, False, first.created_at)
    for w in (2, 3):
        await votes.cast_vote(db, kind="proposal", market_id=mid, wallet=wallet(w), vote=True)
    tally = await votes.tally(db, kind="proposal", market_id=mid)
    assert (tally.yes, tally.no, tally.total, tally.pending) == (2, 1, 3, 3)

    agg = await votes.aggregate(db, kind="proposal", market_id=mid)
    assert (agg.yes, agg.no, agg.last_aggregation_id) == (2, 1, agg.last_aggregation_id)
    with pytest.raises(VoteLocked):
        await votes.cast_vote(db, kind="proposal", market_id=mid, wallet=wallet(1), vote=True)
    late = await votes.cast_vote(db, kind="proposal", market_id=mid, wallet=wallet(4), vote=False)
    assert late.aggregated_at is None
    tally = await votes.tally(db, kind="proposal", market_id=mid)
    assert (tally.yes, tally.no, tally.pending, tally.last_aggregation_id) == (
        2,
        2,
        1,
        agg.last_aggregation_id,
    )
    stamped = await votes.get_vote(db, kind="proposal", market_id=mid, wallet=wallet(1))
    assert stamped is not None and stamped.aggregation_id == agg.last_aggregation_id

    # state rules: proposal votes only while PROPOSED, dispute votes only while DISPUTED
    with pytest.raises(NotPermitted):
        await votes.cast_vote(
            db, kind="proposal", market_id=market_id(1), wallet=wallet(1), vote=True
        )
    with pytest.raises(NotFound):
        await votes.cast_vote(
            db, kind="dispute", market_id=market_id(9), wallet=wallet(1), vote=True
        )
    with pytest.raises(InvalidArgument):
        await votes.cast_vote(
            db,
            kind="resolution",  # type: ignore[arg-type]
            market_id=mid,
            wallet=wallet(1),
            vote=True,
        )
    d = await votes.cast_vote(
        db, kind="dispute", market_id=market_id(2), wallet=wallet(1), vote=True
    )
    assert d.kind == "dispute"
    mine = await votes.list_user_votes(db, wallet(1), limit=1)
    rest = await votes.list_user_votes(db, wallet(1), cursor=mine.next_cursor)
    assert {(v.kind, v.market_id) for v in mine.items + rest.items} == {
        ("proposal", mid),
        ("dispute", market_id(2)),
    }
    assert rest.next_cursor is None


async def test_onchain_votes_replace_offchain_and_are_final(db: Database) -> None:
    await truncate(db)
    await markets.upsert_markets(db, [market(0, state=0)])
    mid = market_id(0)
    await votes.cast_vote(db, kind="proposal", market_id=mid, wallet=wallet(1), vote=True)

    async def chain(con: object) -> int:
        return await votes.write_chain_votes(
            con,
            [
                ChainVote(
                    kind="proposal",
                    market_id=mid,
                    wallet=wallet(1),
                    vote=False,
                    signature=signature(1),
                    slot=9,
                    voted_at=T0,
                ),
                ChainVote(
                    kind="proposal",
                    market_id=mid,
                    wallet=wallet(2),
                    vote=True,
                    signature=signature(2),
                    slot=9,
                    voted_at=T0,
                ),
            ],
        )

    assert await db.run("test", chain) == 2
    assert await db.run("test", chain) == 0  # replay: on-chain rows are not rewritten
    v = await votes.get_vote(db, kind="proposal", market_id=mid, wallet=wallet(1))
    assert v is not None and (v.vote, v.source) == (False, "onchain")
    with pytest.raises(VoteLocked):
        await votes.cast_vote(db, kind="proposal", market_id=mid, wallet=wallet(2), vote=False)


async def test_one_vote_per_wallet_market_kind_in_the_schema(db: Database) -> None:
    await truncate(db)
    await markets.upsert_markets(db, [market(0, state=0)])
    insert = (
        "INSERT INTO proposal_votes (market_id, wallet, vote, source) "
        "VALUES ($1, $2, true, 'offchain')"
    )
    await sql(db, insert, market_id(0), wallet(1))
    with pytest.raises(Exception, match="duplicate key"):
        await sql(db, insert, market_id(0), wallet(1))
    # the same wallet may still vote on the other kind
    await sql(
        db,
        "INSERT INTO dispute_votes (market_id, wallet, vote, source) "
        "VALUES ($1, $2, true, 'offchain')",
        market_id(0),
        wallet(1),
    )
    with pytest.raises(Exception, match="proposal_votes_onchain"):
        await sql(
            db,
            "INSERT INTO proposal_votes (market_id, wallet, vote, source) "
            "VALUES ($1, $2, true, 'onchain')",
            market_id(0),
            wallet(2),
        )
    with pytest.raises(Exception, match="proposal_votes_aggregated"):
        await sql(db, "UPDATE proposal_votes SET aggregated_at = now()")
    # an aggregation of another kind cannot cover a proposal vote (composite foreign key)
    agg = await sql(
        db,
        "INSERT INTO vote_aggregations (market_id, kind, yes_count, no_count) "
        "VALUES ($1, 'dispute', 0, 0) RETURNING id",
        market_id(0),
    )
    with pytest.raises(Exception, match="foreign key"):
        await sql(
            db, "UPDATE proposal_votes SET aggregated_at = now(), aggregation_id = $1", agg[0]["id"]
        )


async def test_threads_and_soft_delete(db: Database) -> None:
    await truncate(db)
    await markets.upsert_markets(db, [market(0), market(1)])
    mid = market_id(0)
    root1 = await discussions.post(db, market_id=mid, wallet=wallet(1), content="first")
    r1a = await discussions.post(
        db, market_id=mid, wallet=wallet(2), content="reply", parent_id=root1.id
    )
    r1b = await discussions.post(
        db, market_id=mid, wallet=wallet(3), content="deep", parent_id=r1a.id
    )
    root2 = await discussions.post(db, market_id=mid, wallet=wallet(2), content="second")
    other = await discussions.post(db, market_id=market_id(1), wallet=wallet(1), content="x")
    await sql(db, "UPDATE discussions SET created_at = created_at + (id * interval '1 s')")
    with pytest.raises(NotFound):  # a parent from another market
        await discussions.post(db, market_id=mid, wallet=wallet(1), content="x", parent_id=other.id)
    with pytest.raises(InvalidArgument, match="content"):
        await discussions.post(db, market_id=mid, wallet=wallet(1), content="")
    with pytest.raises(NotFound):
        await discussions.post(db, market_id=market_id(5), wallet=wallet(1), content="x")

    with pytest.raises(NotPermitted):
        await discussions.delete_post(db, post_id=r1a.id, deleted_by=wallet(9))
    deleted = await discussions.delete_post(db, post_id=r1a.id, deleted_by=wallet(2))
    assert deleted.deleted and deleted.content is None
    with pytest.raises(NotFound):
        await discussions.delete_post(db, post_id=r1a.id, deleted_by=wallet(2))
    with pytest.raises(NotPermitted):
        await discussions.post(db, market_id=mid, wallet=wallet(1), content="x", parent_id=r1a.id)
    with pytest.raises(NotFound):
        await discussions.edit_post(db, post_id=r1a.id, wallet=wallet(2), content="back")
    edited = await discussions.edit_post(db, post_id=root2.id, wallet=wallet(2), content="2nd")
    assert edited.content == "2nd" and edited.edited_at is not None
    mod = await discussions.delete_post(
        db, post_id=root2.id, deleted_by="admin:alice", moderator=True
    )
    assert mod.deleted

    page = await discussions.list_threads(db, mid, limit=1)
    assert page.items[0].root.id == root2.id and page.items[0].root.content is None
    assert page.items[0].replies == ()
    page2 = await discussions.list_threads(db, mid, limit=1, cursor=page.next_cursor)
    thread = page2.items[0]
    assert page2.next_cursor is None and thread.root.content == "first"
    assert [(p.id, p.parent_id, p.content, p.deleted) for p in thread.replies] == [
        (r1a.id, root1.id, None, True),
        (r1b.id, r1a.id, "deep", False),
    ]
    got = await discussions.get_post(db, r1a.id)
    assert got is not None and got.content is None
    # the text is still stored (moderation, audit) but no read returns it
    raw = await sql(db, "SELECT content FROM discussions WHERE id = $1", r1a.id)
    assert raw[0]["content"] == "reply"
    with pytest.raises(Exception, match="discussions_deleted_by"):
        await sql(db, "UPDATE discussions SET deleted_at = now() WHERE id = $1", root1.id)
    assert (await discussions.list_threads(db, market_id(1))).items[0].root.id == other.id
