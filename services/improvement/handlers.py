"""improvement's message handlers: one follow-up per issue whose customer is not satisfied."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.improvement.adapters.tables import followups, issues
from services.improvement.domain.followups import needs_followup, summary
from shared.contracts import (
    CloudEvent,
    EventData,
    FollowupRequired,
    IssueAnalyzed,
    IssueReceived,
    SatisfactionEvaluated,
)
from shared.db import UnitOfWork, lock_for_transaction, upsert
from shared.messaging.consumer import Handler


async def on_issue_received(event: CloudEvent, data: EventData, uow: UnitOfWork) -> None:
    assert isinstance(data, IssueReceived)
    await upsert(
        uow.session,
        issues,
        {"issue_id": data.issue_id},
        channel=data.channel,
        customer=data.customer.model_dump(mode="json"),
    )


async def on_issue_analyzed(event: CloudEvent, data: EventData, uow: UnitOfWork) -> None:
    assert isinstance(data, IssueAnalyzed)
    analysis = data.analysis
    # Serialised with on_satisfaction_evaluated, so a follow-up never misses its need.
    await lock_for_transaction(uow.session, f"issue:{data.issue_id}")
    await upsert(
        uow.session,
        issues,
        {"issue_id": data.issue_id},
        language=analysis.language,
        need=analysis.need,
        intent=analysis.intent,
    )
    # A verdict may have arrived before its analysis: complete the follow-up it raised.
    await uow.session.execute(
        followups.update()
        .where(followups.c.issue_id == data.issue_id, followups.c.need.is_(None))
        .values(need=analysis.need, intent=analysis.intent, updated_at=datetime.now(UTC))
    )


async def on_satisfaction_evaluated(event: CloudEvent, data: EventData, uow: UnitOfWork) -> None:
    assert isinstance(data, SatisfactionEvaluated)
    if not needs_followup(data.verdict):
        return
    context = None
    if data.issue_id is not None:
        await lock_for_transaction(uow.session, f"issue:{data.issue_id}")
        context = (
            await uow.session.execute(select(issues).where(issues.c.issue_id == data.issue_id))
        ).first()
    name = data.customer.name if data.customer else None
    followup_id = uuid.uuid4()
    now = datetime.now(UTC)
    reason = f"customer is {data.verdict} ({data.basis})"
    text = summary(name, context.language if context else None)
    created = await uow.session.execute(
        insert(followups)
        .values(
            id=followup_id,
            issue_id=data.issue_id,
            customer=data.customer.model_dump(mode="json") if data.customer else None,
            need=context.need if context else None,
            intent=context.intent if context else None,
            verdict=data.verdict,
            reason=reason,
            summary=text,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[followups.c.issue_id])
        .returning(followups.c.id)
    )
    if created.first() is None:
        return  # never two follow-ups for one issue
    await uow.emit(
        FollowupRequired(
            followup_id=followup_id,
            issue_id=data.issue_id,
            customer=data.customer,
            need=context.need if context else None,
            intent=context.intent if context else None,
            verdict=data.verdict,
            reason=reason,
            summary=text,
            created_at=now,
        )
    )


handlers: dict[str, Handler] = {
    IssueReceived.TYPE: on_issue_received,
    IssueAnalyzed.TYPE: on_issue_analyzed,
    SatisfactionEvaluated.TYPE: on_satisfaction_evaluated,
}
