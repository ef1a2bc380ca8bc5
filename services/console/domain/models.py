"""What the console reads from the services, as it reads it: each model ignores fields it does
not know, so a service may add to its answers without breaking the console."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import Analysis, CustomerRef, Evidence

T = TypeVar("T")


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class VerdictCounts(_Read):
    satisfied: int = 0
    neutral: int = 0
    dissatisfied: int = 0


class Nps(_Read):
    score: float | None = None
    answers: int = 0


class Ces(_Read):
    average: float | None = None
    answers: int = 0


class Figures(_Read):
    rated: int = 0
    verdicts: VerdictCounts = VerdictCounts()
    csat_percent: float | None = None
    nps: Nps = Nps()
    ces: Ces = Ces()


class DayFigures(Figures):
    key: date


class Summary(_Read):
    total: Figures
    groups: list[DayFigures] = Field(default_factory=list)


class Example(_Read):
    issue_id: uuid.UUID
    received_at: datetime
    text: str


class NeedCount(_Read):
    need: str
    count: int
    intents: list[str] = Field(default_factory=list)
    previous_count: int | None = None
    examples: list[Example] = Field(default_factory=list)


class IntentCount(_Read):
    intent: str
    count: int
    previous_count: int | None = None
    examples: list[Example] = Field(default_factory=list)


class TopNeeds(_Read):
    issues: int
    needs: list[NeedCount]
    intents: list[IntentCount]


class Followup(_Read):
    followup_id: uuid.UUID
    issue_id: uuid.UUID | None = None
    customer: CustomerRef | None = None
    channel: str | None = None
    need: str | None = None
    intent: str | None = None
    verdict: str
    reason: str
    summary: str
    status: str
    note: str | None = None
    created_at: datetime
    updated_at: datetime


class Proposal(_Read):
    proposal_id: uuid.UUID
    theme: str
    theme_kind: str
    theme_key: str
    status: str
    evidence: Evidence
    recommendation: str
    priority: float
    opened_at: datetime
    updated_at: datetime


class Page(_Read, Generic[T]):
    """One page of a list. ``next`` is opaque: the adapter knows whether the service pages by
    offset or by cursor."""

    items: list[T]
    total: int | None = None
    next: str | None = None


class Issue(_Read):
    issue_id: uuid.UUID
    channel: str
    customer: CustomerRef
    subject: str | None = None
    text: str
    received_at: datetime
    status: str
    resolved_at: datetime | None = None
    resolution: dict[str, Any] | None = None


class StoredAnalysis(_Read):
    analysis: Analysis
    analyzer_version: str
    analyzed_at: datetime


class Verdict(_Read):
    verdict: str
    score: float
    source: str
    basis: str
    decided_at: datetime


class Feedback(_Read):
    feedback_id: uuid.UUID
    rating: dict[str, Any] | None = None
    comment: str | None = None
    submitted_at: datetime


class IssueSatisfaction(_Read):
    verdict: Verdict | None = None
    feedback: list[Feedback] = Field(default_factory=list)
