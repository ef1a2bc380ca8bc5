"""Exchange, queues and dead-lettering of contract v1. Every declare is idempotent.

``kefu setup`` declares the whole topology (``declare_topology``) before any service runs, so an
event published before a consumer's first start waits in that consumer's queue instead of
reaching only the archive. ``CONSUMES`` is the one list of what each service consumes: set-up
binds from it (``bound_by_setup``; webhooks binds the rest itself, ``SELF_BINDING``), and each
service checks its subscriptions against it when it starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from shared.contracts import EVENT_TYPES

EVENTS_EXCHANGE = "kefu.events"
DEAD_LETTER_EXCHANGE = "kefu.dlx"
ARCHIVE_QUEUE = "kefu.events.archive"

# Service -> the event types it consumes. Plain strings, so that deploy tooling reads it
# without importing the services (need_analyzer loads its language models at import).
CONSUMES: Mapping[str, tuple[str, ...]] = {
    "intake": (),
    "need_analyzer": ("kefu.issue.received", "kefu.customer.erased"),
    "feedback": (
        "kefu.issue.received",
        "kefu.feedback.submitted",
        "kefu.issue.analyzed",
        "kefu.customer.erased",
    ),
    "improvement": (
        "kefu.issue.received",
        "kefu.issue.analyzed",
        "kefu.satisfaction.evaluated",
        "kefu.customer.erased",
    ),
    # Every event may be some webhook's: it fans each one out to the endpoints that match.
    "webhooks": tuple(EVENT_TYPES),
}

# Services that bind their queue themselves, beyond these types, as their own state asks:
# webhooks binds the types its registered endpoints want (services/webhooks/adapters/bindings.py),
# so an event no endpoint wants never costs it a delivery. Set-up binds only these.
SELF_BINDING: Mapping[str, tuple[str, ...]] = {"webhooks": ("kefu.customer.erased",)}


def bound_by_setup(service: str, consumes: Mapping[str, Iterable[str]] = CONSUMES) -> list[str]:
    """The routing keys set-up binds to the service's queue."""
    return binding_keys(SELF_BINDING.get(service, consumes.get(service, ())))


# The webhooks service's own work: one job per delivery attempt, on a queue of its own, and a
# delay queue per step of its retry schedule whose expired jobs are dead-lettered back to it.
WEBHOOK_JOBS_QUEUE = "kefu.webhooks.deliveries"


# A DLQ's length limit: poison messages pile up there until someone looks, so it is bounded.
# When full it refuses more (overflow reject-publish): a message dead-lettered then stays in its
# service's queue, held by the broker's at-least-once dead-lettering until the DLQ has room;
# nothing is dropped.
DLQ_MAX_LENGTH = 100_000


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


async def declare_dead_letter_queue(
    channel: AbstractChannel, service: str, max_length: int
) -> AbstractQueue:
    """The service's DLQ, bounded. One declared by a release before the bound existed keeps its
    arguments (RabbitMQ cannot change them, and refuses a declare that differs): it is used as
    it is, and a policy can bound it (README, "Operating Kefu")."""
    name = dead_letter_queue_name(service)
    try:
        return await channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-max-length": max_length,
                "x-overflow": "reject-publish",
            },
        )
    except aiormq.exceptions.ChannelPreconditionFailed:
        await channel.reopen()  # the refusal closed it
        return await channel.declare_queue(name, passive=True)


async def declare_service_queue(
    channel: AbstractChannel,
    service: str,
    routing_keys: Iterable[str],
    *,
    delivery_limit: int,
    dlq_max_length: int = DLQ_MAX_LENGTH,
) -> AbstractQueue:
    """The service's quorum queue; after ``delivery_limit`` redeliveries a message moves to the DLQ.

    RabbitMQ 3.10 sets no delivery limit on quorum queues (4.x sets 20), so it is set here
    explicitly, and dead-lettering is at-least-once so that a message is never dropped on its
    way to the DLQ. The DLQ holds at most ``dlq_max_length`` messages (DLQ_MAX_LENGTH).
    """
    name = service_queue_name(service)
    dlx = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dlq = await declare_dead_letter_queue(channel, service, dlq_max_length)
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


def webhook_delay_queue_name(delay_seconds: float) -> str:
    """Named by its delay, so a changed schedule declares new queues instead of clashing."""
    return f"kefu.webhooks.delay.{round(delay_seconds * 1000)}ms"


async def declare_webhook_queues(
    channel: AbstractChannel, delays: Iterable[float]
) -> AbstractQueue:
    """The delivery jobs' quorum queue and one delay queue per distinct delay. A job waits in
    its delay queue for the queue's TTL, then is dead-lettered (at least once) to the jobs
    queue through the default exchange: retries survive a restart of the service or broker."""
    jobs = await channel.declare_queue(
        WEBHOOK_JOBS_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )
    for delay in sorted(set(delays)):
        await channel.declare_queue(
            webhook_delay_queue_name(delay),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-message-ttl": round(delay * 1000),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": WEBHOOK_JOBS_QUEUE,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
    return jobs


async def declare_topology(
    channel: AbstractChannel,
    *,
    delivery_limit: int,
    max_age: str,
    max_bytes: int,
    dlq_max_length: int = DLQ_MAX_LENGTH,
    webhook_delays: Iterable[float] = (),
    consumes: Mapping[str, Iterable[str]] = CONSUMES,
) -> list[str]:
    """Everything the services need on the broker: the exchange, the archive stream, the DLX,
    every consuming service's queue, its bindings and its DLQ, and the webhooks' job and delay
    queues. Returns the queues' names."""
    await declare_events_exchange(channel)
    await declare_archive(channel, max_age=max_age, max_bytes=max_bytes)
    queues = []
    for service in consumes:
        keys = bound_by_setup(service, consumes)
        if keys:
            await declare_service_queue(
                channel,
                service,
                keys,
                delivery_limit=delivery_limit,
                dlq_max_length=dlq_max_length,
            )
            queues.append(service_queue_name(service))
    delays = list(webhook_delays)
    await declare_webhook_queues(channel, delays)
    queues.append(WEBHOOK_JOBS_QUEUE)
    queues.extend(webhook_delay_queue_name(delay) for delay in sorted(set(delays)))
    return queues
