"""The one_for_one supervisor: restarts, backoff, intensity, stop order."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from zmartd.supervisor import (
    ChildSpec,
    ChildState,
    Restart,
    RestartIntensityExceeded,
    Supervisor,
    SupervisorPolicy,
)

NO_JITTER = SupervisorPolicy(
    max_restarts=5, restart_window=60, backoff_initial=0.5, backoff_max=30, backoff_jitter=0.0
)


def actor(
    events: list[tuple[str, float]],
    name: str,
    *,
    fail_times: int = 0,
    ready: bool = True,
    ignore_stop: bool = False,
    return_after: float | None = None,
) -> Any:
    """A test actor that records what happens to it."""
    runs = 0

    async def run(stopping: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        nonlocal runs
        runs += 1
        events.append((f"{name}:start", trio.current_time()))
        if runs <= fail_times:
            raise RuntimeError(f"{name} boom {runs}")
        if ready:
            task_status.started()
        try:
            if return_after is not None:
                await trio.sleep(return_after)
                events.append((f"{name}:return", trio.current_time()))
                return
            if ignore_stop:
                await trio.sleep_forever()
            await stopping.wait()
            events.append((f"{name}:stop", trio.current_time()))
        except trio.Cancelled:
            events.append((f"{name}:cancelled", trio.current_time()))
            raise

    return run


async def wait_until(pred: Callable[[], bool], timeout: float = 30) -> None:
    with trio.fail_after(timeout):
        while not pred():
            await trio.sleep(0.01)


async def test_crashing_actor_is_restarted_with_exponential_backoff(autojump_clock: Any) -> None:
    events: list[tuple[str, float]] = []
    sup = Supervisor("t", [ChildSpec("a", actor(events, "a", fail_times=3))], NO_JITTER)
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        await wait_until(lambda: sup.status("a").state is ChildState.RUNNING)
        status = sup.status("a")
        assert status.restarts == 3
        assert status.last_error == "RuntimeError: a boom 3"
        starts = [t for e, t in events if e == "a:start"]
        gaps = [round(b - a, 3) for a, b in itertools.pairwise(starts)]
        assert gaps == [0.5, 1.0, 2.0]
        await sup.stop()


async def test_crash_storm_escalates(autojump_clock: Any) -> None:
    events: list[tuple[str, float]] = []
    policy = SupervisorPolicy(
        max_restarts=3, restart_window=60, backoff_initial=0.1, backoff_jitter=0.0
    )
    sup = Supervisor(
        "root",
        [
            ChildSpec("ok", actor(events, "ok")),
            ChildSpec("bad", actor(events, "bad", fail_times=10**6)),
        ],
        policy,
    )
    with pytest.raises(RestartIntensityExceeded) as info:
        await sup.run()
    assert info.value.child == "bad"
    assert "more than 3 restarts within 60s" in str(info.value)
    assert sup.status("bad").state is ChildState.FAILED
    # The healthy sibling was stopped gracefully, not just abandoned.
    assert "ok:stop" in [e for e, _ in events]
    assert len([e for e, _ in events if e == "bad:start"]) == 4


async def test_restarts_spread_over_time_do_not_escalate(autojump_clock: Any) -> None:
    """Intensity counts restarts within the window only."""
    events: list[tuple[str, float]] = []
    policy = SupervisorPolicy(
        max_restarts=2, restart_window=10, backoff_initial=0.1, backoff_jitter=0.0
    )
    crashes = 0

    async def flaky(stopping: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        nonlocal crashes
        task_status.started()
        await trio.sleep(20)  # runs longer than the window, then crashes
        crashes += 1
        raise RuntimeError("late crash")

    sup = Supervisor("t", [ChildSpec("f", flaky)], policy)
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        await wait_until(lambda: crashes >= 5, timeout=500)
        assert sup.status("f").state in (
            ChildState.RUNNING,
            ChildState.RESTARTING,
            ChildState.STARTING,
        )
        await sup.stop()
    del events


async def test_stop_runs_in_reverse_order_and_cancels_stuck_children(autojump_clock: Any) -> None:
    events: list[tuple[str, float]] = []
    sup = Supervisor(
        "t",
        [
            ChildSpec("first", actor(events, "first")),
            ChildSpec("stuck", actor(events, "stuck", ignore_stop=True), shutdown_timeout=2.0),
            ChildSpec("last", actor(events, "last")),
        ],
        NO_JITTER,
    )
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        await wait_until(lambda: sup.ready)
        t0 = trio.current_time()
        await sup.stop()
    names = [e for e, _ in events if not e.endswith(":start")]
    assert names == ["last:stop", "stuck:cancelled", "first:stop"]
    stuck_at = next(t for e, t in events if e == "stuck:cancelled")
    assert stuck_at - t0 == pytest.approx(2.0)
    assert all(s.state is ChildState.STOPPED for s in sup.statuses())


async def test_overall_stop_timeout_bounds_shutdown(autojump_clock: Any) -> None:
    events: list[tuple[str, float]] = []
    sup = Supervisor(
        "t",
        [
            ChildSpec("a", actor(events, "a", ignore_stop=True), shutdown_timeout=10),
            ChildSpec("b", actor(events, "b", ignore_stop=True), shutdown_timeout=10),
        ],
    )
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        await wait_until(lambda: sup.ready)
        t0 = trio.current_time()
        await sup.stop(timeout=3)
        assert trio.current_time() - t0 == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("restart", "crash", "expect_restart", "final"),
    [
        (Restart.PERMANENT, False, True, None),
        (Restart.PERMANENT, True, True, None),
        (Restart.TRANSIENT, False, False, ChildState.STOPPED),
        (Restart.TRANSIENT, True, True, None),
        (Restart.TEMPORARY, False, False, ChildState.STOPPED),
        (Restart.TEMPORARY, True, False, ChildState.FAILED),
    ],
)
async def test_restart_policies(
    autojump_clock: Any,
    restart: Restart,
    crash: bool,
    expect_restart: bool,
    final: ChildState | None,
) -> None:
    runs = 0

    async def once(stopping: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        nonlocal runs
        runs += 1
        task_status.started()
        if runs == 1:
            await trio.sleep(1)
            if crash:
                raise ValueError("first run fails")
            return
        await stopping.wait()

    sup = Supervisor("t", [ChildSpec("c", once, restart=restart)], NO_JITTER)
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        await trio.sleep(10)
        assert (runs == 2) is expect_restart
        if final is not None:
            assert sup.status("c").state is final
        else:
            assert sup.status("c").state is ChildState.RUNNING
        await sup.stop()


async def test_restart_child_is_graceful_and_not_counted(autojump_clock: Any) -> None:
    events: list[tuple[str, float]] = []
    policy = SupervisorPolicy(max_restarts=0, restart_window=60)
    sup = Supervisor("t", [ChildSpec("a", actor(events, "a"))], policy)
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        await wait_until(lambda: sup.ready)
        for _ in range(3):
            await sup.restart_child("a")
            await wait_until(lambda: sup.ready)
        assert sup.status("a").restarts == 0
        assert [e for e, _ in events] == ["a:start", "a:stop"] * 3 + ["a:start"]
        await sup.stop()


async def test_children_can_be_added_and_removed(autojump_clock: Any) -> None:
    events: list[tuple[str, float]] = []
    sup = Supervisor("t", [ChildSpec("a", actor(events, "a"))])
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        await sup.add_child(ChildSpec("b", actor(events, "b")), index=0)
        await wait_until(lambda: sup.ready)
        assert [s.name for s in sup.statuses()] == ["b", "a"]
        await sup.remove_child("a")
        assert [s.name for s in sup.statuses()] == ["b"]
        assert "a:stop" in [e for e, _ in events]
        with pytest.raises(ValueError, match="already exists"):
            await sup.add_child(ChildSpec("b", actor(events, "b")))
        await sup.stop()
    assert [e for e, _ in events][-1] == "b:stop"


async def test_not_ready_until_started_and_required_only(autojump_clock: Any) -> None:
    events: list[tuple[str, float]] = []
    gate = trio.Event()

    async def slow(stopping: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        await gate.wait()
        task_status.started()
        await stopping.wait()

    sup = Supervisor(
        "t",
        [
            ChildSpec("slow", slow),
            ChildSpec(
                "optional",
                actor(events, "optional", fail_times=10**6),
                required=False,
                restart=Restart.TEMPORARY,
            ),
        ],
    )
    async with trio.open_nursery() as n:
        await n.start(sup.run)
        await trio.sleep(1)
        assert sup.status("slow").state is ChildState.STARTING
        assert not sup.ready
        gate.set()
        await wait_until(lambda: sup.ready)
        assert sup.status("optional").state is ChildState.FAILED
        await sup.stop()


def test_duplicate_names_rejected() -> None:
    async def noop(stopping: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()

    with pytest.raises(ValueError, match="duplicate"):
        Supervisor("t", [ChildSpec("x", noop), ChildSpec("x", noop)])


@given(
    attempt=st.integers(1, 40),
    initial=st.floats(0.01, 5),
    cap=st.floats(0.01, 100),
    jitter=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_backoff_is_exponential_capped_and_jittered(
    attempt: int, initial: float, cap: float, jitter: float, seed: int
) -> None:
    policy = SupervisorPolicy(backoff_initial=initial, backoff_max=cap, backoff_jitter=jitter)
    base = min(cap, initial * 2 ** (attempt - 1))
    delay = policy.backoff(attempt, random.Random(seed))
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9
