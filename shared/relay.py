"""Outbox relay: publishes committed events with confirms, marking a row sent only after its ack.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so replicas share the work. The relay wakes on
``LISTEN/NOTIFY`` and also polls, because a NOTIFY sent while the listener is away is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg
from prometheus_client import Counter, Gauge
from sqlalchemy import Table, Text, cast, func, select, text, update

from shared import failpoints
from shared.db import Database, asyncpg_dsn, is_transient_db_error
from shared.logging import get_logger

log = get_logger(__name__)

PUBLISHED = Counter("kefu_outbox_published_total", "Outbox events published and confirmed")
FAILED = Counter("kefu_outbox_publish_failures_total", "Outbox publishes not confirmed")
PENDING = Gauge("kefu_outbox_pending", "Outbox rows not published yet", ["service"])
OLDEST_AGE = Gauge(
    "kefu_outbox_oldest_age_seconds",
    "Age of the oldest outbox row not published yet (0 when none)",
    ["service"],
)
# The longest wait between two tries while the broker or the database is away.
RETRY_MAX_SECONDS = 5.0


class EventPublisher(Protocol):
    # ``payload``: the envelope's ``id``, ``type`` and ``source``; ``body``: the whole event.
    async def publish(self, payload: dict[str, Any], body: bytes) -> None: ...

    # Returns once publishing can start (the broker connected and not blocking publishers).
    async def ready(self) -> None: ...


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        publisher: EventPublisher,
        *,
        listen_url: str,
        poll_seconds: float = 1.0,
        batch_size: int = 100,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self.db = db
        self.table: Table = db.outbox.table
        self.publisher = publisher
        self.listen_url = listen_url
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.retention = retention
        self._wakeup = asyncio.Event()

    async def run(self) -> None:
        """Relay until cancelled. After a failure the relay waits out its back-off, whatever
        wakes it meanwhile (each NOTIFY would only fail again): the back-off grows per failed
        round, so on time only (poll, 2x, 4x... up to RETRY_MAX_SECONDS), and a round that
        succeeds resets it, so the flow is back within seconds of the broker or database."""
        listener = asyncio.create_task(self._listen(), name="outbox-listener")
        last_cleanup = datetime.min.replace(tzinfo=UTC)
        backoff = 0.0  # no failure: wait for a NOTIFY or the poll
        try:
            while True:
                try:
                    # Waiting here, not in a batch that would time out, the relay publishes
                    # the moment the broker is back or a resource alarm clears.
                    await self.publisher.ready()
                    while await self.relay_batch() == self.batch_size:
                        pass
                    if datetime.now(UTC) - last_cleanup > timedelta(hours=1):
                        await self.delete_old()
                        last_cleanup = datetime.now(UTC)
                    backoff = 0.0
                except Exception as exc:
                    backoff = min(max(backoff * 2, self.poll_seconds), RETRY_MAX_SECONDS)
                    log.warning("outbox relay paused", error=str(exc), retry_in=backoff)
                if backoff:
                    await asyncio.sleep(backoff)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll_seconds)
                self._wakeup.clear()
        finally:
            listener.cancel()

    async def relay_batch(self) -> int:
        """Publish one batch of pending rows; return how many were confirmed."""
        async with self.db.unit_of_work() as uow:
            rows = (
                await uow.session.execute(
                    # The stored JSON is published as it is (no decoding and encoding again);
                    # a row's id and type are its event's.
                    select(
                        self.table.c.id,
                        self.table.c.type,
                        self.table.c.payload["source"].astext.label("source"),
                        cast(self.table.c.payload, Text).label("body"),
                    )
                    .where(self.table.c.published_at.is_(None))
                    # Rows that keep failing sink behind fresh ones instead of blocking them.
                    .order_by(self.table.c.attempts, self.table.c.created_at)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            results = await asyncio.gather(
                *(
                    self.publisher.publish(
                        {"id": str(row.id), "type": row.type, "source": row.source},
                        row.body.encode(),
                    )
                    for row in rows
                ),
                return_exceptions=True,
            )
            # The fault suite dies here: confirmed, not yet marked, so published again.
            failpoints.crash(f"relay-after-confirm.{self.table.schema}")
            sent = [row.id for row, result in zip(rows, results, strict=True) if result is None]
            failed = [
                (row.id, result)
                for row, result in zip(rows, results, strict=True)
                if isinstance(result, BaseException)
            ]
            if sent:
                await uow.session.execute(
                    update(self.table)
                    .where(self.table.c.id.in_(sent))
                    .values(published_at=func.now())
                )
            for row_id, error in failed:
                await uow.session.execute(
                    update(self.table)
                    .where(self.table.c.id == row_id)
                    .values(attempts=self.table.c.attempts + 1, last_error=str(error)[:2000])
                )
        PUBLISHED.inc(len(sent))
        if failed:
            FAILED.inc(len(failed))
            raise RuntimeError(f"{len(failed)} of {len(rows)} events not confirmed: {failed[0][1]}")
        return len(sent)

    async def delete_old(self) -> None:
        async with self.db.unit_of_work() as uow:
            await uow.session.execute(
                self.table.delete().where(
                    self.table.c.published_at < datetime.now(UTC) - self.retention
                )
            )

    async def _listen(self) -> None:
        channel = self.db.outbox.notify_channel
        while True:
            try:
                conn = await asyncpg.connect(asyncpg_dsn(self.listen_url), timeout=10)
            except Exception as exc:
                if not is_transient_db_error(exc):
                    log.error("outbox listener cannot connect", error=str(exc))
                await asyncio.sleep(5)
                continue
            closed = asyncio.Event()
            conn.add_termination_listener(lambda _conn, closed=closed: closed.set())
            try:
                await conn.add_listener(channel, lambda *_args: self._wakeup.set())
                self._wakeup.set()  # catch up on anything committed while we were away
                await closed.wait()
            except Exception as exc:
                log.warning("outbox listener lost", error=str(exc))
            finally:
                if not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(1)


async def measure_outbox(db: Database, service: str, every: float) -> None:
    """Refresh the outbox gauges every ``every`` seconds until cancelled, whether or not the
    relay runs (the backlog grows while the broker is away). One index-only scan of the
    pending rows' partial index, cut off after 2 s: the pending rows are few unless the broker
    has been away."""
    table = db.outbox.table
    statement = text(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) "
        f"FROM {table.schema}.{table.name} WHERE published_at IS NULL"
    )
    pending, oldest = PENDING.labels(service), OLDEST_AGE.labels(service)
    while True:
        try:
            async with db.unit_of_work() as uow:
                await uow.session.execute(text("SET LOCAL statement_timeout = '2s'"))
                count, age = (await uow.session.execute(statement)).one()
            pending.set(count)
            oldest.set(max(float(age), 0.0))
        except Exception as exc:  # the database is away: the last values stay
            log.debug("outbox gauges not refreshed", error=repr(exc))
        await asyncio.sleep(every)
