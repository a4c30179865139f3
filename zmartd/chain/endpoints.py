"""Health-based choice among several RPC endpoints (a primary and fallbacks).

Public Solana RPC providers fail in ordinary ways: they throttle (HTTP 429
with ``Retry-After``), they return 502/503 during deploys, their nodes fall
behind (JSON-RPC error -32005) and connections time out.  A daemon that must
keep indexing cannot stop for any of these, so the RPC client spreads its
attempts over every configured endpoint.

The whole policy is one number per endpoint, :attr:`Endpoint.not_before`:
the earliest time (trio clock) at which the endpoint may be asked again.

* A failure pushes ``not_before`` out by an exponential backoff with jitter,
  so retries of the *same* endpoint slow down while another endpoint can be
  tried at once (that is the failover).
* ``Retry-After`` sets ``not_before`` to exactly the time the server asked
  for: we never ask a throttling server again before it said we may.
* ``failure_threshold`` consecutive failures mark the endpoint *down* for a
  ``cooldown``; after it, the endpoint is tried again and one success makes it
  healthy.
* :meth:`EndpointPool.choose` takes the first endpoint (in configured order,
  so the primary is preferred) that may be asked now; if none may, the one
  that becomes available soonest, and the caller sleeps until then.

Everything here is synchronous bookkeeping; the RPC client does the I/O.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Endpoint", "EndpointHealth", "EndpointPool"]


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """A snapshot of one endpoint, for ``/ready`` and metrics."""

    url: str
    #: False while the endpoint is in its cooldown after repeated failures.
    healthy: bool
    consecutive_failures: int
    requests: int
    failures: int
    #: Seconds until the endpoint may be asked again (0 when it may be now).
    retry_in: float
    last_error: str | None
    #: Duration of the last successful request, in seconds.
    last_latency: float | None


@dataclass(slots=True)
class Endpoint:
    """Mutable health record of one endpoint (owned by :class:`EndpointPool`)."""

    url: str
    index: int
    not_before: float = float("-inf")
    down_until: float = float("-inf")
    consecutive_failures: int = 0
    requests: int = 0
    failures: int = 0
    last_error: str | None = None
    last_latency: float | None = None


class EndpointPool:
    """Several endpoints with backoff, throttling and cooldown bookkeeping.

    ``clock`` returns the current time in seconds (the RPC client passes
    ``trio.current_time`` so that trio's ``MockClock`` drives tests);
    ``rng`` draws the jitter and can be seeded for reproducible tests.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        clock: Callable[[], float],
        backoff_initial: float = 0.25,
        backoff_max: float = 10.0,
        failure_threshold: int = 3,
        cooldown: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(urls, str):
            raise TypeError("urls must be a sequence of URLs, not a single string")
        if not urls:
            raise ValueError("at least one endpoint URL is required")
        if len(set(urls)) != len(urls):
            raise ValueError(f"duplicate endpoint URLs in {list(urls)!r}")
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        if failure_threshold < 1 or cooldown < 0:
            raise ValueError("need failure_threshold >= 1 and cooldown >= 0")
        self.endpoints = [Endpoint(url, i) for i, url in enumerate(urls)]
        self._clock = clock
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._rng = rng or random.Random()

    def endpoint(self, url: str) -> Endpoint:
        for ep in self.endpoints:
            if ep.url == url:
                return ep
        raise KeyError(url)

    def choose(self) -> tuple[Endpoint, float]:
        """The endpoint to ask next and how long to wait before asking it.

        The first endpoint in configured order that may be asked now wins, so
        traffic returns to the primary as soon as it has recovered.  When every
        endpoint is backing off or down, the soonest available one is returned
        with the delay until then.
        """
        now = self._clock()
        for ep in self.endpoints:
            if ep.not_before <= now:
                return ep, 0.0
        soonest = min(self.endpoints, key=lambda ep: (ep.not_before, ep.index))
        return soonest, soonest.not_before - now

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random,
        so that many clients that failed together do not retry together."""
        base = min(self.backoff_max, self.backoff_initial * (2.0 ** max(0, attempt - 1)))
        return base / 2 + self._rng.uniform(0, base / 2)

    def record_start(self, ep: Endpoint) -> None:
        ep.requests += 1

    def record_success(self, ep: Endpoint, latency: float) -> None:
        ep.consecutive_failures = 0
        ep.not_before = float("-inf")
        ep.down_until = float("-inf")
        ep.last_latency = latency

    def record_failure(self, ep: Endpoint, error: str, *, retry_after: float | None = None) -> None:
        """Count a failure and decide when the endpoint may be asked again.

        ``retry_after`` (from a 429/503 ``Retry-After`` header) replaces the
        computed backoff; the cooldown still applies if it is longer.
        """
        now = self._clock()
        ep.failures += 1
        ep.consecutive_failures += 1
        ep.last_error = error
        delay = retry_after if retry_after is not None else self.backoff(ep.consecutive_failures)
        if ep.consecutive_failures >= self.failure_threshold:
            ep.down_until = now + self.cooldown
            delay = max(delay, self.cooldown)
        ep.not_before = now + delay

    def health(self) -> list[EndpointHealth]:
        now = self._clock()
        return [
            EndpointHealth(
                url=ep.url,
                healthy=ep.down_until <= now,
                consecutive_failures=ep.consecutive_failures,
                requests=ep.requests,
                failures=ep.failures,
                retry_in=max(0.0, ep.not_before - now),
                last_error=ep.last_error,
                last_latency=ep.last_latency,
            )
            for ep in self.endpoints
        ]
