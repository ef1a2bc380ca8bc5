"""The satisfaction report's one query (an index-only scan of verdicts over the period), and one
issue's verdict with its feedback."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Date, Row, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.feedback.adapters.tables import feedback, verdicts
from services.feedback.domain.reports import Counts

GroupBy = Literal["channel", "intent", "day", "none"]


async def counts_by_group(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    group_by: GroupBy,
    time_zone: str = "UTC",
    *,
    channel: str | None = None,
    intent: str | None = None,
) -> dict[str, Counts]:
    """Counts per group; ``day`` is the calendar day in ``time_zone`` (an IANA name); only the
    verdicts of ``channel`` and ``intent`` when given (still an index-only scan)."""
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
        .where(*([v.channel == channel] if channel else []))
        .where(*([v.intent == intent] if intent else []))
        .group_by(key)
        .order_by(key)
    )
    rows = (await session.execute(query)).all()
    return {str(row[0]): Counts(*(int(n) for n in row[1:])) for row in rows}


async def issue_satisfaction(
    session: AsyncSession, issue_id: uuid.UUID
) -> tuple[Row[Any] | None, Sequence[Row[Any]]]:
    """One issue's current verdict (None before any) and its feedback, oldest first."""
    verdict = (
        await session.execute(select(verdicts).where(verdicts.c.issue_id == issue_id))
    ).first()
    items = (
        await session.execute(
            select(feedback)
            .where(feedback.c.issue_id == issue_id)
            .order_by(feedback.c.submitted_at, feedback.c.feedback_id)
        )
    ).all()
    return verdict, items
