"""feedback's message handlers: keep one satisfaction verdict per issue and publish each change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.feedback.adapters.tables import feedback, issues, verdicts
from services.feedback.domain.satisfaction import (
    Assessment,
    assess_rating,
    assess_text,
    supersedes,
)
from shared.contracts import (
    CloudEvent,
    CustomerRef,
    EventData,
    FeedbackSubmitted,
    IssueAnalyzed,
    IssueReceived,
    PreviousVerdict,
    SatisfactionEvaluated,
)
from shared.db import UnitOfWork, lock_for_transaction, upsert
from shared.messaging.consumer import Handler


async def _evaluate(
    uow: UnitOfWork,
    issue_id: uuid.UUID | None,
    customer: CustomerRef | None,
    assessment: Assessment,
    stated_at: datetime,
) -> None:
    """Record the verdict if it changes the issue's current one, and publish the change."""
    current_row = None
    if issue_id is not None:
        await lock_for_transaction(uow.session, f"verdict:{issue_id}")
        current_row = (
            await uow.session.execute(select(verdicts).where(verdicts.c.issue_id == issue_id))
        ).first()
    current = (
        Assessment(current_row.verdict, current_row.score, current_row.source, current_row.basis)
        if current_row
        else None
    )
    current_at = current_row.decided_at if current_row else None
    if not supersedes(assessment, stated_at, current, current_at):
        return
    if customer is None and current_row is not None and current_row.customer:
        customer = CustomerRef.model_validate(current_row.customer)
    now = datetime.now(UTC)
    values = {
        "customer": customer.model_dump(mode="json") if customer else None,
        "verdict": assessment.verdict,
        "score": assessment.score,
        "source": assessment.source,
        "basis": assessment.basis,
        "decided_at": stated_at,
        "evaluated_at": now,
    }
    if current_row is None:
        await uow.session.execute(
            verdicts.insert().values(id=uuid.uuid4(), issue_id=issue_id, **values)
        )
    else:
        await uow.session.execute(
            verdicts.update().where(verdicts.c.id == current_row.id).values(**values)
        )
    await uow.emit(
        SatisfactionEvaluated(
            issue_id=issue_id,
            customer=customer,
            score=assessment.score,
            verdict=assessment.verdict,
            source=assessment.source,
            basis=assessment.basis,
            replaces=PreviousVerdict(**current.__dict__) if current else None,
            evaluated_at=now,
        )
    )


async def on_issue_received(event: CloudEvent, data: EventData, uow: UnitOfWork) -> None:
    assert isinstance(data, IssueReceived)
    await upsert(
        uow.session,
        issues,
        {"issue_id": data.issue_id},
        channel=data.channel,
        customer=data.customer.model_dump(mode="json"),
        received_at=data.received_at,
    )
    assessment = assess_text(f"{data.subject or ''}\n{data.text}")
    if assessment is not None:
        await _evaluate(uow, data.issue_id, data.customer, assessment, data.received_at)


async def on_feedback_submitted(event: CloudEvent, data: EventData, uow: UnitOfWork) -> None:
    assert isinstance(data, FeedbackSubmitted)
    await uow.session.execute(
        insert(feedback)
        .values(
            feedback_id=data.feedback_id,
            issue_id=data.issue_id,
            customer=data.customer.model_dump(mode="json") if data.customer else None,
            rating=data.rating.model_dump(mode="json") if data.rating else None,
            comment=data.comment,
            submitted_at=data.submitted_at,
        )
        .on_conflict_do_nothing(index_elements=[feedback.c.feedback_id])
    )
    assessment = assess_rating(data.rating) if data.rating else None
    if assessment is None and data.comment:
        assessment = assess_text(data.comment)
    if assessment is not None:
        await _evaluate(uow, data.issue_id, data.customer, assessment, data.submitted_at)


async def on_issue_analyzed(event: CloudEvent, data: EventData, uow: UnitOfWork) -> None:
    assert isinstance(data, IssueAnalyzed)
    await upsert(
        uow.session,
        issues,
        {"issue_id": data.issue_id},
        intent=data.analysis.intent,
        channel=data.channel,
    )


handlers: dict[str, Handler] = {
    IssueReceived.TYPE: on_issue_received,
    FeedbackSubmitted.TYPE: on_feedback_submitted,
    IssueAnalyzed.TYPE: on_issue_analyzed,
}
