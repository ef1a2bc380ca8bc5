"""Declares the broker topology at set-up: exchange, archive stream, every service queue with
its bindings, the dead-letter exchange and the DLQs (shared/messaging/topology.py).

Set-up owns the topology so that an event published before a consumer's first start is kept
in that consumer's queue. Consumers still declare their own queue (idempotent, same arguments).
"""

from __future__ import annotations

import asyncio

import aio_pika
from aio_pika.abc import AbstractConnection

from shared.messaging.topology import declare_topology
from shared.settings import Settings, get_webhook_settings


async def _connect(amqp_url: str, attempts: int = 30) -> AbstractConnection:
    """Connect, waiting for a broker that is still starting (a fresh container)."""
    for _ in range(attempts - 1):
        try:
            return await aio_pika.connect(amqp_url, timeout=10)
        except (OSError, aio_pika.exceptions.AMQPConnectionError):
            await asyncio.sleep(1)
    return await aio_pika.connect(amqp_url, timeout=10)


async def declare(settings: Settings) -> list[str]:
    connection = await _connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        return await declare_topology(
            channel,
            delivery_limit=settings.delivery_limit,
            dlq_max_length=settings.dlq_max_length,
            max_age=settings.archive_max_age,
            max_bytes=settings.archive_max_bytes,
            webhook_delays=get_webhook_settings().retry_delays(),
        )
    finally:
        await connection.close()


def declare_sync(settings: Settings) -> list[str]:
    return asyncio.run(declare(settings))
