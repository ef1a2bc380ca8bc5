"""need_analyzer's use cases: analyse each received issue once; re-analyse stored issues when
the analyzer changes. Both publish ``issue.analyzed`` through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.need_analyzer.adapters import repository as repo
from services.need_analyzer.adapters import tables
from services.need_analyzer.adapters.erasure import erase_customers
from services.need_analyzer.domain.analyzer import Analyzer
from shared.contracts import Analysis, CustomerRef, IssueAnalyzed, IssueReceived
from shared.db import UnitOfWork
from shared.erasure import erasure_subscription
from shared.messaging.consumer import Subscription, subscribe


def analysis_text(subject: str | None, text: str) -> str:
    return f"{subject}\n{text}" if subject else text


def _columns(analysis: Analysis, version: str, analyzed_at: datetime) -> dict[str, Any]:
    return {
        "language": analysis.language,
        "need": analysis.need,
        "need_source": analysis.need_source,
        "need_key": analysis.need_key,
        "intent": analysis.intent,
        "secondary": analysis.secondary,
        "sentiment_label": analysis.sentiment.label,
        "sentiment_score": analysis.sentiment.score,
        "urgency": analysis.urgency,
        "keywords": analysis.keywords,
        "explanations": {k: v.model_dump() for k, v in analysis.explanations.items()},
        "analyzer_version": version,
        "analyzed_at": analyzed_at,
        "partial_reason": analysis.partial_reason,
    }


def _publish(
    uow: UnitOfWork, issue: Any, analysis: Analysis, version: str, analyzed_at: datetime
) -> None:
    """``issue.analyzed`` for an issue: the received event, or a stored row when re-analysing."""
    uow.emit(
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


def make_subscriptions(analyzer: Analyzer) -> list[Subscription[Any]]:
    async def on_issues_received(items: Sequence[IssueReceived], uow: UnitOfWork) -> None:
        analyzed_at = datetime.now(UTC)
        analysed = {
            issue.issue_id: (issue, analyzer.analyze(analysis_text(issue.subject, issue.text)))
            for issue in items
        }
        stored = await repo.insert_new(
            uow.session,
            [
                {
                    "issue_id": issue.issue_id,
                    "channel": issue.channel,
                    "customer": issue.customer.model_dump(mode="json"),
                    "subject": issue.subject,
                    "text": issue.text,
                    "received_at": issue.received_at,
                    **_columns(analysis, analyzer.version, analyzed_at),
                }
                for issue, analysis in analysed.values()
            ],
        )
        # An issue that arrived again under another event id was analysed already.
        for issue_id in stored:
            issue, analysis = analysed[issue_id]
            _publish(uow, issue, analysis, analyzer.version, analyzed_at)

    return [
        subscribe(IssueReceived, on_issues_received),
        erasure_subscription(tables.erasures, erase_customers),
    ]


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
    rows = await repo.claim_stale(
        uow.session, analyzer.version, since=since, until=until, after=after, limit=limit
    )
    for row in rows:
        analysis = analyzer.analyze(analysis_text(row.subject, row.text))
        analyzed_at = datetime.now(UTC)
        await repo.replace(
            uow.session, row.issue_id, _columns(analysis, analyzer.version, analyzed_at)
        )
        _publish(uow, row, analysis, analyzer.version, analyzed_at)
    return [row.issue_id for row in rows]
