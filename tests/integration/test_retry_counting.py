"""The retry path counts deliveries whatever the broker counts: a queue whose broker keeps no
delivery count (as a quorum queue on RabbitMQ 4.3+ does for a nack) still sends a message that
always fails to the DLQ after the delivery limit; and a DLQ takes no more than its length limit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from services.improvement.bootstrap import definition as improvement
from shared.contracts import CustomerRef, IssueReceived, new_event
from shared.db import UnitOfWork
from shared.messaging.consumer import Consumer, subscribe
from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    dead_letter_queue_name,
    declare_events_exchange,
    declare_service_queue,
    service_queue_name,
)
from shared.settings import Settings
from tests.integration.conftest import open_database
from tests.support import publish, queue_depth, wait_until


def poison(text: str) -> IssueReceived:
    return IssueReceived(
        issue_id=uuid.uuid4(),
        channel="chat",
        external_id=f"poison-{uuid.uuid4()}",
        customer=CustomerRef(customer_id=uuid.uuid4()),
        text=text,
        received_at=datetime.now(UTC),
    )


async def test_the_limit_holds_where_the_broker_counts_no_deliveries(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    service = "owncount"
    channel = await amqp.channel()
    # A classic queue keeps no x-delivery-count and no delivery limit: only Kefu counts.
    dlx = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dlq = await channel.declare_queue(dead_letter_queue_name(service), durable=True)
    await dlq.bind(dlx, routing_key=service_queue_name(service))
    queue = await channel.declare_queue(
        service_queue_name(service),
        durable=True,
        arguments={
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": service_queue_name(service),
        },
    )
    await queue.bind(await declare_events_exchange(channel), routing_key="issue.received")
    db = await open_database(private_stack, improvement)
    attempts: list[uuid.UUID] = []

    async def always_fails(items: Sequence[IssueReceived], uow: UnitOfWork) -> None:
        attempts.extend(item.issue_id for item in items)
        raise ValueError("poison")

    limit = 2
    consumer = Consumer(
        service=service,
        db=db,
        inbox=improvement.inbox,
        subscriptions=[subscribe(IssueReceived, always_fails)],
        prefetch=1,
        batch_size=1,
        delivery_limit=limit,
        declare=False,
    )
    await consumer.start(amqp)
    data = poison("always fails")
    await publish(amqp, private_stack, new_event("/kefu/intake", data))

    async def dead_lettered() -> bool:
        return await queue_depth(amqp, dead_letter_queue_name(service)) == 1

    await wait_until(dead_lettered, what="the message in the DLQ")
    assert attempts == [data.issue_id] * (limit + 1)  # first delivery + `limit` redeliveries
    assert await queue_depth(amqp, service_queue_name(service)) == 0
    await consumer.stop()
    await channel.close()
    await db.dispose()


async def test_a_full_dlq_takes_no_more(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    service = "fulldlq"
    channel = await amqp.channel()
    await declare_service_queue(
        channel, service, ["issue.received"], delivery_limit=0, dlq_max_length=2
    )
    db = await open_database(private_stack, improvement)
    failed: list[uuid.UUID] = []

    async def always_fails(items: Sequence[IssueReceived], uow: UnitOfWork) -> None:
        failed.extend(item.issue_id for item in items)
        raise ValueError("poison")

    consumer = Consumer(
        service=service,
        db=db,
        inbox=improvement.inbox,
        subscriptions=[subscribe(IssueReceived, always_fails)],
        prefetch=1,
        batch_size=1,
        delivery_limit=0,
        dlq_max_length=2,
    )
    await consumer.start(amqp)
    for index in range(10):
        await publish(amqp, private_stack, new_event("/kefu/intake", poison(f"poison {index}")))
    await wait_until(lambda: len(failed) == 10, what="ten messages dead-lettered")
    await asyncio.sleep(2)  # time for the broker to move them
    await consumer.stop()
    # A quorum queue takes the message that brings it over its limit, then refuses: the rest
    # stay with the broker's at-least-once dead-lettering, which retries them (none dropped).
    assert await queue_depth(amqp, dead_letter_queue_name(service)) == 2 + 1
    await channel.close()
    await db.dispose()
