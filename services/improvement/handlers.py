"""improvement's use cases: a follow-up for every customer who is not satisfied, and improvement
proposals for themes that go bad. Every change is an event, written in the same transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from services.improvement.adapters import repository as repo
from services.improvement.adapters.tables import followups, issues, proposals
from services.improvement.domain.followups import (
    FOLLOWUP_MOVES,
    PROPOSAL_MOVES,
    needs_followup,
    summary,
)
from services.improvement.domain.themes import (
    ThemeKind,
    Thresholds,
    decide,
    need_key,
    recommendation,
    theme_name,
)
from shared.contracts import (
    CustomerRef,
    Evidence,
    FollowupRequired,
    FollowupStatus,
    FollowupUpdated,
    ImprovementProposed,
    ImprovementUpdated,
    IssueAnalyzed,
    IssueReceived,
    ProposalStatus,
    SatisfactionEvaluated,
)
from shared.db import UnitOfWork, lock_for_transaction, upsert
from shared.messaging.consumer import Subscription, subscribe


class NotFound(Exception):
    pass


class InvalidMove(Exception):
    pass


# ------------------------------------------------------------------ follow-ups


def _followup_event(row: Row[Any], **change: Any) -> FollowupUpdated:
    return FollowupUpdated(
        followup_id=row.id,
        issue_id=row.issue_id,
        customer=CustomerRef.model_validate(row.customer) if row.customer else None,
        channel=row.channel,
        need=row.need,
        intent=row.intent,
        verdict=row.verdict,
        reason=row.reason,
        summary=row.summary,
        status=row.status,
        updated_at=row.updated_at,
        **change,
    )


async def _update_followup(
    uow: UnitOfWork,
    row: Row[Any],
    change: str,
    *,
    by: str | None = None,
    note: str | None = None,
    **values: Any,
) -> None:
    if note is not None:
        values["note"] = note
    updated = (
        await uow.session.execute(
            followups.update()
            .where(followups.c.id == row.id)
            .values(**values, updated_at=datetime.now(UTC))
            .returning(followups)
        )
    ).one()
    await uow.emit(
        _followup_event(updated, previous_status=row.status, change=change, by=by, note=note)
    )


async def _open_followup(
    uow: UnitOfWork, data: SatisfactionEvaluated, context: Row[Any] | None
) -> None:
    now = datetime.now(UTC)
    name = data.customer.name if data.customer else None
    values = {
        "id": uuid.uuid4(),
        "issue_id": data.issue_id,
        "customer": data.customer.model_dump(mode="json") if data.customer else None,
        "channel": context.channel if context else None,
        "need": context.need if context else None,
        "intent": context.intent if context else None,
        "verdict": data.verdict,
        "reason": f"customer is {data.verdict} ({data.basis})",
        "summary": summary(name, context.language if context else None),
        "status": "open",
        "created_at": now,
        "updated_at": now,
    }
    await uow.session.execute(followups.insert().values(**values))
    await uow.emit(
        FollowupRequired(
            followup_id=values["id"],
            issue_id=data.issue_id,
            customer=data.customer,
            channel=values["channel"],
            need=values["need"],
            intent=values["intent"],
            verdict=data.verdict,
            reason=values["reason"],
            summary=values["summary"],
            created_at=now,
        )
    )


async def _follow_up(
    uow: UnitOfWork, data: SatisfactionEvaluated, context: Row[Any] | None
) -> None:
    """Never two follow-ups for one issue: a new verdict updates, reopens or closes the one."""
    existing = await repo.followup_for_issue(uow.session, data.issue_id) if data.issue_id else None
    if not needs_followup(data.verdict):
        if existing is not None and existing.status in ("open", "contacted"):
            await _update_followup(
                uow,
                existing,
                "satisfied",
                by="kefu",
                status="resolved",
                verdict=data.verdict,
                reason=f"customer is satisfied ({data.basis})",
            )
        return
    if existing is None:
        await _open_followup(uow, data, context)
        return
    reason = f"customer is {data.verdict} ({data.basis})"
    if existing.status in ("resolved", "dismissed"):
        await _update_followup(
            uow, existing, "reopened", by="kefu", status="open", verdict=data.verdict, reason=reason
        )
    elif (existing.verdict, existing.reason) != (data.verdict, reason):
        await _update_followup(uow, existing, "verdict", verdict=data.verdict, reason=reason)


async def move_followup(
    uow: UnitOfWork, followup_id: uuid.UUID, status: FollowupStatus, *, by: str, note: str | None
) -> Row[Any]:
    row = (
        await uow.session.execute(
            followups.select().where(followups.c.id == followup_id).with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound(f"no follow-up {followup_id}")
    if status == row.status:
        if note is not None:  # same status, a new note: recorded, and an event like any change
            await _update_followup(uow, row, "note", by=by, note=note)
        return (
            await uow.session.execute(followups.select().where(followups.c.id == followup_id))
        ).one()
    if status not in FOLLOWUP_MOVES[row.status]:
        raise InvalidMove(f"a follow-up cannot go from {row.status} to {status}")
    await _update_followup(uow, row, "status", by=by, note=note, status=status)
    return (
        await uow.session.execute(followups.select().where(followups.c.id == followup_id))
    ).one()


# ------------------------------------------------------------------ themes and proposals


def _proposal_values(evidence: Evidence, priority: float) -> dict[str, Any]:
    return {"evidence": evidence.model_dump(mode="json"), "priority": priority}


def _updated_event(row: Row[Any], **change: Any) -> ImprovementUpdated:
    return ImprovementUpdated(
        proposal_id=row.id,
        theme=theme_name(row.theme_kind, row.theme_key),
        theme_kind=row.theme_kind,
        theme_key=row.theme_key,
        evidence=Evidence.model_validate(row.evidence),
        recommendation=row.recommendation,
        priority=row.priority,
        status=row.status,
        updated_at=row.updated_at,
        **change,
    )


async def refresh_theme(
    uow: UnitOfWork, kind: ThemeKind, key: str | None, thresholds: Thresholds
) -> None:
    """Recompute a theme's evidence; open a proposal when it crosses the thresholds, or bring
    its open proposal up to date."""
    if not key:
        return
    await lock_for_transaction(uow.session, f"theme:{kind}:{key}")
    stats = await repo.theme_stats(uow.session, kind, key, thresholds)
    if stats is None:
        return
    decision = decide(stats, thresholds)
    active = await repo.active_proposal(uow.session, kind, key)
    now = datetime.now(UTC)
    if active is not None:
        if Evidence.model_validate(active.evidence) == decision.evidence:
            return
        updated = (
            await uow.session.execute(
                proposals.update()
                .where(proposals.c.id == active.id)
                .values(**_proposal_values(decision.evidence, decision.priority), updated_at=now)
                .returning(proposals)
            )
        ).one()
        await uow.emit(_updated_event(updated, previous_status=active.status, change="evidence"))
        return
    if not decision.propose or await repo.closed_since(uow.session, kind, key, stats.period_start):
        return
    proposal_id = uuid.uuid4()
    advice = recommendation(kind, key)
    await uow.session.execute(
        proposals.insert().values(
            id=proposal_id,
            theme_kind=kind,
            theme_key=key,
            status="open",
            recommendation=advice,
            opened_at=now,
            updated_at=now,
            **_proposal_values(decision.evidence, decision.priority),
        )
    )
    await uow.emit(
        ImprovementProposed(
            proposal_id=proposal_id,
            theme=theme_name(kind, key),
            theme_kind=kind,
            theme_key=key,
            evidence=decision.evidence,
            recommendation=advice,
            priority=decision.priority,
            opened_at=now,
        )
    )


async def move_proposal(
    uow: UnitOfWork, proposal_id: uuid.UUID, status: ProposalStatus, *, by: str, note: str | None
) -> Row[Any]:
    row = (
        await uow.session.execute(
            proposals.select().where(proposals.c.id == proposal_id).with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound(f"no proposal {proposal_id}")
    if status == row.status and note is None:
        return row
    if status != row.status and status not in PROPOSAL_MOVES[row.status]:
        raise InvalidMove(f"a proposal cannot go from {row.status} to {status}")
    now = datetime.now(UTC)
    closed = {"closed_at": now} if status != row.status and status in ("done", "rejected") else {}
    updated = (
        await uow.session.execute(
            proposals.update()
            .where(proposals.c.id == proposal_id)
            .values(status=status, note=note, updated_at=now, **closed)
            .returning(proposals)
        )
    ).one()
    change = "status" if status != row.status else "note"
    await uow.emit(
        _updated_event(updated, previous_status=row.status, change=change, by=by, note=note)
    )
    return updated


# ------------------------------------------------------------------ message handlers


async def _themes_of(uow: UnitOfWork, rows: list[Row[Any] | None], thresholds: Thresholds) -> None:
    keys = {
        (kind, row.intent if kind == "intent" else row.need_key)
        for row in rows
        if row is not None
        for kind in ("intent", "need")
    }
    for kind, key in sorted(keys, key=str):
        await refresh_theme(uow, kind, key, thresholds)  # type: ignore[arg-type]


def make_subscriptions(thresholds: Thresholds) -> list[Subscription[Any]]:
    # Each handler holds the issue's lock: its context, verdict and follow-up change together.
    async def on_issue_received(items: Sequence[IssueReceived], uow: UnitOfWork) -> None:
        await lock_for_transaction(uow.session, *(f"issue:{data.issue_id}" for data in items))
        for data in items:
            issue = await upsert(
                uow.session,
                issues,
                {"issue_id": data.issue_id},
                channel=data.channel,
                customer=data.customer.model_dump(mode="json"),
                received_at=data.received_at,
            )
            existing = await repo.followup_for_issue(uow.session, data.issue_id)
            if existing is not None and existing.channel is None:
                await _update_followup(uow, existing, "context", channel=data.channel)
            await _themes_of(uow, [issue], thresholds)

    async def on_issue_analyzed(items: Sequence[IssueAnalyzed], uow: UnitOfWork) -> None:
        await lock_for_transaction(uow.session, *(f"issue:{data.issue_id}" for data in items))
        for data in items:
            analysis = data.analysis
            before = await repo.get_issue(uow.session, data.issue_id)
            issue = await upsert(
                uow.session,
                issues,
                {"issue_id": data.issue_id},
                unless_newer="analyzed_at",
                language=analysis.language,
                need=analysis.need,
                need_key=need_key(analysis.need),
                intent=analysis.intent,
                analyzed_at=data.analyzed_at,
            )
            if issue is None:
                continue  # an older analysis (a redelivery after a re-analysis) changes nothing
            existing = await repo.followup_for_issue(uow.session, data.issue_id)
            if existing is not None and (existing.need, existing.intent) != (
                analysis.need,
                analysis.intent,
            ):
                await _update_followup(
                    uow, existing, "analysis", need=analysis.need, intent=analysis.intent
                )
            # A re-analysis can move the issue out of its old themes: refresh those too.
            await _themes_of(uow, [before, issue], thresholds)

    async def on_satisfaction_evaluated(
        items: Sequence[SatisfactionEvaluated], uow: UnitOfWork
    ) -> None:
        await lock_for_transaction(
            uow.session, *(f"issue:{data.issue_id}" for data in items if data.issue_id)
        )
        for data in items:
            issue = None
            if data.issue_id is not None:
                issue = await upsert(
                    uow.session,
                    issues,
                    {"issue_id": data.issue_id},
                    unless_newer="verdict_at",
                    verdict=data.verdict,
                    verdict_at=data.evaluated_at,
                )
                if issue is None:
                    continue  # an older verdict arriving late changes nothing
            await _follow_up(uow, data, issue)
            await _themes_of(uow, [issue], thresholds)

    return [
        subscribe(IssueReceived, on_issue_received),
        subscribe(IssueAnalyzed, on_issue_analyzed),
        subscribe(SatisfactionEvaluated, on_satisfaction_evaluated),
    ]
