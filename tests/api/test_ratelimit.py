"""Token buckets: in memory, shared through the real Redis, and failing open."""

from __future__ import annotations

import coredis
import pytest
import structlog

from zmartd.api.ratelimit import LimitSpec, MemoryBuckets, RateLimiter, RedisBuckets

SPEC = LimitSpec(per_minute=60, burst=3)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_memory_bucket_refills_at_the_rate() -> None:
    clock = Clock()
    b = MemoryBuckets(clock=clock)
    got = [b.take("k", SPEC) for _ in range(4)]
    assert [d.allowed for d in got] == [True, True, True, False]
    assert [d.remaining for d in got] == [2, 1, 0, 0]
    denied = got[-1]
    assert denied.retry_after == pytest.approx(1.0)
    h = denied.headers()
    assert h["Retry-After"] == "1" and h["RateLimit-Limit"] == "3"
    assert h["RateLimit-Reset"] == "3" and h["RateLimit-Policy"] == "3;w=3"
    assert "Retry-After" not in got[0].headers()
    clock.t += 1.0  # one token per second
    assert b.take("k", SPEC).allowed and not b.take("k", SPEC).allowed
    assert b.take("other", SPEC).allowed  # buckets are per key


def test_memory_buckets_are_bounded() -> None:
    b = MemoryBuckets(max_buckets=10, clock=Clock())
    for i in range(25):
        b.take(f"k{i}", SPEC)
    assert len(b) == 10


def _limiter(redis: RedisBuckets | None) -> RateLimiter:
    limits = {(c, s): SPEC for c in ("reads", "writes", "auth") for s in ("ip", "wallet")}
    return RateLimiter(limits, redis=redis)  # type: ignore[arg-type]


async def test_redis_buckets_are_shared_between_instances(
    redis_url: str, redis_prefix: str
) -> None:
    async with coredis.Redis.from_url(redis_url) as client:
        a = _limiter(RedisBuckets(client, redis_prefix))
        b = _limiter(RedisBuckets(client, redis_prefix))
        results = []
        for limiter in (a, b, a, b):
            d = await limiter.take("writes", "ip", "10.0.0.1")
            assert d is not None
            results.append(d.allowed)
        assert results == [True, True, True, False]
        d = await b.take("writes", "wallet", "10.0.0.1")  # another scope, another bucket
        assert d is not None and d.allowed and d.remaining == 2
        ttl = await client.pttl(f"{redis_prefix}rl:writes:ip:10.0.0.1")
        assert 0 < ttl <= 4000  # expires once it would be full again (+1 s)
        assert not a.memory._buckets  # nothing fell back to memory


async def test_redis_failure_fails_open_to_memory(capsys: pytest.CaptureFixture[str]) -> None:
    structlog.reset_defaults()
    async with coredis.Redis.from_url("redis://127.0.0.1:1/0") as client:
        limiter = _limiter(RedisBuckets(client, "x:"))
        allowed = []
        for _ in range(4):
            d = await limiter.take("reads", "ip", "1.2.3.4")
            assert d is not None
            allowed.append(d.allowed)
        assert allowed == [True, True, True, False]  # memory still limits
        assert limiter.redis_failing
    out = capsys.readouterr()
    assert (out.out + out.err).count("redis rate limiting failed") == 1


async def test_disabled_limiter_never_limits() -> None:
    limiter = RateLimiter({}, enabled=False)
    assert await limiter.take("reads", "ip", "x") is None
