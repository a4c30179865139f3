"""Auth (nonces, sessions), profiles, audit log, chain bookkeeping, anchors and stats."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from ipaddress import ip_address

import pytest
import trio

from tests.storage.conftest import sql, truncate
from tests.storage.factories import T0, market, market_id, signature, trade, wallet
from zmartd.storage import (
    anchors,
    audit,
    auth,
    chain,
    discussions,
    markets,
    positions,
    stats,
    trades,
    users,
    votes,
)
from zmartd.storage.chain import EventKey
from zmartd.storage.database import Database
from zmartd.storage.positions import PositionState
from zmartd.storage.records import InvalidArgument, NotPermitted


async def test_nonce_is_single_use_bound_and_expiring(db: Database) -> None:
    await truncate(db)
    n = await auth.create_nonce(db, wallet=wallet(1), domain="zmart.io", ttl=timedelta(minutes=5))
    assert n.nonce.isalnum() and len(n.nonce) == 24 and n.used_at is None
    assert await auth.consume_nonce(db, nonce=n.nonce, wallet=wallet(2), domain="zmart.io") is None
    assert await auth.consume_nonce(db, nonce=n.nonce, wallet=wallet(1), domain="evil.io") is None

    # many concurrent sign-ins with the same nonce: exactly one wins
    results: list[object] = []

    async def attempt() -> None:
        results.append(
            await auth.consume_nonce(db, nonce=n.nonce, wallet=wallet(1), domain="zmart.io")
        )

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(attempt)
    assert len([r for r in results if r is not None]) == 1

    expired = await auth.create_nonce(
        db, wallet=wallet(1), domain="zmart.io", ttl=timedelta(minutes=5)
    )
    await sql(
        db,
        "UPDATE auth_nonces SET issued_at = now() - interval '2 h', "
        "expires_at = now() - interval '1 h' WHERE nonce = $1",
        expired.nonce,
    )
    assert (
        await auth.consume_nonce(db, nonce=expired.nonce, wallet=wallet(1), domain="zmart.io")
        is None
    )
    with pytest.raises(InvalidArgument):
        await auth.create_nonce(db, wallet=wallet(1), domain="zmart.io", ttl=timedelta(0))
    await sql(
        db,
        "UPDATE auth_nonces SET issued_at = now() - interval '3 days', "
        "expires_at = now() - interval '2 days'",
    )
    assert await auth.purge_expired(db) == 2


async def test_sessions_store_only_the_hash_and_revoke(db: Database) -> None:
    await truncate(db)
    token, rec = await auth.create_session(
        db,
        wallet=wallet(1),
        ttl=timedelta(hours=1),
        user_agent="ua" * 400,
        ip=ip_address("10.0.0.1"),
    )
    stored = await sql(db, "SELECT token_hash, user_agent FROM sessions")
    assert stored[0]["token_hash"] == hashlib.sha256(token.encode()).digest()
    assert token.encode() not in stored[0]["token_hash"] and len(stored[0]["user_agent"]) == 512
    assert await auth.get_session(db, token) == rec
    assert await auth.get_session(db, token + "x") is None
    user = await users.get_user(db, wallet(1))
    assert user is not None and user.last_login_at is not None  # sign-in creates the user

    token2, _ = await auth.create_session(db, wallet=wallet(1), ttl=timedelta(hours=1))
    assert await auth.revoke_session(db, token)
    assert not await auth.revoke_session(db, token)
    assert await auth.get_session(db, token) is None
    assert await auth.get_session(db, token2) is not None
    assert await auth.revoke_wallet_sessions(db, wallet(1)) == 1
    assert await auth.get_session(db, token2) is None
    token3, _ = await auth.create_session(db, wallet=wallet(2), ttl=timedelta(hours=1))
    await sql(
        db,
        "UPDATE sessions SET created_at = now() - interval '2 h', "
        "expires_at = now() - interval '1 h'",
    )
    assert await auth.get_session(db, token3) is None


async def test_profiles(db: Database) -> None:
    await truncate(db)
    u = await users.update_profile(
        db, wallet(1), {"display_name": "Alice", "display_name_key": "alice", "bio": "hi"}
    )
    assert (u.display_name, u.bio, u.avatar_url) == ("Alice", "hi", None)
    u = await users.update_profile(db, wallet(1), {"avatar_url": "https://x.io/a.png"})
    assert (u.display_name, u.avatar_url) == ("Alice", "https://x.io/a.png")
    u = await users.update_profile(db, wallet(1), {"bio": None})
    assert u.bio is None
    with pytest.raises(NotPermitted):  # the key is unique
        await users.update_profile(
            db, wallet(2), {"display_name": "ALICE", "display_name_key": "alice"}
        )
    with pytest.raises(InvalidArgument):  # a name always comes with its key
        await users.update_profile(db, wallet(2), {"display_name": "Bob"})
    with pytest.raises(InvalidArgument, match="unknown profile fields: admin"):
        await users.update_profile(db, wallet(2), {"admin": "yes"})
    with pytest.raises(InvalidArgument):
        await users.update_profile(db, wallet(2), {"avatar_url": "javascript:alert(1)"})
    with pytest.raises(InvalidArgument):
        await users.update_profile(db, "not a wallet", {"bio": "x"})
    assert await users.get_user(db, wallet(3)) is None


async def test_audit_log_is_append_only(db: Database) -> None:
    await truncate(db)
    for i in range(5):
        await audit.record_admin_action(
            db,
            actor="admin:alice" if i % 2 else "admin:bob",
            action="market.cancel",
            target_type="market",
            target_id=market_id(i),
            details={"reason": f"r{i}"},
            ip=ip_address("::1"),
            request_id=f"req{i}",
        )
    page = await audit.list_admin_actions(db, limit=2)
    rest = await audit.list_admin_actions(db, limit=10, cursor=page.next_cursor)
    entries = page.items + rest.items
    assert [e.details["reason"] for e in entries] == ["r4", "r3", "r2", "r1", "r0"]
    assert entries[0].ip == "::1"
    alice = await audit.list_admin_actions(db, actor="admin:alice")
    assert len(alice.items) == 2
    target = await audit.list_admin_actions(db, target_type="market", target_id=market_id(3))
    assert [e.request_id for e in target.items] == ["req3"]
    with pytest.raises(Exception, match="append-only"):
        await sql(db, "UPDATE admin_audit_log SET actor = 'x'")
    with pytest.raises(Exception, match="append-only"):
        await sql(db, "DELETE FROM admin_audit_log")
    with pytest.raises(InvalidArgument):
        await audit.record_admin_action(db, actor="a", action="Not An Action")


async def test_chain_cursor_claims_and_dead_letters(db: Database) -> None:
    await truncate(db)
    assert await chain.get_cursor(db, "live") is None
    assert await chain.advance_cursor(db, "live", slot=100, signature=signature(1))
    assert not await chain.advance_cursor(db, "live", slot=99, signature=signature(2))
    assert await chain.advance_cursor(db, "live", slot=101, signature=signature(3), block_time=T0)
    cur = await chain.get_cursor(db, "live")
    assert cur is not None and (cur.slot, cur.signature) == (101, signature(3))

    await markets.upsert_markets(db, [market(0, slot=100)])
    keys = [EventKey(signature=signature(i), instruction_index=0, slot=100) for i in range(3)]

    async def unit(con: object) -> set[tuple[str, int, int]]:
        # one transaction: claim, apply, advance the watermark
        new = await chain.write_claims(con, keys)
        await trades.write_trades(
            con, [trade(i, slot=100) for i in range(3) if (signature(i), 0, 0) in new]
        )
        await chain.write_cursor(con, "live", slot=102, signature=signature(2))
        return new

    assert len(await db.run("test", unit)) == 3
    assert await db.run("test", unit) == set()  # exactly once

    async def failing(con: object) -> None:
        await chain.write_claims(
            con, [EventKey(signature=signature(7), instruction_index=1, slot=103)]
        )
        await chain.write_cursor(con, "live", slot=103, signature=signature(7))
        raise RuntimeError("effects failed")

    with pytest.raises(RuntimeError):
        await db.run("test", failing)
    cur = await chain.get_cursor(db, "live")
    assert cur is not None and cur.slot == 102  # the watermark rolled back with the effects
    assert (
        len(
            await db.run(
                "test",
                lambda con: chain.write_claims(
                    con, [EventKey(signature=signature(7), instruction_index=1, slot=103)]
                ),
            )
        )
        == 1
    )

    assert await chain.mark_finalized(db, 100) == 1 + 3 + 3  # market, trades, claims
    dl = await chain.record_dead_letter(
        db, signature=signature(9), slot=5, reason="bad", payload={"logs": ["x"]}
    )
    dl2 = await chain.record_dead_letter(db, signature=signature(9), slot=5, reason="still bad")
    assert (dl2.attempts, dl2.reason, dl2.payload) == (2, "still bad", {"logs": ["x"]})
    assert [d.id for d in await chain.list_dead_letters(db)] == [dl.id]
    assert await chain.resolve_dead_letter(db, signature(9))
    assert await chain.list_dead_letters(db) == ()


async def test_anchors(db: Database) -> None:
    await truncate(db)
    cid = "Qm" + "a" * 44
    a = await anchors.record_anchor(
        db,
        kind="discussions",
        market_id=market_id(1),
        cid=cid,
        content_sha256=b"\x01" * 32,
        size_bytes=10,
    )
    again = await anchors.record_anchor(
        db,
        kind="discussions",
        market_id=market_id(1),
        cid=cid,
        content_sha256=b"\x01" * 32,
        size_bytes=10,
    )
    assert again.id == a.id
    g = await anchors.record_anchor(
        db,
        kind="votes",
        market_id=None,
        cid="b" + "a" * 30,
        content_sha256=b"\x02" * 32,
        size_bytes=1,
    )
    assert (
        await anchors.record_anchor(
            db,
            kind="votes",
            market_id=None,
            cid="b" + "a" * 30,
            content_sha256=b"\x02" * 32,
            size_bytes=1,
        )
    ).id == g.id
    assert await anchors.mark_pinned(db, a.id) and not await anchors.mark_pinned(db, a.id)
    latest = await anchors.latest_anchor(db, kind="discussions", market_id=market_id(1))
    assert latest is not None and latest.pinned_at is not None
    assert len(await anchors.list_anchors(db)) == 2
    with pytest.raises(InvalidArgument):
        await anchors.record_anchor(
            db,
            kind="votes",
            market_id=None,
            cid="not-a-cid",
            content_sha256=b"\x02" * 32,
            size_bytes=1,
        )


async def test_platform_and_user_stats(db: Database) -> None:
    await truncate(db)
    await markets.upsert_markets(
        db,
        [
            market(0, state=5, final_outcome=True, volume=300, creator=1),
            market(1, state=5, final_outcome=False, volume=200),
            market(2, state=2, volume=100, creator=1),
            market(3, state=0),
        ],
    )
    await trades.insert_trades(
        db,
        [
            trade(0, market=0, who=1, amount=100),
            trade(1, market=1, who=1, amount=50),
            trade(2, market=1, who=1, side="sell", amount=20),
            trade(3, market=2, who=2, amount=7),
        ],
    )

    def p(m: int, yes: int, no: int, claimed: int = 0) -> PositionState:
        return PositionState(
            market_id=market_id(m),
            wallet=wallet(1),
            address=wallet(500 + m),
            shares_yes=yes,
            shares_no=no,
            total_invested=1,
            trades_count=1,
            last_trade_at=T0,
            slot=1,
            has_claimed=claimed > 0,
            claimed_amount=claimed,
        )

    await positions.upsert_positions(db, [p(0, 10, 0, claimed=90), p(1, 5, 0), p(2, 1, 1)])
    await votes.cast_vote(db, kind="proposal", market_id=market_id(3), wallet=wallet(1), vote=True)
    await discussions.post(db, market_id=market_id(0), wallet=wallet(1), content="gg")
    await users.update_profile(db, wallet(1), {"display_name": "one", "display_name_key": "one"})

    s = await stats.user_stats(db, wallet(1))
    assert (s.trades, s.bought, s.sold, s.volume, s.claimed) == (3, 150, 20, 170, 90)
    assert (s.markets_traded, s.open_positions, s.winning_positions, s.losing_positions) == (
        3,
        1,
        1,
        1,
    )
    assert (s.markets_created, s.proposal_votes, s.dispute_votes, s.discussions) == (2, 1, 0, 1)
    empty = await stats.user_stats(db, wallet(42))
    assert (empty.trades, empty.volume, empty.markets_traded) == (0, 0, 0)

    ps = await stats.platform_stats(db)
    assert (ps.markets, ps.total_volume, ps.trades, ps.traders, ps.users) == (4, 600, 4, 1, 1)
    assert ps.markets_by_state == {0: 1, 1: 0, 2: 1, 3: 0, 4: 0, 5: 2, 6: 0}
    assert ps.volume_24h == 0  # the trades are from 2026-01-01 (T0), not the last day
