"""Follow-ups: what each batch of events does to its issues, their follow-ups and the themes.

A batch locks its issues once, reads them and their follow-ups in one statement each, folds the
events in order in ``domain.followups.Batch`` (several may concern one issue), and writes set-wise.
The themes it touched are only marked: their statistics are the theme worker's (``themes``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from services.improvement.adapters import repository as repo
from services.improvement.adapters import tables
from services.improvement.adapters.erasure import erase_customers
from services.improvement.domain.followups import Batch, Followup, move, summary
from shared.contracts import (
    EventData,
    FollowupStatus,
    IssueAnalyzed,
    IssueReceived,
    SatisfactionEvaluated,
)
from shared.db import UnitOfWork
from shared.erasure import erasure_subscription
from shared.errors import NotFound
from shared.messaging.consumer import Subscription, subscribe

E = TypeVar("E", bound=EventData)


async def fold(
    uow: UnitOfWork,
    items: Sequence[E],
    issue_id: Callable[[E], uuid.UUID | None],
    apply: Callable[[Batch, E], None],
) -> None:
    """Lock, read, decide in memory, write: three statements per batch, whatever its size."""
    ids = sorted({i for i in map(issue_id, items) if i is not None})
    await repo.lock_issues(uow.session, ids)
    issues, followups = await repo.issues_and_followups(uow.session, ids)
    batch = Batch(issues=issues, followups=followups, now=datetime.now(UTC))
    for item in items:
        apply(batch, item)
    await repo.save(
        uow.session,
        changed_issues=batch.issues_changed.values(),
        opened=batch.opened,
        changed_followups=batch.followups_changed.values(),
        themes=batch.themes,
    )
    for event in batch.events:
        uow.emit(event)


async def on_issue_received(items: Sequence[IssueReceived], uow: UnitOfWork) -> None:
    await fold(uow, items, lambda e: e.issue_id, Batch.received)


async def on_issue_analyzed(items: Sequence[IssueAnalyzed], uow: UnitOfWork) -> None:
    await fold(uow, items, lambda e: e.issue_id, Batch.analyzed)


async def on_satisfaction_evaluated(
    items: Sequence[SatisfactionEvaluated], uow: UnitOfWork
) -> None:
    await fold(uow, items, lambda e: e.issue_id, Batch.evaluated)


def make_subscriptions() -> list[Subscription[Any]]:
    return [
        subscribe(IssueReceived, on_issue_received),
        subscribe(IssueAnalyzed, on_issue_analyzed),
        subscribe(SatisfactionEvaluated, on_satisfaction_evaluated),
        erasure_subscription(tables.erasures, on_customers_erased),
    ]


async def on_customers_erased(session: AsyncSession, customers: list[uuid.UUID]) -> None:
    await erase_customers(
        session, customers, summary_zh=summary(None, "zh"), summary_en=summary(None, "en")
    )


async def move_followup(
    uow: UnitOfWork, followup_id: uuid.UUID, status: FollowupStatus, *, by: str, note: str | None
) -> Followup:
    """A person moves a follow-up along, or notes something on it."""
    followup = await repo.followup_for_update(uow.session, followup_id)
    if followup is None:
        raise NotFound(f"no follow-up {followup_id}")
    event = move(followup, status, by=by, note=note, now=datetime.now(UTC))
    if event is not None:
        await repo.save(
            uow.session, changed_issues=(), opened=(), changed_followups=[followup], themes=()
        )
        uow.emit(event)
    return followup
