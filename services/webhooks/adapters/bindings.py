"""The webhooks queue is bound to the event types that registered endpoints want, and no more:
an event no endpoint wants costs no delivery, no inbox row. ``kefu setup`` binds what the
service always needs (``SELF_BINDING``: the erasures, which its delivery log must hear of) and
what the endpoints registered so far want (deploy/broker.py), so a new event type is bound
before any publisher of the new release runs.

Bindings change under one advisory lock, held to the end of the transaction that changes the
endpoints: a new endpoint's types are bound before its row commits (events published once it
is answered reach it), and a reconciliation reads the endpoints only after every change in
flight committed, so it never unbinds what a concurrent change needs. Unbinding waits for that
reconciliation: after a change and then every ``RECONCILE_SECONDS``. Every broker step is
bounded, and the channel is opened before the lock is taken, so a blocked or lost broker fails
one change instead of holding the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

from aio_pika.abc import AbstractChannel, AbstractConnection
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.adapters.tables import endpoints
from services.webhooks.domain.subscriptions import ROUTING_KEYS, routing_keys_wanted
from shared.db import Database
from shared.logging import get_logger
from shared.messaging.topology import EVENTS_EXCHANGE, bound_by_setup, service_queue_name

log = get_logger(__name__)
RECONCILE_SECONDS = 30.0
BROKER_SECONDS = 10.0  # the longest a change waits on the broker
QUEUE = service_queue_name("webhooks")
ALWAYS_BOUND = frozenset(bound_by_setup("webhooks"))


async def lock(session: AsyncSession) -> None:
    await session.execute(text("SET LOCAL lock_timeout = '5s'"))
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('kefu.webhooks.bindings'))"))


def wanted_by(patterns: Iterable[Iterable[str]]) -> set[str]:
    """The routing keys wanted by endpoints of these patterns, and those always bound."""
    return routing_keys_wanted(p for events in patterns for p in events) | ALWAYS_BOUND


async def wanted(session: AsyncSession) -> set[str]:
    """Every routing key some endpoint (active or paused) wants, and those always bound."""
    return wanted_by((await session.execute(select(endpoints.c.events))).scalars())


@contextlib.asynccontextmanager
async def bounded_channel(connection: AbstractConnection) -> AsyncIterator[AbstractChannel]:
    async with asyncio.timeout(BROKER_SECONDS):
        channel = await connection.channel()
    try:
        yield channel
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def bind(channel: AbstractChannel, keys: Iterable[str]) -> None:
    queue = await channel.get_queue(QUEUE, ensure=False)
    for key in sorted(keys):
        await queue.bind(EVENTS_EXCHANGE, routing_key=key)


async def unbind(channel: AbstractChannel, keys: Iterable[str]) -> None:
    queue = await channel.get_queue(QUEUE, ensure=False)
    for key in sorted(keys):
        await queue.unbind(EVENTS_EXCHANGE, routing_key=key)


async def bind_wanted(connection: AbstractConnection, session: AsyncSession) -> None:
    """In the transaction that adds endpoints or patterns, before it commits."""
    async with bounded_channel(connection) as channel:
        await lock(session)
        keys = await wanted(session)
        async with asyncio.timeout(BROKER_SECONDS):
            await bind(channel, keys)


async def reconcile(db: Database, connection: AbstractConnection) -> None:
    """Bind what is wanted, unbind the rest."""
    async with bounded_channel(connection) as channel, db.unit_of_work() as uow:
        await lock(uow.session)
        keys = await wanted(uow.session)
        async with asyncio.timeout(BROKER_SECONDS):
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
