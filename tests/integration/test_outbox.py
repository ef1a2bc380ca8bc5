"""Transactional outbox on the real database and broker."""

from __future__ import annotations

import asyncio
import json

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import func, select

from services.intake import handlers
from services.intake.adapters.accept import IssueStore, open_issue_store
from services.intake.adapters.tables import issues, outbox
from services.intake.bootstrap import definition as intake
from services.intake.domain.commands import SubmitIssue
from shared.db import asyncpg_dsn
from shared.messaging.publisher import Publisher
from shared.messaging.topology import declare_archive
from shared.relay import OutboxRelay
from shared.settings import Settings
from tests.integration.conftest import open_database
from tests.support import event_tap

pytestmark = pytest.mark.asyncio(loop_scope="session")


def issue(external_id: str) -> SubmitIssue:
    return SubmitIssue.model_validate(
        {
            "channel": "web",
            "external_id": external_id,
            "text": "需要更快的响应速度",
            "customer": {"name": "张三", "phone": "13800138000"},
        }
    )


async def submit(store: IssueStore, cmd: SubmitIssue) -> handlers.Accepted:
    [answer] = await handlers.submit_issues(
        [cmd], store, default_region="CN", source="/kefu/intake"
    )
    assert isinstance(answer, handlers.Accepted), answer
    return answer


async def counts(db, external_id: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with db.unit_of_work() as uow:
        issue_count = await uow.session.scalar(
            select(func.count()).select_from(issues).where(issues.c.external_id == external_id)
        )
        event_count = await uow.session.scalar(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.payload["data"]["external_id"].astext == external_id)
        )
    return issue_count, event_count


async def test_issue_and_its_event_commit_together(private_stack: Settings) -> None:
    db = await open_database(private_stack, intake)
    async with open_issue_store(private_stack, "kefu_outbox_intake") as store:
        await submit(store, issue("commit-1"))
    assert await counts(db, "commit-1") == (1, 1)
    await db.dispose()


async def test_issue_and_its_event_roll_back_together(private_stack: Settings) -> None:
    """The statement that stores an issue and its event commits or rolls back as one."""
    db = await open_database(private_stack, intake)
    encoded = handlers._new_issue(issue("rollback-1"), default_region="CN", source="/kefu/intake")
    conn = await asyncpg.connect(asyncpg_dsn(private_stack.service_database_url("intake")))
    try:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await conn.fetch(
                    "SELECT * FROM intake.accept_issues($1::jsonb)",
                    f"[{encoded.decode()}]",
                )
                raise RuntimeError("crash after both writes, before commit")
    finally:
        await conn.close()
    assert await counts(db, "rollback-1") == (0, 0)
    await db.dispose()


async def pending(db) -> list:  # type: ignore[no-untyped-def]
    async with db.unit_of_work() as uow:
        return list(
            (
                await uow.session.execute(
                    select(outbox.c.id, outbox.c.attempts, outbox.c.last_error).where(
                        outbox.c.published_at.is_(None)
                    )
                )
            ).all()
        )


async def test_relay_marks_nothing_sent_without_a_confirm(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    db = await open_database(private_stack, intake)
    async with open_issue_store(private_stack, "kefu_outbox_intake") as store:
        await submit(store, issue("unconfirmed-1"))
    channel = await amqp.channel()
    # An exchange with no queue bound: the broker returns the mandatory publish.
    await channel.declare_exchange("kefu.test.nowhere", aio_pika.ExchangeType.TOPIC)
    nowhere = Publisher("kefu.test.nowhere", timeout=5)
    await nowhere.open(amqp)
    relay = OutboxRelay(db, nowhere, listen_url=private_stack.service_database_url("intake"))
    with pytest.raises(RuntimeError, match="not confirmed"):
        await relay.relay_batch()
    rows = await pending(db)
    assert rows and all(row.attempts == 1 and row.last_error for row in rows)

    # The publisher's channel is gone: still nothing is marked sent.
    await nowhere.close()
    with pytest.raises(RuntimeError, match="not confirmed"):
        await relay.relay_batch()
    assert len(await pending(db)) == len(rows)

    # With a route, every pending event is confirmed, delivered and marked sent.
    await declare_archive(
        channel, max_age=private_stack.archive_max_age, max_bytes=private_stack.archive_max_bytes
    )
    async with event_tap(private_stack) as tap:
        publisher = Publisher(timeout=5)
        await publisher.open(amqp)
        relay = OutboxRelay(db, publisher, listen_url=private_stack.service_database_url("intake"))
        assert await relay.relay_batch() == len(rows)
        assert await pending(db) == []
        event = await tap.wait_for(
            "kefu.issue.received", lambda d: d["external_id"] == "unconfirmed-1"
        )
        message = next(m for m in tap.messages if json.loads(m.body)["id"] == event["id"])
        assert message.message_id == event["id"]
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.content_type == "application/cloudevents+json"
        assert message.routing_key == "issue.received"
    await db.dispose()


async def test_concurrent_retries_of_one_message_make_one_issue(private_stack: Settings) -> None:
    db = await open_database(private_stack, intake)
    async with open_issue_store(private_stack, "kefu_outbox_intake") as store:
        results = await asyncio.gather(*(submit(store, issue("race-1")) for _ in range(8)))
    assert len({result.id for result in results}) == 1
    assert sorted(result.duplicate for result in results) == [False] + [True] * 7
    assert await counts(db, "race-1") == (1, 1)
    await db.dispose()
