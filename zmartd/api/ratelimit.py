"""Token-bucket rate limits per client IP and per wallet, per route class.

Every route belongs to one class (``reads``, ``writes``, ``auth``,
``session``, and ``legacy`` for the reads of the original frontend's ``/api``
surface); each class has an IP bucket and a wallet bucket
(``[ratelimit]`` config: a rate in requests per minute and a burst).  A
request takes one token from its IP bucket and, when the caller is known,
one from that wallet's bucket; an empty bucket answers ``429`` with
``Retry-After`` and the ``RateLimit-*`` headers of the IETF draft
(``RateLimit-Limit``/``-Remaining``/``-Reset`` plus ``RateLimit-Policy``),
which every response of a limited route carries.

Who may spend a wallet's bucket matters as much as its size: a bucket that
anyone can drain is a lockout switch.  So the wallet is "known" only once
the caller proved they hold its key -- a session token, or (sign-in) a
signature that verified -- never because a request *names* the wallet.
Sign-in nonces, which anyone may request for any wallet, are charged to the
client IP and to one ``global`` bucket (a ceiling on the unauthenticated
rows they create); the session routes (``GET /v1/auth/session``, logout)
have a class of their own, so that no amount of sign-in traffic keeps a
signed-in wallet from logging out.

Where the buckets live:

* without Redis, in memory (bounded: the least recently used buckets are
  forgotten past :data:`MAX_MEMORY_BUCKETS`, which only ever *refills*
  them);
* with ``[redis] url``, in Redis, so that several zmartd behind one proxy
  share one budget.  One Lua script reads, refills, takes and writes a
  bucket atomically, on Redis' own clock (instances' clocks may differ).
  If Redis fails at runtime the limiter *fails open to the in-memory
  buckets* (logged once per outage) rather than failing requests: a rate
  limiter must not turn a Redis outage into an API outage.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import structlog
import trio

from zmartd.config import Config

__all__ = [
    "BUCKETS",
    "GLOBAL",
    "MAX_MEMORY_BUCKETS",
    "RATE_CLASSES",
    "REDIS_TIMEOUT",
    "Decision",
    "LimitSpec",
    "MemoryBuckets",
    "RateClass",
    "RateLimiter",
    "RedisBuckets",
    "Scope",
    "limits_from_config",
]

RateClass = Literal["reads", "writes", "auth", "session", "legacy"]
Scope = Literal["ip", "wallet", "global"]
RATE_CLASSES: Final[tuple[RateClass, ...]] = ("reads", "writes", "auth", "session", "legacy")
#: Every bucket there is, as (class, scope); each has ``[ratelimit]
#: <class>_<scope>_per_minute`` and ``..._burst``.
BUCKETS: Final[tuple[tuple[RateClass, Scope], ...]] = (
    ("reads", "ip"),
    ("reads", "wallet"),
    ("writes", "ip"),
    ("writes", "wallet"),
    ("auth", "ip"),
    ("auth", "wallet"),
    ("auth", "global"),
    ("session", "ip"),
    ("session", "wallet"),
    ("legacy", "ip"),
    ("legacy", "wallet"),
)
#: The identity of a ``global`` bucket (one per class).
GLOBAL: Final = "all"
MAX_MEMORY_BUCKETS: Final = 100_000
#: A Redis round trip slower than this counts as a Redis failure (fail open).
REDIS_TIMEOUT: Final = 0.25

log = structlog.get_logger("zmartd.ratelimit")


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """``per_minute`` tokens are added per minute, up to ``burst``."""

    per_minute: int
    burst: int

    @property
    def policy(self) -> str:
        # RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers): quota;w=window.
        return f"{self.burst};w={math.ceil(self.burst * 60 / self.per_minute)}"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    #: seconds until the bucket is full again
    reset: float
    #: seconds until one token is available (0 when allowed)
    retry_after: float
    policy: str

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset)),
            "RateLimit-Policy": self.policy,
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return out


def _decide(tokens_after: float, allowed: bool, spec: LimitSpec) -> Decision:
    per_second = spec.per_minute / 60.0
    return Decision(
        allowed=allowed,
        limit=spec.burst,
        remaining=max(0, math.floor(tokens_after)),
        reset=max(0.0, (spec.burst - tokens_after) / per_second),
        retry_after=0.0 if allowed else max(0.0, (1.0 - tokens_after) / per_second),
        policy=spec.policy,
    )


class MemoryBuckets:
    """In-process token buckets, bounded LRU."""

    def __init__(
        self, max_buckets: int = MAX_MEMORY_BUCKETS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max = max_buckets
        self._clock = clock

    def take(self, key: str, spec: LimitSpec) -> Decision:
        now = self._clock()
        tokens, ts = self._buckets.pop(key, (float(spec.burst), now))
        tokens = min(float(spec.burst), tokens + max(0.0, now - ts) * spec.per_minute / 60.0)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return _decide(tokens, allowed, spec)

    def __len__(self) -> int:
        return len(self._buckets)


# KEYS[1] = bucket; ARGV = per_minute, burst.  Returns {allowed, tokens-as-string}
# (a Lua number would be truncated to an integer in the reply).
_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 60000)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 60000 / rate) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisBuckets:
    """Token buckets shared through Redis (one atomic script per take)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_LUA)

    async def take(self, key: str, spec: LimitSpec) -> Decision:
        with trio.fail_after(REDIS_TIMEOUT):
            allowed, tokens = await self._script(
                keys=[f"{self._prefix}rl:{key}"], args=[spec.per_minute, spec.burst]
            )
        return _decide(float(tokens), bool(allowed), spec)


def limits_from_config(cfg: Config) -> dict[tuple[RateClass, Scope], LimitSpec]:
    r = cfg.ratelimit
    return {
        (cls, scope): LimitSpec(
            per_minute=getattr(r, f"{cls}_{scope}_per_minute"),
            burst=getattr(r, f"{cls}_{scope}_burst"),
        )
        for cls, scope in BUCKETS
    }


class RateLimiter:
    """The limiter one HTTP app uses: Redis when given, memory otherwise,
    memory as the fallback while Redis fails."""

    def __init__(
        self,
        limits: dict[tuple[RateClass, Scope], LimitSpec],
        *,
        enabled: bool = True,
        redis: RedisBuckets | None = None,
        memory: MemoryBuckets | None = None,
    ) -> None:
        self.limits = limits
        self.enabled = enabled
        self.redis = redis
        self.memory = memory or MemoryBuckets()
        self.redis_failing = False

    @classmethod
    def from_config(cls, cfg: Config, redis: RedisBuckets | None = None) -> RateLimiter:
        return cls(limits_from_config(cfg), enabled=cfg.ratelimit.enabled, redis=redis)

    async def take(self, rate_class: RateClass, scope: Scope, ident: str) -> Decision | None:
        """Take one token; None when rate limiting is disabled."""
        if not self.enabled:
            return None
        spec = self.limits[(rate_class, scope)]
        key = f"{rate_class}:{scope}:{ident}"
        if self.redis is not None:
            try:
                decision = await self.redis.take(key, spec)
            except Exception as exc:  # any Redis/network/timeout failure: fail open to memory
                if not self.redis_failing:
                    self.redis_failing = True
                    log.warning(
                        "redis rate limiting failed; using in-memory buckets until it "
                        "answers again",
                        error=f"{type(exc).__name__}: {exc}",
                    )
            else:
                if self.redis_failing:
                    self.redis_failing = False
                    log.info("redis rate limiting recovered")
                return decision
        return self.memory.take(key, spec)
