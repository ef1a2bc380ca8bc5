"""Consumer runner: a prefetch window is handled as one batch in one transaction, acked after it.

- The batch's event ids go into the inbox in one statement; each handler then gets, typed, the
  events of its type that were not processed before, and writes set-wise; the events it emits
  go to the outbox in one insert; one commit; then every message is acked.
- A batch that fails is retried message by message, so one poison message cannot hold back its
  neighbours: it alone is nacked (and reaches the DLQ after the queue's delivery limit), or
  dead-lettered at once when its handler says it can never succeed (``PermanentFailure``).
- An undecodable message is rejected straight to the DLQ (no retry can fix it).
- A database outage or a pool time-out holds the batch (unacked, retried with backoff), so it
  does not burn delivery attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import ChannelInvalidStateError
from prometheus_client import Counter, Histogram
from sqlalchemy import Table, text

from shared.contracts import CloudEvent, EventData, UndecodableEvent, decode_event, routing_key
from shared.db import Database, UnitOfWork, is_transient_db_error
from shared.errors import PermanentFailure
from shared.logging import get_logger
from shared.messaging.topology import declare_service_queue

log = get_logger(__name__)

E = TypeVar("E", bound=EventData)

CONSUMED = Counter(
    "kefu_events_consumed_total", "Events consumed, by type and outcome", ["type", "outcome"]
)
BATCH_SIZE = Histogram(
    "kefu_consumer_batch_size",
    "Messages handled in one transaction",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)


@dataclass(frozen=True)
class Subscription(Generic[E]):
    """A handler of one event type: it receives that type's events of a batch, typed."""

    model: type[E]
    handle: Callable[[Sequence[E], UnitOfWork], Awaitable[None]]

    @property
    def type(self) -> str:
        return self.model.TYPE


def subscribe(
    model: type[E], handle: Callable[[Sequence[E], UnitOfWork], Awaitable[None]]
) -> Subscription[E]:
    return Subscription(model, handle)


@dataclass(frozen=True)
class Delivery:
    message: AbstractIncomingMessage
    event: CloudEvent
    data: EventData


async def record_in_inbox(uow: UnitOfWork, inbox: Table, events: Sequence[CloudEvent]) -> set[Any]:
    """Record the events' ids in the current transaction; return the ids not seen before."""
    if not events:
        return set()
    # One array per column: the same text for any batch size, planned once per connection.
    inserted = await uow.session.execute(
        text(
            f"INSERT INTO {inbox.schema}.{inbox.name} (event_id, type) "
            "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[])) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        ),
        {"ids": [event.id for event in events], "types": [event.type for event in events]},
    )
    return set(inserted.scalars())


class Consumer:
    def __init__(
        self,
        *,
        service: str,
        db: Database,
        inbox: Table,
        subscriptions: Sequence[Subscription[Any]],
        prefetch: int,
        batch_size: int,
        delivery_limit: int,
    ) -> None:
        self.service = service
        self.db = db
        self.inbox = inbox
        self.subscriptions = {subscription.type: subscription for subscription in subscriptions}
        self.prefetch = prefetch
        self.batch_size = batch_size
        self.delivery_limit = delivery_limit
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def start(self, connection: AbstractConnection) -> None:
        channel = await connection.channel()
        # Twice the batch: the next window arrives while the current one is handled.
        await channel.set_qos(prefetch_count=self.prefetch)
        self._queue = await declare_service_queue(
            channel,
            self.service,
            [routing_key(event_type) for event_type in self.subscriptions],
            delivery_limit=self.delivery_limit,
        )
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name=f"consumer-{self.service}")
        self._tag = await self._queue.consume(self._arrive)

    async def stop(self) -> None:
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:
                log.warning("consumer cancel failed", error=str(exc))
            self._tag = None
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(BaseException):
                await self._worker
            self._worker = None

    async def _arrive(self, message: AbstractIncomingMessage) -> None:
        self._arrived.put_nowait(message)

    async def _work(self) -> None:
        while True:
            batch = [await self._arrived.get()]
            while len(batch) < self.batch_size and not self._arrived.empty():
                batch.append(self._arrived.get_nowait())
            try:
                await self.handle_batch(batch)
            except Exception:
                # Never lose the worker: the messages stay unacked and come back.
                log.exception("consumer batch crashed", size=len(batch))

    async def handle_batch(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        deliveries: list[Delivery] = []
        for message in messages:
            try:
                event, data = decode_event(message.body)
            except UndecodableEvent as exc:
                log.error(
                    "undecodable message sent to DLQ",
                    message_id=message.message_id,
                    error=str(exc),
                )
                CONSUMED.labels(type=message.type or "unknown", outcome="rejected").inc()
                await _settle(message.reject(requeue=False))
                continue
            if event.type not in self.subscriptions:
                CONSUMED.labels(type=event.type, outcome="ignored").inc()
                await _settle(message.ack())
                continue
            deliveries.append(Delivery(message, event, data))
        if not deliveries:
            return
        BATCH_SIZE.observe(len(deliveries))
        try:
            fresh = await self._process(deliveries)
        except Exception as exc:
            if len(deliveries) == 1:
                await self._fail(deliveries[0], exc)
                return
            log.warning(
                "batch failed; retrying its messages one by one",
                size=len(deliveries),
                error=repr(exc),
            )
            for delivery in deliveries:
                try:
                    fresh = await self._process([delivery])
                except Exception as single:
                    await self._fail(delivery, single)
                else:
                    await self._ack([delivery], fresh)
            return
        await self._ack(deliveries, fresh)

    async def _process(self, deliveries: Sequence[Delivery]) -> set[Any]:
        """One transaction for the batch; returns the event ids it processed for the first
        time. Retried while the database is unavailable or its pool is exhausted."""
        backoff = 0.5
        while True:
            try:
                async with self.db.unit_of_work() as uow:
                    fresh = await record_in_inbox(
                        uow, self.inbox, [delivery.event for delivery in deliveries]
                    )
                    handled: set[Any] = set()
                    by_type: dict[str, list[EventData]] = {}
                    for delivery in deliveries:
                        # The same event delivered twice in one batch is handled once.
                        if delivery.event.id in fresh and delivery.event.id not in handled:
                            handled.add(delivery.event.id)
                            by_type.setdefault(delivery.event.type, []).append(delivery.data)
                    for event_type, items in by_type.items():
                        await self.subscriptions[event_type].handle(items, uow)
                return handled
            except Exception as exc:
                if not is_transient_db_error(exc):
                    raise
                log.warning(
                    "database unavailable; holding messages",
                    size=len(deliveries),
                    retry_in=backoff,
                    error=str(exc),
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _ack(self, deliveries: Sequence[Delivery], fresh: set[Any]) -> None:
        """One ack per channel for the whole batch: its highest delivery tag, ``multiple``.

        Batches are taken in delivery order, one at a time, and every message before them was
        settled, so the tags up to that one are exactly this batch's (after a reconnect a batch
        may hold messages of two channels)."""
        last: dict[int, AbstractIncomingMessage] = {}
        for delivery in deliveries:
            outcome = "processed" if delivery.event.id in fresh else "duplicate"
            CONSUMED.labels(type=delivery.event.type, outcome=outcome).inc()
            message = delivery.message
            kept = last.get(id(message.channel))
            if kept is None or (message.delivery_tag or 0) > (kept.delivery_tag or 0):
                last[id(message.channel)] = message
        for message in last.values():
            await _settle(message.ack(multiple=True))

    async def _fail(self, delivery: Delivery, exc: Exception) -> None:
        event = delivery.event
        if isinstance(exc, PermanentFailure):
            log.error(
                "message can never succeed; sent to DLQ",
                event_id=str(event.id),
                type=event.type,
                error=str(exc),
            )
            CONSUMED.labels(type=event.type, outcome="rejected").inc()
            await _settle(delivery.message.reject(requeue=False))
            return
        log.error(
            "handler failed; message will be redelivered",
            event_id=str(event.id),
            type=event.type,
            exc_info=exc,
        )
        CONSUMED.labels(type=event.type, outcome="failed").inc()
        await _settle(delivery.message.nack(requeue=True))


async def _settle(action: Awaitable[None]) -> None:
    # A delivery tag from a channel that has since closed cannot be settled; the broker
    # redelivers the message and the inbox makes the second delivery a no-op.
    try:
        await action
    except ChannelInvalidStateError as exc:
        log.warning("could not settle message on a closed channel", error=str(exc))
