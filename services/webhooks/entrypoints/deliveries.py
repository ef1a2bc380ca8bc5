"""The delivery loop, through the broker:

- the dispatcher hands every delivery that no job carries yet (new, redelivered by hand, or
  released by a resume) to the jobs queue, confirmed, then records the job's chain;
- the worker takes jobs from that queue and calls the receiver; a failed try is published to
  the delay queue of the schedule's next step (its TTL expires it back to the jobs queue) and
  only then acked, so a job is never lost between tries: at least once, end to end;
- an endpoint at its limit of calls in flight queues as many jobs again in the process; past
  that it sends its jobs round a short delay queue instead of holding prefetch slots, so a
  slow or dead receiver never holds back the others;
- an endpoint whose circuit opened holds its deliveries (``paused``) until it is resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from pamqp.commands import Basic
from prometheus_client import Counter, Histogram

from services.webhooks.adapters import repository as repo
from services.webhooks.adapters.sender import Sender, Sent
from services.webhooks.domain.attempts import decide, describe
from shared.db import Database, is_transient_db_error
from shared.logging import get_logger
from shared.messaging.topology import (
    WEBHOOK_JOBS_QUEUE,
    declare_webhook_queues,
    webhook_delay_queue_name,
)
from shared.settings import WebhookSettings

log = get_logger(__name__)
DISPATCH_BATCH = 100  # deliveries handed to the broker per transaction
OUTCOME_TRIES = 5  # to record a call's outcome while the database is busy or away
# A pending delivery whose job has not shown for this long past when it was due is given a new
# one: longer than any call, busy detour or broker hiccup, short against the retry schedule.
STALE_AFTER = timedelta(minutes=10)
SWEEP_SECONDS = 60.0
FORGET_BATCH = 1000  # settled deliveries deleted per transaction

ATTEMPTS = Counter("kefu_webhook_attempts_total", "Calls to receivers, by outcome", ["outcome"])
CALL_SECONDS = Histogram(
    "kefu_webhook_call_seconds",
    "Duration of one call to a receiver",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DEFERRED = Counter(
    "kefu_webhook_deferred_total", "Jobs sent round the busy delay: their endpoint was at its limit"
)


def job(delivery_id: uuid.UUID, chain: uuid.UUID, try_number: int) -> aio_pika.Message:
    return aio_pika.Message(
        json.dumps(
            {"delivery_id": str(delivery_id), "chain": str(chain), "try": try_number}
        ).encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def publish_confirmed(
    channel: AbstractChannel, message: aio_pika.Message, queue: str
) -> None:
    confirmation = await asyncio.wait_for(
        channel.default_exchange.publish(message, routing_key=queue, mandatory=True, timeout=10),
        15,
    )
    if not isinstance(confirmation, Basic.Ack):
        raise RuntimeError(f"broker answered {confirmation!r}")


class Gate:
    """One endpoint's calls in flight (at most ``limit``) and the jobs waiting for one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.users = 0
        self._calls = asyncio.Semaphore(limit)

    @property
    def full(self) -> bool:
        """As many jobs wait as may be in flight: more would hold prefetch slots idle."""
        return self.users >= 2 * self.limit

    @contextlib.asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        self.users += 1
        try:
            async with self._calls:
                yield
        finally:
            self.users -= 1


class Deliveries:
    def __init__(self, settings: WebhookSettings, *, db_connections: int) -> None:
        self.settings = settings
        self.schedule = settings.retry_delays()
        self._gates: dict[uuid.UUID, Gate] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Jobs wait their turn here rather than for a pooled connection, whose wait times out:
        # the dispatcher, the consumer and the API keep the rest of the pool.
        self._db_turn = asyncio.Semaphore(max(1, db_connections - 3))

    def _gate(self, endpoint_id: uuid.UUID, limit: int) -> Gate:
        gate = self._gates.get(endpoint_id)
        if gate is None or (gate.limit != limit and not gate.users):  # new, or limit changed
            gate = self._gates[endpoint_id] = Gate(limit)
        return gate

    async def run(self, db: Database, connection: AbstractRobustConnection) -> None:
        """Both loops, until cancelled."""
        sender = Sender(
            connect_timeout=self.settings.connect_timeout_seconds,
            timeout=self.settings.timeout_seconds,
            allow_private=self.settings.allow_private_targets,
            connections=self.settings.prefetch,
        )
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare_webhook_queues(channel, [*self.schedule, self.settings.busy_delay_seconds])
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=self.settings.prefetch)
        queue = await consumer.get_queue(WEBHOOK_JOBS_QUEUE)

        async def arrive(message: AbstractIncomingMessage) -> None:
            task = asyncio.create_task(self._work(db, channel, sender, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        tag = await queue.consume(arrive)
        try:
            await self._dispatch(db, channel)
        finally:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await sender.close()

    # ------------------------------------------------------------------ dispatcher

    async def _dispatch(self, db: Database, channel: AbstractChannel) -> None:
        backoff = 0.0
        swept = time.monotonic()
        while True:
            try:
                while await self.dispatch_once(db, channel) == DISPATCH_BATCH:
                    pass
                if time.monotonic() - swept > SWEEP_SECONDS:
                    await self.sweep(db, channel)
                    swept = time.monotonic()
                backoff = 0.0
                await asyncio.sleep(self.settings.dispatch_poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff = min(max(backoff * 2, 0.5), 5.0)
                log.warning("webhook dispatcher paused", error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)

    async def dispatch_once(self, db: Database, channel: AbstractChannel) -> int:
        """Jobs for a batch of deliveries. Each job's chain is committed before the job is
        published, so its worker finds it; a job the broker did not confirm is released for
        the next round (and one lost in a crash in between is released by ``sweep``)."""
        async with db.unit_of_work() as uow:
            ids = await repo.claim_unqueued(uow.session, DISPATCH_BATCH)
            chains = {delivery_id: uuid.uuid4() for delivery_id in ids}
            await repo.mark_enqueued(uow.session, chains)
        results = await asyncio.gather(
            *(
                publish_confirmed(channel, job(delivery_id, chain, 1), WEBHOOK_JOBS_QUEUE)
                for delivery_id, chain in chains.items()
            ),
            return_exceptions=True,
        )
        lost = {
            delivery_id: chain
            for (delivery_id, chain), result in zip(chains.items(), results, strict=True)
            if result is not None
        }
        if lost:
            async with db.unit_of_work() as uow:
                await repo.release(uow.session, lost)
            raise RuntimeError(f"{len(lost)} delivery jobs not confirmed")
        return len(chains)

    async def sweep(self, db: Database, channel: AbstractChannel) -> None:
        """The delivery log loses what settled before its retention. Deliveries whose job is
        overdue by ``STALE_AFTER`` get a new one; only while no job waits in the queue, since
        in a backlog every job is late and none is lost."""
        retention = timedelta(days=self.settings.log_retention_days)
        while True:  # in bounded transactions: a large log never holds one long lock
            async with db.unit_of_work() as uow:
                forgotten = await repo.forget_settled(
                    uow.session, datetime.now(UTC) - retention, FORGET_BATCH
                )
            if forgotten < FORGET_BATCH:
                break
        jobs = await channel.declare_queue(WEBHOOK_JOBS_QUEUE, passive=True)
        if jobs.declaration_result.message_count:
            return
        async with db.unit_of_work() as uow:
            released = await repo.release_stale(uow.session, datetime.now(UTC) - STALE_AFTER)
        if released:
            log.warning("overdue webhook deliveries sent again", deliveries=released)

    # ------------------------------------------------------------------ worker

    async def _work(
        self,
        db: Database,
        channel: AbstractChannel,
        sender: Sender,
        message: AbstractIncomingMessage,
    ) -> None:
        try:
            await self._handle(db, channel, sender, message)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The database or broker is away: the job goes back and is tried again.
            log.exception("webhook job failed; returned to the queue")
            await asyncio.sleep(1)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
        else:
            with contextlib.suppress(Exception):
                await message.ack()

    async def _handle(
        self,
        db: Database,
        channel: AbstractChannel,
        sender: Sender,
        message: AbstractIncomingMessage,
    ) -> None:
        try:
            body: dict[str, Any] = json.loads(message.body)
            delivery_id = uuid.UUID(body["delivery_id"])
            chain = uuid.UUID(body["chain"])
            try_number = int(body["try"])
        except (ValueError, KeyError, TypeError):
            log.error(
                "not a webhook job; dropped", body=message.body[:200].decode(errors="replace")
            )
            return
        async with self._db_turn, db.unit_of_work() as uow:
            target = await repo.job_target(uow.session, delivery_id)
            if target is None or target.chain != chain or target.status != "pending":
                return  # deleted, overtaken by a newer chain, or already settled
            if target.endpoint_status == "paused":
                await repo.hold_for_pause(uow.session, delivery_id)
                return
        gate = self._gate(
            target.endpoint_id, min(target.max_in_flight, self.settings.max_in_flight)
        )
        if gate.full:
            DEFERRED.inc()
            await publish_confirmed(
                channel,
                job(delivery_id, chain, try_number),
                webhook_delay_queue_name(self.settings.busy_delay_seconds),
            )
            return
        async with gate.call():
            sent = await sender.send(target.url, target.secret, str(target.event_id), target.body)
        if not gate.users:
            self._gates.pop(target.endpoint_id, None)
        CALL_SECONDS.observe(sent.duration_ms / 1000)
        # The call was made: its outcome is worth some waiting for the database, since a job
        # handed back now would call the receiver a second time.
        for attempt in range(OUTCOME_TRIES):
            try:
                async with self._db_turn:
                    await self._record(db, channel, target, chain, try_number, sent)
                return
            except Exception as exc:
                if attempt == OUTCOME_TRIES - 1 or not is_transient_db_error(exc):
                    raise
                await asyncio.sleep(0.5 * 2**attempt)

    async def _record(
        self,
        db: Database,
        channel: AbstractChannel,
        target: Any,
        chain: uuid.UUID,
        try_number: int,
        sent: Sent,
    ) -> None:
        delivery_id = target.id
        failed = not sent.attempt.succeeded
        async with db.unit_of_work() as uow:
            if failed or target.consecutive_failures:
                failures = await repo.count_failure(uow.session, target.endpoint_id, failed=failed)
            else:  # a healthy endpoint's success: nothing to clear, its row is left alone
                failures = 0
            decision = decide(
                sent.attempt,
                try_number=try_number,
                schedule=self.schedule,
                consecutive_failures=failures,
                circuit_failures=self.settings.circuit_failures,
            )
            ATTEMPTS.labels(decision.outcome).inc()
            if decision.pause_reason is not None:
                await repo.pause_endpoint(uow.session, target.endpoint_id, decision.pause_reason)
                log.warning(
                    "webhook paused", webhook=str(target.endpoint_id), reason=decision.pause_reason
                )
            await repo.record_attempt(
                uow.session,
                delivery_id,
                status="pending" if decision.outcome == "retry" else decision.outcome,
                at=sent.at,
                status_code=sent.attempt.status_code,
                error=None if sent.attempt.succeeded else describe(sent.attempt),
                response=sent.response,
                duration_ms=sent.duration_ms,
                next_attempt_at=sent.at + timedelta(seconds=decision.retry_in)
                if decision.retry_in is not None
                else None,
            )
            if decision.retry_in is not None:
                # Inside the transaction: if the retry cannot be queued, nothing is recorded
                # and the job comes back.
                await publish_confirmed(
                    channel,
                    job(delivery_id, chain, try_number + 1),
                    webhook_delay_queue_name(decision.retry_in),
                )
