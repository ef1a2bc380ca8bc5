"""Broker down: intake still accepts durably, says it is not ready, and the relay catches up."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from deploy.launcher import ServiceProcesses
from shared.settings import Settings
from tests.support import BOOTSTRAP_KEY, event_tap, free_port, isolated_stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


async def _answers(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


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
        },
        ports={"intake": free_port()},
        services=("intake",),
    )
    without_broker.start("intake")
    try:
        async with httpx.AsyncClient(base_url=without_broker.url("intake"), headers=AUTH) as c:
            await wait_until(lambda: _answers(c), what="intake answering")
            ready = await c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["broker"] == "down"
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
    finally:
        without_broker.stop_all()

    # A replica that reaches the broker publishes what the other one committed.
    async with event_tap(stack, binding="issue.received") as tap:
        replica = ServiceProcesses(
            stack,
            env={"KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY},
            ports={"intake": free_port()},
            services=("intake",),
        )
        replica.start("intake")
        try:
            await tap.wait_for("kefu.issue.received", lambda d: d["issue_id"] == issue_id)
        finally:
            replica.stop_all()
