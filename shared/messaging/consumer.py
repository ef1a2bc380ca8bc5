"""Consumer runner: one transaction per message, inbox record inside it, ack only after commit.

- An undecodable message is rejected straight to the DLQ (no retry can fix it).
- A database outage pauses the message (held unacked, retried with backoff) so it does not burn
  its delivery attempts; any other failure is nacked and redelivered until the queue's
  delivery limit moves it to the DLQ.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import ChannelInvalidStateError
from prometheus_client import Counter
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert

from shared.contracts import CloudEvent, EventData, UndecodableEvent, decode_event, routing_key
from shared.db import Database, UnitOfWork, is_transient_db_error
from shared.logging import get_logger
from shared.messaging.topology import declare_service_queue

log = get_logger(__name__)

Handler = Callable[[CloudEvent, EventData, UnitOfWork], Awaitable[None]]

CONSUMED = Counter(
    "kefu_events_consumed_total", "Events consumed, by type and outcome", ["type", "outcome"]
)


async def record_in_inbox(uow: UnitOfWork, inbox: Table, event: CloudEvent) -> bool:
    """Record the event id in the current transaction; False if it was already processed."""
    inserted = await uow.session.execute(
        insert(inbox)
        .values(event_id=event.id, type=event.type)
        .on_conflict_do_nothing(index_elements=[inbox.c.event_id])
        .returning(inbox.c.event_id)
    )
    return inserted.first() is not None


class Consumer:
    def __init__(
        self,
        *,
        service: str,
        db: Database,
        inbox: Table,
        handlers: Mapping[str, Handler],
        prefetch: int,
        delivery_limit: int,
    ) -> None:
        self.service = service
        self.db = db
        self.inbox = inbox
        self.handlers = handlers
        self.prefetch = prefetch
        self.delivery_limit = delivery_limit
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None

    async def start(self, connection: AbstractConnection) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        self._queue = await declare_service_queue(
            channel,
            self.service,
            [routing_key(event_type) for event_type in self.handlers],
            delivery_limit=self.delivery_limit,
        )
        self._tag = await self._queue.consume(self.on_message)

    async def stop(self) -> None:
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:
                log.warning("consumer cancel failed", error=str(exc))
            self._tag = None

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            event, data = decode_event(message.body)
        except UndecodableEvent as exc:
            log.error(
                "undecodable message sent to DLQ", message_id=message.message_id, error=str(exc)
            )
            CONSUMED.labels(type=message.type or "unknown", outcome="rejected").inc()
            await _settle(message.reject(requeue=False))
            return
        handler = self.handlers.get(event.type)
        if handler is None:
            CONSUMED.labels(type=event.type, outcome="ignored").inc()
            await _settle(message.ack())
            return
        try:
            outcome = await self._process(event, data, handler)
        except Exception:
            log.exception(
                "handler failed; message will be redelivered",
                event_id=str(event.id),
                type=event.type,
            )
            CONSUMED.labels(type=event.type, outcome="failed").inc()
            await _settle(message.nack(requeue=True))
            return
        CONSUMED.labels(type=event.type, outcome=outcome).inc()
        await _settle(message.ack())

    async def _process(self, event: CloudEvent, data: EventData, handler: Handler) -> str:
        backoff = 0.5
        while True:
            try:
                async with self.db.unit_of_work() as uow:
                    if not await record_in_inbox(uow, self.inbox, event):
                        return "duplicate"
                    await handler(event, data, uow)
                return "processed"
            except Exception as exc:
                if not is_transient_db_error(exc):
                    raise
                log.warning(
                    "database unavailable; holding message",
                    event_id=str(event.id),
                    retry_in=backoff,
                    error=str(exc),
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)


async def _settle(action: Awaitable[None]) -> None:
    # A delivery tag from a channel that has since closed cannot be settled; the broker
    # redelivers the message and the inbox makes the second delivery a no-op.
    try:
        await action
    except ChannelInvalidStateError as exc:
        log.warning("could not settle message on a closed channel", error=str(exc))
