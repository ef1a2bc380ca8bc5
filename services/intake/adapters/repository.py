"""intake's queries. Functions take the session of the caller's unit of work."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Row, Text, delete, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.adapters.tables import customers, feedback, issues
from services.intake.domain.commands import IssueSearch
from services.intake.domain.customers import Contacts
from shared.contracts import ERASED_TEXT
from shared.paging import after


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


# The customer's columns as customer_<name> (its id is the issue's customer_id).
_ISSUE_WITH_CUSTOMER = select(
    issues,
    *(column.label(f"customer_{column.name}") for column in customers.c if column.name != "id"),
).select_from(issues.join(customers, customers.c.id == issues.c.customer_id))


async def issue_page(
    session: AsyncSession, search: IssueSearch, *, limit: int, key: tuple[Any, ...] | None
) -> Sequence[Row[Any]]:
    """Newest first, each with its customer (``customer_*``); up to ``limit + 1`` rows."""
    statement = _ISSUE_WITH_CUSTOMER
    if search.channel is not None:
        statement = statement.where(issues.c.channel == search.channel)
    if search.customer_id is not None:
        statement = statement.where(issues.c.customer_id == search.customer_id)
    if search.status == "resolved":
        statement = statement.where(issues.c.resolved_at.is_not(None))
    elif search.status == "received":
        statement = statement.where(issues.c.resolved_at.is_(None))
    if search.received_since is not None:
        statement = statement.where(issues.c.received_at >= search.received_since)
    if search.received_until is not None:
        statement = statement.where(issues.c.received_at < search.received_until)
    if search.text is not None:
        # Any language as a substring (Chinese has no spaces to split on), and English by
        # its stems as well ("refunds" finds "refund").
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", search.text) + "%"
        statement = statement.where(
            or_(
                issues.c.text.ilike(pattern, escape="\\"),
                issues.c.subject.ilike(pattern, escape="\\"),
                func.to_tsvector("english", issues.c.text).op("@@")(
                    func.plainto_tsquery("english", search.text)
                ),
            )
        )
    if key is not None:
        statement = statement.where(after([issues.c.received_at, issues.c.id], key))
    statement = statement.order_by(issues.c.received_at.desc(), issues.c.id.desc())
    rows: Sequence[Row[Any]] = (await session.execute(statement.limit(limit + 1))).all()
    return rows


async def erase_customer(session: AsyncSession, customer_id: uuid.UUID) -> bool:
    """Forget the customer's contacts and words; False if there is no such customer. Rows stay
    (anonymous) so that issues keep their place in statistics and their idempotency keys."""
    erased = await session.execute(
        update(customers)
        .where(customers.c.id == customer_id)
        .values(name=None, email=None, phone=None, external_id=None, updated_at=func.now())
        .returning(customers.c.id)
    )
    if erased.first() is None:
        return False
    their_issues = select(issues.c.id).where(issues.c.customer_id == customer_id)
    await session.execute(
        update(issues)
        .where(issues.c.customer_id == customer_id)
        .values(
            # The channel's message id may name the customer (an e-mail's Message-ID): a
            # digest keeps the key unique without it.
            external_id=func.concat("erased-", func.md5(issues.c.external_id)),
            subject=None,
            text=ERASED_TEXT,
            metadata=text("'{}'::jsonb"),
            resolution=func.jsonb_set(
                issues.c.resolution, literal(["summary"], ARRAY(Text)), func.to_jsonb(ERASED_TEXT)
            ),
        )
    )
    # Feedback still waiting for its issue would be published with the customer's words.
    await session.execute(
        delete(feedback).where(
            feedback.c.customer_id == customer_id,
            feedback.c.issue_id.is_(None),
            feedback.c.issue_channel.is_not(None),
        )
    )
    await session.execute(
        update(feedback)
        .where(or_(feedback.c.customer_id == customer_id, feedback.c.issue_id.in_(their_issues)))
        .values(comment=None)
    )
    return True


async def customer_records(
    session: AsyncSession, customer_id: uuid.UUID
) -> dict[str, list[dict[str, Any]]] | None:
    """Everything intake holds about the customer, table by table; None if unknown."""
    customer = (
        await session.execute(select(customers).where(customers.c.id == customer_id))
    ).first()
    if customer is None:
        return None
    their_issues = (
        await session.execute(select(issues).where(issues.c.customer_id == customer_id))
    ).all()
    issue_ids = [issue.id for issue in their_issues]
    their_feedback = (
        await session.execute(
            select(feedback).where(
                or_(feedback.c.customer_id == customer_id, feedback.c.issue_id.in_(issue_ids))
            )
        )
    ).all()
    return {
        "customers": [dict(customer._mapping)],
        "issues": [dict(row._mapping) for row in their_issues],
        "feedback": [dict(row._mapping) for row in their_feedback],
    }
