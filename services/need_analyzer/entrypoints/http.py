"""need_analyzer's read API: one issue's analysis, and the top needs and intents of a period."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from services.need_analyzer.adapters import repository as repo
from services.need_analyzer.domain.needs import rank
from shared.auth import Principal, require
from shared.contracts import Analysis, Channel, Explanation, Intent, Sentiment
from shared.errors import InvalidInput, NotFound
from shared.http import DatabaseDep
from shared.validation import Timestamp

router = APIRouter(prefix="/v1")
CanReadAnalyses = Annotated[Principal, Depends(require("analyses:read"))]


class StoredAnalysis(BaseModel):
    issue_id: uuid.UUID
    channel: Channel
    received_at: datetime
    analysis: Analysis
    analyzer_version: str
    analyzed_at: datetime


class Example(BaseModel):
    issue_id: uuid.UUID
    received_at: datetime
    language: str
    text: str


class NeedCount(BaseModel):
    need: str = Field(description="the wording customers use most for this need")
    need_key: str | None = Field(
        description="action:object (docs/need-keys.md); null for analyses made before keys"
    )
    count: int
    intents: list[Intent]
    # With previous=true: the count in the period of the same length just before.
    previous_count: int | None = None
    examples: list[Example] = []


class IntentCount(BaseModel):
    intent: Intent
    count: int
    previous_count: int | None = None
    examples: list[Example] = []


class TopNeeds(BaseModel):
    since: datetime
    until: datetime
    issues: int
    needs: list[NeedCount]
    intents: list[IntentCount]


@router.get("/analyses/{issue_id}", response_model=StoredAnalysis)
async def get_analysis(issue_id: uuid.UUID, db: DatabaseDep, _: CanReadAnalyses) -> StoredAnalysis:
    async with db.unit_of_work() as uow:
        row = await repo.get(uow.session, issue_id)
    if row is None:
        raise NotFound(f"no analysis of issue {issue_id}", field="issue_id")
    return StoredAnalysis(
        issue_id=row.issue_id,
        channel=row.channel,
        received_at=row.received_at,
        analysis=Analysis(
            language=row.language,
            need=row.need,
            need_source=row.need_source,
            need_key=row.need_key,
            intent=row.intent,
            secondary=row.secondary,
            sentiment=Sentiment(label=row.sentiment_label, score=row.sentiment_score),
            urgency=row.urgency,
            keywords=row.keywords,
            partial=row.partial_reason is not None,
            partial_reason=row.partial_reason,
            explanations={
                name: Explanation.model_validate(value)
                for name, value in (row.explanations or {}).items()
            },
        ),
        analyzer_version=row.analyzer_version,
        analyzed_at=row.analyzed_at,
    )


@router.get("/needs/top", response_model=TopNeeds)
async def top_needs(
    db: DatabaseDep,
    _: CanReadAnalyses,
    since: Annotated[Timestamp | None, Query(description="default: 30 days ago")] = None,
    until: Annotated[Timestamp | None, Query(description="default: now")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    examples: Annotated[
        int, Query(ge=0, le=5, description="the latest issues of each need and intent")
    ] = 0,
    previous: Annotated[
        bool, Query(description="also count each in the period of the same length before")
    ] = False,
) -> TopNeeds:
    """The most frequent needs of a period, grouped by need key (stated and implied needs of
    the same meaning count as one), and its most frequent intents; optionally with their counts
    in the period before and example issues (text cut to 280 characters)."""
    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=30)
    if since >= until:
        raise InvalidInput("since must be before until", field="since")
    async with db.unit_of_work() as uow:
        pairs = await repo.pair_counts(
            uow.session, since, until, previous_since=since - (until - since) if previous else None
        )
        top = rank(pairs, limit)
        groups = [row.key for row in top.needs]
        wordings = await repo.need_wordings(uow.session, since, until, groups)
        samples = {
            by: await repo.examples_of(
                uow.session, since, until, by=by, keys=keys, per_key=examples, chars=280
            )
            for by, keys in (("need", groups), ("intent", [row.key for row in top.intents]))
        }

    def shown(by: str, key: str) -> list[Example]:
        return [
            Example.model_validate(row, from_attributes=True) for row in samples[by].get(key, [])
        ]

    return TopNeeds(
        since=since,
        until=until,
        issues=top.issues,
        needs=[
            NeedCount(
                need=wordings.get(row.key, (row.key, None))[0],
                need_key=wordings.get(row.key, (row.key, None))[1],
                count=row.count,
                intents=row.intents,
                previous_count=row.previous if previous else None,
                examples=shown("need", row.key),
            )
            for row in top.needs
        ],
        intents=[
            IntentCount(
                intent=row.key,
                count=row.count,
                previous_count=row.previous if previous else None,
                examples=shown("intent", row.key),
            )
            for row in top.intents
        ],
    )
