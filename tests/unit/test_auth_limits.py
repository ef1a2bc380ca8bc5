"""API keys: the token's shape is checked before any query, the bootstrap key is long, and each
key has a token bucket."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.auth import ApiKeyAuth, RateLimiter, generate_key
from shared.db import create_engine, service_metadata
from shared.settings import Settings
from shared.tables import api_keys_table

ASYNC = pytest.mark.asyncio(loop_scope="session")


def auth_against_no_database() -> ApiKeyAuth:
    # Nothing listens on port 1: any query fails at once.
    engine = create_engine("postgresql+asyncpg://kefu_intake@127.0.0.1:1/kefu", timeout=1)
    table = api_keys_table(service_metadata("intake"))
    return ApiKeyAuth(engine, table, bootstrap_key=None, cache_seconds=10)


@ASYNC
@pytest.mark.parametrize(
    "token",
    ["x", "kefu_short", "' OR 1=1 --", "kefu_" + "a" * 42 + "!", "a" * 10_000, "kefu_" + "a" * 44],
)
async def test_a_token_without_a_keys_shape_is_refused_without_a_query(token: str) -> None:
    auth = auth_against_no_database()
    try:
        assert await auth.authenticate(token) is None
    finally:
        await auth.engine.dispose()


@ASYNC
async def test_a_token_with_a_keys_shape_is_looked_up() -> None:
    auth = auth_against_no_database()
    try:
        with pytest.raises(OSError):
            await auth.authenticate(generate_key())
    finally:
        await auth.engine.dispose()


def test_the_bootstrap_key_has_at_least_32_characters() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(bootstrap_api_key="k" * 31)
    assert Settings(bootstrap_api_key="k" * 32).bootstrap_api_key is not None


def test_a_burst_then_the_refill_rate() -> None:
    limiter = RateLimiter(per_second=2, burst=3)
    states = [limiter.take("key", now=100.0) for _ in range(4)]
    assert [s.retry_after is None for s in states] == [True, True, True, False]
    assert [s.remaining for s in states[:3]] == [2, 1, 0]
    assert states[3].retry_after == 1
    assert states[2].reset_seconds == 2  # 3 tokens at 2/s
    assert limiter.take("key", now=100.4).retry_after == 1  # 0.8 tokens: not yet
    assert limiter.take("key", now=100.6).retry_after is None  # 1.2 tokens
    assert limiter.take("key", now=1000.0).remaining == 2  # full again, never above burst


def test_each_key_has_its_own_bucket() -> None:
    limiter = RateLimiter(per_second=1, burst=1)
    assert limiter.take("a", now=0).retry_after is None
    assert limiter.take("a", now=0).retry_after == 1
    assert limiter.take("b", now=0).retry_after is None


def test_headers_name_the_limit_and_when_to_retry() -> None:
    limiter = RateLimiter(per_second=10, burst=1)
    limiter.take("k", now=0)
    headers = limiter.take("k", now=0).headers()
    assert headers == {
        "RateLimit-Limit": "1",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "1",
        "Retry-After": "1",
    }


def test_replicas_share_a_keys_limit() -> None:
    # Two processes behind one port, a bucket each: together they allow the burst, not twice it.
    replicas = [RateLimiter(per_second=4, burst=10, replicas=2) for _ in range(2)]
    allowed = sum(
        limiter.take("key", now=0).retry_after is None for limiter in replicas for _ in range(10)
    )
    assert allowed == 10
    assert replicas[0].per_second == 2
    assert RateLimiter(per_second=1, burst=1, replicas=3).burst == 1  # never below one request


def test_a_token_given_back_can_be_taken_again() -> None:
    limiter = RateLimiter(per_second=1, burst=2)
    assert limiter.take("a", now=0).retry_after is None
    assert limiter.take("a", now=0).retry_after is None
    assert limiter.take("a", now=0).retry_after is not None
    limiter.give_back("a")  # that lookup found a key: it does not count
    assert limiter.take("a", now=0).retry_after is None
    limiter.give_back("a")
    limiter.give_back("a")
    limiter.give_back("a")  # never above the burst
    assert [limiter.take("a", now=0).retry_after is None for _ in range(3)] == [True, True, False]
