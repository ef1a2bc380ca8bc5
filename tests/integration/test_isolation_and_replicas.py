"""Schema isolation between service roles, and replicas sharing one queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import func, select

from services.improvement.adapters.tables import followups
from services.improvement.bootstrap import definition as improvement
from services.improvement.handlers import make_subscriptions
from shared.contracts import (
    Analysis,
    CustomerRef,
    EventData,
    IssueAnalyzed,
    SatisfactionEvaluated,
    Sentiment,
    new_event,
)
from shared.db import UnitOfWork, asyncpg_dsn
from shared.messaging.consumer import Consumer, subscribe
from shared.settings import SERVICES, Settings
from tests.integration.conftest import open_database
from tests.support import publish, queue_depth, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")
improvement_handlers = {s.type: s for s in make_subscriptions()}


@pytest.mark.parametrize("service", SERVICES)
async def test_each_role_reaches_only_its_own_schema(private_stack: Settings, service: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(private_stack.service_database_url(service)))
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {service}.inbox") == 0
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM information_schema.tables "
                f"WHERE table_schema = '{service}' AND table_name = 'alembic_version'"
            )
            == 1
        )
        for other in SERVICES:
            if other == service:
                continue
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetchval(f"SELECT count(*) FROM {other}.outbox")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.sneaky (id int)")
    finally:
        await conn.close()


async def test_replicas_compete_on_the_queue_with_one_effect_each(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    dbs = [await open_database(private_stack, improvement) for _ in range(2)]
    seen: list[list[uuid.UUID]] = [[], []]  # issue ids each replica handled
    replicas = []
    for index, db in enumerate(dbs):

        async def counting(
            items: Sequence[SatisfactionEvaluated], uow: UnitOfWork, index: int = index
        ) -> None:
            seen[index].extend(item.issue_id for item in items if item.issue_id)
            await improvement_handlers[SatisfactionEvaluated.TYPE].handle(items, uow)

        replica = Consumer(
            service="replicacheck",
            db=db,
            inbox=improvement.inbox,
            subscriptions=[subscribe(SatisfactionEvaluated, counting)],
            batch_size=2,
            prefetch=2,
            delivery_limit=3,
        )
        await replica.start(amqp)
        replicas.append(replica)
    issue_ids = [uuid.uuid4() for _ in range(40)]
    events = [
        new_event(
            "/kefu/feedback",
            SatisfactionEvaluated(
                issue_id=issue_id,
                customer=CustomerRef(customer_id=uuid.uuid4(), name="李四"),
                score=0.0,
                verdict="dissatisfied",
                source="explicit",
                basis="rating csat5=1",
                evaluated_at=datetime.now(UTC),
            ),
        )
        for issue_id in issue_ids
    ]
    await asyncio.gather(*(publish(amqp, private_stack, event) for event in events))

    async def all_followed_up() -> bool:
        async with dbs[0].unit_of_work() as uow:
            count = await uow.session.scalar(
                select(func.count())
                .select_from(followups)
                .where(followups.c.issue_id.in_(issue_ids))
            )
        return count == len(issue_ids)

    await wait_until(all_followed_up, what="a follow-up per issue")
    await wait_until(lambda: _drained(amqp), what="queue drained")
    assert seen[0] and seen[1], "both replicas took a share of the work"
    assert sorted(seen[0] + seen[1]) == sorted(issue_ids)
    for replica, db in zip(replicas, dbs, strict=True):
        await replica.stop()
        await db.dispose()


async def _drained(amqp: AbstractRobustConnection) -> bool:
    return await queue_depth(amqp, "kefu.replicacheck") == 0


async def test_follow_up_gets_its_need_whichever_event_commits_first(
    private_stack: Settings,
) -> None:
    """issue.analyzed and satisfaction.evaluated for one issue, handled at the same moment."""
    db = await open_database(private_stack, improvement)
    customer = CustomerRef(customer_id=uuid.uuid4(), name="李四")
    issue_ids = [uuid.uuid4() for _ in range(20)]

    async def handle(data: EventData) -> None:
        async with db.unit_of_work() as uow:
            await improvement_handlers[data.TYPE].handle([data], uow)

    for issue_id in issue_ids:
        analyzed = IssueAnalyzed(
            issue_id=issue_id,
            channel="chat",
            customer=customer,
            text="需要更快的响应速度",
            analysis=Analysis(
                language="zh",
                need="更快的响应速度",
                intent="response_speed",
                sentiment=Sentiment(label="neutral", score=0),
                urgency="normal",
            ),
            analyzer_version="test",
            analyzed_at=datetime.now(UTC),
        )
        evaluated = SatisfactionEvaluated(
            issue_id=issue_id,
            customer=customer,
            score=0.5,
            verdict="neutral",
            source="implicit",
            basis="text",
            evaluated_at=datetime.now(UTC),
        )
        await asyncio.gather(handle(analyzed), handle(evaluated))
    async with db.unit_of_work() as uow:
        needs = (
            (
                await uow.session.execute(
                    select(followups.c.need).where(followups.c.issue_id.in_(issue_ids))
                )
            )
            .scalars()
            .all()
        )
    assert needs == ["更快的响应速度"] * len(issue_ids)
    await db.dispose()
