"""need_analyzer's message handlers: analyse every received issue once and publish the result."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert

from services.need_analyzer.adapters.tables import analyses
from services.need_analyzer.domain.analyzer import Analyzer, SeedRulesAnalyzer
from shared.contracts import CloudEvent, EventData, IssueAnalyzed, IssueReceived
from shared.db import UnitOfWork
from shared.messaging.consumer import Handler


def make_handlers(analyzer: Analyzer) -> dict[str, Handler]:
    async def on_issue_received(event: CloudEvent, data: EventData, uow: UnitOfWork) -> None:
        assert isinstance(data, IssueReceived)
        text = f"{data.subject}\n{data.text}" if data.subject else data.text
        analysis = analyzer.analyze(text)
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
                language=analysis.language,
                need=analysis.need,
                intent=analysis.intent,
                sentiment_label=analysis.sentiment.label,
                sentiment_score=analysis.sentiment.score,
                urgency=analysis.urgency,
                keywords=analysis.keywords,
                analyzer_version=analyzer.version,
                analyzed_at=analyzed_at,
            )
            .on_conflict_do_nothing(index_elements=[analyses.c.issue_id])
            .returning(analyses.c.issue_id)
        )
        if stored.first() is None:
            return  # the same issue arrived again under another event id
        await uow.emit(
            IssueAnalyzed(
                issue_id=data.issue_id,
                channel=data.channel,
                customer=data.customer,
                subject=data.subject,
                text=data.text,
                analysis=analysis,
                analyzer_version=analyzer.version,
                analyzed_at=analyzed_at,
            )
        )

    return {IssueReceived.TYPE: on_issue_received}


handlers = make_handlers(SeedRulesAnalyzer())
