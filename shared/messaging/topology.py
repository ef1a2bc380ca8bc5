"""Exchange, queues and dead-lettering of contract v1. Every declare is idempotent.

``kefu setup`` declares the whole topology (``declare_topology``) before any service runs, so an
event published before a consumer's first start waits in that consumer's queue instead of
reaching only the archive. ``CONSUMES`` is the one list of what each service consumes: set-up
binds from it, and each service checks its subscriptions against it when it starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

EVENTS_EXCHANGE = "kefu.events"
DEAD_LETTER_EXCHANGE = "kefu.dlx"
ARCHIVE_QUEUE = "kefu.events.archive"

# Service -> the event types it consumes. Plain strings, so that deploy tooling reads it
# without importing the services (need_analyzer loads its language models at import).
CONSUMES: Mapping[str, tuple[str, ...]] = {
    "intake": (),
    "need_analyzer": ("kefu.issue.received",),
    "feedback": ("kefu.issue.received", "kefu.feedback.submitted", "kefu.issue.analyzed"),
    "improvement": (
        "kefu.issue.received",
        "kefu.issue.analyzed",
        "kefu.satisfaction.evaluated",
    ),
}


def binding_keys(event_types: Iterable[str]) -> list[str]:
    """The routing keys of event types: the type without ``kefu.``."""
    return sorted(event_type.removeprefix("kefu.") for event_type in event_types)


def check_subscriptions(service: str, event_types: Iterable[str]) -> None:
    """Fail fast when a service consumes other event types than set-up binds its queue to."""
    declared = set(CONSUMES.get(service, ()))
    subscribed = set(event_types)
    if subscribed != declared:
        raise RuntimeError(
            f"{service} subscribes to {sorted(subscribed)} but shared/messaging/topology.py "
            f"CONSUMES lists {sorted(declared)}: update CONSUMES (and run `kefu setup`)"
        )


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


async def declare_topology(
    channel: AbstractChannel,
    *,
    delivery_limit: int,
    max_age: str,
    max_bytes: int,
    consumes: Mapping[str, Iterable[str]] = CONSUMES,
) -> list[str]:
    """Everything the services need on the broker: the exchange, the archive stream, the DLX,
    and every consuming service's queue, its bindings and its DLQ. Returns the queues' names."""
    await declare_events_exchange(channel)
    await declare_archive(channel, max_age=max_age, max_bytes=max_bytes)
    queues = []
    for service, event_types in consumes.items():
        keys = binding_keys(event_types)
        if keys:
            await declare_service_queue(channel, service, keys, delivery_limit=delivery_limit)
            queues.append(service_queue_name(service))
    return queues
