"""need_analyzer's use cases: analyse each received issue once; re-analyse stored issues when
the analyzer changes. Both publish ``issue.analyzed`` through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.dialects.postgresql import insert

from services.need_analyzer.adapters.tables import analyses
from services.need_analyzer.domain.analyzer import Analyzer
from shared.contracts import (
    Analysis,
    CloudEvent,
    CustomerRef,
    EventData,
    IssueAnalyzed,
    IssueReceived,
)
from shared.db import UnitOfWork
from shared.messaging.consumer import Handler


def analysis_text(subject: str | None, text: str) -> str:
    return f"{subject}\n{text}" if subject else text


def _columns(analysis: Analysis, version: str, analyzed_at: datetime) -> dict[str, Any]:
    return {
        "language": analysis.language,
        "need": analysis.need,
        "intent": analysis.intent,
        "secondary": analysis.secondary,
        "sentiment_label": analysis.sentiment.label,
        "sentiment_score": analysis.sentiment.score,
        "urgency": analysis.urgency,
        "keywords": analysis.keywords,
        "explanations": {k: v.model_dump() for k, v in analysis.explanations.items()},
        "analyzer_version": version,
        "analyzed_at": analyzed_at,
    }


async def _publish(
    uow: UnitOfWork, issue: Any, analysis: Analysis, version: str, analyzed_at: datetime
) -> None:
    """``issue.analyzed`` for an issue: the received event, or a stored row when re-analysing."""
    await uow.emit(
        IssueAnalyzed(
            issue_id=issue.issue_id,
            channel=issue.channel,
            customer=CustomerRef.model_validate(issue.customer),
            subject=issue.subject,
            text=issue.text,
            analysis=analysis,
            analyzer_version=version,
            analyzed_at=analyzed_at,
        )
    )


def make_handlers(analyzer: Analyzer) -> dict[str, Handler]:
    async def on_issue_received(event: CloudEvent, data: EventData, uow: UnitOfWork) -> None:
        assert isinstance(data, IssueReceived)
        analysis = analyzer.analyze(analysis_text(data.subject, data.text))
        analyzed_at = datetime.now(UTC)
        stored = await uow.session.execute(
            insert(analyses)
            .values(
                issue_id=data.issue_id,
                channel=data.channel,
                customer=data.customer.model_dump(mode="json"),
                subject=data.subject,
                text=data.text,
                received_at=data.received_at,
                **_columns(analysis, analyzer.version, analyzed_at),
            )
            .on_conflict_do_nothing(index_elements=[analyses.c.issue_id])
            .returning(analyses.c.issue_id)
        )
        if stored.first() is None:
            return  # the same issue arrived again under another event id
        await _publish(uow, data, analysis, analyzer.version, analyzed_at)

    return {IssueReceived.TYPE: on_issue_received}


async def reanalyze_batch(
    uow: UnitOfWork,
    analyzer: Analyzer,
    *,
    since: datetime | None,
    until: datetime | None,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[uuid.UUID]:
    """Re-analyse up to ``limit`` stored issues not yet seen by this analyzer version.

    Issues already at this version are left alone, so running it twice publishes nothing twice.
    Returns the ids done, in order, for the caller to continue after the last one.
    """
    query = (
        select(analyses)
        .where(analyses.c.analyzer_version != analyzer.version)
        .order_by(analyses.c.issue_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if since is not None:
        query = query.where(analyses.c.received_at >= since)
    if until is not None:
        query = query.where(analyses.c.received_at < until)
    if after is not None:
        query = query.where(analyses.c.issue_id > after)
    rows: Sequence[Row[Any]] = (await uow.session.execute(query)).all()
    for row in rows:
        analysis = analyzer.analyze(analysis_text(row.subject, row.text))
        analyzed_at = datetime.now(UTC)
        await uow.session.execute(
            update(analyses)
            .where(analyses.c.issue_id == row.issue_id)
            .values(**_columns(analysis, analyzer.version, analyzed_at))
        )
        await _publish(uow, row, analysis, analyzer.version, analyzed_at)
    return [row.issue_id for row in rows]
