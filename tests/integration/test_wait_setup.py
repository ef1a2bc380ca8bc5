"""`kefu wait-setup`: a service's pod starts only once set-up has migrated its schema to the
head it ships and its broker user can connect."""

from __future__ import annotations

import asyncpg
import pytest

from deploy import setup_wait
from shared.db import asyncpg_dsn
from shared.settings import SERVICES, Settings

ASYNC = pytest.mark.asyncio(loop_scope="session")


@ASYNC
async def test_a_migrated_stack_is_ready_for_every_service(private_stack: Settings) -> None:
    for service in SERVICES:
        assert await setup_wait.missing(private_stack, service) is None


@ASYNC
async def test_a_schema_behind_the_release_is_waited_for(private_stack: Settings) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(private_stack.admin_database_url))
    head = setup_wait.shipped_head("feedback")
    try:
        await admin.execute("UPDATE feedback.alembic_version SET version_num = 'older'")
        reason = await setup_wait.missing(private_stack, "feedback")
        assert reason == f"database: schema feedback at older, this release needs {head}"
    finally:
        await admin.execute("UPDATE feedback.alembic_version SET version_num = $1", head)
        await admin.close()


@ASYNC
async def test_a_missing_role_or_broker_user_is_waited_for(private_stack: Settings) -> None:
    no_role = private_stack.model_copy(
        update={"database_url": private_stack.admin_database_url.replace("postgres@", "nobody@")}
    )
    assert (await setup_wait.missing(no_role, "intake") or "").startswith("database: ")
    no_user = private_stack.model_copy(
        update={"amqp_url": private_stack.amqp_url.replace("guest:guest", "nobody:nothing")}
    )
    assert (await setup_wait.missing(no_user, "intake") or "").startswith("broker: ")


def test_waiting_gives_up_with_what_is_missing(private_stack: Settings) -> None:
    no_user = private_stack.model_copy(
        update={"amqp_url": private_stack.amqp_url.replace("guest:guest", "nobody:nothing")}
    )
    reason = setup_wait.wait(no_user, "webhooks", timeout=0.5, interval=0.2)
    assert reason is not None and reason.startswith("broker: ")
