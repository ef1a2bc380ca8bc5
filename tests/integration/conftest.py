from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection

from shared.db import Database, Outbox, create_engine
from shared.service import ServiceDefinition
from shared.settings import Settings
from tests.support import isolated_stack


@pytest.fixture(scope="module")
def private_stack() -> Iterator[Settings]:
    """A database and vhost of this module's own: no running service touches them."""
    with isolated_stack() as settings:
        yield settings


@pytest_asyncio.fixture(loop_scope="session")
async def amqp(private_stack: Settings) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(private_stack.amqp_url)
    yield connection
    # Bounded: a close that hangs fails here, by name, not at the suite's time-out.
    await asyncio.wait_for(connection.close(), timeout=15)


async def open_database(settings: Settings, definition: ServiceDefinition) -> Database:
    engine = create_engine(settings.service_database_url(definition.name))
    return Database(engine, Outbox(definition.outbox, source=f"/kefu/{definition.name}"))
