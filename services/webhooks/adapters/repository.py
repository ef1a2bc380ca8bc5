"""webhooks' SQL: endpoints, the deliveries of each, and the state of the job chains."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Text, Uuid, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.adapters.tables import deliveries, endpoints
from shared.paging import after

# ------------------------------------------------------------------ endpoints


async def insert_endpoint(session: AsyncSession, **values: Any) -> Row[Any]:
    row: Row[Any] = (
        await session.execute(endpoints.insert().values(**values).returning(endpoints))
    ).one()
    return row


async def get_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> Row[Any] | None:
    row: Row[Any] | None = (
        await session.execute(select(endpoints).where(endpoints.c.id == endpoint_id))
    ).first()
    return row


async def endpoint_page(
    session: AsyncSession, *, limit: int, key: tuple[Any, ...] | None
) -> Sequence[Row[Any]]:
    """Newest first; up to ``limit + 1`` rows (the extra one says a next page exists)."""
    statement = select(endpoints)
    if key is not None:
        statement = statement.where(after([endpoints.c.created_at, endpoints.c.id], key))
    statement = statement.order_by(endpoints.c.created_at.desc(), endpoints.c.id.desc())
    return (await session.execute(statement.limit(limit + 1))).all()


async def update_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, **values: Any
) -> Row[Any] | None:
    row: Row[Any] | None = (
        await session.execute(
            update(endpoints)
            .where(endpoints.c.id == endpoint_id)
            .values(**values, updated_at=func.now())
            .returning(endpoints)
        )
    ).first()
    return row


async def delete_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> bool:
    """Its deliveries go with it (the jobs left on the broker find nothing and stop)."""
    deleted = await session.execute(
        endpoints.delete().where(endpoints.c.id == endpoint_id).returning(endpoints.c.id)
    )
    return deleted.first() is not None


async def resume_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> Row[Any] | None:
    """Active again, its failure count cleared, and what the pause held sent again."""
    row = await update_endpoint(
        session,
        endpoint_id,
        status="active",
        consecutive_failures=0,
        paused_reason=None,
        paused_at=None,
    )
    if row is not None:
        await session.execute(
            update(deliveries)
            .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.status == "paused")
            .values(status="pending", enqueued_at=None, chain=None, updated_at=func.now())
        )
    return row


async def selectors(session: AsyncSession) -> Sequence[Row[Any]]:
    """Every endpoint's choice of events, for the fan-out."""
    rows: Sequence[Any] = (
        await session.execute(
            select(
                endpoints.c.id,
                endpoints.c.events,
                endpoints.c.channels,
                endpoints.c.intents,
                endpoints.c.status,
            )
        )
    ).all()
    return rows


# ------------------------------------------------------------------ deliveries

_INSERT_DELIVERIES = text(
    """
    INSERT INTO webhooks.deliveries
        (id, endpoint_id, event_id, event_type, event, status, created_at, updated_at)
    SELECT gen_random_uuid(), endpoint_id, event_id, event_type, event::jsonb, status, now(), now()
    FROM unnest(CAST(:endpoint_ids AS uuid[]), CAST(:event_ids AS uuid[]),
                CAST(:types AS text[]), CAST(:events AS text[]), CAST(:statuses AS text[]))
        AS d(endpoint_id, event_id, event_type, event, status)
    ON CONFLICT (endpoint_id, event_id) DO NOTHING
    """
).bindparams(
    bindparam("endpoint_ids", type_=ARRAY(Uuid)),
    bindparam("event_ids", type_=ARRAY(Uuid)),
    bindparam("types", type_=ARRAY(Text)),
    bindparam("events", type_=ARRAY(Text)),
    bindparam("statuses", type_=ARRAY(Text)),
)


async def insert_deliveries(
    session: AsyncSession, rows: Sequence[tuple[uuid.UUID, uuid.UUID, str, str, str]]
) -> None:
    """(endpoint id, event id, type, event JSON, status) each, in one statement; an event
    already fanned out to an endpoint is left alone."""
    if not rows:
        return
    endpoint_ids, event_ids, types, events, statuses = (
        list(column) for column in zip(*rows, strict=True)
    )
    await session.execute(
        _INSERT_DELIVERIES,
        {
            "endpoint_ids": endpoint_ids,
            "event_ids": event_ids,
            "types": types,
            "events": events,
            "statuses": statuses,
        },
    )


async def delivery_page(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    status: str | None,
    limit: int,
    key: tuple[Any, ...] | None,
) -> Sequence[Row[Any]]:
    statement = select(deliveries).where(deliveries.c.endpoint_id == endpoint_id)
    if status is not None:
        statement = statement.where(deliveries.c.status == status)
    if key is not None:
        statement = statement.where(after([deliveries.c.created_at, deliveries.c.id], key))
    statement = statement.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc())
    return (await session.execute(statement.limit(limit + 1))).all()


async def get_delivery(
    session: AsyncSession, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> Row[Any] | None:
    return (
        await session.execute(
            select(deliveries).where(
                deliveries.c.id == delivery_id, deliveries.c.endpoint_id == endpoint_id
            )
        )
    ).first()


async def send_again(session: AsyncSession, delivery_id: uuid.UUID) -> Row[Any]:
    """A new chain from the first try: the dispatcher hands it to the broker; a retry of the
    old chain still waiting on the broker is dropped when it comes back."""
    row: Row[Any] = (
        await session.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(
                status="pending",
                chain=None,
                enqueued_at=None,
                next_attempt_at=None,
                updated_at=func.now(),
            )
            .returning(deliveries)
        )
    ).one()
    return row


# ------------------------------------------------------------------ job chains


async def claim_unqueued(session: AsyncSession, limit: int) -> list[uuid.UUID]:
    """Deliveries no job carries yet, locked until the caller's commit (replicas skip them)."""
    rows = await session.execute(
        select(deliveries.c.id)
        .where(deliveries.c.status == "pending", deliveries.c.enqueued_at.is_(None))
        .order_by(deliveries.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(rows.scalars())


_MARK_ENQUEUED = text(
    """
    UPDATE webhooks.deliveries AS d SET chain = c.chain, enqueued_at = now(), updated_at = now()
    FROM unnest(CAST(:ids AS uuid[]), CAST(:chains AS uuid[])) AS c(id, chain)
    WHERE d.id = c.id
    """
).bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("chains", type_=ARRAY(Uuid)))


async def mark_enqueued(session: AsyncSession, chains: dict[uuid.UUID, uuid.UUID]) -> None:
    if chains:
        await session.execute(
            _MARK_ENQUEUED, {"ids": list(chains), "chains": list(chains.values())}
        )


_RELEASE = text(
    """
    UPDATE webhooks.deliveries AS d SET chain = NULL, enqueued_at = NULL, updated_at = now()
    FROM unnest(CAST(:ids AS uuid[]), CAST(:chains AS uuid[])) AS c(id, chain)
    WHERE d.id = c.id AND d.chain = c.chain AND d.status = 'pending'
    """
).bindparams(bindparam("ids", type_=ARRAY(Uuid)), bindparam("chains", type_=ARRAY(Uuid)))


async def release(session: AsyncSession, chains: dict[uuid.UUID, uuid.UUID]) -> None:
    """Jobs that did not reach the broker: their deliveries go back to the dispatcher."""
    if chains:
        await session.execute(_RELEASE, {"ids": list(chains), "chains": list(chains.values())})


async def release_stale(session: AsyncSession, older_than: datetime) -> int:
    """Pending deliveries whose job should have come back long ago (lost between the
    dispatcher's commit and its publish, say): a new chain supersedes the old one."""
    released = await session.execute(
        update(deliveries)
        .where(
            deliveries.c.status == "pending",
            deliveries.c.enqueued_at.is_not(None),
            func.coalesce(
                deliveries.c.next_attempt_at, deliveries.c.last_attempt_at, deliveries.c.enqueued_at
            )
            < older_than,
        )
        .values(chain=None, enqueued_at=None, updated_at=func.now())
        .returning(deliveries.c.id)
    )
    return len(released.all())


async def forget_settled(session: AsyncSession, older_than: datetime, limit: int) -> int:
    """Delete up to ``limit`` deliveries settled (delivered or failed) before ``older_than``."""
    oldest = (
        select(deliveries.c.id)
        .where(
            deliveries.c.status.in_(("delivered", "failed")),
            deliveries.c.updated_at < older_than,
        )
        .limit(limit)
        .scalar_subquery()
    )
    deleted = await session.execute(
        deliveries.delete().where(deliveries.c.id.in_(oldest)).returning(deliveries.c.id)
    )
    return len(deleted.all())


async def job_target(session: AsyncSession, delivery_id: uuid.UUID) -> Any:
    """A delivery with what its call needs of its endpoint."""
    row: Any = (
        await session.execute(
            select(
                deliveries.c.id,
                deliveries.c.chain,
                deliveries.c.status,
                deliveries.c.event_id,
                func.cast(deliveries.c.event, Text).label("body"),
                endpoints.c.id.label("endpoint_id"),
                endpoints.c.url,
                endpoints.c.secret,
                endpoints.c.max_in_flight,
                endpoints.c.status.label("endpoint_status"),
                endpoints.c.consecutive_failures,
            )
            .select_from(deliveries.join(endpoints, endpoints.c.id == deliveries.c.endpoint_id))
            .where(deliveries.c.id == delivery_id)
        )
    ).first()
    return row


async def hold_for_pause(session: AsyncSession, delivery_id: uuid.UUID) -> None:
    await session.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(status="paused", chain=None, enqueued_at=None, updated_at=func.now())
    )


async def count_failure(session: AsyncSession, endpoint_id: uuid.UUID, *, failed: bool) -> int:
    """The endpoint's consecutive failures after this attempt (a success clears them)."""
    if not failed:
        # Written only when there is something to clear: the calls of a healthy endpoint do
        # not queue behind each other for its row.
        await session.execute(
            update(endpoints)
            .where(endpoints.c.id == endpoint_id, endpoints.c.consecutive_failures > 0)
            .values(consecutive_failures=0)
        )
        return 0
    count = (
        await session.execute(
            update(endpoints)
            .where(endpoints.c.id == endpoint_id)
            .values(consecutive_failures=endpoints.c.consecutive_failures + 1)
            .returning(endpoints.c.consecutive_failures)
        )
    ).scalar_one_or_none()
    return int(count or 0)


async def pause_endpoint(session: AsyncSession, endpoint_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(endpoints)
        .where(endpoints.c.id == endpoint_id, endpoints.c.status == "active")
        .values(status="paused", paused_reason=reason, paused_at=func.now(), updated_at=func.now())
    )


async def record_attempt(
    session: AsyncSession,
    delivery_id: uuid.UUID,
    *,
    status: str,
    at: datetime,
    status_code: int | None,
    error: str | None,
    response: str | None,
    duration_ms: float,
    next_attempt_at: datetime | None,
) -> None:
    held = status == "paused"
    await session.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(
            status=status,
            attempts=deliveries.c.attempts + 1,
            last_attempt_at=at,
            last_status_code=status_code,
            last_error=error,
            last_response=response,
            last_duration_ms=duration_ms,
            next_attempt_at=next_attempt_at,
            delivered_at=at if status == "delivered" else deliveries.c.delivered_at,
            # Held by a pause: no chain acts on it until the endpoint resumes.
            **({"chain": None, "enqueued_at": None} if held else {}),
            updated_at=func.now(),
        )
    )
