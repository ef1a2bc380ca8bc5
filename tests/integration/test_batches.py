"""The batched consumer on the real broker and database: a poison message inside a batch, a
crash between commit and ack, and a whole batch delivered twice.

Messages are taken with basic.get and handed to ``Consumer.handle_batch`` so that each test
decides exactly which messages share a batch."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from sqlalchemy import func, select

from services.improvement.adapters.tables import outbox
from services.improvement.bootstrap import definition as improvement
from shared.contracts import CustomerRef, IssueReceived, IssueResolved, Resolution, new_event
from shared.db import Database, UnitOfWork
from shared.errors import PermanentFailure
from shared.messaging.consumer import Consumer, subscribe
from shared.messaging.topology import dead_letter_queue_name, declare_service_queue
from shared.settings import Settings
from tests.integration.conftest import open_database
from tests.support import publish, queue_depth, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")
LIMIT = 2


async def resolve_each(items: Sequence[IssueReceived], uow: UnitOfWork) -> None:
    """The effect under test: one outbox event per issue. 'poison' always fails; 'never'
    says it can never succeed."""
    for item in items:
        if item.text == "poison":
            raise ValueError("poison")
        if item.text == "never":
            raise PermanentFailure("this issue can never be handled")
        uow.emit(
            IssueResolved(
                issue_id=item.issue_id,
                customer=item.customer,
                resolved_at=item.received_at,
                resolution=Resolution(resolved_by="test", summary="handled"),
            )
        )


def received(text: str = "ok") -> IssueReceived:
    return IssueReceived(
        issue_id=uuid.uuid4(),
        channel="chat",
        external_id=uuid.uuid4().hex,
        customer=CustomerRef(customer_id=uuid.uuid4()),
        text=text,
        received_at=datetime.now(UTC),
    )


@pytest_asyncio.fixture(loop_scope="session")
async def db(private_stack: Settings) -> AsyncIterator[Database]:
    database = await open_database(private_stack, improvement)
    yield database
    await database.dispose()


def consumer_for(db: Database, service: str) -> Consumer:
    return Consumer(
        service=service,
        db=db,
        inbox=improvement.inbox,
        subscriptions=[subscribe(IssueReceived, resolve_each)],
        prefetch=100,
        batch_size=100,
        delivery_limit=LIMIT,
    )


async def declared(amqp: AbstractRobustConnection, service: str) -> AbstractQueue:
    channel = await amqp.channel()
    return await declare_service_queue(channel, service, ["issue.received"], delivery_limit=LIMIT)


async def take(queue: AbstractQueue, count: int) -> list[AbstractIncomingMessage]:
    messages = []
    while len(messages) < count:
        message = await queue.get(fail=False, timeout=5)
        if message is None:
            continue
        messages.append(message)
    return messages


async def dead_lettered(amqp: AbstractRobustConnection, service: str) -> None:
    async def one_in_dlq() -> bool:
        return await queue_depth(amqp, dead_letter_queue_name(service)) == 1

    await wait_until(one_in_dlq, timeout=10, what=f"one message in {service}'s DLQ")


async def effects(db: Database, issues: Sequence[IssueReceived]) -> dict[uuid.UUID, int]:
    ids = [str(issue.issue_id) for issue in issues]
    subject = outbox.c.payload["subject"].astext
    async with db.unit_of_work() as uow:
        rows = (
            await uow.session.execute(
                select(subject, func.count()).where(subject.in_(ids)).group_by(subject)
            )
        ).all()
    return {uuid.UUID(subject): count for subject, count in rows}


async def test_a_poison_message_does_not_hold_back_its_batch(
    private_stack: Settings, amqp: AbstractRobustConnection, db: Database
) -> None:
    queue = await declared(amqp, "batchpoison")
    consumer = consumer_for(db, "batchpoison")
    good = [received() for _ in range(9)]
    poison = received("poison")
    batch = [*good[:4], poison, *good[4:]]
    events = [new_event("/kefu/intake", data) for data in batch]
    poison_event = events[4]
    for event in events:
        await publish(amqp, private_stack, event)

    await consumer.handle_batch(await take(queue, len(batch)))
    assert await effects(db, good) == {issue.issue_id: 1 for issue in good}
    # The poison alone came back; it reaches the DLQ after the delivery limit, nothing else.
    for _ in range(LIMIT):
        (again,) = await take(queue, 1)
        assert again.message_id == str(poison_event.id)
        await consumer.handle_batch([again])
    await dead_lettered(amqp, "batchpoison")
    assert await queue_depth(amqp, "kefu.batchpoison") == 0
    assert await effects(db, [poison]) == {}


async def test_a_message_that_can_never_succeed_is_dead_lettered_at_once(
    private_stack: Settings, amqp: AbstractRobustConnection, db: Database
) -> None:
    queue = await declared(amqp, "batchnever")
    consumer = consumer_for(db, "batchnever")
    good = [received() for _ in range(3)]
    batch = [good[0], received("never"), *good[1:]]
    for data in batch:
        await publish(amqp, private_stack, new_event("/kefu/intake", data))

    await consumer.handle_batch(await take(queue, len(batch)))
    await dead_lettered(amqp, "batchnever")
    assert await queue_depth(amqp, "kefu.batchnever") == 0
    assert await effects(db, good) == {issue.issue_id: 1 for issue in good}


async def test_a_crash_between_commit_and_ack_has_no_second_effect(
    private_stack: Settings, amqp: AbstractRobustConnection, db: Database
) -> None:
    channel = await amqp.channel()
    queue = await declare_service_queue(
        channel, "batchcrash", ["issue.received"], delivery_limit=LIMIT
    )
    crashing = consumer_for(db, "batchcrash")

    async def crash(*_: object) -> None:
        raise RuntimeError("process killed after commit, before ack")

    crashing._ack = crash  # type: ignore[method-assign]
    issues = [received() for _ in range(5)]
    events = [new_event("/kefu/intake", data) for data in issues]
    for event in events:
        await publish(amqp, private_stack, event)
    with pytest.raises(RuntimeError):
        await crashing.handle_batch(await take(queue, len(issues)))
    assert await effects(db, issues) == {issue.issue_id: 1 for issue in issues}
    await channel.close()  # the unacked messages go back to the queue

    survivor = consumer_for(db, "batchcrash")
    requeued = await take(await declared(amqp, "batchcrash"), len(issues))
    assert sorted(str(m.message_id) for m in requeued) == sorted(str(e.id) for e in events)
    assert all(m.redelivered for m in requeued)
    await survivor.handle_batch(requeued)
    assert await effects(db, issues) == {issue.issue_id: 1 for issue in issues}
    assert await queue_depth(amqp, "kefu.batchcrash") == 0


async def test_a_whole_batch_delivered_twice_has_one_effect_per_event(
    private_stack: Settings, amqp: AbstractRobustConnection, db: Database
) -> None:
    queue = await declared(amqp, "batchtwice")
    consumer = consumer_for(db, "batchtwice")
    issues = [received() for _ in range(5)]
    events = [new_event("/kefu/intake", data) for data in issues]
    for _ in range(2):  # the same event ids twice: both copies land in one batch
        for event in events:
            await publish(amqp, private_stack, event)
    await consumer.handle_batch(await take(queue, 2 * len(events)))
    assert await effects(db, issues) == {issue.issue_id: 1 for issue in issues}
    for event in events:  # and once more, in a later batch
        await publish(amqp, private_stack, event)
    await consumer.handle_batch(await take(queue, len(events)))
    assert await effects(db, issues) == {issue.issue_id: 1 for issue in issues}
    assert await queue_depth(amqp, "kefu.batchtwice") == 0
