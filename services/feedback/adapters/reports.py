"""The satisfaction report's one query: an index-only scan of verdicts over the period."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import Date, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.feedback.adapters.tables import verdicts
from services.feedback.domain.reports import Counts

GroupBy = Literal["channel", "intent", "day", "none"]


async def counts_by_group(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    group_by: GroupBy,
    time_zone: str = "UTC",
) -> dict[str, Counts]:
    """Counts per group; ``day`` is the calendar day in ``time_zone`` (an IANA name)."""
    key = {
        "channel": func.coalesce(verdicts.c.channel, "unknown"),
        "intent": func.coalesce(verdicts.c.intent, "unknown"),
        "day": cast(func.timezone(time_zone, verdicts.c.decided_at), Date),
        "none": literal("all"),
    }[group_by].label("key")
    v = verdicts.c
    query = (
        select(
            key,
            func.count(),
            func.count().filter(v.verdict == "satisfied"),
            func.count().filter(v.verdict == "neutral"),
            func.count().filter(v.verdict == "dissatisfied"),
            func.count(v.nps),
            func.count().filter(v.nps >= 9),
            func.count().filter(v.nps <= 6),
            func.count(v.ces),
            func.coalesce(func.sum(v.ces), 0),
        )
        .where(v.decided_at >= since, v.decided_at < until)
        .group_by(key)
        .order_by(key)
    )
    rows = (await session.execute(query)).all()
    return {str(row[0]): Counts(*(int(n) for n in row[1:])) for row in rows}
