"""Exchange, queues and dead-lettering of contract v1. Every declare is idempotent."""

from __future__ import annotations

from collections.abc import Iterable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

EVENTS_EXCHANGE = "kefu.events"
DEAD_LETTER_EXCHANGE = "kefu.dlx"
ARCHIVE_QUEUE = "kefu.events.archive"


def service_queue_name(service: str) -> str:
    return f"kefu.{service}"


def dead_letter_queue_name(service: str) -> str:
    return f"kefu.{service}.dlq"


async def declare_events_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(
        EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )


async def declare_archive(channel: AbstractChannel, *, max_age: str, max_bytes: int) -> None:
    """A stream bound to every event, so that a mandatory publish always has a route."""
    exchange = await declare_events_exchange(channel)
    queue = await channel.declare_queue(
        ARCHIVE_QUEUE,
        durable=True,
        arguments={
            "x-queue-type": "stream",
            "x-max-age": max_age,
            "x-max-length-bytes": max_bytes,
        },
    )
    await queue.bind(exchange, routing_key="#")


async def declare_service_queue(
    channel: AbstractChannel,
    service: str,
    routing_keys: Iterable[str],
    *,
    delivery_limit: int,
) -> AbstractQueue:
    """The service's quorum queue; after ``delivery_limit`` redeliveries a message moves to the DLQ.

    RabbitMQ 3.10 sets no delivery limit on quorum queues, so it is set here explicitly, and
    dead-lettering is at-least-once so that a message is never dropped on its way to the DLQ.
    """
    name = service_queue_name(service)
    dlx = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dlq = await channel.declare_queue(
        dead_letter_queue_name(service), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dlx, routing_key=name)
    exchange = await declare_events_exchange(channel)
    queue = await channel.declare_queue(
        name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
    for key in routing_keys:
        await queue.bind(exchange, routing_key=key)
    return queue
