"""The monitor's storage and one cycle in process, on the real PostgreSQL (a
schema of this module): the alert lifecycle (one row per condition, repeats
suppressed, resolved, firing again), and the chain clock as the only clock --
this server's clock skewed by hours changes nothing, the chain's decides to
the second."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.sender.conftest import db, module_dsn  # noqa: F401  (fixtures)
from tests.storage import factories as f
from zmartd.bus import Bus
from zmartd.config import default_config
from zmartd.context import ActorContext, Health
from zmartd.monitor import actor as monitor_actor
from zmartd.monitor.actor import Monitor, finalize_key
from zmartd.monitor.metrics import MonitorMetrics
from zmartd.observability import Metrics
from zmartd.services import Services
from zmartd.storage import alerts
from zmartd.storage import markets as markets_store
from zmartd.storage.alerts import Observation
from zmartd.storage.database import Database
from zmartd.storage.intents import list_intents
from zmartd.supervisor import ChildStatus

DISPUTE_PERIOD = 259_200
PROPOSED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEADLINE = int(PROPOSED.timestamp()) + DISPUTE_PERIOD


async def _reset(database: Database) -> None:
    async def _run(con: Any) -> None:
        await con.execute("TRUNCATE alerts, intents, markets, global_config CASCADE")
        await con.execute(
            "INSERT INTO global_config (address, admin, backend_authority, protocol_fee_wallet, "
            "protocol_fee_bps, resolver_reward_bps, liquidity_provider_fee_bps, "
            "proposal_approval_threshold, dispute_success_threshold, min_resolution_delay, "
            "dispute_period, is_paused, slot) VALUES ($1, $2, $2, $2, 100, 100, 100, 7000, "
            "6000, 86400, $3, false, 1)",
            f.address(1),
            f.wallet(1),
            DISPUTE_PERIOD,
        )

    await database.run("test.reset", _run)


async def test_one_alert_per_condition(db: Database) -> None:  # noqa: F811
    await _reset(db)
    obs = Observation(key="test:a", severity="warning", title="A", details={"n": 1})
    first, due = await alerts.observe(db, obs, repeat_after=3600)
    assert due == "new" and first.count == 1 and first.state == "firing"
    await alerts.record_notified(db, first.id, sent=["webhook"], failed=1)
    again, due = await alerts.observe(db, obs, repeat_after=3600)
    assert due == "quiet" and again.id == first.id and again.count == 2
    assert again.first_seen == first.first_seen and again.notified == ("webhook",)
    assert again.notify_failures == 1
    # once repeat_after has passed since the last notice, a repeat is due
    _, due = await alerts.observe(db, obs, repeat_after=0)
    assert due == "repeat"
    # another condition is untouched by resolving this one's absence
    other, _ = await alerts.observe(
        db, Observation(key="test:b", severity="critical", title="B"), repeat_after=3600
    )
    [resolved] = await alerts.resolve_absent(db, ["test:b"])
    assert resolved.dedup_key == "test:a" and resolved.state == "resolved"
    assert resolved.resolved_at is not None
    assert await alerts.resolve_absent(db, ["test:b"]) == []  # resolved once
    # the condition returns: a new episode, notified again
    back, due = await alerts.observe(db, obs, repeat_after=3600)
    assert due == "new" and back.id == first.id and back.count == 1 and back.notified == ()
    assert back.state == "firing" and back.resolved_at is None
    assert await alerts.firing_by_severity(db) == {"info": 0, "warning": 1, "critical": 1}
    page = await alerts.list_alerts(db, state="firing", severity="critical")
    assert [a.id for a in page.items] == [other.id] and page.next_cursor is None


class FakeChain:
    """The two reads the monitor makes of the chain: its slot and block time."""

    def __init__(self, unix: int) -> None:
        self.unix = unix

    async def get_slot(self, commitment: str) -> int:
        return 1000

    async def request(self, method: str, params: list[Any]) -> tuple[Any, None]:
        assert method == "getBlockTime", method
        return self.unix, None


def _monitor(database: Database, chain: FakeChain) -> Monitor:
    ctx = ActorContext(
        name="monitor",
        config=default_config(),
        bus=Bus(),
        metrics=Metrics(),
        services=Services(),
        health=Health(),
        statuses=lambda: [],
        facts=lambda: {},
    )
    return Monitor(ctx, database, chain, MonitorMetrics())  # type: ignore[arg-type]


async def test_chain_clock_decides_not_the_servers(
    db: Database,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _reset(db)
    m = f.market(7, state=3, resolution_proposed_at=PROPOSED)
    await markets_store.upsert_markets(db, [m])
    # this server's clock runs 6 hours ahead: past the deadline by its own reckoning
    skew = DEADLINE + 6 * 3600 - time.time()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + skew)

    class SkewedDateTime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.fromtimestamp(time.time(), tz)

    monkeypatch.setattr(monitor_actor, "datetime", SkewedDateTime)
    chain = FakeChain(DEADLINE - 1)  # the chain: one second before the window ends
    mon = _monitor(db, chain)
    for _ in range(3):
        await mon.cycle()
    assert await list_intents(db) == []
    chain.unix = DEADLINE  # the program accepts finalize_market from this second on
    await mon.cycle()
    await mon.cycle()
    [intent] = await list_intents(db)
    assert intent.kind == "finalize_market" and intent.args == {}
    assert intent.market_id == m.market_id
    assert intent.idempotency_key == finalize_key(m.market_id, PROPOSED)
    # a second monitor (a restart, another instance) stores nothing new
    await _monitor(db, chain).cycle()
    assert [i.id for i in await list_intents(db)] == [intent.id]


async def test_stuck_and_overdue_markets_alert_with_who_to_ask(db: Database) -> None:  # noqa: F811
    await _reset(db)
    now = PROPOSED + timedelta(days=30)
    disputed = f.market(
        8,
        state=4,
        resolution_proposed_at=PROPOSED,
        dispute_initiated_at=PROPOSED,
        resolver=f.wallet(9),
    )
    proposed = f.market(9, state=0, created=PROPOSED)
    await markets_store.upsert_markets(db, [disputed, proposed])
    mon = _monitor(db, FakeChain(int(now.timestamp())))
    await mon.cycle()
    page = await alerts.list_alerts(db, limit=10)
    keys = {a.dedup_key: a for a in page.items}
    assert set(keys) == {
        f"dispute_overdue:{disputed.market_id}",
        f"stuck:{disputed.market_id}:4",
        f"stuck:{proposed.market_id}:0",
    }
    overdue = keys[f"dispute_overdue:{disputed.market_id}"]
    assert overdue.severity == "critical"
    assert overdue.details["creator"] == disputed.creator
    assert overdue.details["resolver"] == f.wallet(9)
    # no channel configured: stored all the same, notified to nobody
    assert all(a.notified == () and a.notified_at is not None for a in page.items)
    # pages of one
    first = await alerts.list_alerts(db, limit=1)
    second = await alerts.list_alerts(db, limit=1, cursor=first.next_cursor)
    assert first.items[0].id > second.items[0].id


async def test_failing_intents_and_restarting_actors_alert(db: Database) -> None:  # noqa: F811
    await _reset(db)
    m = f.market(10, state=2)
    await markets_store.upsert_markets(db, [m])

    async def _intents(con: Any) -> None:
        await con.execute(
            "INSERT INTO intents (kind, market_id, args, idempotency_key, state, attempts, "
            "last_error) VALUES ('approve_proposal', $1, '{}', 'test:failed', 'failed', 1, "
            "'InvalidMarketState'), ('cancel_market', $1, '{}', 'test:retrying', 'pending', 5, "
            "'timeout'), ('cancel_market', $1, '{}', 'test:fine', 'pending', 1, NULL)",
            m.market_id,
        )

    await db.run("test.intents", _intents)
    mon = _monitor(db, FakeChain(int(PROPOSED.timestamp())))
    mon.ctx.statuses = lambda: [
        ChildStatus(name="indexer", restarts=4, last_error="OSError: boom"),
        ChildStatus(name="http", restarts=1),
    ]
    await mon.cycle()
    firing = {a.dedup_key: a for a in (await alerts.list_alerts(db, state="firing")).items}
    failing = [a for k, a in firing.items() if k.startswith("intent_failing:")]
    assert sorted((a.details["kind"], a.severity) for a in failing) == [
        ("approve_proposal", "critical"),
        ("cancel_market", "warning"),
    ]
    restarts = firing["actor_restarts:indexer"]
    assert restarts.details == {"actor": "indexer", "restarts": 4, "last_error": "OSError: boom"}
    assert "actor_restarts:http" not in firing
    # the failed intent is retried and lands: its alert resolves on the next cycle
    await db.run(
        "test.land",
        lambda con: con.execute(
            "UPDATE intents SET state = 'landed' WHERE attempts = 1 "
            "AND idempotency_key = 'test:failed'"
        ),
    )
    await mon.cycle()
    still = {a.dedup_key for a in (await alerts.list_alerts(db, state="firing")).items}
    assert len([k for k in still if k.startswith("intent_failing:")]) == 1
