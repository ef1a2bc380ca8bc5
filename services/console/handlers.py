"""The console's use cases: what each page shows and what each button does, through the
services' APIs. No framework here: the HTTP entrypoint renders what these return."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.console.adapters.services import KefuServices
from services.console.domain.access import PAGE_SCOPES, Grants
from services.console.domain.errors import Forbidden
from services.console.domain.models import (
    Figures,
    Followup,
    Issue,
    IssueSatisfaction,
    Page,
    Proposal,
    StoredAnalysis,
    Summary,
    TopNeeds,
)
from services.console.domain.periods import Period, change
from services.console.domain.timeline import Step, timeline
from shared.contracts import FOLLOWUP_MOVES, PROPOSAL_MOVES


def _require(grants: Grants, page: str) -> None:
    if not grants.may_open(page):
        raise Forbidden(PAGE_SCOPES[page], field=page)


async def sign_in(services: KefuServices, key: str) -> Grants | None:
    """The key's grants, or None when no service knows it."""
    name, scopes = await services.scopes(key)
    if name is None:
        return None
    return Grants(name=name, scopes=scopes)


@dataclass(frozen=True)
class Overview:
    period: Period
    current: Figures
    previous: Figures
    days: list[tuple[str, float | None, int]]
    channel: str | None
    intent: str | None

    @property
    def changes(self) -> dict[str, float | None]:
        now, before = self.current, self.previous
        return {
            "csat": change(now.csat_percent, before.csat_percent),
            "nps": change(now.nps.score, before.nps.score),
            "ces": change(now.ces.average, before.ces.average),
            "rated": change(now.rated, before.rated) if before.rated else None,
        }


async def overview(
    services: KefuServices,
    key: str,
    grants: Grants,
    period: Period,
    *,
    tz: str,
    channel: str | None,
    intent: str | None,
) -> Overview:
    """The period's figures by day (their total is the period's), and the period before."""
    _require(grants, "overview")
    previous = period.previous
    daily: Summary
    before: Summary
    daily, before = await asyncio.gather(
        services.summary(
            key,
            since=period.since,
            until=period.until,
            group_by="day",
            tz=tz,
            channel=channel,
            intent=intent,
        ),
        services.summary(
            key, since=previous.since, until=previous.until, channel=channel, intent=intent
        ),
    )
    days = [(group.key.isoformat(), group.csat_percent, group.rated) for group in daily.groups]
    return Overview(period, daily.total, before.total, days, channel, intent)


async def needs(services: KefuServices, key: str, grants: Grants, period: Period) -> TopNeeds:
    _require(grants, "needs")
    return await services.top_needs(
        key, since=period.since, until=period.until, limit=10, examples=3
    )


@dataclass(frozen=True)
class FollowupFilters:
    status: str | None = "open"
    channel: str | None = None
    intent: str | None = None
    older_than_days: int | None = None


async def followups(
    services: KefuServices,
    key: str,
    grants: Grants,
    filters: FollowupFilters,
    *,
    now: datetime,
    page: str | None,
) -> Page[Followup]:
    _require(grants, "followups")
    before = now - timedelta(days=filters.older_than_days) if filters.older_than_days else None
    return await services.followups(
        key,
        status=filters.status,
        channel=filters.channel,
        intent=filters.intent,
        created_before=before,
        page=page,
    )


async def proposals(
    services: KefuServices, key: str, grants: Grants, *, status: str | None, page: str | None
) -> Page[Proposal]:
    _require(grants, "improvements")
    return await services.proposals(key, status=status, page=page)


def followup_moves(followup: Followup) -> list[str]:
    """The moves people may make from a follow-up's status, in the order of the workflow."""
    allowed = FOLLOWUP_MOVES.get(followup.status, frozenset())  # type: ignore[call-overload]
    return [
        status for status in ("contacted", "resolved", "dismissed", "open") if status in allowed
    ]


def proposal_moves(proposal: Proposal) -> list[str]:
    allowed = PROPOSAL_MOVES.get(proposal.status, frozenset())  # type: ignore[call-overload]
    return [
        status for status in ("accepted", "in_progress", "done", "rejected") if status in allowed
    ]


def _mover(grants: Grants) -> str:
    """Who the services record as having made a move; refused without the scope to move."""
    if not grants.may_move:
        raise Forbidden("improvements:write", field="status")
    return f"console:{grants.name}"


async def move_followup(
    services: KefuServices, key: str, grants: Grants, followup_id: uuid.UUID, status: str
) -> Followup:
    return await services.move_followup(key, followup_id, status=status, by=_mover(grants))


async def move_proposal(
    services: KefuServices, key: str, grants: Grants, proposal_id: uuid.UUID, status: str
) -> Proposal:
    return await services.move_proposal(key, proposal_id, status=status, by=_mover(grants))


@dataclass(frozen=True)
class IssueStory:
    issue: Issue
    analysis: StoredAnalysis | None
    satisfaction: IssueSatisfaction | None
    followups: list[Followup]
    steps: list[Step]
    hidden: list[str] = field(default_factory=list)


async def issue_story(
    services: KefuServices, key: str, grants: Grants, issue_id: uuid.UUID
) -> IssueStory:
    """The issue and what each service the key may read knows of it, fetched side by side."""
    _require(grants, "issue")
    hidden = [
        part
        for part, scope in (
            ("analysis", "analyses:read"),
            ("satisfaction", "satisfaction:read"),
            ("followups", "improvements:read"),
        )
        if not grants.may(scope)
    ]

    async def nothing() -> None:
        return None

    async def no_followups() -> Page[Followup]:
        return Page[Followup](items=[])

    issue, analysis, satisfaction, found = await asyncio.gather(
        services.issue(key, issue_id),
        services.analysis(key, issue_id) if "analysis" not in hidden else nothing(),
        services.issue_satisfaction(key, issue_id) if "satisfaction" not in hidden else nothing(),
        services.followups(key, issue_id=issue_id, status=None)
        if "followups" not in hidden
        else no_followups(),
    )
    steps = timeline(issue, analysis, satisfaction, found.items)
    return IssueStory(issue, analysis, satisfaction, found.items, steps, hidden)
