"""need_analyzer's read API: one issue's analysis, and the top needs and intents of a period."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from services.need_analyzer.adapters.tables import analyses
from shared.auth import Principal, require
from shared.http import DatabaseDep
from shared.problems import Problem
from shared.validation import Timestamp

router = APIRouter(prefix="/v1")
CanReadAnalyses = Annotated[Principal, Depends(require("analyses:read"))]


@router.get("/analyses/{issue_id}")
async def get_analysis(issue_id: uuid.UUID, db: DatabaseDep, _: CanReadAnalyses) -> dict[str, Any]:
    async with db.unit_of_work() as uow:
        row = (
            await uow.session.execute(select(analyses).where(analyses.c.issue_id == issue_id))
        ).first()
    if row is None:
        raise Problem(404, "Not found", f"no analysis of issue {issue_id}", field="issue_id")
    return {
        "issue_id": row.issue_id,
        "channel": row.channel,
        "received_at": row.received_at,
        "analysis": {
            "language": row.language,
            "need": row.need,
            "intent": row.intent,
            "secondary": row.secondary,
            "sentiment": {"label": row.sentiment_label, "score": row.sentiment_score},
            "urgency": row.urgency,
            "keywords": row.keywords,
            "explanations": row.explanations or {},
        },
        "analyzer_version": row.analyzer_version,
        "analyzed_at": row.analyzed_at,
    }


@router.get("/needs/top")
async def top_needs(
    db: DatabaseDep,
    _: CanReadAnalyses,
    since: Annotated[Timestamp | None, Query(description="default: 30 days ago")] = None,
    until: Annotated[Timestamp | None, Query(description="default: now")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """The most frequent needs (as customers put them, case-folded) and intents of a period."""
    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=30)
    if since >= until:
        raise Problem(422, "Invalid request", "since must be before until", field="since")
    period = (analyses.c.received_at >= since) & (analyses.c.received_at < until)
    need = func.lower(func.btrim(analyses.c.need))
    async with db.unit_of_work() as uow:
        needs = (
            await uow.session.execute(
                select(
                    need.label("need"),
                    func.count().label("count"),
                    func.array_agg(func.distinct(analyses.c.intent)).label("intents"),
                )
                .where(period, analyses.c.need.is_not(None))
                .group_by(need)
                .order_by(func.count().desc(), need)
                .limit(limit)
            )
        ).all()
        intents = (
            await uow.session.execute(
                select(analyses.c.intent, func.count().label("count"))
                .where(period)
                .group_by(analyses.c.intent)
                .order_by(func.count().desc(), analyses.c.intent)
                .limit(limit)
            )
        ).all()
        total = await uow.session.scalar(select(func.count()).select_from(analyses).where(period))
    return {
        "since": since,
        "until": until,
        "issues": total or 0,
        "needs": [{"need": r.need, "count": r.count, "intents": sorted(r.intents)} for r in needs],
        "intents": [{"intent": r.intent, "count": r.count} for r in intents],
    }
