"""The webhooks queue is bound to the event types that registered endpoints want, and no more:
an event no endpoint wants costs no delivery, no inbox row. Set-up binds only what the service
always needs (``SELF_BINDING``: the erasures, which its delivery log must hear of).

Bindings change under one advisory lock, held to the end of the transaction that changes the
endpoints: a new endpoint's types are bound before its row commits (events published once it
is answered reach it), and a reconciliation reads the endpoints only after every change in
flight committed, so it never unbinds what a concurrent change needs. Unbinding waits for that
reconciliation: after a change and then every ``RECONCILE_SECONDS``.
"""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractChannel, AbstractConnection
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.adapters.tables import endpoints
from services.webhooks.domain.subscriptions import ROUTING_KEYS, routing_keys_wanted
from shared.db import Database
from shared.logging import get_logger
from shared.messaging.topology import (
    EVENTS_EXCHANGE,
    bound_by_setup,
    service_queue_name,
)

log = get_logger(__name__)
RECONCILE_SECONDS = 30.0
QUEUE = service_queue_name("webhooks")
ALWAYS_BOUND = frozenset(bound_by_setup("webhooks"))


async def lock(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('kefu.webhooks.bindings'))"))


async def wanted(session: AsyncSession) -> set[str]:
    """Every routing key some endpoint (active or paused) wants, and those always bound."""
    patterns = (await session.execute(select(endpoints.c.events))).scalars()
    return routing_keys_wanted(p for events in patterns for p in events) | ALWAYS_BOUND


async def bind(channel: AbstractChannel, keys: set[str]) -> None:
    queue = await channel.get_queue(QUEUE, ensure=False)
    for key in sorted(keys):
        await queue.bind(EVENTS_EXCHANGE, routing_key=key)


async def unbind(channel: AbstractChannel, keys: set[str]) -> None:
    queue = await channel.get_queue(QUEUE, ensure=False)
    for key in sorted(keys):
        await queue.unbind(EVENTS_EXCHANGE, routing_key=key)


async def bind_wanted(connection: AbstractConnection, session: AsyncSession) -> None:
    """In the transaction that adds endpoints or patterns, before it commits."""
    await lock(session)
    keys = await wanted(session)
    async with connection.channel() as channel:
        await bind(channel, keys)


async def reconcile(db: Database, connection: AbstractConnection) -> None:
    """Bind what is wanted, unbind the rest."""
    async with db.unit_of_work() as uow:
        await lock(uow.session)
        keys = await wanted(uow.session)
        async with connection.channel() as channel:
            await bind(channel, keys)
            await unbind(channel, set(ROUTING_KEYS) - keys)


async def keep_reconciled(db: Database, connection: AbstractConnection) -> None:
    """A broker worker: after each (re)start, then periodically (a change whose own
    reconciliation failed, an endpoint removed by another replica)."""
    while True:
        try:
            await reconcile(db, connection)
        except Exception as exc:
            log.warning("webhook bindings not reconciled; retrying", error=repr(exc))
        await asyncio.sleep(RECONCILE_SECONDS)
