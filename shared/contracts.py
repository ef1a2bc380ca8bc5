"""Contract v1: one typed model per event type of DESIGN.md, and the CloudEvents envelope.

Events travel as CloudEvents 1.0 in structured JSON mode. Consumers ignore fields they do not
know, so that producers can add fields (changes within a type are additive only).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
TYPE_PREFIX = "kefu."

Channel = Literal["email", "phone", "chat", "web", "social", "sms", "other"]
Verdict = Literal["satisfied", "neutral", "dissatisfied"]
Intent = Literal[
    "refund",
    "delivery",
    "billing",
    "account",
    "product_quality",
    "technical",
    "response_speed",
    "cancellation",
    "complaint",
    "praise",
    "feedback",
    "inquiry",
    "other",
]
SentimentLabel = Literal["negative", "neutral", "positive"]
FollowupStatus = Literal["open", "contacted", "resolved", "dismissed"]
ProposalStatus = Literal["open", "accepted", "in_progress", "done", "rejected"]

# What people may do with a follow-up or a proposal (improvement enforces it; the console
# offers only these moves). A satisfied verdict also resolves an open follow-up.
FOLLOWUP_MOVES: dict[FollowupStatus, frozenset[FollowupStatus]] = {
    "open": frozenset({"contacted", "resolved", "dismissed"}),
    "contacted": frozenset({"resolved", "dismissed", "open"}),
    "resolved": frozenset({"open"}),
    "dismissed": frozenset({"open"}),
}
PROPOSAL_MOVES: dict[ProposalStatus, frozenset[ProposalStatus]] = {
    "open": frozenset({"accepted", "rejected"}),
    "accepted": frozenset({"in_progress", "rejected"}),
    "in_progress": frozenset({"done", "rejected"}),
    "done": frozenset(),
    "rejected": frozenset(),
}
Urgency = Literal["low", "normal", "high", "urgent"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Csat5(_Model):
    scale: Literal["csat5"]
    value: Annotated[int, Field(ge=1, le=5)]


class Nps10(_Model):
    scale: Literal["nps10"]
    value: Annotated[int, Field(ge=0, le=10)]


class Ces7(_Model):
    """Customer effort: 1 = very hard, 7 = very easy ("the company made it easy")."""

    scale: Literal["ces7"]
    value: Annotated[int, Field(ge=1, le=7)]


class Thumbs(_Model):
    scale: Literal["thumbs"]
    value: Literal["up", "down"]


class Faces3(_Model):
    """Three faces, as many helpdesk surveys ask: great, okay, not good."""

    scale: Literal["faces3"]
    value: Literal["great", "okay", "not_good"]


Rating = Annotated[Csat5 | Nps10 | Ces7 | Thumbs | Faces3, Field(discriminator="scale")]


class CustomerRef(_Model):
    customer_id: uuid.UUID
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    external_id: str | None = None


class EventData(_Model):
    """The ``data`` of one event type; ``TYPE`` is its CloudEvents type."""

    TYPE: ClassVar[str]

    def event_subject(self) -> str | None:
        issue_id = getattr(self, "issue_id", None)
        return str(issue_id) if issue_id else None


E = TypeVar("E", bound=EventData)


class IssueReceived(EventData):
    TYPE: ClassVar[str] = "kefu.issue.received"
    issue_id: uuid.UUID
    channel: Channel
    external_id: str
    customer: CustomerRef
    subject: str | None = None
    text: str
    language: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime | None = None
    received_at: datetime


class FeedbackSubmitted(EventData):
    TYPE: ClassVar[str] = "kefu.feedback.submitted"
    feedback_id: uuid.UUID
    issue_id: uuid.UUID | None = None
    customer: CustomerRef | None = None
    rating: Rating | None = None
    comment: str | None = None
    submitted_at: datetime


class Resolution(_Model):
    resolved_by: str
    summary: str
    code: str | None = None


class IssueResolved(EventData):
    TYPE: ClassVar[str] = "kefu.issue.resolved"
    issue_id: uuid.UUID
    customer: CustomerRef
    resolved_at: datetime
    resolution: Resolution


class Sentiment(_Model):
    label: SentimentLabel
    score: Annotated[float, Field(ge=-1, le=1)]


class Explanation(_Model):
    """How sure the analyzer is of one output, and the words or rules that decided it."""

    confidence: Annotated[float, Field(ge=0, le=1)]
    evidence: list[str] = Field(default_factory=list)


NeedSource = Literal["stated", "implied"]


class Analysis(_Model):
    language: str
    # The customer's request in their words (stated), or what the problem asks for (implied);
    # need_key is its normalised action:object (docs/need-keys.md), the same for both.
    need: str | None = None
    need_source: NeedSource | None = None
    need_key: str | None = None
    intent: Intent
    secondary: Intent | None = None
    sentiment: Sentiment
    urgency: Urgency
    keywords: list[str] = Field(default_factory=list)
    # Keyed by output: language, need, intent, sentiment, urgency, keywords.
    explanations: dict[str, Explanation] = Field(default_factory=dict)
    # True when the analysis could not read all of the text or do every step in its time
    # budget; partial_reason says what was left out.
    partial: bool = False
    partial_reason: str | None = None


class IssueAnalyzed(EventData):
    TYPE: ClassVar[str] = "kefu.issue.analyzed"
    issue_id: uuid.UUID
    channel: Channel
    customer: CustomerRef
    subject: str | None = None
    text: str
    analysis: Analysis
    analyzer_version: str
    analyzed_at: datetime


class PreviousVerdict(_Model):
    verdict: Verdict
    score: float
    source: Literal["explicit", "implicit"]
    basis: str


class SatisfactionEvaluated(EventData):
    TYPE: ClassVar[str] = "kefu.satisfaction.evaluated"
    issue_id: uuid.UUID | None = None
    customer: CustomerRef | None = None
    score: Annotated[float, Field(ge=0, le=1)]
    verdict: Verdict
    source: Literal["explicit", "implicit"]
    basis: str
    replaces: PreviousVerdict | None = None
    evaluated_at: datetime


class _Followup(EventData):
    followup_id: uuid.UUID
    issue_id: uuid.UUID | None = None
    customer: CustomerRef | None = None
    channel: Channel | None = None
    need: str | None = None
    intent: Intent | None = None
    verdict: Verdict
    reason: str
    summary: str


class FollowupRequired(_Followup):
    """A customer who is not satisfied: someone should get back to them."""

    TYPE: ClassVar[str] = "kefu.improvement.followup_required"
    status: FollowupStatus = "open"
    created_at: datetime


class FollowupUpdated(_Followup):
    """A follow-up changed: its status (by a person, or closed by a satisfied verdict), its
    verdict, or what is known of the need."""

    TYPE: ClassVar[str] = "kefu.improvement.followup_updated"
    status: FollowupStatus
    previous_status: FollowupStatus
    change: Literal["status", "note", "verdict", "analysis", "context", "satisfied", "reopened"]
    by: str | None = None
    note: str | None = None
    updated_at: datetime


class Evidence(_Model):
    issues: int
    dissatisfied: int
    csat: float | None = None
    trend: float | None = None
    rated: int = 0
    satisfied: int = 0
    dissatisfied_share: float | None = None
    baseline_issues: int = 0
    baseline_csat: float | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    sample_issue_ids: list[uuid.UUID] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)


class ImprovementProposed(EventData):
    TYPE: ClassVar[str] = "kefu.improvement.proposed"
    proposal_id: uuid.UUID
    theme: str
    theme_kind: Literal["intent", "need"] | None = None
    theme_key: str | None = None
    evidence: Evidence
    recommendation: str
    priority: float
    status: ProposalStatus = "open"
    opened_at: datetime | None = None


class ImprovementUpdated(ImprovementProposed):
    """An open proposal got new evidence, or people moved it along."""

    TYPE: ClassVar[str] = "kefu.improvement.updated"
    previous_status: ProposalStatus
    change: Literal["evidence", "status", "note"]
    by: str | None = None
    note: str | None = None
    updated_at: datetime


class CustomerErased(EventData):
    """A customer asked to be forgotten: every service deletes or anonymises what it holds."""

    TYPE: ClassVar[str] = "kefu.customer.erased"
    customer_id: uuid.UUID
    erased_at: datetime

    def event_subject(self) -> str | None:
        return str(self.customer_id)


EVENT_TYPES: dict[str, type[EventData]] = {
    model.TYPE: model
    for model in (
        IssueReceived,
        FeedbackSubmitted,
        IssueResolved,
        IssueAnalyzed,
        SatisfactionEvaluated,
        FollowupRequired,
        FollowupUpdated,
        ImprovementProposed,
        ImprovementUpdated,
        CustomerErased,
    )
}


# Who publishes each type (DESIGN.md's event table): consumers refuse it from anyone else.
PUBLISHERS: dict[str, str] = {
    IssueReceived.TYPE: "intake",
    FeedbackSubmitted.TYPE: "intake",
    IssueResolved.TYPE: "intake",
    IssueAnalyzed.TYPE: "need_analyzer",
    SatisfactionEvaluated.TYPE: "feedback",
    FollowupRequired.TYPE: "improvement",
    FollowupUpdated.TYPE: "improvement",
    ImprovementProposed.TYPE: "improvement",
    ImprovementUpdated.TYPE: "improvement",
    CustomerErased.TYPE: "intake",
}

# What an erased customer's events keep of their words: nothing (times, ratings, intents and
# needs' themes stay, so statistics still count them).
ERASED_TEXT = "[erased]"
_ERASED_FIELDS: dict[str, Any] = {
    "text": ERASED_TEXT,
    "subject": None,
    "comment": None,
    "note": None,
    "basis": ERASED_TEXT,
    "metadata": {},
}


def customer_of(data: EventData) -> uuid.UUID | None:
    customer = getattr(data, "customer", None)
    return customer.customer_id if isinstance(customer, CustomerRef) else None


def without_personal_data(data: E) -> E:
    """The event as it may be kept once its customer is erased: the customer's id alone, and
    none of their words."""
    update: dict[str, Any] = {
        name: value for name, value in _ERASED_FIELDS.items() if name in type(data).model_fields
    }
    customer_id = customer_of(data)
    if customer_id is not None:
        update["customer"] = CustomerRef(customer_id=customer_id)
    if isinstance(data, IssueAnalyzed):
        update["analysis"] = data.analysis.model_copy(update={"keywords": []})
    return data.model_copy(update=update)


def service_source(service: str) -> str:
    """The CloudEvents ``source`` of every event a service publishes."""
    return f"/kefu/{service}"


class CloudEvent(BaseModel):
    """CloudEvents 1.0 envelope, structured JSON mode."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    source: str
    type: str
    subject: str | None = None
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    # The distributed-tracing extension: the W3C trace context of the span that emitted the
    # event, when Kefu traces (shared/tracing.py); null otherwise. Never checked: a bad value
    # only starts a new trace.
    traceparent: str | None = None


class UndecodableEvent(ValueError):
    """A message that no retry can fix: it goes straight to the dead-letter queue."""


def routing_key(event_type: str) -> str:
    return event_type.removeprefix(TYPE_PREFIX)


def new_event(source: str, data: EventData, traceparent: str | None = None) -> CloudEvent:
    return CloudEvent(
        id=uuid.uuid4(),
        source=source,
        type=data.TYPE,
        subject=data.event_subject(),
        time=datetime.now(UTC),
        data=data.model_dump(mode="json"),
        traceparent=traceparent,
    )


def decode_event(body: bytes) -> tuple[CloudEvent, EventData]:
    try:
        envelope = CloudEvent.model_validate_json(body)
    except ValidationError as exc:
        raise UndecodableEvent(f"not a CloudEvent: {exc.errors()[:3]}") from exc
    model = EVENT_TYPES.get(envelope.type)
    if model is None:
        raise UndecodableEvent(f"unknown event type {envelope.type!r}")
    try:
        return envelope, model.model_validate(envelope.data)
    except ValidationError as exc:
        raise UndecodableEvent(f"invalid {envelope.type} data: {exc.errors()[:3]}") from exc
