"""need_analyzer's rows about erased customers: their words go, the analysis' statistics stay."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.need_analyzer.adapters.tables import analyses
from shared.contracts import ERASED_TEXT


async def erase_customers(session: AsyncSession, customers: Sequence[uuid.UUID]) -> None:
    ids = [str(customer) for customer in customers]
    await session.execute(
        update(analyses)
        .where(analyses.c.customer["customer_id"].astext.in_(ids))
        .values(
            customer=func.jsonb_build_object("customer_id", analyses.c.customer["customer_id"]),
            subject=None,
            text=ERASED_TEXT,
            keywords=text("'{}'"),
            explanations=None,
        )
    )
