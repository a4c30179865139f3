"""An OTP-style ``one_for_one`` supervisor written on trio nurseries.

Vocabulary (from Erlang/OTP, on purpose, so that the behaviour can be looked
up): a supervisor owns *children* described by :class:`ChildSpec` values --
plain data: a name, an async factory, a restart policy and a shutdown timeout.
When a child fails, only that child is restarted (``one_for_one``), after an
exponential backoff with jitter so that a crash loop does not hammer a
database or an RPC node.  If children fail more than ``max_restarts`` times
within ``restart_window`` seconds the supervisor gives up and *escalates*: it
raises :class:`RestartIntensityExceeded`, the daemon logs one clear line and
exits non-zero, and systemd (or whatever runs it) restarts the whole process
from a clean slate.

Restart policies:

``permanent``
    always restarted, even after a normal return (an actor that returns
    unexpectedly is as broken as one that raised);
``transient``
    restarted only after an exception;
``temporary``
    never restarted; its failure is recorded and shown as ``failed``.

A child signals that it is ready (HTTP port bound, database reachable, ...)
by calling ``task_status.started()``, exactly like a function passed to
``nursery.start``; until then it is ``starting``.  Readiness is what
``/ready`` reports.

Graceful stop: the supervisor sets the child's ``stopping`` event and waits
up to the child's ``shutdown_timeout`` for it to return; after that the
child's cancel scope is cancelled.  Children stop in reverse declaration
order, so that an actor can rely on the ones declared before it (storage
before http) while it drains.
"""

from __future__ import annotations

import enum
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
import trio

__all__ = [
    "ActorFactory",
    "ChildSpec",
    "ChildState",
    "ChildStatus",
    "Restart",
    "RestartIntensityExceeded",
    "Supervisor",
    "SupervisorPolicy",
]

log = structlog.get_logger("zmartd.supervisor")


class Restart(enum.Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class ChildState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class ActorFactory(Protocol):
    """``async def actor(stopping, *, task_status) -> None``.

    ``stopping`` is set when the supervisor wants the actor to drain and
    return; the actor calls ``task_status.started()`` once it is ready.
    Anything else an actor needs (config, bus, services) is bound into the
    factory by whoever declares the tree, which keeps this module ignorant
    of the daemon.
    """

    def __call__(
        self, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
    ) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One supervised child, as data."""

    name: str
    factory: ActorFactory
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = 5.0
    #: Whether ``/ready`` must report 503 while this child is not running.
    required: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True)
class SupervisorPolicy:
    """Restart intensity and backoff; comes from ``[daemon]`` in the config."""

    max_restarts: int = 5
    restart_window: float = 60.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_jitter: float = 0.2

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay before restart number ``attempt`` (1-based) of one child.

        ``initial * 2**(attempt-1)``, capped at ``backoff_max``, then spread by
        +-``jitter`` so that several crashing children do not restart in
        lock-step.
        """
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** max(0, attempt - 1))
        spread = base * self.backoff_jitter
        return max(0.0, base + rng.uniform(-spread, spread))


class RestartIntensityExceeded(Exception):
    """Raised by :meth:`Supervisor.run` when children crash too often."""

    def __init__(self, supervisor: str, child: str, restarts: int, window: float, error: str):
        self.supervisor = supervisor
        self.child = child
        self.restarts = restarts
        self.window = window
        self.error = error
        super().__init__(
            f"supervisor {supervisor!r}: more than {restarts} restarts within {window:g}s "
            f"(last: {child!r} failed with {error}); giving up"
        )


@dataclass(slots=True)
class ChildStatus:
    """What ``/health``, ``/ready``, metrics and ``zmartd tree`` show."""

    name: str
    state: ChildState = ChildState.STOPPED
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    started_at: float | None = None
    required: bool = True
    restart: Restart = Restart.PERMANENT

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "started_at": self.started_at,
            "required": self.required,
            "restart": self.restart.value,
        }


def describe_error(exc: BaseException) -> str:
    """One line for logs and ``/health``: leaf exception types and messages."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_error(e) for e in exc.exceptions)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class _Child:
    spec: ChildSpec
    status: ChildStatus
    stopping: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope | None = None
    done: trio.Event = field(default_factory=trio.Event)
    #: set when the supervisor itself stops the child (reload or shutdown),
    #: so that its return is not counted as a crash.
    stop_requested: bool = False
    restart_requested: bool = False
    removed: bool = False
    wake: trio.Event = field(default_factory=trio.Event)
    #: set when the child's runner loop has returned for good
    finished: trio.Event = field(default_factory=trio.Event)


StatusListener = Callable[[ChildStatus], None]


class Supervisor:
    """Runs :class:`ChildSpec` children under a one_for_one strategy."""

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        policy: SupervisorPolicy | None = None,
        *,
        on_status: StatusListener | None = None,
        rng: random.Random | None = None,
    ) -> None:
        names = [c.name for c in children]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate child names in supervisor {name!r}: {names}")
        self.name = name
        self.policy = policy or SupervisorPolicy()
        self._on_status = on_status
        self._rng = rng or random.Random()
        self._children: dict[str, _Child] = {}
        for spec in children:
            self._children[spec.name] = self._new_child(spec)
        self._restart_times: deque[float] = deque()
        self._nursery: trio.Nursery | None = None
        self._escalation: RestartIntensityExceeded | None = None
        self._stopping = False
        #: how long the remaining children get to stop after an escalation
        self.escalation_timeout = 10.0
        self._stopped = trio.Event()

    # ------------------------------------------------------------------ status

    def _new_child(self, spec: ChildSpec) -> _Child:
        status = ChildStatus(spec.name, required=spec.required, restart=spec.restart)
        return _Child(spec, status)

    def statuses(self) -> list[ChildStatus]:
        return [c.status for c in self._children.values()]

    def status(self, name: str) -> ChildStatus:
        return self._children[name].status

    @property
    def ready(self) -> bool:
        """True when every required child is running."""
        return all(
            c.status.state is ChildState.RUNNING for c in self._children.values() if c.spec.required
        )

    @property
    def children(self) -> list[ChildSpec]:
        return [c.spec for c in self._children.values()]

    def _set_state(self, child: _Child, state: ChildState) -> None:
        child.status.state = state
        if state is ChildState.RUNNING:
            child.status.started_at = time.time()
        if self._on_status is not None:
            self._on_status(child.status)

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every child and supervise them until :meth:`stop` finishes.

        Returns normally after a graceful stop; raises
        :class:`RestartIntensityExceeded` when restart intensity is exceeded.
        ``task_status.started()`` is called once all children have been
        started (not necessarily ready: see :attr:`ready`).
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            # Keeps run() alive until stop(), even when no child is running.
            nursery.start_soon(self._stopped.wait)
            for child in list(self._children.values()):
                self._spawn(child)
            task_status.started()
        self._nursery = None
        if self._escalation is not None:
            raise self._escalation

    def _spawn(self, child: _Child) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._run_child_loop, child, name=f"{self.name}/{child.spec.name}")

    async def _run_child_loop(self, child: _Child) -> None:
        try:
            await self._run_child(child)
        finally:
            child.finished.set()

    async def _run_child(self, child: _Child) -> None:
        attempt = 0
        while True:
            child.stopping = trio.Event()
            child.stop_requested = False
            child.restart_requested = False
            child.done = trio.Event()
            self._set_state(child, ChildState.STARTING)
            started_at = trio.current_time()
            error: BaseException | None = None
            try:
                with trio.CancelScope() as scope:
                    child.scope = scope
                    async with trio.open_nursery() as n:
                        await n.start(child.spec.factory, child.stopping)
                        self._set_state(child, ChildState.RUNNING)
            except Exception as exc:
                error = exc
            finally:
                child.scope = None
                child.done.set()

            if child.stop_requested:
                self._set_state(child, ChildState.STOPPED)
                if child.restart_requested and not self._stopping:
                    attempt = 0
                    continue
                await child.wake.wait()
                child.wake = trio.Event()
                if self._stopping or child.removed:
                    return
                continue

            # An unrequested exit: a crash, or a normal return.
            if error is None and child.spec.restart is not Restart.PERMANENT:
                self._set_state(child, ChildState.STOPPED)
                log.info("actor exited", actor=child.spec.name)
                return
            reason = describe_error(error) if error is not None else "returned unexpectedly"
            child.status.last_error = reason
            child.status.last_error_at = time.time()
            if child.spec.restart is Restart.TEMPORARY:
                self._set_state(child, ChildState.FAILED)
                log.error(
                    "actor failed (temporary, not restarted)",
                    actor=child.spec.name,
                    error=reason,
                    exc_info=error,
                )
                return
            # A child that ran stably for a whole window starts its backoff afresh.
            if trio.current_time() - started_at > self.policy.restart_window:
                attempt = 0
            attempt += 1
            child.status.restarts += 1
            if self._record_restart():
                self._set_state(child, ChildState.FAILED)
                self._escalate(child, reason)
                return
            delay = self.policy.backoff(attempt, self._rng)
            self._set_state(child, ChildState.RESTARTING)
            log.warning(
                "actor failed; restarting",
                actor=child.spec.name,
                error=reason,
                attempt=attempt,
                backoff=round(delay, 3),
                exc_info=error,
            )
            with trio.move_on_after(delay):
                await child.wake.wait()
            child.wake = trio.Event()
            if self._stopping:
                self._set_state(child, ChildState.STOPPED)
                return

    def _record_restart(self) -> bool:
        """Count one restart; True if the intensity is now exceeded."""
        now = trio.current_time()
        self._restart_times.append(now)
        while self._restart_times and now - self._restart_times[0] > self.policy.restart_window:
            self._restart_times.popleft()
        return len(self._restart_times) > self.policy.max_restarts

    def _escalate(self, child: _Child, reason: str) -> None:
        self._escalation = RestartIntensityExceeded(
            self.name,
            child.spec.name,
            self.policy.max_restarts,
            self.policy.restart_window,
            reason,
        )
        log.critical(
            "restart intensity exceeded; escalating",
            supervisor=self.name,
            actor=child.spec.name,
            error=reason,
            max_restarts=self.policy.max_restarts,
            window=self.policy.restart_window,
        )
        if self._nursery is not None:
            # Like OTP: terminate the other children (gracefully, bounded),
            # then the supervisor itself exits with the escalation.
            self._nursery.start_soon(self.stop, self.escalation_timeout)
        self._stopping = True

    # ------------------------------------------------------------------ control

    async def _stop_child(self, child: _Child, timeout: float) -> None:
        if child.status.state in (ChildState.STOPPED, ChildState.FAILED) and child.scope is None:
            child.wake.set()
            return
        child.stop_requested = True
        if child.scope is None:
            # Waiting in backoff: wake it so it notices.
            child.wake.set()
            return
        self._set_state(child, ChildState.STOPPING)
        child.stopping.set()
        with trio.move_on_after(timeout) as waited:
            await child.done.wait()
        if waited.cancelled_caught and child.scope is not None:
            log.warning(
                "actor did not stop in time; cancelling", actor=child.spec.name, timeout=timeout
            )
            child.scope.cancel()
            await child.done.wait()

    async def restart_child(self, name: str) -> None:
        """Gracefully stop child ``name`` and start it again (used by reload).

        Not counted against restart intensity: nothing failed.
        """
        child = self._children[name]
        child.restart_requested = True
        if child.scope is None:
            child.stop_requested = True
            child.wake.set()
            return
        await self._stop_child(child, child.spec.shutdown_timeout)

    async def add_child(self, spec: ChildSpec, *, index: int | None = None) -> None:
        """Add and start a child (a reload enabled it).  ``index`` is its
        position in start/stop order (default: last)."""
        if spec.name in self._children:
            raise ValueError(f"child {spec.name!r} already exists")
        child = self._new_child(spec)
        items = list(self._children.items())
        items.insert(len(items) if index is None else index, (spec.name, child))
        self._children = dict(items)
        if self._nursery is not None and not self._stopping:
            self._spawn(child)

    async def remove_child(self, name: str) -> None:
        """Gracefully stop a child and forget it (a reload disabled it)."""
        child = self._children[name]
        child.removed = True
        await self._stop_child(child, child.spec.shutdown_timeout)
        child.wake.set()
        if self._nursery is not None:
            await child.finished.wait()
        del self._children[name]

    def replace_spec(self, spec: ChildSpec) -> None:
        """Swap a child's spec (required flag, timeouts) without restarting it."""
        child = self._children[spec.name]
        child.spec = spec
        child.status.required = spec.required
        child.status.restart = spec.restart

    def __contains__(self, name: str) -> bool:
        return name in self._children

    async def stop(self, timeout: float | None = None) -> None:
        """Stop all children in reverse order, then let :meth:`run` return.

        Each child gets its own ``shutdown_timeout``; ``timeout`` bounds the
        whole operation, after which everything still running is cancelled.
        """
        self._stopping = True
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        with trio.CancelScope(deadline=deadline):
            for child in reversed(list(self._children.values())):
                remaining = max(0.0, deadline - trio.current_time())
                await self._stop_child(child, min(child.spec.shutdown_timeout, remaining))
        # Every child loop returns once woken with _stopping set.
        for child in self._children.values():
            child.stop_requested = True
            child.wake.set()
            if child.scope is not None:
                child.scope.cancel()
        self._stopped.set()
