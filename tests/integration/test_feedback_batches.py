"""feedback's handlers on batches: several events of one issue in one batch give the verdicts
and the events they give one by one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aio_pika.abc import AbstractIncomingMessage
from pydantic import TypeAdapter
from sqlalchemy import select

from services.feedback.adapters.tables import inbox, outbox, verdicts
from services.feedback.bootstrap import definition as feedback_service
from services.feedback.handlers import subscriptions
from shared.contracts import (
    PUBLISHERS,
    Analysis,
    CustomerRef,
    EventData,
    FeedbackSubmitted,
    IssueAnalyzed,
    IssueReceived,
    Rating,
    Sentiment,
    new_event,
    service_source,
)
from shared.db import Database
from shared.messaging.consumer import Consumer
from shared.settings import Settings
from tests.integration.conftest import open_database

pytestmark = pytest.mark.asyncio(loop_scope="session")
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
LI_SI = CustomerRef(customer_id=uuid.uuid4(), name="李四")


class Channel:
    """Deliveries numbered in order, as a broker's channel numbers them."""

    is_closed = False

    def __init__(self) -> None:
        self.delivered: list[Message] = []


class Message:
    """Just what the consumer reads of a delivery, and records how it was settled."""

    def __init__(self, data: EventData, channel: Channel) -> None:
        event = new_event(service_source(PUBLISHERS[data.TYPE]), data)
        self.body = event.model_dump_json().encode()
        self.message_id = None
        self.user_id = None
        self.type = data.TYPE
        self.settled: str | None = None
        self.channel = channel
        channel.delivered.append(self)
        self.delivery_tag = len(channel.delivered)

    async def ack(self, multiple: bool = False) -> None:
        for message in self.channel.delivered if multiple else [self]:
            if message.delivery_tag <= self.delivery_tag and message.settled is None:
                message.settled = "ack"

    async def nack(self, requeue: bool = True) -> None:
        self.settled = f"nack requeue={requeue}"

    async def reject(self, requeue: bool = False) -> None:
        self.settled = f"reject requeue={requeue}"


def rating(scale: str, value: Any) -> Rating:
    return TypeAdapter(Rating).validate_python({"scale": scale, "value": value})


def story(issue_id: uuid.UUID) -> list[EventData]:
    """One issue's life: text, ratings (one older, one without a customer), a comment, and
    its analysis in between."""

    def rated(at: timedelta, scale: str, value: Any, customer: Any = LI_SI) -> EventData:
        return FeedbackSubmitted(
            feedback_id=uuid.uuid4(),
            issue_id=issue_id,
            customer=customer,
            rating=rating(scale, value),
            submitted_at=T0 + at,
        )

    return [
        IssueReceived(
            issue_id=issue_id,
            channel="email",
            external_id=str(issue_id),
            customer=LI_SI,
            subject="快递",
            text="满意度为中，需要更快的发货",
            received_at=T0,
        ),
        rated(timedelta(hours=1), "csat5", 2),
        IssueAnalyzed(
            issue_id=issue_id,
            channel="email",
            customer=LI_SI,
            text="x",
            analyzer_version="t",
            analysis=Analysis(
                language="zh",
                intent="delivery",
                urgency="normal",
                sentiment=Sentiment(label="neutral", score=0),
            ),
            analyzed_at=T0,
        ),
        FeedbackSubmitted(
            feedback_id=uuid.uuid4(),
            issue_id=issue_id,
            customer=LI_SI,
            comment="非常满意",
            submitted_at=T0 + timedelta(hours=2),
        ),
        rated(timedelta(minutes=30), "csat5", 5),  # older than the csat5=2: loses
        rated(timedelta(hours=3), "nps10", 10, customer=None),
        rated(timedelta(hours=4), "ces7", 6),
        rated(timedelta(hours=5), "nps10", 3),
    ]


def feedback_consumer(db: Database) -> Consumer:
    """feedback's consumer, fed by hand with ``handle_batch``."""
    return Consumer(
        service="feedback",
        db=db,
        inbox=inbox,
        subscriptions=subscriptions,
        prefetch=200,
        batch_size=100,
        delivery_limit=3,
    )


async def outcome(db: Database, issue_id: uuid.UUID) -> tuple[list[Any], tuple[Any, ...]]:
    """The events published about the issue and its verdict, without ids and times of
    evaluation."""
    async with db.unit_of_work() as uow:
        rows = await uow.session.execute(
            select(outbox.c.payload)
            .where(outbox.c.payload["subject"].astext == str(issue_id))
            .order_by(outbox.c.created_at, outbox.c.id)
        )
        events = [
            {k: v for k, v in row[0]["data"].items() if k not in ("issue_id", "evaluated_at")}
            for row in rows
        ]
        v = (
            await uow.session.execute(select(verdicts).where(verdicts.c.issue_id == issue_id))
        ).one()
    return events, (
        v.verdict,
        v.score,
        v.source,
        v.basis,
        v.decided_at,
        v.customer,
        v.channel,
        v.intent,
        v.nps,
        v.nps_at,
        v.ces,
        v.ces_at,
    )


async def test_a_batch_gives_the_verdicts_and_events_of_one_by_one(
    private_stack: Settings,
) -> None:
    db = await open_database(private_stack, feedback_service)
    consumer = feedback_consumer(db)

    async def handle(events: Sequence[EventData]) -> list[Message]:
        channel = Channel()
        messages = [Message(data, channel) for data in events]
        await consumer.handle_batch(cast(list[AbstractIncomingMessage], messages))
        return messages

    single, batched, neighbour = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for data in story(single):
        await handle([data])
    # The batched issue's story interleaved with another issue's, in one batch.
    mixed: list[EventData] = []
    for mine, theirs in zip(story(batched), story(neighbour), strict=True):
        mixed += [mine, theirs]
    messages = await handle(mixed)
    assert {m.settled for m in messages} == {"ack"}

    one_by_one = await outcome(db, single)
    assert [(e["verdict"], e["basis"]) for e in one_by_one[0]] == [
        ("neutral", "text '满意度为中'"),
        ("dissatisfied", "rating csat5=2"),
        ("satisfied", "rating nps10=10"),
        ("satisfied", "rating ces7=6"),
        ("dissatisfied", "rating nps10=3"),
    ]
    assert one_by_one[0][3]["customer"]["name"] == "李四"  # carried over
    assert one_by_one[1][6:9] == ("email", "delivery", 3)
    assert await outcome(db, batched) == one_by_one
    assert await outcome(db, neighbour) == one_by_one

    # The whole batch again (a redelivery): no second effect.
    again = await handle(mixed)
    assert {m.settled for m in again} == {"ack"}
    assert await outcome(db, batched) == one_by_one
    await db.dispose()


async def test_repeats_of_one_issue_in_a_batch_are_folded(private_stack: Settings) -> None:
    """Two receipts and two analyses of one issue in one batch (new event ids): the later
    receipt's channel and the newest analysis are kept, in one statement each."""
    db = await open_database(private_stack, feedback_service)
    consumer = feedback_consumer(db)
    issue_id = uuid.uuid4()
    received, _, analyzed, *_ = story(issue_id)
    assert isinstance(received, IssueReceived) and isinstance(analyzed, IssueAnalyzed)
    newer = analyzed.model_copy(update={"analyzed_at": T0 + timedelta(days=1)})
    older = analyzed.model_copy(
        update={"analysis": analyzed.analysis.model_copy(update={"intent": "refund"})}
    )
    events: list[EventData] = [
        received.model_copy(update={"channel": "chat"}),
        newer,
        received,
        older,
        FeedbackSubmitted(
            feedback_id=uuid.uuid4(),
            issue_id=issue_id,
            customer=LI_SI,
            rating=rating("faces3", "not_good"),
            submitted_at=T0,
        ),
    ]
    channel = Channel()
    messages = [Message(data, channel) for data in events]
    await consumer.handle_batch(cast(list[AbstractIncomingMessage], messages))
    assert {m.settled for m in messages} == {"ack"}
    published, verdict = await outcome(db, issue_id)
    assert [e["basis"] for e in published] == ["text '满意度为中'", "rating faces3=not_good"]
    assert verdict[6:8] == ("email", "delivery")
    await db.dispose()


async def test_changes_of_one_issue_in_one_batch_are_published_in_time_order(
    private_stack: Settings,
) -> None:
    """Consumers keep an issue's latest verdict by ``evaluated_at``, and two changes of one
    batch may reach them in any order (replicas, a relay retry): their times must differ."""
    db = await open_database(private_stack, feedback_service)
    consumer = feedback_consumer(db)
    issue_id = uuid.uuid4()
    ratings = [
        FeedbackSubmitted(
            feedback_id=uuid.uuid4(),
            issue_id=issue_id,
            customer=LI_SI,
            rating=rating("csat5", value),
            submitted_at=T0 + timedelta(minutes=minute),
        )
        for minute, value in ((1, 1), (2, 5))
    ]
    channel = Channel()
    await consumer.handle_batch(
        cast(list[AbstractIncomingMessage], [Message(data, channel) for data in ratings])
    )
    published, _ = await outcome(db, issue_id)
    assert [e["verdict"] for e in published] == ["dissatisfied", "satisfied"]
    async with db.unit_of_work() as uow:
        times = (
            await uow.session.execute(
                select(outbox.c.payload["data"]["evaluated_at"].astext)
                .where(outbox.c.payload["subject"].astext == str(issue_id))
                .order_by(outbox.c.created_at, outbox.c.id)
            )
        ).scalars()
        first, second = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times)
    assert first < second
    await db.dispose()
