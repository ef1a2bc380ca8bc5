"""feedback's read API: the satisfaction summary managers ask for, and one issue's verdict."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from services.feedback.adapters import reports
from services.feedback.adapters.reports import GroupBy, counts_by_group
from services.feedback.domain.reports import Counts, summarise
from shared.auth import Principal, require
from shared.contracts import Channel, Intent, Verdict
from shared.errors import InvalidInput
from shared.http import DatabaseDep
from shared.validation import Timestamp

router = APIRouter(prefix="/v1")
CanReadSatisfaction = Annotated[Principal, Depends(require("satisfaction:read"))]


class VerdictCounts(BaseModel):
    satisfied: int
    neutral: int
    dissatisfied: int


class NpsFigures(BaseModel):
    score: float | None
    answers: int
    promoters: int
    passives: int
    detractors: int


class CesFigures(BaseModel):
    average: float | None
    answers: int


class Figures(BaseModel):
    rated: int
    verdicts: VerdictCounts
    csat_percent: float | None
    nps: NpsFigures
    ces: CesFigures


class GroupFigures(Figures):
    key: str


class VerdictRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    verdict: Verdict
    score: float
    source: Literal["explicit", "implicit"]
    basis: str
    decided_at: datetime
    evaluated_at: datetime
    nps: int | None
    ces: int | None


class FeedbackRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    feedback_id: uuid.UUID
    rating: dict[str, Any] | None
    comment: str | None
    submitted_at: datetime


class IssueSatisfaction(BaseModel):
    issue_id: uuid.UUID
    verdict: VerdictRead | None
    feedback: list[FeedbackRead]


class Summary(BaseModel):
    since: datetime
    until: datetime
    group_by: GroupBy
    tz: str
    total: Figures
    groups: list[GroupFigures]


@router.get("/satisfaction/summary", response_model=Summary)
async def satisfaction_summary(
    db: DatabaseDep,
    _: CanReadSatisfaction,
    since: Annotated[Timestamp | None, Query(description="default: 30 days before until")] = None,
    until: Annotated[Timestamp | None, Query(description="default: now")] = None,
    group_by: GroupBy = "none",
    tz: Annotated[
        str, Query(max_length=64, description="IANA zone of `day` (Asia/Shanghai)")
    ] = "UTC",
    channel: Annotated[Channel | None, Query(description="only this channel's verdicts")] = None,
    intent: Annotated[Intent | None, Query(description="only this intent's verdicts")] = None,
) -> Summary:
    """CSAT %, NPS, average CES and verdict counts of a period, by channel, intent or day.

    An issue belongs to the period in which the statement that decided its verdict was made.
    """
    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=30)
    if since >= until:
        raise InvalidInput("since must be before until", field="since")
    if until - since > timedelta(days=366 * 5):
        raise InvalidInput("the period is limited to 5 years", field="since")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {tz!r}", field="tz") from exc
    async with db.unit_of_work() as uow:
        groups = await counts_by_group(
            uow.session, since, until, group_by, tz, channel=channel, intent=intent
        )
    total = reduce(Counts.__add__, groups.values(), Counts())
    return Summary(
        since=since,
        until=until,
        group_by=group_by,
        tz=tz,
        total=Figures.model_validate(summarise(total)),
        groups=[]
        if group_by == "none"
        else [
            GroupFigures.model_validate({"key": key, **summarise(counts)})
            for key, counts in groups.items()
        ],
    )


@router.get("/satisfaction/issues/{issue_id}", response_model=IssueSatisfaction)
async def issue_satisfaction(
    issue_id: uuid.UUID, db: DatabaseDep, _: CanReadSatisfaction
) -> IssueSatisfaction:
    """One issue's current verdict (null before any) and every feedback on it, oldest first."""
    async with db.unit_of_work() as uow:
        verdict, items = await reports.issue_satisfaction(uow.session, issue_id)
    return IssueSatisfaction(
        issue_id=issue_id,
        verdict=VerdictRead.model_validate(verdict) if verdict else None,
        feedback=[FeedbackRead.model_validate(item) for item in items],
    )
