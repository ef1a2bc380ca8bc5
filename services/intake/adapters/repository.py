"""intake's queries. Functions take the session of the caller's unit of work."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.adapters.tables import customers, feedback, issues
from services.intake.domain.customers import Contacts


async def find_or_create_customer(session: AsyncSession, contacts: Contacts) -> Row[Any]:
    """Match on external id, then email, then phone; create the customer if none matches."""
    match = await _match_customer(session, contacts)
    if match is None:
        # No conflict target: a concurrent request that created any of these contacts wins.
        created = (
            await session.execute(
                insert(customers)
                .values(
                    id=uuid.uuid4(),
                    name=contacts.name,
                    email=contacts.email,
                    phone=contacts.phone,
                    external_id=contacts.external_id,
                )
                .on_conflict_do_nothing()
                .returning(*customers.c)
            )
        ).first()
        match = created or await _match_customer(session, contacts)
        assert match is not None
        return match
    if await _complete_customer(session, match, contacts):
        return await _match_customer(session, contacts) or match
    return match


async def _match_customer(session: AsyncSession, contacts: Contacts) -> Row[Any] | None:
    keys = [
        (column, value)
        for column, value in (
            (customers.c.external_id, contacts.external_id),
            (customers.c.email, contacts.email),
            (customers.c.phone, contacts.phone),
        )
        if value
    ]
    rows = (
        await session.execute(select(customers).where(or_(*(col == val for col, val in keys))))
    ).all()
    for column, value in keys:
        for row in rows:
            if row._mapping[column.name] == value:
                return row
    return None


async def _complete_customer(session: AsyncSession, row: Row[Any], contacts: Contacts) -> bool:
    """Fill in what the matched customer lacks; a contact held by someone else is left alone."""
    values: dict[str, Any] = {
        name: value
        for name, value in (
            ("name", contacts.name),
            ("email", contacts.email),
            ("phone", contacts.phone),
            ("external_id", contacts.external_id),
        )
        if value and (getattr(row, name) is None or (name == "name" and row.name != value))
    }
    if not values:
        return False
    try:
        async with session.begin_nested():
            await session.execute(
                update(customers)
                .where(customers.c.id == row.id)
                .values(**values, updated_at=func.now())
            )
    except IntegrityError:
        return False
    return True


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> Row[Any]:
    return (await session.execute(select(customers).where(customers.c.id == customer_id))).one()


async def issue_by_key(session: AsyncSession, channel: str, external_id: str) -> Row[Any] | None:
    return (
        await session.execute(
            select(issues).where(issues.c.channel == channel, issues.c.external_id == external_id)
        )
    ).first()


async def insert_issue(session: AsyncSession, **values: Any) -> None:
    """The caller holds the lock on (channel, external_id) and has seen it free."""
    await session.execute(insert(issues).values(**values))


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


async def link_pending_feedback(
    session: AsyncSession,
    issue_id: uuid.UUID,
    customer_id: uuid.UUID,
    channel: str,
    external_id: str,
) -> list[Row[Any]]:
    """Attach feedback that named this issue before it arrived; return the rows attached."""
    return list(
        (
            await session.execute(
                update(feedback)
                .where(
                    feedback.c.issue_id.is_(None),
                    feedback.c.issue_channel == channel,
                    feedback.c.issue_external_id == external_id,
                )
                .values(issue_id=issue_id, customer_id=customer_id)
                .returning(feedback)
            )
        ).all()
    )


async def insert_feedback(session: AsyncSession, **values: Any) -> bool:
    inserted = await session.execute(
        insert(feedback)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[feedback.c.channel, feedback.c.external_id])
        .returning(feedback.c.id)
    )
    return inserted.first() is not None
