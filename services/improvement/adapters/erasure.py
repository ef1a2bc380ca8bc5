"""improvement's rows about erased customers: contacts, names and words go; verdicts, needs and
the themes they make stay."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import case, func, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.improvement.adapters.tables import followups, issues
from shared.contracts import ERASED_TEXT


async def erase_customers(
    session: AsyncSession, customers: Sequence[uuid.UUID], *, summary_zh: str, summary_en: str
) -> None:
    """``summary_zh`` and ``summary_en``: the follow-up's sentence without a name."""
    ids = [str(customer) for customer in customers]
    await session.execute(
        update(issues)
        .where(issues.c.customer["customer_id"].astext.in_(ids))
        .values(customer=func.jsonb_build_object("customer_id", issues.c.customer["customer_id"]))
    )
    await session.execute(
        update(followups)
        .where(followups.c.customer["customer_id"].astext.in_(ids))
        .values(
            customer=func.jsonb_build_object("customer_id", followups.c.customer["customer_id"]),
            summary=case(
                (followups.c.summary.regexp_match("[\u4e00-\u9fff]"), summary_zh),
                else_=summary_en,
            ),
            reason=ERASED_TEXT,
            note=None,
        )
    )
