"""Broker down: intake still accepts durably, stays ready (the broker shows in /readyz's body and
in kefu_broker_connected), and the relay catches up."""

from __future__ import annotations

from collections.abc import Awaitable, Iterator

import httpx
import pytest

from deploy.launcher import ServiceProcesses
from shared.settings import Settings
from tests.support import (
    BOOTSTRAP_KEY,
    event_tap,
    free_port,
    isolated_stack,
    scrape,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


async def _answers(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def _equals(sample: Awaitable[float | None], expected: float) -> bool:
    return await sample == expected


@pytest.fixture(scope="module")
def stack() -> Iterator[Settings]:
    """Its own database: no other intake may relay this test's outbox."""
    with isolated_stack() as settings:
        yield settings


async def test_intake_accepts_while_the_broker_is_down_and_the_relay_catches_up(
    stack: Settings,
) -> None:
    without_broker = ServiceProcesses(
        stack,
        env={
            "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
            "KEFU_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
            "KEFU_METRICS_REFRESH_SECONDS": "0.5",
        },
        ports={"intake": free_port()},
        services=("intake",),
    )
    without_broker.start("intake")
    try:
        async with httpx.AsyncClient(base_url=without_broker.url("intake"), headers=AUTH) as c:
            await wait_until(lambda: _answers(c), what="intake answering")
            # Ready: intake serves through its outbox while the broker is away.
            ready = await c.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"database": "ok", "broker": "down"}
            url = without_broker.url("intake")
            assert await scrape(url, "kefu_broker_connected", service="intake") == 0
            accepted = await c.post(
                "/v1/issues",
                json={
                    "channel": "web",
                    "external_id": "while-broker-down",
                    "customer": {"email": "outage@example.com"},
                    "text": "需要发票",
                },
            )
            assert accepted.status_code == 202
            issue_id = accepted.json()["issue_id"]
            # The backlog shows while nothing relays it.
            await wait_until(
                lambda: _equals(scrape(url, "kefu_outbox_pending", service="intake"), 1),
                what="one pending outbox row in the metrics",
            )
            age = await scrape(url, "kefu_outbox_oldest_age_seconds", service="intake")
            assert age is not None and age > 0
    finally:
        without_broker.stop_all()

    # A replica that reaches the broker publishes what the other one committed.
    async with event_tap(stack, binding="issue.received") as tap:
        replica = ServiceProcesses(
            stack,
            env={"KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY, "KEFU_METRICS_REFRESH_SECONDS": "0.5"},
            ports={"intake": free_port()},
            services=("intake",),
        )
        replica.start("intake")
        try:
            await tap.wait_for("kefu.issue.received", lambda d: d["issue_id"] == issue_id)
            url = replica.url("intake")
            await wait_until(
                lambda: _equals(scrape(url, "kefu_broker_connected", service="intake"), 1),
                what="the replica connected in its metrics",
            )
            await wait_until(
                lambda: _equals(scrape(url, "kefu_outbox_pending", service="intake"), 0),
                what="the backlog relayed",
            )
            assert await scrape(url, "kefu_outbox_oldest_age_seconds", service="intake") == 0
        finally:
            replica.stop_all()
