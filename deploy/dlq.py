"""Dead-letter queues: see what failed, send it back to the service's queue, strip erased
customers' events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import aio_pika
from pamqp.commands import Basic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.messaging.dead_letters import scrub as scrub_queue
from shared.messaging.provenance import UNTRUSTED_REASONS, amqp_user
from shared.messaging.topology import dead_letter_queue_name, service_queue_name


async def _peek(amqp_url: str, service: str, limit: int) -> list[dict[str, Any]]:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(dead_letter_queue_name(service), passive=True)
        seen: list[dict[str, Any]] = []
        for _ in range(limit):
            message = await queue.get(fail=False, timeout=5)
            if message is None:
                break
            deaths = message.headers.get("x-death")
            death = deaths[0] if isinstance(deaths, list) and deaths else {}
            assert isinstance(death, dict)
            # Dead-lettered by the broker: x-death says why. By the consumer itself (a
            # transient error that kept coming back): its own headers say why.
            item = {
                "message_id": message.message_id,
                "type": message.type,
                "reason": death.get("reason") or message.headers.get("x-kefu-dead-letter-reason"),
                "count": death.get("count"),
            }
            if "x-kefu-error" in message.headers:
                item["error"] = message.headers["x-kefu-error"]
            seen.append(item)
        # Closing the channel without acking returns every peeked message to the DLQ.
        await channel.close()
        return seen
    finally:
        await connection.close()


async def _replay(amqp_url: str, service: str, limit: int | None) -> int:
    """Move messages from the DLQ to the service queue; each is removed only after its confirm.

    An event the consumer refused for its provenance stays in the DLQ: replayed, it would carry
    the CLI's ``user_id``, which consumers trust, and a forged event would be laundered."""
    connection = await aio_pika.connect(amqp_url)
    moved = 0
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.declare_queue(dead_letter_queue_name(service), passive=True)
        # Only what is there now: a message that fails again comes back, and is not replayed twice.
        waiting = queue.declaration_result.message_count or 0
        limit = waiting if limit is None else min(limit, waiting)
        for _ in range(waiting):
            if moved >= limit:
                break
            message = await queue.get(fail=False, timeout=5)
            if message is None:
                break
            if message.headers.get("x-kefu-dead-letter-reason") in UNTRUSTED_REASONS:
                continue  # never acked: back in the DLQ when the channel closes
            copy = aio_pika.Message(
                body=message.body,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message.message_id,
                type=message.type,
                app_id=message.app_id,
                # The connection's user (RabbitMQ checks it): consumers trust the CLI's.
                user_id=amqp_user(amqp_url),
                headers={"x-kefu-replayed": True},
            )
            confirmation = await channel.default_exchange.publish(
                copy, routing_key=service_queue_name(service), mandatory=True, timeout=10
            )
            if not isinstance(confirmation, Basic.Ack):
                await message.nack(requeue=True)
                raise RuntimeError(f"replay of {message.message_id} not confirmed")
            await message.ack()
            moved += 1
    finally:
        await connection.close()
    return moved


def peek(amqp_url: str, service: str, limit: int = 20) -> list[dict[str, Any]]:
    return asyncio.run(_peek(amqp_url, service, limit))


def replay(amqp_url: str, service: str, limit: int | None = None) -> int:
    return asyncio.run(_replay(amqp_url, service, limit))


async def _erased(admin_url: str, service: str) -> set[uuid.UUID]:
    engine = create_async_engine(admin_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text(f"SELECT customer_id FROM {service}.erasures"))
            return set(rows.scalars())
    finally:
        await engine.dispose()


async def _scrub(
    amqp_url: str, admin_url: str, services: Sequence[str], user_id: str | None
) -> dict[str, int]:
    connection = await aio_pika.connect(amqp_url)
    try:
        return {
            service: await scrub_queue(
                connection, service, await _erased(admin_url, service), user_id
            )
            for service in services
        }
    finally:
        await connection.close()


def scrub(
    amqp_url: str, admin_url: str, services: Sequence[str], user_prefix: str | None
) -> dict[str, int]:
    """Strip every erased customer's events in each service's DLQ (as each service does on an
    erasure); the copies carry the CLI's ``user_id`` when services have broker users."""
    user_id = amqp_user(amqp_url) if user_prefix is not None else None
    return asyncio.run(_scrub(amqp_url, admin_url, services, user_id))
