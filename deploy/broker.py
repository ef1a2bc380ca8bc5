"""Declares the broker topology at set-up: exchange, archive stream, every service queue with
its bindings, the dead-letter exchange and the DLQs (shared/messaging/topology.py).

Set-up owns the topology so that an event published before a consumer's first start is kept
in that consumer's queue. Consumers still declare their own queue (idempotent, same arguments).
"""

from __future__ import annotations

import asyncio

import aio_pika
import asyncpg
from aio_pika.abc import AbstractConnection

from services.webhooks.adapters import bindings
from shared.db import asyncpg_dsn
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
        queues = await declare_topology(
            channel,
            delivery_limit=settings.delivery_limit,
            dlq_max_length=settings.dlq_max_length,
            max_age=settings.archive_max_age,
            max_bytes=settings.archive_max_bytes,
            webhook_delays=get_webhook_settings().retry_delays(),
        )
        await bindings.bind(channel, await _wanted_by_webhooks(settings))
        return queues
    finally:
        await connection.close()


async def _wanted_by_webhooks(settings: Settings) -> set[str]:
    """What registered webhooks want, so that a new release's event types are bound before its
    publishers run (the webhooks service binds the rest as endpoints change). Nothing but the
    erasures before the webhooks schema exists (``kefu topology`` on a new database)."""
    try:
        connection = await asyncpg.connect(asyncpg_dsn(settings.admin_database_url), timeout=10)
    except (OSError, asyncpg.PostgresError):
        return set(bindings.ALWAYS_BOUND)
    try:
        rows = await connection.fetch("SELECT events FROM webhooks.endpoints")
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        rows = []
    finally:
        await connection.close()
    return bindings.wanted_by(row["events"] for row in rows)


def declare_sync(settings: Settings) -> list[str]:
    return asyncio.run(declare(settings))
