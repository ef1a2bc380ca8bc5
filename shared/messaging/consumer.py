"""Consumer runner: a prefetch window is handled as one batch in one transaction, acked after it.

- The batch's event ids go into the inbox in one statement; each handler then gets, typed, the
  events of its type that were not processed before, and writes set-wise; the events it emits
  go to the outbox in one insert; one commit; then every message is acked.
- A batch that fails is retried message by message, so one poison message cannot hold back its
  neighbours: it alone is handed back (and reaches the DLQ after the delivery limit), or
  dead-lettered at once when its handler says it can never succeed (``PermanentFailure``).
- A failed message is handed back with ``basic.reject``, never ``basic.nack``: from RabbitMQ
  4.3 only a reject counts toward a quorum queue's delivery limit (both count on 3.10 to 4.2),
  so a message that always fails would loop forever on a nack. Kefu also counts the attempts
  itself: the broker's ``x-delivery-count`` where it has one, else its own count per event
  (this process's), and dead-letters a message whose attempts exceed ``delivery_limit``, so the
  limit holds on a queue whose broker counts nothing.
- An undecodable message is rejected straight to the DLQ (no retry can fix it); so is an event
  from another publisher than its type's owner, or stamped in the future
  (``shared/messaging/provenance.py``), with the reason in its headers.
- A database outage holds the batch (unacked, retried with a capped back-off) and pauses the
  consumer (basic.cancel), so no more messages arrive and no delivery attempt is burned; any
  error while the database does not answer a ping counts as the outage's, whatever the driver
  calls it. The consumer resumes (basic.consume) as soon as the database answers again.
- Every way of handing an unacked message back to a RabbitMQ 3.10 quorum queue counts as a
  delivery attempt: nack or reject with requeue, and also closing the channel or the
  connection (checked on this broker: x-delivery-count goes up on each; from 4.3 only a
  reject does). So a held message is never handed back; yet the broker closes a channel
  whose oldest unacked message is older than its ``consumer_timeout`` (30 min by default),
  which would count too. An outage that outlasts ``hold_seconds`` (kept below that time-out)
  therefore *releases* what the consumer holds: a fresh copy of each message is published
  back to the service's queue (confirmed) and only then is the original acked. The copy
  starts with no delivery count; if we die in between, the inbox absorbs the duplicate.
- A transient error while the database answers other queries (a statement that always times
  out, a deadlock that keeps recurring) is not an outage: it is retried ``transient_retries``
  times, then the message goes to the DLQ with the reason (headers ``x-kefu-dead-letter-reason``
  and ``x-kefu-error``). A pool time-out is back-pressure and never counts as a try.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import ChannelInvalidStateError
from pamqp.commands import Basic
from prometheus_client import Counter, Histogram
from sqlalchemy import Table, text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared import failpoints, tracing
from shared.contracts import (
    CloudEvent,
    CustomerErased,
    EventData,
    UndecodableEvent,
    customer_of,
    decode_event,
    without_personal_data,
)
from shared.db import Database, UnitOfWork, is_transient_db_error
from shared.errors import PermanentFailure
from shared.logging import get_logger
from shared.messaging.dead_letters import scrub
from shared.messaging.provenance import Provenance, Untrusted
from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    DLQ_MAX_LENGTH,
    bound_by_setup,
    declare_service_queue,
    service_queue_name,
)
from shared.tracing import ConsumerSpans

log = get_logger(__name__)

E = TypeVar("E", bound=EventData)

# Outcomes: processed, duplicate (the inbox knew it), retried (handed back to the queue),
# dead_lettered, ignored (a type this service does not handle).
CONSUMED = Counter(
    "kefu_events_consumed_total",
    "Events consumed, by type and outcome",
    ["service", "type", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "kefu_handler_seconds",
    "One handler call: the events of one type in a batch",
    ["service", "type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LAG = Histogram(
    "kefu_event_lag_seconds",
    "From an event's time to its ack by this consumer",
    ["service", "type"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0),
)
BATCH_SIZE = Histogram(
    "kefu_consumer_batch_size",
    "Messages handled in one transaction",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)


PAUSED = Counter("kefu_consumer_pauses_total", "Consumer paused while the database was away")
RELEASED = Counter(
    "kefu_consumer_released_total", "Held messages handed back to the queue during an outage"
)


# Failures remembered per event for a queue whose broker does not count them: the most recent.
OWN_COUNT_MAX_EVENTS = 10_000
# Longest each step of stop() may take.
STOP_STEP_SECONDS = 10.0


class RetriesExhausted(Exception):
    """A transient database error kept coming back while the database answered other queries."""

    def __init__(self, tries: int, error: BaseException) -> None:
        super().__init__(f"{tries} tries, last: {type(error).__name__}: {error}")
        self.error = error


class InjectedPoison(Exception):
    """A message the fault suite poisoned (shared/failpoints.py): it fails like a bug."""


class _Released(Exception):
    """The held messages were handed back to the queue: the batch is no longer ours."""


def _is_pool_timeout(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, PoolTimeout):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@dataclass(frozen=True)
class Subscription(Generic[E]):
    """A handler of one event type: it receives that type's events of a batch, typed."""

    model: type[E]
    handle: Callable[[Sequence[E], UnitOfWork], Awaitable[None]]

    @property
    def type(self) -> str:
        return self.model.TYPE


@dataclass(frozen=True)
class EnvelopeSubscription:
    """A handler that needs the whole CloudEvents envelope of each event (webhooks forwards it
    as it is), not only its typed data."""

    type: str
    handle: Callable[[Sequence[CloudEvent], UnitOfWork], Awaitable[None]]


AnySubscription = Subscription[Any] | EnvelopeSubscription


def subscribe(
    model: type[E], handle: Callable[[Sequence[E], UnitOfWork], Awaitable[None]]
) -> Subscription[E]:
    return Subscription(model, handle)


@dataclass(frozen=True)
class Delivery:
    message: AbstractIncomingMessage
    event: CloudEvent
    data: EventData


def _stripped(delivery: Delivery) -> Delivery:
    """The delivery of an erased customer's event, without their data (envelope included)."""
    data = without_personal_data(delivery.data)
    event = delivery.event.model_copy(update={"data": data.model_dump(mode="json")})
    return Delivery(delivery.message, event, data)


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


async def record_in_inbox_and_find_erased(
    uow: UnitOfWork,
    inbox: Table,
    erasures: Table,
    events: Sequence[CloudEvent],
    customers: set[Any],
) -> tuple[set[Any], set[uuid.UUID]]:
    """``record_in_inbox``, and which of ``customers`` were erased, in one round trip: the
    erasure check runs on every batch, and erasures are rare."""
    rows = await uow.session.execute(
        text(
            "WITH recorded AS ("
            f"INSERT INTO {inbox.schema}.{inbox.name} (event_id, type) "
            "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[])) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id) "
            "SELECT event_id, NULL::uuid FROM recorded UNION ALL "
            f"SELECT NULL::uuid, customer_id FROM {erasures.schema}.{erasures.name} "
            "WHERE customer_id = ANY(CAST(:customers AS uuid[]))"
        ),
        {
            "ids": [event.id for event in events],
            "types": [event.type for event in events],
            "customers": list(customers),
        },
    )
    fresh: set[Any] = set()
    erased: set[uuid.UUID] = set()
    for event_id, customer_id in rows:
        if event_id is not None:
            fresh.add(event_id)
        else:
            erased.add(customer_id)
    return fresh, erased


class Consumer:
    def __init__(
        self,
        *,
        service: str,
        db: Database,
        inbox: Table,
        subscriptions: Sequence[AnySubscription],
        prefetch: int,
        batch_size: int,
        delivery_limit: int,
        dlq_max_length: int = DLQ_MAX_LENGTH,
        retry_max_seconds: float = 5.0,
        transient_retries: int = 5,
        hold_seconds: float = 600.0,
        provenance: Provenance | None = None,
        user_id: str | None = None,
        declare: bool = True,
        erasures: Table | None = None,
    ) -> None:
        self.service = service
        self.provenance = provenance or Provenance(service, None)
        # The broker user this consumer's own copies are published as (RabbitMQ checks it).
        self.user_id = user_id
        self.declare = declare
        # Erased customers (shared/erasure.py): their events reach handlers stripped.
        self.erasures = erasures
        self.db = db
        self.inbox = inbox
        self.subscriptions = {subscription.type: subscription for subscription in subscriptions}
        self.prefetch = prefetch
        self.batch_size = batch_size
        self.delivery_limit = delivery_limit
        self.dlq_max_length = dlq_max_length
        # Failed deliveries per event id, counted by this process (see _attempts).
        self._failures: OrderedDict[Any, int] = OrderedDict()
        # Back-off between tries while the database is away: capped, so the flow resumes
        # within this long of the database's return.
        self.retry_max_seconds = retry_max_seconds
        self.transient_retries = transient_retries
        # Longest a message is held unacked during an outage (below the broker's
        # consumer_timeout, 30 min by default) before it is released back to the queue.
        self.hold_seconds = hold_seconds
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._paused = False
        # Publisher-confirmed channel for the copies of released and dead-lettered messages.
        self._channel: AbstractChannel | None = None
        self._copies: AbstractChannel | None = None
        self._connection: AbstractConnection | None = None
        self._arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        # Every message delivered to us and not settled yet, oldest first, with its arrival.
        self._unsettled: dict[int, tuple[float, AbstractIncomingMessage]] = {}
        self._worker: asyncio.Task[None] | None = None

    def _count(self, event_type: str, outcome: str) -> None:
        CONSUMED.labels(self.service, event_type, outcome).inc()

    @property
    def paused(self) -> bool:
        return self._paused

    async def start(self, connection: AbstractConnection) -> None:
        self._channel = channel = await connection.channel()
        # Twice the batch: the next window arrives while the current one is handled.
        await channel.set_qos(prefetch_count=self.prefetch)
        if self.declare:
            self._queue = await declare_service_queue(
                channel,
                self.service,
                bound_by_setup(self.service, {self.service: tuple(self.subscriptions)}),
                delivery_limit=self.delivery_limit,
                dlq_max_length=self.dlq_max_length,
            )
        else:  # set-up declared it; this broker user may only read it
            self._queue = await channel.get_queue(service_queue_name(self.service), ensure=True)
        self._copies = await connection.channel(publisher_confirms=True, on_return_raises=True)
        self._connection = connection
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name=f"consumer-{self.service}")
        if not self._paused:
            self._tag = await self._queue.consume(self._arrive)

    async def stop(self) -> None:
        """Stops consuming and closes what start opened. Each step is bounded: a broker that
        does not answer, or a handler that ignores cancellation, cannot hold up a shutdown."""
        if self._queue is not None and self._tag is not None:
            try:
                await asyncio.wait_for(self._queue.cancel(self._tag), timeout=STOP_STEP_SECONDS)
            except Exception as exc:
                log.warning("consumer cancel failed", error=repr(exc))
            self._tag = None
        if self._worker is not None:
            self._worker.cancel()
            _, pending = await asyncio.wait({self._worker}, timeout=STOP_STEP_SECONDS)
            if pending:
                log.warning("consumer worker did not stop in time; left behind")
            self._worker = None
        for channel in (self._channel, self._copies):
            if channel is not None and not channel.is_closed:
                try:
                    await asyncio.wait_for(channel.close(), timeout=STOP_STEP_SECONDS)
                except Exception as exc:
                    log.warning("consumer channel close failed", error=repr(exc))

    async def _arrive(self, message: AbstractIncomingMessage) -> None:
        self._unsettled[_key(message)] = (time.monotonic(), message)
        self._arrived.put_nowait(message)

    def _forget(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        for message in messages:
            self._unsettled.pop(_key(message), None)

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
            if self._paused:  # whatever became of the batch, the consumer must come back
                try:
                    await self._wait_for_database()
                    await self._resume()
                except Exception:
                    log.exception("consumer could not resume")

    # --- Pause while the database is away, resume when it answers ---

    async def _pause(self) -> None:
        if self._paused:
            return
        self._paused = True
        PAUSED.inc()
        if self._queue is not None and self._tag is not None:
            # Deliveries sent before the broker's CancelOk still reach _arrive; none after.
            try:
                await asyncio.wait_for(self._queue.cancel(self._tag), timeout=10)
                self._tag = None
            except Exception as exc:
                # The subscription may live on (a robust channel restores it): keep its tag,
                # so that resuming does not subscribe a second time.
                log.warning("consumer cancel failed", error=repr(exc))
        log.warning(
            "database unavailable; consumer paused, holding its messages",
            held=len(self._unsettled),
        )

    async def _resume(self) -> None:
        delay = 0.5
        while self._paused:
            try:
                if self._queue is not None and self._tag is None:
                    self._tag = await self._queue.consume(self._arrive)
                self._paused = False
            except Exception as exc:  # the broker is away too: its reconnect comes first
                log.warning("consumer resume failed", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_seconds)
        log.info("database back; consumer resumed")

    async def _database_answers(self) -> bool:
        try:
            await asyncio.wait_for(self.db.ping(), timeout=5)
        except Exception:
            return False
        return True

    async def _wait_for_database(self) -> None:
        delay = 0.5
        while not await self._database_answers():
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_seconds)

    def _held_too_long(self) -> bool:
        # A message from a closed channel is no longer ours: the broker took it back.
        for key, (_, message) in list(self._unsettled.items()):
            if _channel_closed(message):
                del self._unsettled[key]
        oldest = next(iter(self._unsettled.values()), None)
        return oldest is not None and time.monotonic() - oldest[0] >= self.hold_seconds

    async def _release(self) -> None:
        """Hand back everything held, before the broker's consumer_timeout closes the channel:
        a confirmed copy first, then the original's ack (nothing counts a delivery attempt)."""
        held = [message for _, message in self._unsettled.values()]
        self._unsettled.clear()
        while not self._arrived.empty():
            self._arrived.get_nowait()
        queue = service_queue_name(self.service)
        results = await asyncio.gather(
            *(self._publish_copy(message, "", queue, {}) for message in held),
            return_exceptions=True,
        )
        released = 0
        for message, result in zip(held, results, strict=True):
            if result is None:
                released += 1
                await _settle(message.ack())
            else:  # no copy: hand the original back (an attempt up to RabbitMQ 4.2, not after)
                log.warning("could not release a held message", error=repr(result))
                await _settle(message.nack(requeue=True))
        RELEASED.inc(released)
        log.warning(
            "database still unavailable; held messages released back to the queue",
            released=released,
            held_seconds=self.hold_seconds,
        )

    async def _publish_copy(
        self,
        message: AbstractIncomingMessage,
        exchange: str,
        routing_key: str,
        extra_headers: dict[str, Any],
    ) -> None:
        channel = self._copies
        if channel is None or channel.is_closed:
            raise RuntimeError("no channel for copies")
        headers = {k: v for k, v in (message.headers or {}).items() if k != "x-delivery-count"}
        copy = aio_pika.Message(
            body=message.body,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type,
            app_id=message.app_id,
            user_id=self.user_id,
            timestamp=message.timestamp,
            headers={**headers, **extra_headers},
        )
        target = channel.default_exchange if not exchange else await channel.get_exchange(exchange)
        confirmation = await asyncio.wait_for(
            target.publish(copy, routing_key=routing_key, mandatory=True, timeout=10), 15
        )
        if not isinstance(confirmation, Basic.Ack):
            raise RuntimeError(f"broker answered {confirmation!r}")

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
                self._count(message.type or "unknown", "dead_lettered")
                self._forget([message])
                await _settle(message.reject(requeue=False))
                continue
            if event.type not in self.subscriptions:
                self._count(event.type, "ignored")
                self._forget([message])
                await _settle(message.ack())
                continue
            try:
                self.provenance.check(event, data, message.user_id)
            except Untrusted as exc:
                self._forget([message])
                await self._dead_letter(Delivery(message, event, data), exc.reason, exc)
                continue
            deliveries.append(Delivery(message, event, data))
        if not deliveries:
            return
        BATCH_SIZE.observe(len(deliveries))
        spans = (
            tracing.consumer_spans(self.service, [delivery.event for delivery in deliveries])
            if tracing.enabled()
            else None
        )
        try:
            await self._handle(deliveries, spans)
        finally:
            if spans is not None:
                spans.end()

    async def _handle(self, deliveries: Sequence[Delivery], spans: ConsumerSpans | None) -> None:
        parents = spans.parents if spans is not None else None
        try:
            fresh = await self._process(deliveries, parents)
        except _Released:
            return
        except Exception as exc:
            if len(deliveries) == 1:
                await self._fail(deliveries[0], exc, spans)
                return
            log.warning(
                "batch failed; retrying its messages one by one",
                size=len(deliveries),
                error=repr(exc),
            )
            for delivery in deliveries:
                try:
                    fresh = await self._process([delivery], parents)
                except _Released:
                    return
                except Exception as single:
                    await self._fail(delivery, single, spans)
                else:
                    await self._ack([delivery], fresh)
                    await self._scrub_dead_letters([delivery])
            return
        await self._ack(deliveries, fresh)
        await self._scrub_dead_letters(deliveries)

    async def _scrub_dead_letters(self, handled: Sequence[Delivery]) -> None:
        """Once customers are erased here, their events in this service's DLQ lose their data
        too (shared/messaging/dead_letters.py)."""
        erased = {d.data.customer_id for d in handled if isinstance(d.data, CustomerErased)}
        if not erased or self._connection is None or self._connection.is_closed:
            return
        try:
            scrubbed = await scrub(self._connection, self.service, erased, self.user_id)
        except Exception as exc:  # `kefu dlq scrub` finishes what this could not
            log.warning("DLQ scrub failed", error=repr(exc))
        else:
            if scrubbed:
                log.info("erased customers' events stripped in the DLQ", count=scrubbed)

    async def _process(
        self, deliveries: Sequence[Delivery], trace_parents: dict[str, str] | None = None
    ) -> set[Any]:
        """One transaction for the batch; returns the event ids it processed for the first
        time. Retried while the database is unavailable (the consumer pauses) or its pool is
        exhausted; retried ``transient_retries`` times while the database answers."""
        backoff = 0.5
        tries = 0
        while True:
            try:
                async with self.db.unit_of_work() as uow:
                    uow.trace_parents = trace_parents
                    fresh, erased = await self._record(uow, deliveries)
                    handled: set[Any] = set()
                    by_type: dict[str, list[Delivery]] = {}
                    for delivery in deliveries:
                        if failpoints.poisons(f"poison.{self.service}", delivery.message.body):
                            raise InjectedPoison(delivery.event.id)
                        # The same event delivered twice in one batch is handled once.
                        if delivery.event.id in fresh and delivery.event.id not in handled:
                            handled.add(delivery.event.id)
                            if erased and customer_of(delivery.data) in erased:
                                delivery = _stripped(delivery)
                            by_type.setdefault(delivery.event.type, []).append(delivery)
                    for event_type, items in by_type.items():
                        subscription = self.subscriptions[event_type]
                        started = time.perf_counter()
                        if isinstance(subscription, EnvelopeSubscription):
                            await subscription.handle([item.event for item in items], uow)
                        else:
                            await subscription.handle([item.data for item in items], uow)
                        HANDLER_SECONDS.labels(self.service, event_type).observe(
                            time.perf_counter() - started
                        )
                return handled
            except Exception as exc:
                if isinstance(exc, PermanentFailure):
                    raise
                transient = is_transient_db_error(exc)
                busy = transient and _is_pool_timeout(exc)
                answers = busy or await self._database_answers()
                if answers and not transient:
                    raise  # the handler's own failure: nacked, or split into single messages
                # Any error while the database does not answer is the outage's, whatever the
                # driver calls it (no delivery attempt is burned on "the database system is
                # starting up" or a connection dropped mid-statement).
                if not answers and self._held_too_long():
                    await self._pause()
                    await self._release()
                    raise _Released from exc
                if busy:
                    log.warning("database pool busy; retrying", size=len(deliveries))
                elif answers:
                    # Not an outage: this work itself fails (a statement that always times
                    # out, a collision that keeps recurring). Bounded.
                    tries += 1
                    if tries >= self.transient_retries:
                        raise RetriesExhausted(tries, exc) from exc
                    log.warning(
                        "transient database error; retrying",
                        size=len(deliveries),
                        tries=tries,
                        error=repr(exc),
                    )
                else:
                    await self._pause()
                    log.warning(
                        "database unavailable; holding messages",
                        size=len(deliveries),
                        retry_in=backoff,
                        error=repr(exc),
                    )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_seconds)

    async def _record(
        self, uow: UnitOfWork, deliveries: Sequence[Delivery]
    ) -> tuple[set[Any], set[uuid.UUID]]:
        """The batch's first-time event ids, and its erased customers."""
        events = [delivery.event for delivery in deliveries]
        customers = {customer_of(delivery.data) for delivery in deliveries} - {None}
        if self.erasures is None or not customers:
            return await record_in_inbox(uow, self.inbox, events), set()
        return await record_in_inbox_and_find_erased(
            uow, self.inbox, self.erasures, events, customers
        )

    async def _ack(self, deliveries: Sequence[Delivery], fresh: set[Any]) -> None:
        """One ack per channel for the whole batch: its highest delivery tag, ``multiple``.

        Batches are taken in delivery order, one at a time, and every message before them was
        settled, so the tags up to that one are exactly this batch's (after a reconnect a batch
        may hold messages of two channels)."""
        self._forget([delivery.message for delivery in deliveries])
        if self._failures:
            for delivery in deliveries:
                self._failures.pop(delivery.event.id, None)
        last: dict[int, AbstractIncomingMessage] = {}
        now = time.time()
        for delivery in deliveries:
            event = delivery.event
            self._count(event.type, "processed" if event.id in fresh else "duplicate")
            LAG.labels(self.service, event.type).observe(now - event.time.timestamp())
            message = delivery.message
            if _channel_closed(message):
                continue  # its tag died with its channel; the broker redelivers it
            kept = last.get(id(message.channel))
            if kept is None or (message.delivery_tag or 0) > (kept.delivery_tag or 0):
                last[id(message.channel)] = message
        for message in last.values():
            await _settle(message.ack(multiple=True))

    async def _fail(
        self, delivery: Delivery, exc: Exception, spans: ConsumerSpans | None = None
    ) -> None:
        if spans is None:
            await self._settle_failure(delivery, exc)
            return
        spans.fail(delivery.event.id, exc)
        with spans.current(delivery.event.id):  # its log lines carry its trace id
            await self._settle_failure(delivery, exc)

    async def _settle_failure(self, delivery: Delivery, exc: Exception) -> None:
        event = delivery.event
        self._forget([delivery.message])
        if isinstance(exc, RetriesExhausted):
            await self._dead_letter(delivery, "transient_retries", exc)
            return
        if isinstance(exc, PermanentFailure):
            log.error(
                "message can never succeed; sent to DLQ",
                event_id=str(event.id),
                type=event.type,
                error=str(exc),
            )
            self._count(event.type, "dead_lettered")
            await _settle(delivery.message.reject(requeue=False))
            return
        attempts = self._attempts(delivery)
        if attempts > self.delivery_limit:
            log.error(
                "handler failed; delivery limit reached, sent to DLQ",
                event_id=str(event.id),
                type=event.type,
                attempts=attempts,
                exc_info=exc,
            )
            self._failures.pop(event.id, None)
            self._count(event.type, "dead_lettered")
            await _settle(delivery.message.reject(requeue=False))
            return
        log.error(
            "handler failed; message will be redelivered",
            event_id=str(event.id),
            type=event.type,
            attempts=attempts,
            exc_info=exc,
        )
        self._count(event.type, "retried")
        await _settle(delivery.message.reject(requeue=True))

    def _attempts(self, delivery: Delivery) -> int:
        """How many times this message has now failed: the broker's count (x-delivery-count,
        the returns before this delivery) where it keeps one, this process's own otherwise,
        whichever is higher."""
        counted = (delivery.message.headers or {}).get("x-delivery-count")
        by_broker = counted + 1 if isinstance(counted, int) else 0
        key = delivery.event.id
        own = self._failures.pop(key, 0) + 1
        self._failures[key] = own
        if len(self._failures) > OWN_COUNT_MAX_EVENTS:
            self._failures.popitem(last=False)
        return max(by_broker, own)

    async def _dead_letter(self, delivery: Delivery, reason: str, exc: Exception) -> None:
        """To the DLQ with the reason: a confirmed copy with the reason in its headers, then
        the original's ack; without a copy, a plain reject (the broker dead-letters it)."""
        event = delivery.event
        log.error(
            "message sent to DLQ",
            event_id=str(event.id),
            type=event.type,
            reason=reason,
            error=str(exc),
        )
        self._count(event.type, "dead_lettered")
        headers = {"x-kefu-dead-letter-reason": reason, "x-kefu-error": str(exc)[:1000]}
        try:
            await self._publish_copy(
                delivery.message,
                DEAD_LETTER_EXCHANGE,
                service_queue_name(self.service),
                headers,
            )
        except Exception as publish_error:
            log.warning("DLQ copy failed; rejecting instead", error=repr(publish_error))
            await _settle(delivery.message.reject(requeue=False))
        else:
            await _settle(delivery.message.ack())


def _key(message: AbstractIncomingMessage) -> int:
    return id(message)  # the dict holds the message, so its id stays unique meanwhile


def _channel_closed(message: AbstractIncomingMessage) -> bool:
    try:
        return bool(message.channel.is_closed)
    except Exception:
        return True


async def _settle(action: Awaitable[None]) -> None:
    # A delivery tag from a channel that has since closed cannot be settled; the broker
    # redelivers the message and the inbox makes the second delivery a no-op.
    try:
        await action
    except ChannelInvalidStateError as exc:
        log.warning("could not settle message on a closed channel", error=str(exc))
