"""Erasure reaches the dead-letter queue: once improvement has handled kefu.customer.erased, the
customer's events waiting in its DLQ no longer carry their data (and can still be replayed);
others' events are untouched. `kefu dlq scrub` does the same for a later dead letter."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from deploy import dlq
from services.improvement.adapters.tables import erasures
from services.improvement.bootstrap import definition as improvement
from shared.contracts import (
    CustomerErased,
    CustomerRef,
    SatisfactionEvaluated,
    new_event,
)
from shared.messaging.consumer import Consumer
from shared.messaging.topology import dead_letter_queue_name
from shared.settings import Settings
from tests.integration.conftest import open_database
from tests.support import publish, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")
DLQ = dead_letter_queue_name("improvement")


def evaluated(customer_id: uuid.UUID, name: str, email: str) -> SatisfactionEvaluated:
    return SatisfactionEvaluated(
        issue_id=uuid.uuid4(),
        customer=CustomerRef(customer_id=customer_id, name=name, email=email),
        score=0.0,
        verdict="dissatisfied",
        source="implicit",
        basis=f"text '太差了，{name}很失望'",
        evaluated_at=datetime.now(UTC),
    )


async def dead_letter(amqp: AbstractRobustConnection, data: SatisfactionEvaluated) -> None:
    """As the consumer dead-letters: the event as published, the reason in the headers."""
    channel = await amqp.channel()
    await channel.default_exchange.publish(
        aio_pika.Message(
            new_event("/kefu/feedback", data).model_dump_json().encode(),
            type="kefu.satisfaction.evaluated",
            headers={"x-kefu-dead-letter-reason": "transient_retries"},
        ),
        routing_key=DLQ,
    )
    await channel.close()


async def dead_letters(amqp: AbstractRobustConnection) -> list[tuple[str, dict[str, Any]]]:
    """Every message in the DLQ (left there): its body and headers."""
    channel = await amqp.channel()
    queue = await channel.declare_queue(DLQ, passive=True)
    seen = []
    while (message := await queue.get(fail=False, timeout=5)) is not None:
        seen.append((message.body.decode(), dict(message.headers)))
    await channel.close()  # unacked: all go back
    return seen


async def test_an_erasure_strips_the_customers_events_in_the_dlq(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    db = await open_database(private_stack, improvement)
    consumer = Consumer(
        service="improvement",
        db=db,
        inbox=improvement.inbox,
        subscriptions=improvement.subscriptions,
        prefetch=10,
        batch_size=5,
        delivery_limit=3,
        erasures=erasures,
    )
    await consumer.start(amqp)
    erased_id, kept_id = uuid.uuid4(), uuid.uuid4()
    try:
        await dead_letter(amqp, evaluated(erased_id, "王五", "wangwu.dlq@example.com"))
        await dead_letter(amqp, evaluated(kept_id, "赵六", "zhaoliu.dlq@example.com"))
        erased = CustomerErased(customer_id=erased_id, erased_at=datetime.now(UTC))
        await publish(amqp, private_stack, new_event("/kefu/intake", erased))

        async def scrubbed() -> list[tuple[str, dict[str, Any]]] | None:
            seen = await dead_letters(amqp)
            return seen if any("x-kefu-scrubbed" in headers for _, headers in seen) else None

        seen = await wait_until(scrubbed, what="the DLQ scrubbed")
        bodies = "\n".join(body for body, _ in seen)
        assert len(seen) == 2
        assert "wangwu.dlq@example.com" not in bodies and "王五" not in bodies
        assert "zhaoliu.dlq@example.com" in bodies and "赵六" in bodies  # another customer's
        body, headers = next(item for item in seen if "x-kefu-scrubbed" in item[1])
        stripped = json.loads(body)["data"]
        assert stripped["customer"]["customer_id"] == str(erased_id)
        assert stripped["verdict"] == "dissatisfied"  # still an event that can be replayed
        assert headers["x-kefu-dead-letter-reason"] == "transient_retries"

        # Dead-lettered after the service's scrub (by the broker, say): `kefu dlq scrub`.
        await dead_letter(amqp, evaluated(erased_id, "王五", "wangwu.late@example.com"))
        counts = await asyncio.to_thread(
            dlq.scrub,
            private_stack.amqp_url,
            private_stack.admin_database_url,
            ["improvement"],
            None,
        )
        assert counts == {"improvement": 1}
        bodies = "\n".join(body for body, _ in await dead_letters(amqp))
        assert "wangwu" not in bodies and "王五" not in bodies and "赵六" in bodies
    finally:
        await consumer.stop()
        await db.dispose()
