"""`kefu wait-setup SERVICE`: wait until `kefu setup` has done what the service needs.

On Kubernetes the set-up runs as a Job and each service's pod waits for it in an init
container, with the service's own credentials only: its schema must be at the head revision
of the migrations it ships (so a new release never runs on the old schema), and its broker
user must exist (set-up creates the users last, after the topology).
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
import asyncpg
from alembic.script import ScriptDirectory

from deploy.database import alembic_config
from shared.db import asyncpg_dsn
from shared.settings import Settings


def shipped_head(service: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(service, "")).get_current_head()


async def missing(settings: Settings, service: str) -> str | None:
    """What set-up has not done yet for ``service``, or None when it is all there."""
    head = shipped_head(service)
    try:
        conn = await asyncpg.connect(asyncpg_dsn(settings.service_database_url(service)), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"database: {type(exc).__name__}"
    try:
        version = await conn.fetchval(f'SELECT version_num FROM "{service}".alembic_version')
    except asyncpg.PostgresError as exc:
        return f"database: {type(exc).__name__}"
    finally:
        await conn.close()
    if version != head:
        return f"database: schema {service} at {version}, this release needs {head}"
    try:
        connection = await aio_pika.connect(settings.amqp_url, timeout=5)
    except Exception as exc:  # any failure to connect means: not yet
        return f"broker: {type(exc).__name__}"
    await connection.close()
    return None


def wait(settings: Settings, service: str, timeout: float, interval: float = 2.0) -> str | None:
    """Poll until set-up is done (None) or ``timeout`` passes (what is still missing)."""
    deadline = time.monotonic() + timeout
    while True:
        reason = asyncio.run(missing(settings, service))
        if reason is None or time.monotonic() >= deadline:
            return reason
        print(f"waiting for kefu setup: {reason}", flush=True)
        time.sleep(interval)
