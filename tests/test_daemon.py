"""The daemon in-process: tree from config, ops endpoints, reload, escalation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import trio

from zmartd.app import EXIT_ESCALATED, EXIT_OK, Daemon
from zmartd.config import load_config
from zmartd.context import ActorContext
from zmartd.model.services import HTTP_URLS
from zmartd.supervisor import Restart
from zmartd.tree import TREE, ActorDecl

BASE = """
[daemon]
data_dir = "{data}"
shutdown_timeout = 5
backoff_initial = 0.05
backoff_jitter = 0
max_restarts = {max_restarts}
[http]
port = 0
graceful_timeout = 0.5
[log]
level = "warning"
format = "json"
"""


def write_config(tmp_path: Path, extra: str = "", max_restarts: int = 5) -> Path:
    path = tmp_path / "zmartd.toml"
    path.write_text(BASE.format(data=tmp_path / "var", max_restarts=max_restarts) + extra)
    return path


class Worker:
    """A fake actor that records its starts and can be told to fail."""

    def __init__(self, fail: bool = False, ready: bool = True) -> None:
        self.starts = 0
        self.configs: list[Any] = []
        self.fail = fail
        self.ready = ready

    async def run(
        self, ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
    ) -> None:
        self.starts += 1
        self.configs.append(ctx.config)
        if self.fail:
            raise RuntimeError(f"worker failure #{self.starts}")
        if self.ready:
            task_status.started()
        await stopping.wait()


def tree_with(worker: Worker, *, required: bool = True) -> tuple[ActorDecl, ...]:
    http = next(d for d in TREE if d.name == "http")
    return (
        ActorDecl(
            "worker",
            worker.run,
            sections=("aggregator",),
            description="test worker",
            enabled=lambda cfg: cfg.aggregator.enabled,
            required=lambda cfg: required,
            restart=Restart.PERMANENT,
        ),
        http,
    )


async def wait_for(pred: Any, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not pred():
            await trio.sleep(0.01)


async def http_url(daemon: Daemon) -> str:
    urls: list[str] = await daemon.services.get(HTTP_URLS)
    return urls[0]


async def test_ops_endpoints_report_actor_status(tmp_path: Path) -> None:
    worker = Worker(ready=False)
    daemon = Daemon(load_config(write_config(tmp_path)), None, tree_with(worker))
    async with trio.open_nursery() as n:
        n.start_soon(daemon.run)
        base = await http_url(daemon)
        async with httpx.AsyncClient(base_url=base) as client:
            ready = await client.get("/ready")
            assert ready.status_code == 503
            assert ready.headers["retry-after"] == "1"
            body = ready.json()
            assert body["status"] == "not ready"
            assert body["problems"] == [
                {"actor": "worker", "state": "starting", "degraded": None, "last_error": None}
            ]
            health = await client.get("/health")
            assert health.status_code == 200
            assert "server" not in health.headers  # issue 22: was "hypercorn-h11"
            assert "server" not in (await client.get("/v1/nope")).headers
            actors = {a["name"]: a for a in health.json()["actors"]}
            assert actors["http"]["state"] == "running"
            assert actors["worker"]["state"] == "starting"
            # An actor that reports itself degraded makes /ready fail too.
            daemon.health.set_degraded("http", "database unreachable")
            assert (await client.get("/ready")).json()["actors"]["http"] == "degraded"
            daemon.health.set_degraded("http", None)
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            text = metrics.text
            assert 'zmartd_actor_up{actor="http"} 1.0' in text
            assert 'zmartd_actor_up{actor="worker"} 0.0' in text
            assert "zmartd_ready 0.0" in text
            assert 'zmartd_http_requests_total{method="GET",route="/ready",status="503"}' in text
            assert (await client.get("/nope")).status_code == 404
            assert 'route="unmatched"' in (await client.get("/metrics")).text
            om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
            assert om.text.rstrip().endswith("# EOF")
        await daemon.shutdown()


async def test_reload_restarts_only_changed_actors(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    worker = Worker()
    daemon = Daemon(load_config(path), path, tree_with(worker))
    async with trio.open_nursery() as n:
        n.start_soon(daemon.run)
        await wait_for(lambda: daemon.supervisor.ready)
        old_url = await http_url(daemon)
        async with httpx.AsyncClient(base_url=old_url) as client:
            health = (await client.get("/health")).json()
        # public in the bundled nginx site: no path of this host (issue 22, finding 8)
        assert "config_path" not in health and str(tmp_path) not in json.dumps(health)
        assert health["config_generation"] == 1

        # A section nobody depends on: nothing restarts.
        path.write_text(path.read_text() + "\n[ws]\nheartbeat_interval = 12\n")
        assert await daemon.reload()
        assert worker.starts == 1
        assert daemon.generation == 2

        # The worker's section: only the worker restarts, with the new config.
        path.write_text(path.read_text() + "\n[aggregator]\ninterval = 42\n")
        assert await daemon.reload()
        await wait_for(lambda: worker.starts == 2 and daemon.supervisor.ready)
        assert worker.configs[-1].aggregator.interval == 42
        assert await http_url(daemon) == old_url  # http untouched (same ephemeral port)
        assert daemon.supervisor.status("worker").restarts == 0

        # An invalid file: rejected, old config kept, counter bumped.
        good = path.read_text()
        path.write_text(good + "\n[http]\nprot = 1\n")
        assert not await daemon.reload()
        assert daemon.generation == 3
        assert daemon.config.aggregator.interval == 42
        assert daemon.metrics.config_reload_failures._value.get() == 1

        # Disabling an actor stops it; enabling starts it again in its place.
        path.write_text(good.replace("interval = 42", "interval = 42\nenabled = false"))
        assert await daemon.reload()
        assert [s.name for s in daemon.supervisor.statuses()] == ["http"]
        path.write_text(good)
        assert await daemon.reload()
        await wait_for(lambda: daemon.supervisor.ready)
        assert [s.name for s in daemon.supervisor.statuses()] == ["worker", "http"]
        await daemon.shutdown()


async def test_crash_storm_exits_non_zero(tmp_path: Path) -> None:
    worker = Worker(fail=True)
    daemon = Daemon(load_config(write_config(tmp_path, max_restarts=2)), None, tree_with(worker))
    with trio.fail_after(20):
        code = await daemon.run()
    assert code == EXIT_ESCALATED
    assert worker.starts == 3
    assert daemon.supervisor.status("worker").last_error == "RuntimeError: worker failure #3"


async def test_graceful_shutdown_returns_zero(tmp_path: Path) -> None:
    worker = Worker()
    daemon = Daemon(load_config(write_config(tmp_path)), None, tree_with(worker))
    codes: list[int] = []

    async def run() -> None:
        codes.append(await daemon.run())

    async with trio.open_nursery() as n:
        n.start_soon(run)
        await wait_for(lambda: daemon.supervisor.ready)
        await daemon.shutdown()
    assert codes == [EXIT_OK]
    assert all(s.state.value == "stopped" for s in daemon.supervisor.statuses())


async def test_metrics_path_and_switch_come_from_config(tmp_path: Path) -> None:
    extra = '\n[metrics]\npath = "/internal/prom"\n'
    daemon = Daemon(load_config(write_config(tmp_path, extra)), None, tree_with(Worker()))
    async with trio.open_nursery() as n:
        n.start_soon(daemon.run)
        base = await http_url(daemon)
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/metrics")).status_code == 404
            assert "zmartd_actor_up" in (await client.get("/internal/prom")).text
        await daemon.shutdown()
    off = Daemon(
        load_config(write_config(tmp_path, "\n[metrics]\nenabled = false\n")),
        None,
        tree_with(Worker()),
    )
    async with trio.open_nursery() as n:
        n.start_soon(off.run)
        base = await http_url(off)
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/metrics")).status_code == 404
            assert (await client.get("/health")).status_code == 200
        await off.shutdown()


class Degraded:
    """A fake actor that starts degraded and recovers when told to, without any
    supervisor status change (as storage does when the database comes back)."""

    def __init__(self) -> None:
        self.recover = trio.Event()

    async def run(
        self, ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
    ) -> None:
        ctx.set_degraded("database unreachable")
        task_status.started()
        await self.recover.wait()
        ctx.set_degraded(None)
        await stopping.wait()


def tree_with_degraded(actor: Degraded, *, required: bool) -> tuple[ActorDecl, ...]:
    http = next(d for d in TREE if d.name == "http")
    return (
        ActorDecl(
            "flaky",
            actor.run,
            sections=("aggregator",),
            description="test actor",
            required=lambda cfg: required,
        ),
        http,
    )


async def test_ready_fires_when_a_required_actor_stops_being_degraded(tmp_path: Path) -> None:
    """Regression: readiness was re-checked only on supervisor status changes, so an
    actor that recovered by clearing its degraded reason never made zmartd ready."""
    actor = Degraded()
    daemon = Daemon(
        load_config(write_config(tmp_path)), None, tree_with_degraded(actor, required=True)
    )
    async with trio.open_nursery() as n:
        n.start_soon(daemon.run)
        base = await http_url(daemon)
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/ready")).status_code == 503
            assert not daemon.ready.is_set()
            actor.recover.set()
            with trio.fail_after(5):
                await daemon.ready.wait()
            assert (await client.get("/ready")).status_code == 200
        await daemon.shutdown()


async def test_a_degraded_optional_actor_does_not_hold_back_ready(tmp_path: Path) -> None:
    """Regression: the daemon counted any degraded actor, optional ones included, where
    ``/ready`` counts only required ones; the Quickstart answered 200 on /ready but
    never logged "zmartd ready"."""
    actor = Degraded()
    daemon = Daemon(
        load_config(write_config(tmp_path)), None, tree_with_degraded(actor, required=False)
    )
    async with trio.open_nursery() as n:
        n.start_soon(daemon.run)
        base = await http_url(daemon)
        with trio.fail_after(5):
            await daemon.ready.wait()
        async with httpx.AsyncClient(base_url=base) as client:
            ready = await client.get("/ready")
            assert ready.status_code == 200
            assert ready.json()["actors"]["flaky"] == "degraded"
        await daemon.shutdown()
