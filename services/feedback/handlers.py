"""feedback's message handlers: one satisfaction verdict per issue, published at each change.

Each handler takes a batch of one event type under the locks of its issues, and reads and
writes set-wise (``adapters.repository``); what the statements do to the verdicts is decided
by ``domain.verdicts.decide``. The verdict row also keeps the issue's latest NPS and CES
answers, channel and intent, which the satisfaction report reads; events may arrive in any
order and fill them in.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from services.feedback.adapters import repository as repo
from services.feedback.adapters import tables
from services.feedback.adapters.erasure import erase_customers
from services.feedback.domain.verdicts import Statement, decide
from shared.contracts import (
    FeedbackSubmitted,
    IssueAnalyzed,
    IssueReceived,
    PreviousVerdict,
    SatisfactionEvaluated,
)
from shared.db import UnitOfWork, lock_for_transaction
from shared.erasure import erasure_subscription
from shared.messaging.consumer import Subscription, subscribe
from shared.satisfaction import assess_rating, assess_text


async def _lock(uow: UnitOfWork, issue_ids: Sequence[uuid.UUID | None]) -> None:
    """One transaction at a time per issue, across replicas: its context and its verdict are
    read and written together, so neither misses the other."""
    await lock_for_transaction(uow.session, *(f"verdict:{i}" for i in issue_ids if i is not None))


async def _evaluate(uow: UnitOfWork, statements: Sequence[Statement]) -> None:
    """Record the verdicts the statements change, and publish each change."""
    if not statements:
        return
    issue_ids = [s.issue_id for s in statements if s.issue_id is not None]
    current = await repo.current_verdicts(uow.session, issue_ids)
    now = datetime.now(UTC)
    outcome = decide(statements, current, now=now)
    if not outcome.written:
        return
    known = await repo.contexts(
        uow.session, [w.verdict.issue_id for w in outcome.written if w.verdict.issue_id]
    )
    await repo.store_verdicts(uow.session, outcome.written, known)
    for order, change in enumerate(outcome.changes):
        verdict = change.verdict
        uow.emit(
            SatisfactionEvaluated(
                issue_id=verdict.issue_id,
                customer=verdict.customer,
                score=round(verdict.assessment.score, 4),
                verdict=verdict.assessment.verdict,
                source=verdict.assessment.source,
                basis=verdict.assessment.basis,
                replaces=PreviousVerdict(**change.replaces.__dict__) if change.replaces else None,
                # Distinct and in order: consumers keep the latest verdict of an issue by this
                # time, and two changes of one batch may reach them in any order.
                evaluated_at=now + timedelta(microseconds=order),
            )
        )


def _latest(facts: Sequence[dict[str, Any]], at: str | None = None) -> list[dict[str, Any]]:
    """One fact per issue, as the facts applied in order would leave it: the last one, or with
    ``at`` the latest by that time (the last of equals)."""
    kept: dict[Any, dict[str, Any]] = {}
    for fact in facts:
        before = kept.get(fact["issue_id"])
        if before is None or at is None or fact[at] >= before[at]:
            kept[fact["issue_id"]] = fact
    return list(kept.values())


async def on_issue_received(items: Sequence[IssueReceived], uow: UnitOfWork) -> None:
    await _lock(uow, [data.issue_id for data in items])
    facts = [
        {
            "issue_id": data.issue_id,
            "channel": data.channel,
            "customer": data.customer.model_dump(mode="json"),
            "received_at": data.received_at,
        }
        for data in items
    ]
    await repo.remember(uow.session, _latest(facts), shown=["channel"])
    statements = []
    for data in items:
        assessment = assess_text(f"{data.subject or ''}\n{data.text}")
        if assessment is not None:
            statements.append(Statement(data.issue_id, assessment, data.received_at, data.customer))
    await _evaluate(uow, statements)


async def on_feedback_submitted(items: Sequence[FeedbackSubmitted], uow: UnitOfWork) -> None:
    await _lock(uow, [data.issue_id for data in items])
    rows = {
        data.feedback_id: {
            "feedback_id": data.feedback_id,
            "issue_id": data.issue_id,
            "customer": data.customer.model_dump(mode="json") if data.customer else None,
            "rating": data.rating.model_dump(mode="json") if data.rating else None,
            "comment": data.comment,
            "submitted_at": data.submitted_at,
        }
        for data in reversed(items)  # the first of one feedback_id is the one kept
    }
    await repo.insert_feedback(uow.session, list(rows.values()))
    statements = []
    for data in items:
        assessment = assess_rating(data.rating) if data.rating else None
        if assessment is None and data.comment:
            assessment = assess_text(data.comment)
        if assessment is not None:
            statements.append(
                Statement(data.issue_id, assessment, data.submitted_at, data.customer, data.rating)
            )
    await _evaluate(uow, statements)


async def on_issue_analyzed(items: Sequence[IssueAnalyzed], uow: UnitOfWork) -> None:
    await _lock(uow, [data.issue_id for data in items])
    facts = [
        {
            "issue_id": data.issue_id,
            "intent": data.analysis.intent,
            "channel": data.channel,
            "analyzed_at": data.analyzed_at,
        }
        for data in items
    ]
    # An older analysis (a redelivery after a re-analysis) changes nothing.
    await repo.remember(
        uow.session,
        _latest(facts, "analyzed_at"),
        shown=["intent", "channel"],
        unless_newer="analyzed_at",
    )


subscriptions: list[Subscription[Any]] = [
    subscribe(IssueReceived, on_issue_received),
    subscribe(FeedbackSubmitted, on_feedback_submitted),
    subscribe(IssueAnalyzed, on_issue_analyzed),
    erasure_subscription(tables.erasures, erase_customers),
]
