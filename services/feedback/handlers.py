"""feedback's message handlers: one satisfaction verdict per issue, published at each change.

An explicit rating beats satisfaction stated in text; between two of a kind the later one
wins. The verdict row also keeps the issue's latest NPS and CES answers, channel and intent,
which the satisfaction report reads; events may arrive in any order and fill them in.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert

from services.feedback.adapters.tables import feedback, issues, verdicts
from services.feedback.domain.satisfaction import (
    Assessment,
    assess_rating,
    assess_text,
    supersedes,
)
from shared.contracts import (
    Ces7,
    CustomerRef,
    FeedbackSubmitted,
    IssueAnalyzed,
    IssueReceived,
    Nps10,
    PreviousVerdict,
    Rating,
    SatisfactionEvaluated,
)
from shared.db import UnitOfWork, lock_for_transaction, upsert
from shared.messaging.consumer import subscribe


def _answers(rating: Rating | None, at: datetime, row: Row[Any] | None) -> dict[str, Any]:
    """The NPS or CES answer a rating gives, if it is newer than the one kept."""
    if isinstance(rating, Nps10) and (row is None or row.nps_at is None or at >= row.nps_at):
        return {"nps": rating.value, "nps_at": at}
    if isinstance(rating, Ces7) and (row is None or row.ces_at is None or at >= row.ces_at):
        return {"ces": rating.value, "ces_at": at}
    return {}


async def _evaluate(
    uow: UnitOfWork,
    issue_id: uuid.UUID | None,
    customer: CustomerRef | None,
    assessment: Assessment,
    stated_at: datetime,
    rating: Rating | None = None,
) -> None:
    """Record the verdict if it changes the issue's current one, and publish the change.

    The caller holds the issue's lock (``_lock``)."""
    current_row = context = None
    if issue_id is not None:
        current_row = (
            await uow.session.execute(select(verdicts).where(verdicts.c.issue_id == issue_id))
        ).first()
        context = (
            await uow.session.execute(select(issues).where(issues.c.issue_id == issue_id))
        ).first()
    current = (
        Assessment(current_row.verdict, current_row.score, current_row.source, current_row.basis)
        if current_row
        else None
    )
    answers = _answers(rating, stated_at, current_row)
    changed = supersedes(
        assessment, stated_at, current, current_row.decided_at if current_row else None
    )
    if not changed:
        if answers and current_row is not None:
            await uow.session.execute(
                verdicts.update().where(verdicts.c.id == current_row.id).values(**answers)
            )
        return
    if customer is None and current_row is not None and current_row.customer:
        customer = CustomerRef.model_validate(current_row.customer)
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "customer": customer.model_dump(mode="json") if customer else None,
        "verdict": assessment.verdict,
        "score": assessment.score,
        "source": assessment.source,
        "basis": assessment.basis,
        "decided_at": stated_at,
        "evaluated_at": now,
        **answers,
    }
    if context is not None:
        values.update(channel=context.channel, intent=context.intent)
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
            score=round(assessment.score, 4),
            verdict=assessment.verdict,
            source=assessment.source,
            basis=assessment.basis,
            replaces=PreviousVerdict(**current.__dict__) if current else None,
            evaluated_at=now,
        )
    )


async def _lock(uow: UnitOfWork, issue_ids: Sequence[uuid.UUID | None]) -> None:
    """One transaction at a time per issue, across replicas: its context and its verdict are
    read and written together, so neither misses the other."""
    await lock_for_transaction(uow.session, *(f"verdict:{i}" for i in issue_ids if i is not None))


async def _remember(
    uow: UnitOfWork, issue_id: uuid.UUID, *, unless_newer: str | None = None, **context: Any
) -> bool:
    """Keep what is known of the issue and give it to its verdict (which may exist already);
    False when ``unless_newer`` shows the facts are older than those kept."""
    kept = await upsert(
        uow.session, issues, {"issue_id": issue_id}, unless_newer=unless_newer, **context
    )
    if kept is None:
        return False
    shown = {k: v for k, v in context.items() if k in ("channel", "intent")}
    await uow.session.execute(
        verdicts.update().where(verdicts.c.issue_id == issue_id).values(**shown)
    )
    return True


async def on_issue_received(items: Sequence[IssueReceived], uow: UnitOfWork) -> None:
    await _lock(uow, [data.issue_id for data in items])
    for data in items:
        await _remember(
            uow,
            data.issue_id,
            channel=data.channel,
            customer=data.customer.model_dump(mode="json"),
            received_at=data.received_at,
        )
        assessment = assess_text(f"{data.subject or ''}\n{data.text}")
        if assessment is not None:
            await _evaluate(uow, data.issue_id, data.customer, assessment, data.received_at)


async def on_feedback_submitted(items: Sequence[FeedbackSubmitted], uow: UnitOfWork) -> None:
    await _lock(uow, [data.issue_id for data in items])
    for data in items:
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
            await _evaluate(
                uow, data.issue_id, data.customer, assessment, data.submitted_at, data.rating
            )


async def on_issue_analyzed(items: Sequence[IssueAnalyzed], uow: UnitOfWork) -> None:
    await _lock(uow, [data.issue_id for data in items])
    for data in items:
        # An older analysis (a redelivery after a re-analysis) changes nothing.
        await _remember(
            uow,
            data.issue_id,
            unless_newer="analyzed_at",
            intent=data.analysis.intent,
            channel=data.channel,
            analyzed_at=data.analyzed_at,
        )


subscriptions = [
    subscribe(IssueReceived, on_issue_received),
    subscribe(FeedbackSubmitted, on_feedback_submitted),
    subscribe(IssueAnalyzed, on_issue_analyzed),
]
