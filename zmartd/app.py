"""The daemon: builds the supervisor tree from the config, handles signals,
reloads the configuration and shuts down gracefully.

Process lifecycle::

    trio.run
    └── Daemon.run
        ├── signal receiver (installed first: SIGHUP's default action kills)
        └── trio-asyncio loop (once, so every actor can reach asyncpg)
            └── root Supervisor (one_for_one) ── actors from zmartd.tree.TREE

Signals:

``SIGHUP``
    re-read and validate the config file.  If it is invalid the daemon keeps
    running on the old config, logs every error and bumps
    ``zmartd_config_reload_failures_total``.  If it is valid, only the actors
    whose sections changed are restarted (and actors enabled/disabled by the
    change are started/stopped); ``[log]`` and ``[daemon]`` apply in place.
``SIGTERM`` / ``SIGINT``
    graceful shutdown: actors stop in reverse order (HTTP stops accepting and
    drains first), each within its own timeout, everything within
    ``daemon.shutdown_timeout``; then exit 0.  A second signal during the
    drain forces exit (code 130).

Exit codes: 0 clean stop, 1 restart intensity exceeded (escalation),
2 invalid configuration at start, 130 forced.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio
import trio_asyncio

from zmartd import __version__
from zmartd.bus import ActorStatus, Bus, ConfigReloaded
from zmartd.config import Config, ConfigError, changed_sections, load_config
from zmartd.context import ActorContext, Health, readiness
from zmartd.observability import Metrics, configure_logging
from zmartd.sdnotify import Notifier
from zmartd.services import Services
from zmartd.supervisor import (
    ChildSpec,
    ChildStatus,
    RestartIntensityExceeded,
    Supervisor,
    SupervisorPolicy,
)
from zmartd.tree import TREE, ActorDecl, enabled_actors

__all__ = ["EXIT_CONFIG", "EXIT_ESCALATED", "EXIT_FORCED", "EXIT_OK", "Daemon", "policy_from"]

EXIT_OK = 0
EXIT_ESCALATED = 1
EXIT_CONFIG = 2
EXIT_FORCED = 130

log = structlog.get_logger("zmartd")


def policy_from(cfg: Config) -> SupervisorPolicy:
    d = cfg.daemon
    return SupervisorPolicy(
        max_restarts=d.max_restarts,
        restart_window=d.restart_window,
        backoff_initial=d.backoff_initial,
        backoff_max=d.backoff_max,
        backoff_jitter=d.backoff_jitter,
    )


class Daemon:
    """One zmartd instance: configuration, bus, metrics, services and the tree."""

    def __init__(
        self,
        config: Config,
        config_path: Path | None = None,
        tree: Sequence[ActorDecl] = TREE,
    ) -> None:
        self.config = config
        self.tree = tuple(tree)
        self.config_path = config_path
        self.generation = 1
        self.started_at = time.time()
        self.metrics = Metrics()
        self.bus = Bus(on_drop=self.metrics.on_bus_drop, on_publish=self.metrics.on_bus_publish)
        self.services = Services()
        self.health = Health()
        #: systemd's notify socket (a no-op without NOTIFY_SOCKET)
        self.systemd = Notifier()
        self.supervisor = Supervisor(
            "root",
            [self._child_spec(decl) for decl in enabled_actors(config, self.tree)],
            policy_from(config),
            on_status=self._on_status,
        )
        #: set once, the first time the readiness rule holds (logs "zmartd ready")
        self.ready = trio.Event()
        self.health.on_change(self._check_ready)
        self._done = trio.Event()
        self._exit_code = EXIT_OK

    # ------------------------------------------------------------------ tree

    def context(self, name: str) -> ActorContext:
        return ActorContext(
            name=name,
            config=self.config,
            bus=self.bus,
            metrics=self.metrics,
            services=self.services,
            health=self.health,
            statuses=self.supervisor.statuses,
            facts=self.facts,
        )

    def _child_spec(self, decl: ActorDecl) -> ChildSpec:
        async def factory(stopping: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
            # A fresh context per start, so a restarted actor sees the current config.
            ctx = self.context(decl.name)
            try:
                await decl.run(ctx, stopping, task_status=task_status)
            finally:
                self.health.set_degraded(decl.name, None)
                self.health.set_role(decl.name, None)

        return ChildSpec(
            name=decl.name,
            factory=factory,
            restart=decl.restart,
            shutdown_timeout=decl.shutdown_timeout(self.config),
            required=decl.required(self.config),
            description=decl.description,
        )

    def _on_status(self, status: ChildStatus) -> None:
        self.metrics.observe_actor(status)
        self.bus.topic("daemon.actors").publish_nowait(
            ActorStatus(
                name=status.name,
                state=status.state.value,
                restarts=status.restarts,
                last_error=status.last_error,
            )
        )
        self._check_ready()

    def _check_ready(self) -> None:
        """Set :attr:`ready` the first time the readiness rule (the one ``/ready``
        answers by) holds; called on every supervisor status change and every
        change of an actor's degraded reason."""
        if self.ready.is_set():
            return
        if readiness(self.supervisor.statuses(), self.health).ready:
            self.ready.set()
            actors = [s.name for s in self.supervisor.statuses()]
            log.info("zmartd ready", seconds=round(time.time() - self.started_at, 3), actors=actors)
            self.systemd.ready(f"ready: {len(actors)} actors")

    def facts(self) -> dict[str, Any]:
        """What ``/health`` shows beside the actors.  ``/health`` is public (the bundled
        nginx site serves it), so nothing here may describe the host: no paths (the
        config file's is in the "zmartd starting" log line)."""
        return {
            "version": __version__,
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "config_generation": self.generation,
            "instance": self.config.daemon.instance_name,
        }

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> int:
        """Run until stopped; returns the process exit code."""
        with trio.open_signal_receiver(signal.SIGHUP, signal.SIGTERM, signal.SIGINT) as signals:
            return await self._run(signals, task_status)

    async def _run(self, signals: Any, task_status: trio.TaskStatus[None]) -> int:
        log.info(
            "zmartd starting",
            version=__version__,
            config=str(self.config_path),
            actors=[c.name for c in self.supervisor.children],
        )
        code = EXIT_OK
        async with trio_asyncio.open_loop():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._signal_loop, signals, nursery.cancel_scope)
                if self.systemd.watchdog_interval is not None:
                    nursery.start_soon(self._watchdog, self.systemd.watchdog_interval)
                try:
                    await nursery.start(self._supervise)
                    task_status.started()
                    await self._done.wait()
                finally:
                    nursery.cancel_scope.cancel()
            code = self._exit_code
        log.info("zmartd stopped", exit_code=code)
        return code

    async def _watchdog(self, interval: float) -> None:
        """``WATCHDOG=1`` while the supervisor runs and the event loop answers: a hung
        loop stops pinging and systemd (``WatchdogSec``) restarts the process."""
        while not self._done.is_set():
            self.systemd.watchdog()
            await trio.sleep(interval)

    async def _supervise(self, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            async with trio.open_nursery() as n:
                await n.start(self.supervisor.run)
                task_status.started()
        except* RestartIntensityExceeded as group:
            exc = group.exceptions[0]
            log.critical("zmartd exiting: restart intensity exceeded", error=str(exc))
            self._exit_code = EXIT_ESCALATED
        finally:
            self._done.set()

    async def _signal_loop(self, signals: Any, root: trio.CancelScope) -> None:
        shutting_down = False
        async with trio.open_nursery() as nursery:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    if shutting_down:
                        log.info("SIGHUP ignored: shutting down")
                        continue
                    await self.reload()
                elif not shutting_down:
                    shutting_down = True
                    self.systemd.stopping()
                    log.info(
                        "shutdown requested",
                        signal=signal.Signals(signum).name,
                        timeout=self.config.daemon.shutdown_timeout,
                    )
                    nursery.start_soon(self.shutdown)
                else:
                    log.warning("second signal: forcing exit", signal=signal.Signals(signum).name)
                    self._exit_code = EXIT_FORCED
                    root.cancel()
                    return

    async def shutdown(self) -> None:
        """Graceful stop of every actor within ``daemon.shutdown_timeout``."""
        await self.supervisor.stop(timeout=self.config.daemon.shutdown_timeout)

    # ------------------------------------------------------------------ reload

    async def reload(self) -> bool:
        """Re-read the config file; apply it if valid.  Returns success.

        systemd hears ``RELOADING=1`` first and ``READY=1`` when the reload is done
        (applied or rejected: either way the daemon runs on a valid config)."""
        if self.config_path is None:
            log.warning("reload requested but zmartd was started without a config file")
            return False
        self.systemd.reloading()
        try:
            return await self._reload(self.config_path)
        finally:
            if self.ready.is_set():
                self.systemd.ready(f"ready: config generation {self.generation}")

    async def _reload(self, path: Path) -> bool:
        try:
            new = await trio.to_thread.run_sync(load_config, path)
        except ConfigError as exc:
            self.metrics.config_reload_failures.inc()
            log.error(
                "config reload rejected; still running on the previous config",
                path=str(path),
                errors=exc.errors,
            )
            return False
        changed = changed_sections(self.config, new)
        old = self.config
        self.config = new
        self.generation += 1
        self.metrics.config_reloads.inc()
        log.info("config reloaded", changed=sorted(changed), generation=self.generation)
        if "log" in changed:
            configure_logging(new.log.level, new.log.format)
        if "daemon" in changed:
            self.supervisor.policy = policy_from(new)
        await self._apply_tree(old, new, changed)
        await self.bus.publish(
            "daemon.config",
            ConfigReloaded(changed_sections=tuple(sorted(changed)), generation=self.generation),
        )
        return True

    async def _apply_tree(self, old: Config, new: Config, changed: frozenset[str]) -> None:
        order = [d.name for d in enabled_actors(new, self.tree)]
        for decl in self.tree:
            running = decl.name in self.supervisor
            wanted = decl.enabled(new)
            if running and not wanted:
                log.info("actor disabled by reload; stopping", actor=decl.name)
                await self.supervisor.remove_child(decl.name)
            elif wanted and not running:
                log.info("actor enabled by reload; starting", actor=decl.name)
                await self.supervisor.add_child(
                    self._child_spec(decl), index=order.index(decl.name)
                )
            elif wanted and changed.intersection(decl.sections):
                self.supervisor.replace_spec(self._child_spec(decl))
                log.info(
                    "restarting actor for changed config",
                    actor=decl.name,
                    sections=sorted(changed.intersection(decl.sections)),
                )
                await self.supervisor.restart_child(decl.name)


async def run_daemon(config_path: Path) -> int:
    """Entry point used by the CLI: load, configure logging, run."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        configure_logging()
        log.error("invalid configuration", path=str(config_path), errors=exc.errors)
        return EXIT_CONFIG
    configure_logging(config.log.level, config.log.format)
    daemon = Daemon(config, config_path)
    return await daemon.run()


def main_sync(config_path: Path) -> int:
    return trio.run(partial(run_daemon, config_path))
