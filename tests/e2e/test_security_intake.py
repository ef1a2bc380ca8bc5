"""Attacks on intake's HTTP boundary: hostile metadata, a flood from one key, a revoked key that
lingers in a replica's cache."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from deploy import keys
from deploy.launcher import ServiceProcesses
from shared.settings import SERVICES, Settings
from tests.support import BOOTSTRAP_KEY, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
RATE, BURST = 1, 10


def issue(**change: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "web",
        "external_id": f"sec-{uuid.uuid4()}",
        "customer": {"name": "赵六", "email": "zhaoliu@example.com"},
        "text": "我的订单还没到",
    }
    body.update(change)
    return body


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.fixture(scope="module")
def limited_intake(stack: Settings) -> Iterator[ServiceProcesses]:
    """Two intake replicas on one port, caching keys for a minute, with a low rate limit."""
    group = ServiceProcesses(
        stack,
        env={
            "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
            "KEFU_API_KEY_CACHE_SECONDS": "60",
            "KEFU_RATE_LIMIT_PER_SECOND": str(RATE),
            "KEFU_RATE_LIMIT_BURST": str(BURST),
            "KEFU_LOG_JSON": "false",
        },
        ports={"intake": free_port()},
        services=("intake",),
        replicas={"intake": 2},
    )
    group.start_all()
    try:
        group.wait_ready(timeout=60)
        yield group
    finally:
        group.stop_all()


async def test_deeply_nested_metadata_is_refused_naming_the_field(
    services: ServiceProcesses,
) -> None:
    async with httpx.AsyncClient(base_url=services.url("intake"), headers=AUTH) as client:
        # Deeper than the JSON parser's own limit (~200): refused before any field is known.
        too_deep = issue(metadata=nested(250))
        assert (await client.post("/v1/issues", json=too_deep)).status_code == 422
        answer = await client.post("/v1/issues", json=issue(metadata=nested(150)))
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "metadata"
        assert "nested" in answer.json()["detail"]
        batch = await client.post("/v1/issues/batch", json={"items": [issue(metadata=nested(150))]})
        assert batch.json()["results"][0]["problem"]["field"] == "items[0].metadata"
        large = await client.post("/v1/issues", json=issue(metadata={"k": "x" * 20_000}))
        assert large.status_code == 422 and large.json()["field"] == "metadata"
        eight_levels = issue(metadata=nested(7))
        assert (await client.post("/v1/issues", json=eight_levels)).status_code == 202


async def test_a_lone_surrogate_is_a_422_never_a_500(services: ServiceProcesses) -> None:
    item = '{"channel": "web", "external_id": "%s", "customer": {"email": "a@example.com"}, '
    item += '"text": "hello", "metadata": {"k": "\\ud800"}}'
    headers = {**AUTH, "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=services.url("intake"), headers=headers) as client:
        single = await client.post("/v1/issues", content=item % uuid.uuid4())
        assert single.status_code == 422, single.text
        batch = await client.post("/v1/issues/batch", content='{"items": [%s]}' % (item % 1))
        assert batch.status_code == 200, batch.text
        result = batch.json()["results"][0]
        assert result["status"] == 422
        assert result["problem"]["field"] == "items[0].metadata"
        assert "surrogate" in result["problem"]["detail"]


async def test_a_time_in_the_future_is_refused(services: ServiceProcesses) -> None:
    async with httpx.AsyncClient(base_url=services.url("intake"), headers=AUTH) as client:
        answer = await client.post("/v1/issues", json=issue(occurred_at="9999-01-01T00:00:00Z"))
        assert answer.status_code == 422 and answer.json()["field"] == "occurred_at"


async def test_a_flood_from_one_key_gets_429_with_retry_after(
    limited_intake: ServiceProcesses, stack: Settings
) -> None:
    key = await asyncio.to_thread(
        keys.create, stack.admin_database_url, "flood", ["issues:read"], SERVICES
    )
    missing = f"/v1/issues/{uuid.uuid4()}"
    async with httpx.AsyncClient(
        base_url=limited_intake.url("intake"), headers={"Authorization": f"Bearer {key}"}
    ) as client:
        answers = await asyncio.gather(*(client.get(missing) for _ in range(4 * BURST)))
        other = await client.get(missing, headers=AUTH)  # another key: its own bucket
    codes = [answer.status_code for answer in answers]
    # Two replicas, each with half the key's limit: the burst gets through, not twice it (and
    # what refills meanwhile).
    assert codes.count(404) <= BURST + 4 and codes.count(429) >= 3 * BURST - 4, codes
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-limit"] == str(BURST // 2)  # the answering replica's
    assert refused.headers["content-type"] == "application/problem+json"
    served = next(answer for answer in answers if answer.status_code == 404)
    assert int(served.headers["ratelimit-remaining"]) < BURST
    assert other.status_code == 404


async def test_a_revoked_key_stops_at_once_on_every_replica(
    limited_intake: ServiceProcesses, stack: Settings
) -> None:
    key = await asyncio.to_thread(
        keys.create, stack.admin_database_url, "revoked", ["issues:read"], SERVICES
    )
    headers = {"Authorization": f"Bearer {key}"}
    missing = f"/v1/issues/{uuid.uuid4()}"

    async def one_call() -> int:
        # A connection of its own, so the kernel spreads the calls over both replicas.
        async with httpx.AsyncClient(base_url=limited_intake.url("intake")) as client:
            return (await client.get(missing, headers=headers)).status_code

    # Cached by both replicas, unless the kernel happened to send all five calls to one (1 in
    # 16): the other then looks the key up after the revocation, which is refused all the same.
    # Five: each replica's bucket holds BURST / 2 = 5, and a sixth call on one replica got 429.
    assert [await one_call() for _ in range(BURST // 2)] == [404] * (BURST // 2)
    assert await asyncio.to_thread(keys.revoke, stack.admin_database_url, key, SERVICES)

    async def refused_everywhere() -> bool:
        return [await one_call() for _ in range(6)] == [401] * 6

    # The cache holds a key for 60 s here: within 5 s, only the NOTIFY can have told both.
    await wait_until(refused_everywhere, timeout=5, what="the revocation on both replicas")
