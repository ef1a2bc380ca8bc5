"""improvement's queries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.improvement.adapters.tables import followups, issues, proposals
from services.improvement.domain.followups import ACTIVE_PROPOSAL
from services.improvement.domain.themes import ThemeKind, ThemeStats, Thresholds

_THEME_COLUMN = {"intent": issues.c.intent, "need": issues.c.need_key}


async def get_issue(session: AsyncSession, issue_id: uuid.UUID) -> Row[Any] | None:
    return (await session.execute(select(issues).where(issues.c.issue_id == issue_id))).first()


async def followup_for_issue(session: AsyncSession, issue_id: uuid.UUID) -> Row[Any] | None:
    return (
        await session.execute(select(followups).where(followups.c.issue_id == issue_id))
    ).first()


async def theme_stats(
    session: AsyncSession, kind: ThemeKind, key: str, thresholds: Thresholds
) -> ThemeStats | None:
    """Counts over the window ending at the theme's latest issue, and the baseline before it."""
    column = _THEME_COLUMN[kind]
    first, end = (
        await session.execute(
            select(func.min(issues.c.received_at), func.max(issues.c.received_at)).where(
                column == key
            )
        )
    ).one()
    if end is None:
        return None
    start = end - thresholds.window
    baseline_start = start - thresholds.baseline
    in_window = issues.c.received_at > start
    in_baseline = issues.c.received_at <= start
    row = (
        await session.execute(
            select(
                func.count().filter(in_window),
                func.count(issues.c.verdict).filter(in_window),
                func.count().filter(in_window, issues.c.verdict == "satisfied"),
                func.count().filter(in_window, issues.c.verdict == "dissatisfied"),
                func.count().filter(in_baseline),
                func.count(issues.c.verdict).filter(in_baseline),
                func.count().filter(in_baseline, issues.c.verdict == "satisfied"),
            ).where(
                column == key, issues.c.received_at > baseline_start, issues.c.received_at <= end
            )
        )
    ).one()
    samples = (
        (
            await session.execute(
                select(issues.c.issue_id)
                .where(
                    column == key,
                    in_window,
                    issues.c.received_at <= end,
                    issues.c.verdict == "dissatisfied",
                )
                .order_by(issues.c.received_at.desc(), issues.c.issue_id)
                .limit(5)
            )
        )
        .scalars()
        .all()
    )
    return ThemeStats(
        start, end, *(int(n) for n in row), first_issue_at=first, sample_issue_ids=list(samples)
    )


async def active_proposal(session: AsyncSession, kind: ThemeKind, key: str) -> Row[Any] | None:
    return (
        await session.execute(
            select(proposals).where(
                proposals.c.theme_kind == kind,
                proposals.c.theme_key == key,
                proposals.c.status.in_(ACTIVE_PROPOSAL),
            )
        )
    ).first()


async def closed_since(session: AsyncSession, kind: ThemeKind, key: str, since: datetime) -> bool:
    """Whether people closed a proposal for this theme on evidence from the current window."""
    found = await session.scalar(
        select(func.count()).where(
            proposals.c.theme_kind == kind,
            proposals.c.theme_key == key,
            proposals.c.status.not_in(ACTIVE_PROPOSAL),
            proposals.c.evidence["period_end"].astext.cast(proposals.c.opened_at.type) > since,
        )
    )
    return bool(found)
