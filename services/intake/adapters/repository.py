"""intake's queries. Functions take the session of the caller's unit of work."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.adapters.tables import customers, feedback, issues
from services.intake.domain.customers import Contacts


async def find_or_create_customer(session: AsyncSession, contacts: Contacts) -> Row[Any]:
    """Match on external id, then email, then phone; create the customer if none matches.

    The one implementation is ``intake.find_or_create_customer`` (migration 0003), which
    ``intake.accept_issues`` uses for issues too.
    """
    return (
        await session.execute(
            text(
                "SELECT * FROM intake.find_or_create_customer(:name, :email, :phone, :external_id)"
            ),
            {
                "name": contacts.name,
                "email": contacts.email,
                "phone": contacts.phone,
                "external_id": contacts.external_id,
            },
        )
    ).one()


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> Row[Any]:
    return (await session.execute(select(customers).where(customers.c.id == customer_id))).one()


async def issue_by_key(session: AsyncSession, channel: str, external_id: str) -> Row[Any] | None:
    return (
        await session.execute(
            select(issues).where(issues.c.channel == channel, issues.c.external_id == external_id)
        )
    ).first()


async def get_issue(
    session: AsyncSession, issue_id: uuid.UUID, *, for_update: bool = False
) -> Row[Any] | None:
    query = select(issues).where(issues.c.id == issue_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def set_resolution(
    session: AsyncSession, issue_id: uuid.UUID, resolved_at: datetime, resolution: dict[str, Any]
) -> None:
    await session.execute(
        update(issues)
        .where(issues.c.id == issue_id)
        .values(resolved_at=resolved_at, resolution=resolution)
    )


async def feedback_by_key(session: AsyncSession, channel: str, external_id: str) -> Row[Any] | None:
    return (
        await session.execute(
            select(feedback).where(
                feedback.c.channel == channel, feedback.c.external_id == external_id
            )
        )
    ).first()


async def insert_feedback(session: AsyncSession, **values: Any) -> bool:
    inserted = await session.execute(
        insert(feedback)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[feedback.c.channel, feedback.c.external_id])
        .returning(feedback.c.id)
    )
    return inserted.first() is not None
