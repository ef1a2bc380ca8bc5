"""Forged events published to kefu.events: each consumer dead-letters them at once, with the
reason, and nothing is done with them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection

from deploy import dlq
from deploy.launcher import ServiceProcesses
from shared.contracts import CustomerRef, IssueReceived, SatisfactionEvaluated, new_event
from shared.settings import Settings
from tests.support import BOOTSTRAP_KEY, publish, scrape, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


@pytest_asyncio.fixture(loop_scope="session")
async def amqp(stack: Settings) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(stack.amqp_url)
    yield connection
    await connection.close()


async def dead_lettered(stack: Settings, service: str, event_id: uuid.UUID) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        items = await asyncio.to_thread(dlq.peek, stack.amqp_url, service, 200)
        return next((i for i in items if i["message_id"] == str(event_id)), None)

    found: dict[str, Any] = await wait_until(find, what=f"the event in {service}'s DLQ")
    return found


async def _at_least(sample: Awaitable[float | None], floor: float) -> bool:
    value = await sample
    return value is not None and value >= floor


async def test_a_verdict_from_the_wrong_source_opens_no_followup(
    services: ServiceProcesses, stack: Settings, amqp: AbstractRobustConnection
) -> None:
    issue_id = uuid.uuid4()
    forged = SatisfactionEvaluated(
        issue_id=issue_id,
        customer=CustomerRef(customer_id=uuid.uuid4(), name="FORGED", phone="+8613800138004"),
        score=0.0,
        verdict="dissatisfied",
        source="explicit",
        basis="rating csat5 1",
        evaluated_at=datetime.now(UTC),
    )
    event = new_event("/kefu/intake", forged)  # only feedback publishes verdicts
    await publish(amqp, stack, event)
    item = await dead_lettered(stack, "improvement", event.id)
    assert item["reason"] == "wrong_source"
    assert "/kefu/feedback" in item["error"]
    # The DLQ's depth and the outcome show in improvement's metrics.
    url = services.url("improvement")
    assert await wait_until(
        lambda: _at_least(scrape(url, "kefu_dlq_messages", service="improvement"), 1),
        what="improvement's DLQ gauge",
    )
    dead = await scrape(
        url,
        "kefu_events_consumed_total",
        service="improvement",
        type="kefu.satisfaction.evaluated",
        outcome="dead_lettered",
    )
    assert dead is not None and dead >= 1
    async with httpx.AsyncClient(base_url=services.url("improvement"), headers=AUTH) as client:
        page = await client.get("/v1/followups", params={"issue_id": str(issue_id)})
    assert page.json()["items"] == []


async def test_an_issue_received_in_the_year_9999_is_dead_lettered_by_every_consumer(
    services: ServiceProcesses, stack: Settings, amqp: AbstractRobustConnection
) -> None:
    issue_id = uuid.uuid4()
    late = IssueReceived(
        issue_id=issue_id,
        channel="web",
        external_id=f"late-{issue_id}",
        customer=CustomerRef(customer_id=uuid.uuid4(), name="未来"),
        text="我要退款，满意度为差",
        received_at=datetime(9999, 1, 1, tzinfo=UTC),
    )
    event = new_event("/kefu/intake", late)
    await publish(amqp, stack, event)
    for service in ("need_analyzer", "feedback", "improvement"):
        item = await dead_lettered(stack, service, event.id)
        assert item["reason"] == "time_in_future", (service, item)
        assert "received_at 9999-01-01" in item["error"]
    async with httpx.AsyncClient(base_url=services.url("need_analyzer"), headers=AUTH) as client:
        assert (await client.get(f"/v1/analyses/{issue_id}")).status_code == 404
