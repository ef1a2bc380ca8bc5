"""Consumer runner on the real broker and database: inbox, delivery limit, DLQ, DB outage."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from deploy import dlq as dlq_tool
from services.improvement.adapters.tables import followups, outbox
from services.improvement.bootstrap import definition as improvement
from services.improvement.handlers import make_subscriptions
from shared.contracts import (
    CustomerRef,
    IssueReceived,
    SatisfactionEvaluated,
    new_event,
)
from shared.db import Database, Outbox, UnitOfWork, create_engine
from shared.messaging.consumer import Consumer, subscribe
from shared.messaging.topology import (
    dead_letter_queue_name,
    declare_events_exchange,
)
from shared.settings import Settings
from tests.integration.conftest import open_database
from tests.support import publish, queue_depth, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")
improvement_subscriptions = make_subscriptions()


def unreachable_database() -> Database:
    """improvement's database as a consumer sees it during an outage: nothing answers."""
    return Database(
        create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", timeout=1),
        Outbox(improvement.outbox, source="/kefu/improvement"),
    )


def li_si_verdict(issue_id: uuid.UUID) -> SatisfactionEvaluated:
    return SatisfactionEvaluated(
        issue_id=issue_id,
        customer=CustomerRef(customer_id=uuid.uuid4(), name="李四", phone="+8613900139000"),
        score=0.5,
        verdict="neutral",
        source="implicit",
        basis="text '满意度为中'",
        evaluated_at=datetime.now(UTC),
    )


async def test_redelivered_event_has_no_second_effect(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    db = await open_database(private_stack, improvement)
    consumer = Consumer(
        service="improvement",
        db=db,
        inbox=improvement.inbox,
        subscriptions=improvement_subscriptions,
        prefetch=4,
        batch_size=2,
        delivery_limit=3,
    )
    await consumer.start(amqp)
    issue_id = uuid.uuid4()
    event = new_event("/kefu/feedback", li_si_verdict(issue_id))
    for _ in range(3):  # the same event id, three deliveries
        await publish(amqp, private_stack, event)

    async def effects() -> tuple[int, int]:
        async with db.unit_of_work() as uow:
            f = await uow.session.scalar(
                select(func.count()).select_from(followups).where(followups.c.issue_id == issue_id)
            )
            o = await uow.session.scalar(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.payload["subject"].astext == str(issue_id))
            )
        return f or 0, o or 0

    async def followed_up() -> bool:  # (0, 0) is a truthy tuple: wait for the follow-up itself
        return (await effects())[0] > 0

    await wait_until(followed_up, what="the follow-up")

    async def drained() -> bool:
        return await queue_depth(amqp, "kefu.improvement") == 0

    await wait_until(drained, what="queue drained")
    assert await effects() == (1, 1)
    # A different event about the same issue is not a redelivery, yet still no second follow-up.
    await publish(amqp, private_stack, new_event("/kefu/feedback", li_si_verdict(issue_id)))
    await wait_until(drained, what="queue drained")
    assert await effects() == (1, 1)
    await consumer.stop()
    await db.dispose()


async def test_failing_message_goes_to_dlq_after_the_delivery_limit(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    db = await open_database(private_stack, improvement)
    attempts: list[uuid.UUID] = []

    async def always_fails(items: Sequence[IssueReceived], uow: UnitOfWork) -> None:
        attempts.extend(item.issue_id for item in items)
        raise ValueError("poison")

    limit = 2
    consumer = Consumer(
        service="dlqcheck",
        db=db,
        inbox=improvement.inbox,
        subscriptions=[subscribe(IssueReceived, always_fails)],
        prefetch=1,
        batch_size=1,
        delivery_limit=limit,
    )
    await consumer.start(amqp)
    issue_id = uuid.uuid4()
    event = new_event(
        "/kefu/intake",
        IssueReceived(
            issue_id=issue_id,
            channel="chat",
            external_id="poison-1",
            customer=CustomerRef(customer_id=uuid.uuid4()),
            text="x",
            received_at=datetime.now(UTC),
        ),
    )
    await publish(amqp, private_stack, event)
    dlq = dead_letter_queue_name("dlqcheck")

    async def dead_lettered() -> bool:
        return await queue_depth(amqp, dlq) == 1

    await wait_until(dead_lettered, what="message in the DLQ")
    assert attempts == [issue_id] * (limit + 1)  # first delivery + `limit` redeliveries
    assert await queue_depth(amqp, "kefu.dlqcheck") == 0

    # Nothing can fix an undecodable message: it goes to the DLQ at once.
    channel = await amqp.channel()
    exchange = await declare_events_exchange(channel)
    await exchange.publish(
        aio_pika.Message(b"not an event", message_id="junk"), routing_key="issue.received"
    )

    async def both_dead() -> bool:
        return await queue_depth(amqp, dlq) == 2

    await wait_until(both_dead, what="junk in the DLQ")
    message = await (await channel.declare_queue(dlq, passive=True)).get(timeout=5)
    assert message is not None and message.message_id == str(event.id)
    assert message.headers["x-death"][0]["reason"] in ("delivery_limit", "rejected")
    await message.nack(requeue=True)
    await channel.close()
    await consumer.stop()
    await db.dispose()


async def test_database_outage_pauses_instead_of_dead_lettering(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    good = await open_database(private_stack, improvement)
    down = unreachable_database()
    consumer = Consumer(
        service="outagecheck",
        db=down,
        inbox=improvement.inbox,
        subscriptions=improvement_subscriptions,
        prefetch=1,
        batch_size=1,
        delivery_limit=1,
    )
    await consumer.start(amqp)
    issue_id = uuid.uuid4()
    await publish(amqp, private_stack, new_event("/kefu/feedback", li_si_verdict(issue_id)))
    # An observation window: with a delivery limit of 1, a nack here would dead-letter at once.
    await asyncio.sleep(3)
    assert await queue_depth(amqp, dead_letter_queue_name("outagecheck")) == 0

    consumer.db = good  # the database comes back

    async def followed_up() -> bool:
        async with good.unit_of_work() as uow:
            return bool(
                await uow.session.scalar(
                    select(func.count())
                    .select_from(followups)
                    .where(followups.c.issue_id == issue_id)
                )
            )

    await wait_until(followed_up, timeout=40, what="processing after the outage")
    await consumer.stop()
    await down.dispose()
    await good.dispose()


async def test_dead_letters_are_visible_and_can_be_replayed(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    """Left by the DLQ test above: the poison event and the junk message."""
    dlq = dead_letter_queue_name("dlqcheck")
    seen = await asyncio.to_thread(dlq_tool.peek, private_stack.amqp_url, "dlqcheck")
    assert len(seen) == 2 and {item["reason"] for item in seen} <= {"delivery_limit", "rejected"}
    assert await queue_depth(amqp, dlq) == 2  # peeking takes nothing away
    moved = await asyncio.to_thread(dlq_tool.replay, private_stack.amqp_url, "dlqcheck")
    assert moved == 2
    assert await queue_depth(amqp, dlq) == 0
    assert await queue_depth(amqp, "kefu.dlqcheck") == 2


async def _consumer_count(settings: Settings, queue: str) -> int:
    """Consumers registered on the queue now. (The queue's own count keeps a cancelled
    consumer of a quorum queue while it still holds unacked messages.)"""
    vhost = settings.amqp_url.rsplit("/", 1)[1]
    listing = await asyncio.to_thread(
        subprocess.run,
        ["rabbitmqctl", "-q", "list_consumers", "-p", vhost, "queue_name"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return sum(1 for line in listing.stdout.splitlines() if line.strip() == queue)


async def test_a_long_outage_pauses_the_consumer_and_releases_what_it_held_unburned(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    """Past ``hold_seconds`` the held messages go back to the queue as fresh copies: with a
    delivery limit of 0, any message handed back by nack, reject or a closed channel (each
    counts on RabbitMQ 3.10's quorum queues) would be dead-lettered at once."""
    good = await open_database(private_stack, improvement)
    down = unreachable_database()
    consumer = Consumer(
        service="holdcheck",
        db=down,
        inbox=improvement.inbox,
        subscriptions=improvement_subscriptions,
        prefetch=10,
        batch_size=2,
        delivery_limit=0,
        retry_max_seconds=0.5,
        hold_seconds=2,
    )
    await consumer.start(amqp)
    issue_ids = [uuid.uuid4() for _ in range(3)]
    for issue_id in issue_ids:
        await publish(amqp, private_stack, new_event("/kefu/feedback", li_si_verdict(issue_id)))

    await wait_until(lambda: consumer.paused, what="the consumer paused")

    async def no_consumer() -> bool:
        return await _consumer_count(private_stack, "kefu.holdcheck") == 0

    await wait_until(no_consumer, what="basic.cancel seen by the broker")

    async def released() -> bool:
        return await queue_depth(amqp, "kefu.holdcheck") == len(issue_ids)

    await wait_until(released, timeout=20, what="held messages back in the queue")
    assert await queue_depth(amqp, dead_letter_queue_name("holdcheck")) == 0

    consumer.db = good  # the database comes back

    async def all_followed_up() -> bool:
        async with good.unit_of_work() as uow:
            count = await uow.session.scalar(
                select(func.count())
                .select_from(followups)
                .where(followups.c.issue_id.in_(issue_ids))
            )
        return count == len(issue_ids)

    await wait_until(all_followed_up, timeout=30, what="processing after the outage")

    async def consuming_again() -> bool:
        return await _consumer_count(private_stack, "kefu.holdcheck") == 1

    await wait_until(consuming_again, what="basic.consume again")
    assert not consumer.paused
    assert await queue_depth(amqp, dead_letter_queue_name("holdcheck")) == 0
    await consumer.stop()
    await down.dispose()
    await good.dispose()


async def test_a_statement_that_always_times_out_ends_in_the_dlq_with_the_reason(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    """Not an outage (the database answers other queries): a bounded number of tries, then
    the DLQ, with the reason in the message's headers and in `kefu dlq show`."""
    engine = create_async_engine(
        private_stack.service_database_url("improvement"),
        connect_args={"command_timeout": 0.3},  # every statement of this engine times out
    )
    db = Database(engine, Outbox(improvement.outbox, source="/kefu/improvement"))
    tries: list[int] = []

    async def slow(items: Sequence[IssueReceived], uow: UnitOfWork) -> None:
        tries.append(len(items))
        await uow.session.execute(text("SELECT pg_sleep(2)"))

    consumer = Consumer(
        service="slowcheck",
        db=db,
        inbox=improvement.inbox,
        subscriptions=[subscribe(IssueReceived, slow)],
        prefetch=1,
        batch_size=1,
        delivery_limit=3,
        retry_max_seconds=0.2,
        transient_retries=3,
    )
    await consumer.start(amqp)
    event = new_event(
        "/kefu/intake",
        IssueReceived(
            issue_id=uuid.uuid4(),
            channel="chat",
            external_id="slow-1",
            customer=CustomerRef(customer_id=uuid.uuid4()),
            text="x",
            received_at=datetime.now(UTC),
        ),
    )
    await publish(amqp, private_stack, event)
    dlq = dead_letter_queue_name("slowcheck")

    async def dead_lettered() -> bool:
        return await queue_depth(amqp, dlq) == 1

    await wait_until(dead_lettered, timeout=30, what="the message in the DLQ")
    assert tries == [1, 1, 1]  # three tries in one delivery: no redelivery was burned
    assert not consumer.paused  # the database answered: not an outage
    assert await queue_depth(amqp, "kefu.slowcheck") == 0
    seen = await asyncio.to_thread(dlq_tool.peek, private_stack.amqp_url, "slowcheck")
    assert [item["message_id"] for item in seen] == [str(event.id)]
    assert seen[0]["reason"] == "transient_retries"
    assert "TimeoutError" in seen[0]["error"]
    await consumer.stop()
    await db.dispose()


class CuttableProxy:
    """A TCP proxy in front of PostgreSQL: ``cut()`` drops every connection and refuses new
    ones (a database that went away for this consumer only), ``restore()`` lets them in."""

    def __init__(self, target_port: int = 5432) -> None:
        self.target_port = target_port
        self.down = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        self.down = True
        for writer in list(self._writers):
            writer.transport.abort()

    def restore(self) -> None:
        self.down = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


async def test_connections_dropped_mid_stream_pause_the_consumer_until_the_database_returns(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    """A real outage for the consumer's connections: paused (no consumer on the queue), nothing
    handed back (delivery limit 0: any return would dead-letter), resumed within seconds."""
    proxy = CuttableProxy()
    await proxy.start()
    url = make_url(private_stack.service_database_url("improvement")).set(port=proxy.port)
    db = Database(
        create_engine(url.render_as_string(hide_password=False), timeout=1),
        Outbox(improvement.outbox, source="/kefu/improvement"),
    )
    consumer = Consumer(
        service="cutcheck",
        db=db,
        inbox=improvement.inbox,
        subscriptions=improvement_subscriptions,
        prefetch=10,
        batch_size=5,
        delivery_limit=0,
        retry_max_seconds=0.5,
    )
    await consumer.start(amqp)

    async def followed_up(issue_ids: list[uuid.UUID]) -> bool:
        try:
            async with db.unit_of_work() as uow:
                count = await uow.session.scalar(
                    select(func.count())
                    .select_from(followups)
                    .where(followups.c.issue_id.in_(issue_ids))
                )
        except Exception:
            return False
        return count == len(issue_ids)

    before = [uuid.uuid4() for _ in range(5)]
    for issue_id in before:
        await publish(amqp, private_stack, new_event("/kefu/feedback", li_si_verdict(issue_id)))
    await wait_until(lambda: followed_up(before), what="processing before the outage")

    proxy.cut()
    during = [uuid.uuid4() for _ in range(5)]
    for issue_id in during:
        await publish(amqp, private_stack, new_event("/kefu/feedback", li_si_verdict(issue_id)))
    await wait_until(lambda: consumer.paused, what="the consumer paused")

    async def no_consumer() -> bool:
        return await _consumer_count(private_stack, "kefu.cutcheck") == 0

    await wait_until(no_consumer, what="basic.cancel seen by the broker")
    await asyncio.sleep(2)  # the outage goes on: still nothing dead-lettered
    assert await queue_depth(amqp, dead_letter_queue_name("cutcheck")) == 0

    proxy.restore()
    back = time.monotonic()
    await wait_until(lambda: followed_up(during), timeout=30, what="processing after the outage")
    assert time.monotonic() - back < 10
    await wait_until(lambda: not consumer.paused, what="the consumer resumed")
    assert await _consumer_count(private_stack, "kefu.cutcheck") == 1
    assert await queue_depth(amqp, dead_letter_queue_name("cutcheck")) == 0
    await consumer.stop()
    await proxy.close()
    await db.dispose()


class UnnamedOutage:
    """A database that fails with an error no classifier knows, and does not answer a ping."""

    def __init__(self, real: Database) -> None:
        self.real = real
        self.down = True

    def unit_of_work(self):  # type: ignore[no-untyped-def]
        if self.down:
            raise RuntimeError("the driver says something nobody has seen before")
        return self.real.unit_of_work()

    async def ping(self) -> None:
        if self.down:
            raise RuntimeError("no answer")
        await self.real.ping()


async def test_any_error_while_the_database_does_not_answer_is_an_outage(
    private_stack: Settings, amqp: AbstractRobustConnection
) -> None:
    """Not a handler failure: held and paused, not nacked (delivery limit 0)."""
    good = await open_database(private_stack, improvement)
    flaky = UnnamedOutage(good)
    consumer = Consumer(
        service="unnamedcheck",
        db=flaky,  # type: ignore[arg-type]
        inbox=improvement.inbox,
        subscriptions=improvement_subscriptions,
        prefetch=1,
        batch_size=1,
        delivery_limit=0,
        retry_max_seconds=0.5,
    )
    await consumer.start(amqp)
    issue_id = uuid.uuid4()
    await publish(amqp, private_stack, new_event("/kefu/feedback", li_si_verdict(issue_id)))
    await wait_until(lambda: consumer.paused, what="the consumer paused")
    await asyncio.sleep(1.5)
    assert await queue_depth(amqp, dead_letter_queue_name("unnamedcheck")) == 0

    flaky.down = False

    async def followed_up() -> bool:
        async with good.unit_of_work() as uow:
            return bool(
                await uow.session.scalar(
                    select(func.count())
                    .select_from(followups)
                    .where(followups.c.issue_id == issue_id)
                )
            )

    await wait_until(followed_up, timeout=20, what="processing after the outage")
    await wait_until(lambda: not consumer.paused, what="the consumer resumed")
    assert await queue_depth(amqp, dead_letter_queue_name("unnamedcheck")) == 0
    await consumer.stop()
    await good.dispose()
