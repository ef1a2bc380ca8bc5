"""Guessing API keys: each unknown token of a key's shape costs a query, so an address that keeps
guessing is refused (429) without one; an unknown token is looked up once, and a key created
afterwards works at once (its NOTIFY makes every replica forget the miss)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event

from deploy import keys
from shared.auth import ApiKeyAuth, RateLimiter, authorize, generate_key
from shared.db import create_engine, service_metadata
from shared.problems import Problem
from shared.settings import Settings
from shared.tables import api_keys_table
from tests.support import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")
BURST = 5


class CountedAuth:
    def __init__(self, auth: ApiKeyAuth) -> None:
        self.auth = auth
        self.queries = 0
        event.listen(auth.engine.sync_engine, "before_cursor_execute", self._count)

    def _count(self, *_: Any) -> None:
        self.queries += 1


@pytest_asyncio.fixture(loop_scope="session")
async def counted(private_stack: Settings) -> AsyncIterator[CountedAuth]:
    url = private_stack.service_database_url("intake")
    auth = ApiKeyAuth(
        create_engine(url),
        api_keys_table(service_metadata("intake")),
        bootstrap_key=None,
        cache_seconds=60,
        failure_limiter=RateLimiter(per_second=0.01, burst=BURST),
    )
    listener = asyncio.create_task(auth.listen_for_revocations(url))
    await wait_until(lambda: auth.hearing_revocations, what="the LISTEN connection")
    yield CountedAuth(auth)
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    await auth.engine.dispose()


async def call(auth: ApiKeyAuth, token: str, address: str) -> int:
    try:
        await authorize(auth, f"Bearer {token}", None, {"client": (address, 40000)})
    except Problem as problem:
        return problem.status
    return 200


async def test_an_address_that_keeps_guessing_is_refused_without_a_query(
    counted: CountedAuth, private_stack: Settings
) -> None:
    guesses = [await call(counted.auth, generate_key(), "10.0.0.1") for _ in range(3 * BURST)]
    assert guesses == [401] * BURST + [429] * (2 * BURST)
    assert counted.queries == BURST  # the refused guesses cost nothing
    with pytest.raises(Problem) as refused:
        await authorize(counted.auth, f"Bearer {generate_key()}", None, {"client": ("10.0.0.1", 1)})
    assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) >= 1
    # Another address has its own budget; a real key from it works.
    key = await asyncio.to_thread(
        keys.create, private_stack.admin_database_url, "guessing", ["issues:read"], ["intake"]
    )
    assert await call(counted.auth, generate_key(), "10.0.0.2") == 401
    assert await call(counted.auth, key, "10.0.0.2") == 200
    # A key already found valid here still works from the exhausted address (a proxy's, say).
    assert await call(counted.auth, key, "10.0.0.1") == 200
    assert await call(counted.auth, generate_key(), "10.0.0.1") == 429
    # Tokens without a key's shape cost no query and no budget.
    assert [await call(counted.auth, "nonsense", "10.0.0.3") for _ in range(3 * BURST)] == [401] * (
        3 * BURST
    )


async def test_concurrent_guesses_cannot_outrun_the_budget(counted: CountedAuth) -> None:
    # Once it has failed, an address pays before each query: a wave of guesses sent at once
    # gets no more lookups than the budget.
    assert await call(counted.auth, generate_key(), "10.0.0.4") == 401
    wave = await asyncio.gather(
        *(call(counted.auth, generate_key(), "10.0.0.4") for _ in range(4 * BURST))
    )
    assert sorted(wave).count(401) == BURST - 1
    assert counted.queries == BURST


async def test_an_unknown_token_is_looked_up_once_until_its_key_is_created(
    counted: CountedAuth, private_stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = generate_key()
    assert await counted.auth.authenticate(token) is None
    assert await counted.auth.authenticate(token) is None
    assert counted.queries == 1
    # The same token becomes a key: the NOTIFY of its creation reaches the cache at once.
    monkeypatch.setattr(keys, "generate_key", lambda: token)
    created = await asyncio.to_thread(
        keys.create, private_stack.admin_database_url, "late", ["issues:read"], ["intake"]
    )
    assert created == token

    async def known() -> bool | None:
        return await counted.auth.authenticate(token) is not None or None

    await wait_until(known, timeout=2, what="the new key")
