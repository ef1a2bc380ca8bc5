"""Least privilege on the broker: the users `kefu setup` creates, each tried at what it must
not do, and a forged event sent with another service's credentials."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import aio_pika
import aiormq
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import func, select

from deploy import broker, broker_users, dlq
from services.improvement.adapters.tables import followups
from services.improvement.bootstrap import definition as improvement
from services.improvement.handlers import make_subscriptions
from shared.contracts import (
    Analysis,
    CustomerRef,
    IssueAnalyzed,
    IssueReceived,
    SatisfactionEvaluated,
    Sentiment,
    new_event,
)
from shared.messaging.consumer import Consumer
from shared.messaging.provenance import Provenance
from shared.messaging.publisher import Publisher, PublishNotConfirmed
from shared.settings import SERVICES, Settings
from tests.integration.conftest import open_database
from tests.support import wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")
NAMES = (*SERVICES, "cli", "subscriber")


@pytest.fixture(scope="module")
def users(private_stack: Settings) -> Iterator[dict[str, str]]:
    """Every user set-up makes, under a prefix of this module's own; their AMQP URLs."""
    prefix = f"kefu_t{uuid.uuid4().hex[:8]}_"
    passwords = {name: uuid.uuid4().hex for name in NAMES}
    settings = private_stack.model_copy(update={"amqp_user_prefix": prefix})
    broker.declare_sync(settings)
    broker_users.create_users(settings.management_url(), settings.amqp_vhost(), prefix, passwords)
    amqp = urlsplit(private_stack.amqp_url)
    try:
        yield {
            name: f"amqp://{quote(prefix + name)}:{passwords[name]}@{amqp.hostname}:{amqp.port}"
            f"{amqp.path}"
            for name in NAMES
        } | {"prefix": prefix}
    finally:
        broker_users.delete_users(settings.management_url(), prefix)


@pytest_asyncio.fixture(loop_scope="session")
async def feedback_amqp(users: dict[str, str]) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(users["feedback"])
    yield connection
    await connection.close()


def verdict(issue_id: uuid.UUID) -> SatisfactionEvaluated:
    return SatisfactionEvaluated(
        issue_id=issue_id,
        customer=CustomerRef(customer_id=uuid.uuid4(), name="李四"),
        score=0.5,
        verdict="neutral",
        source="implicit",
        basis="text '满意度为中'",
        evaluated_at=datetime.now(UTC),
    )


async def publish_as(
    connection: AbstractRobustConnection, user: str, event_type: str, data: object
) -> None:
    publisher = Publisher(timeout=5, user_id=user)
    await publisher.open(connection)
    try:
        event = new_event("/kefu/feedback", data)  # type: ignore[arg-type]
        await publisher.publish(
            {"id": str(event.id), "type": event_type, "source": event.source},
            event.model_dump_json().encode(),
        )
    finally:
        await publisher.close()


async def test_a_service_publishes_only_its_own_event_types(
    users: dict[str, str], feedback_amqp: AbstractRobustConnection
) -> None:
    me = users["prefix"] + "feedback"
    await publish_as(feedback_amqp, me, "kefu.satisfaction.evaluated", verdict(uuid.uuid4()))
    issue = IssueReceived(
        issue_id=uuid.uuid4(),
        channel="web",
        external_id="x",
        customer=CustomerRef(customer_id=uuid.uuid4()),
        text="forged",
        received_at=datetime.now(UTC),
    )
    with pytest.raises(PublishNotConfirmed, match="ACCESS_REFUSED"):
        await publish_as(feedback_amqp, me, "kefu.issue.received", issue)
    # Nor in another's name: RabbitMQ checks user_id against the connection's user.
    with pytest.raises(PublishNotConfirmed, match="PRECONDITION_FAILED"):
        await publish_as(
            feedback_amqp,
            users["prefix"] + "intake",
            "kefu.satisfaction.evaluated",
            verdict(uuid.uuid4()),
        )


async def test_a_service_cannot_read_delete_or_create_queues(
    feedback_amqp: AbstractRobustConnection,
) -> None:
    for attempt in (
        lambda ch: ch.queue_delete("kefu.improvement"),
        lambda ch: ch.declare_queue("kefu.stolen", durable=True),
        lambda ch: ch.declare_exchange("kefu.events", aio_pika.ExchangeType.TOPIC, durable=True),
    ):
        channel = await feedback_amqp.channel()
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await attempt(channel)
    for queue in ("kefu.improvement", "kefu.events.archive", "kefu.improvement.dlq"):
        channel = await feedback_amqp.channel()
        found = await channel.get_queue(queue, ensure=True)  # passive: allowed
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await found.get(fail=False)
    # Its own DLQ it reads: an erasure strips the customer's events there.
    channel = await feedback_amqp.channel()
    own = await channel.get_queue("kefu.feedback.dlq", ensure=True)
    assert await own.get(fail=False) is None
    await channel.close()


async def test_webhooks_binds_only_its_own_queue_and_only_event_types(
    users: dict[str, str],
) -> None:
    connection = await aio_pika.connect_robust(users["webhooks"])
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange("kefu.events", ensure=True)
        own = await channel.get_queue("kefu.webhooks", ensure=True)
        await own.bind(exchange, routing_key="issue.analyzed")
        await own.unbind(exchange, routing_key="issue.analyzed")
        for queue, key in (("kefu.webhooks", "#"), ("kefu.improvement", "issue.analyzed")):
            channel = await connection.channel()
            exchange = await channel.get_exchange("kefu.events", ensure=True)
            target = await channel.get_queue(queue, ensure=True)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await target.bind(exchange, routing_key=key)
    finally:
        await connection.close()


async def test_the_subscriber_reads_its_own_queue_and_publishes_nothing(
    users: dict[str, str],
) -> None:
    connection = await aio_pika.connect_robust(users["subscriber"])
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange("kefu.events", ensure=True)
        queue = await channel.declare_queue(users["prefix"] + "subscriber.crm", auto_delete=True)
        await queue.bind(exchange, routing_key="improvement.#")
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("kefu.events", ensure=True)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await exchange.publish(aio_pika.Message(b"{}"), routing_key="improvement.proposed")
    finally:
        await connection.close()


async def test_an_event_forged_with_another_services_credentials_is_dead_lettered(
    private_stack: Settings, users: dict[str, str], feedback_amqp: AbstractRobustConnection
) -> None:
    """feedback's user may write to the default exchange (for its released copies), so it can
    put a message into improvement's queue: improvement refuses it for its user_id."""
    prefix = users["prefix"]
    db = await open_database(private_stack, improvement)
    consumer_amqp = await aio_pika.connect_robust(users["improvement"])
    consumer = Consumer(
        service="improvement",
        db=db,
        inbox=improvement.inbox,
        subscriptions=make_subscriptions(),
        prefetch=10,
        batch_size=5,
        delivery_limit=3,
        provenance=Provenance("improvement", prefix),
        user_id=prefix + "improvement",
        declare=False,
    )
    await consumer.start(consumer_amqp)
    try:
        forged_issue = uuid.uuid4()
        forged = IssueAnalyzed(
            issue_id=forged_issue,
            channel="web",
            customer=CustomerRef(customer_id=uuid.uuid4(), name="FORGED"),
            text="forged",
            analysis=Analysis(
                language="en",
                intent="refund",
                sentiment=Sentiment(label="negative", score=-1),
                urgency="urgent",
            ),
            analyzer_version="forged",
            analyzed_at=datetime.now(UTC),
        )
        event = new_event("/kefu/need_analyzer", forged)
        channel = await feedback_amqp.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(
                event.model_dump_json().encode(),
                message_id=str(event.id),
                user_id=prefix + "feedback",
            ),
            routing_key="kefu.improvement",
        )
        # And a real verdict from feedback, through the topic exchange: handled.
        real_issue = uuid.uuid4()
        await publish_as(
            feedback_amqp, prefix + "feedback", "kefu.satisfaction.evaluated", verdict(real_issue)
        )

        async def opened() -> bool:
            async with db.unit_of_work() as uow:
                count = await uow.session.scalar(
                    select(func.count())
                    .select_from(followups)
                    .where(followups.c.issue_id == real_issue)
                )
            return bool(count)

        await wait_until(opened, what="the real verdict's follow-up")

        async def in_dlq() -> dict[str, object] | None:
            items = await asyncio.to_thread(dlq.peek, users["cli"], "improvement", 50)
            return next((i for i in items if i["message_id"] == str(event.id)), None)

        item = await wait_until(in_dlq, what="the forged event in the DLQ")
        assert item["reason"] == "wrong_publisher"
        assert prefix + "need_analyzer" in str(item["error"])
    finally:
        await consumer.stop()
        await consumer_amqp.close()
        await db.dispose()


async def test_a_replay_by_the_cli_user_is_accepted_and_launders_no_forgery(
    private_stack: Settings, users: dict[str, str], feedback_amqp: AbstractRobustConnection
) -> None:
    """`kefu dlq replay` as the CLI's user: its copies carry that user's user_id, which
    consumers trust, so a real event that had failed is handled once replayed; an event
    refused for its provenance is not replayed (it would come back trusted)."""
    prefix = users["prefix"]
    db = await open_database(private_stack, improvement)
    consumer_amqp = await aio_pika.connect_robust(users["improvement"])
    consumer = Consumer(
        service="improvement",
        db=db,
        inbox=improvement.inbox,
        subscriptions=make_subscriptions(),
        prefetch=10,
        batch_size=5,
        delivery_limit=3,
        provenance=Provenance("improvement", prefix),
        user_id=prefix + "improvement",
        declare=False,
    )
    await consumer.start(consumer_amqp)
    try:
        issue_id = uuid.uuid4()
        event = new_event("/kefu/feedback", verdict(issue_id))
        # feedback's real verdict, as improvement's queue dead-lettered it.
        channel = await feedback_amqp.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(
                event.model_dump_json().encode(),
                message_id=str(event.id),
                type=event.type,
                user_id=prefix + "feedback",
            ),
            routing_key="kefu.improvement.dlq",
        )
        # And a verdict as improvement dead-letters one refused for its publisher: replayed,
        # it would be handled (a follow-up would open).
        forged_issue = uuid.uuid4()
        forged = new_event("/kefu/feedback", verdict(forged_issue))
        await channel.default_exchange.publish(
            aio_pika.Message(
                forged.model_dump_json().encode(),
                message_id=str(forged.id),
                type=forged.type,
                user_id=prefix + "feedback",
                headers={"x-kefu-dead-letter-reason": "wrong_publisher"},
            ),
            routing_key="kefu.improvement.dlq",
        )
        await channel.close()
        assert await asyncio.to_thread(dlq.replay, users["cli"], "improvement") >= 1
        left = await asyncio.to_thread(dlq.peek, users["cli"], "improvement", 50)
        assert str(forged.id) in {item["message_id"] for item in left}

        async def opened() -> bool:
            async with db.unit_of_work() as uow:
                count = await uow.session.scalar(
                    select(func.count())
                    .select_from(followups)
                    .where(followups.c.issue_id == issue_id)
                )
            return bool(count)

        await wait_until(opened, what="the replayed verdict's follow-up")
        async with db.unit_of_work() as uow:
            laundered = await uow.session.scalar(
                select(func.count())
                .select_from(followups)
                .where(followups.c.issue_id == forged_issue)
            )
        assert laundered == 0
    finally:
        await consumer.stop()
        await consumer_amqp.close()
        await db.dispose()
