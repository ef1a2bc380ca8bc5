"""feedback's rows about erased customers: contacts and words go, ratings and verdicts stay."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.feedback.adapters.tables import feedback, issues, verdicts
from shared.contracts import ERASED_TEXT


async def erase_customers(session: AsyncSession, customers: Sequence[uuid.UUID]) -> None:
    ids = [str(customer) for customer in customers]
    their_issues = select(issues.c.issue_id).where(issues.c.customer["customer_id"].astext.in_(ids))
    for table, words in (
        (issues, {}),
        (feedback, {"comment": None}),
        (verdicts, {"basis": ERASED_TEXT}),
    ):
        about_them = table.c.customer["customer_id"].astext.in_(ids)
        if table is not issues:
            about_them = or_(about_them, table.c.issue_id.in_(their_issues))
        await session.execute(
            update(table)
            .where(about_them)
            .values(
                customer=func.jsonb_build_object("customer_id", table.c.customer["customer_id"]),
                **words,
            )
        )
