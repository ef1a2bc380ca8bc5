"""The consumer's batch ack across a broker reconnect, with fake deliveries (no I/O): messages of
a closed channel are left to the broker, the others acked, and a paused consumer resumes; and
its stop, bounded when the broker does not answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aio_pika.exceptions import ChannelInvalidStateError

from shared.contracts import PUBLISHERS, FeedbackSubmitted, new_event, service_source
from shared.db import UnitOfWork
from shared.messaging import consumer as consumer_module
from shared.messaging.consumer import Consumer, Delivery, subscribe


class Channel:
    def __init__(self) -> None:
        self.is_closed = False


class Message:
    """What aio-pika does with a delivery of a closed channel: its channel cannot be read."""

    def __init__(self, tag: int, channel: Channel) -> None:
        data = FeedbackSubmitted(
            feedback_id=uuid.uuid4(), comment="x", submitted_at=datetime.now(UTC)
        )
        event = new_event(service_source(PUBLISHERS[data.TYPE]), data)
        self.body = event.model_dump_json().encode()
        self.delivery_tag = tag
        self.message_id = None
        self.user_id = None
        self.type = data.TYPE
        self._channel = channel
        self.settled: str | None = None

    @property
    def channel(self) -> Channel:
        if self._channel.is_closed:
            raise ChannelInvalidStateError("closed")
        return self._channel

    async def ack(self, multiple: bool = False) -> None:
        if self._channel.is_closed:
            raise ChannelInvalidStateError("closed")
        self.settled = f"ack multiple={multiple}"


async def handle(items: Sequence[FeedbackSubmitted], uow: UnitOfWork) -> None:
    pass


def offline_consumer(prefetch: int, batch_size: int) -> Consumer:
    """A consumer with no database and no broker: the tests put fakes in its place."""
    return Consumer(
        service="feedback",
        db=None,  # type: ignore[arg-type]
        inbox=None,  # type: ignore[arg-type]
        subscriptions=[subscribe(FeedbackSubmitted, handle)],
        prefetch=prefetch,
        batch_size=batch_size,
        delivery_limit=5,
    )


async def test_a_paused_consumer_resumes_after_a_batch_from_a_closed_channel() -> None:
    consumer = offline_consumer(prefetch=20, batch_size=10)
    resumed = asyncio.Event()

    async def processed(
        deliveries: Sequence[Delivery], trace_parents: dict[str, str] | None = None
    ) -> set[Any]:
        return {delivery.event.id for delivery in deliveries}

    async def database_answers() -> None:
        pass

    async def resume() -> None:
        consumer._paused = False
        resumed.set()

    consumer._process = processed  # type: ignore[method-assign]
    consumer._wait_for_database = database_answers  # type: ignore[method-assign]
    consumer._resume = resume  # type: ignore[method-assign]
    old, new = Channel(), Channel()
    before, after = Message(7, old), Message(1, new)
    await consumer._arrive(before)  # type: ignore[arg-type]
    await consumer._arrive(after)  # type: ignore[arg-type]
    old.is_closed = True  # the broker connection dropped and came back
    consumer._paused = True  # during a database outage
    worker = asyncio.create_task(consumer._work())
    try:
        await asyncio.wait_for(resumed.wait(), 5)
    finally:
        worker.cancel()
    assert before.settled is None  # its tag died with its channel: the broker redelivers it
    assert after.settled == "ack multiple=True"


class SilentBroker:
    """A queue and channel whose cancel and close never get an answer."""

    is_closed = False

    async def cancel(self, tag: str) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        await asyncio.Event().wait()


async def test_stop_is_bounded_when_the_broker_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumer_module, "STOP_STEP_SECONDS", 0.2)
    consumer = offline_consumer(prefetch=2, batch_size=1)
    silent = SilentBroker()
    consumer._queue = consumer._channel = consumer._copies = silent  # type: ignore[assignment]
    consumer._tag = "ctag"
    consumer._worker = asyncio.create_task(consumer._work())
    await asyncio.wait_for(consumer.stop(), timeout=3)  # cancel, worker, two channels
    assert consumer._tag is None and consumer._worker is None
