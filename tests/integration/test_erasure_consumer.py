"""After kefu.customer.erased, events about the customer that were already on their way reach
the handlers without the customer's data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import select

from services.improvement.adapters.tables import erasures, followups
from services.improvement.bootstrap import definition as improvement
from shared.contracts import CustomerErased, CustomerRef, SatisfactionEvaluated, new_event
from shared.erasure import record_erasures
from shared.messaging.consumer import Consumer, record_in_inbox_and_find_erased
from shared.settings import Settings
from tests.integration.conftest import open_database
from tests.support import publish, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_event_that_arrives_after_the_erasure_is_stripped(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    db = await open_database(private_stack, improvement)
    consumer = Consumer(
        service="erasurecheck",
        db=db,
        inbox=improvement.inbox,
        subscriptions=improvement.subscriptions,
        prefetch=10,
        batch_size=5,
        delivery_limit=3,
        erasures=erasures,
    )
    await consumer.start(amqp)
    customer_id, issue_id = uuid.uuid4(), uuid.uuid4()
    try:
        erased = CustomerErased(customer_id=customer_id, erased_at=datetime.now(UTC))
        await publish(amqp, private_stack, new_event("/kefu/intake", erased))
        late = SatisfactionEvaluated(
            issue_id=issue_id,
            customer=CustomerRef(
                customer_id=customer_id, name="王五", email="wangwu.late@example.com"
            ),
            score=0.0,
            verdict="dissatisfied",
            source="implicit",
            basis="text '太差了，王五很失望'",
            evaluated_at=datetime.now(UTC),
        )
        await publish(amqp, private_stack, new_event("/kefu/feedback", late))

        async def followup() -> object:
            async with db.unit_of_work() as uow:
                return (
                    await uow.session.execute(
                        select(followups).where(followups.c.issue_id == issue_id)
                    )
                ).first()

        row = await wait_until(followup, what="the follow-up")
        assert row.customer == {
            "customer_id": str(customer_id),
            "name": None,
            "email": None,
            "phone": None,
            "external_id": None,
        }
        assert "王五" not in row.summary and "王五" not in row.reason
        assert row.verdict == "dissatisfied"
    finally:
        await consumer.stop()
        await db.dispose()


async def test_the_inbox_and_the_erasures_are_read_in_one_statement(
    private_stack: Settings,
) -> None:
    db = await open_database(private_stack, improvement)
    erased_customer, other_customer = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    first, second = (
        new_event("/kefu/intake", CustomerErased(customer_id=uuid.uuid4(), erased_at=now))
        for _ in range(2)
    )
    try:
        async with db.unit_of_work() as uow:
            await record_erasures(uow, erasures, {erased_customer: now})
        for expected_fresh in ({first.id, second.id}, set()):
            async with db.unit_of_work() as uow:
                fresh, erased = await record_in_inbox_and_find_erased(
                    uow,
                    improvement.inbox,
                    erasures,
                    [first, first, second],  # the same event twice in one batch
                    {erased_customer, other_customer},
                )
            assert fresh == expected_fresh
            assert erased == {erased_customer}
    finally:
        await db.dispose()
