"""The seed's last step: improve product and service for every customer who is not satisfied."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from services.improvement.domain.themes import ThemeKind, need_key
from shared.contracts import (
    FOLLOWUP_MOVES,
    PROPOSAL_MOVES,
    Channel,
    CustomerRef,
    EventData,
    FollowupRequired,
    FollowupStatus,
    FollowupUpdated,
    Intent,
    IssueAnalyzed,
    IssueReceived,
    ProposalStatus,
    SatisfactionEvaluated,
    Verdict,
)
from shared.errors import Conflict

_CJK = re.compile(r"[\u3400-\u9fff]")

ACTIVE_PROPOSAL: frozenset[ProposalStatus] = frozenset({"open", "accepted", "in_progress"})


def proposal_change(
    current: ProposalStatus, status: ProposalStatus, note: str | None
) -> Literal["status", "note"] | None:
    """What a person's move of a proposal changes; None when nothing does."""
    if status == current:
        return "note" if note is not None else None
    if status not in PROPOSAL_MOVES[current]:
        raise Conflict(f"a proposal cannot go from {current} to {status}", field="status")
    return "status"


def needs_followup(verdict: Verdict) -> bool:
    """Only "satisfied" is satisfied (the seed): neutral and dissatisfied both get a follow-up."""
    return verdict != "satisfied"


def summary(name: str | None, language: str | None) -> str:
    """The seed's sentence, in the customer's language when it is known to be Chinese."""
    chinese = (
        language == "zh" if language and language != "und" else bool(name and _CJK.search(name))
    )
    if chinese:
        return f"改进企业产品和服务，满足{name or '该客户'}的需求"
    return f"Improve our product and service to meet the needs of {name or 'this customer'}"


Theme = tuple[ThemeKind, str]
FollowupChange = Literal[
    "status", "note", "verdict", "analysis", "context", "satisfied", "reopened"
]


@dataclass
class Issue:
    """What improvement heard about one issue, from whichever event arrived first."""

    issue_id: uuid.UUID
    channel: Channel | None = None
    customer: dict[str, Any] | None = None
    received_at: datetime | None = None
    language: str | None = None
    need: str | None = None
    need_key: str | None = None
    intent: Intent | None = None
    # When the analysis and the verdict were made: an older one arriving late is ignored.
    analyzed_at: datetime | None = None
    verdict: Verdict | None = None
    verdict_at: datetime | None = None

    def themes(self) -> set[Theme]:
        found: set[Theme] = set()
        if self.intent:
            found.add(("intent", self.intent))
        if self.need_key:
            found.add(("need", self.need_key))
        return found


@dataclass
class Followup:
    id: uuid.UUID
    issue_id: uuid.UUID | None
    customer: dict[str, Any] | None
    channel: Channel | None
    need: str | None
    intent: Intent | None
    verdict: Verdict
    reason: str
    summary: str
    status: FollowupStatus
    note: str | None
    created_at: datetime
    updated_at: datetime

    def updated(
        self,
        previous_status: FollowupStatus,
        change: FollowupChange,
        by: str | None = None,
        note: str | None = None,
    ) -> FollowupUpdated:
        return FollowupUpdated(
            followup_id=self.id,
            issue_id=self.issue_id,
            customer=CustomerRef.model_validate(self.customer) if self.customer else None,
            channel=self.channel,
            need=self.need,
            intent=self.intent,
            verdict=self.verdict,
            reason=self.reason,
            summary=self.summary,
            status=self.status,
            updated_at=self.updated_at,
            previous_status=previous_status,
            change=change,
            by=by,
            note=note,
        )


def move(
    followup: Followup, status: FollowupStatus, *, by: str, note: str | None, now: datetime
) -> FollowupUpdated | None:
    """A person moves a follow-up (or adds a note); returns the event, None if nothing changed."""
    previous = followup.status
    if status == previous:
        if note is None:
            return None
        change: FollowupChange = "note"  # same status, a new note: an event like any change
    elif status in FOLLOWUP_MOVES[previous]:
        change = "status"
    else:
        raise Conflict(f"a follow-up cannot go from {previous} to {status}", field="status")
    followup.status = status
    if note is not None:
        followup.note = note
    followup.updated_at = now
    return followup.updated(previous, change, by=by, note=note)


@dataclass
class Batch:
    """What a batch of events does to its issues and their follow-ups, decided without I/O.

    Load the issues and follow-ups the batch names, fold the events in order (several may
    concern one issue), then write what changed: ``issues_changed``, ``opened``,
    ``followups_changed``, the ``events`` to emit, the ``themes`` whose statistics moved.
    """

    issues: dict[uuid.UUID, Issue]
    followups: dict[uuid.UUID, Followup]  # by issue id
    now: datetime
    new_id: Callable[[], uuid.UUID] = uuid.uuid4
    issues_changed: dict[uuid.UUID, Issue] = field(default_factory=dict)
    opened: list[Followup] = field(default_factory=list)
    followups_changed: dict[uuid.UUID, Followup] = field(default_factory=dict)  # by id
    events: list[EventData] = field(default_factory=list)
    themes: set[Theme] = field(default_factory=set)

    def received(self, event: IssueReceived) -> None:
        issue = self._issue(event.issue_id)
        issue.channel = event.channel
        issue.customer = event.customer.model_dump(mode="json")
        issue.received_at = event.received_at
        followup = self.followups.get(event.issue_id)
        if followup is not None and followup.channel is None:
            self._update(followup, "context", channel=event.channel)
        self.themes |= issue.themes()  # the window is measured in received_at

    def analyzed(self, event: IssueAnalyzed) -> None:
        before = self.issues.get(event.issue_id)
        if before is not None and _later(before.analyzed_at, event.analyzed_at):
            return  # an older analysis (a redelivery after a re-analysis) changes nothing
        # A re-analysis can move the issue out of its old themes: those changed too.
        self.themes |= before.themes() if before is not None else set()
        analysis = event.analysis
        issue = self._issue(event.issue_id)
        issue.language = analysis.language
        issue.need = analysis.need
        # The analyzer's action:object key groups needs by meaning; older analyses have none.
        issue.need_key = analysis.need_key or need_key(analysis.need)
        issue.intent = analysis.intent
        issue.analyzed_at = event.analyzed_at
        followup = self.followups.get(event.issue_id)
        if followup is not None and (followup.need, followup.intent) != (
            analysis.need,
            analysis.intent,
        ):
            self._update(followup, "analysis", need=analysis.need, intent=analysis.intent)
        self.themes |= issue.themes()

    def evaluated(self, event: SatisfactionEvaluated) -> None:
        """Never two follow-ups for one issue: a new verdict updates, reopens or closes it."""
        issue = None
        if event.issue_id is not None:
            known = self.issues.get(event.issue_id)
            if known is not None and _later(known.verdict_at, event.evaluated_at):
                return  # an older verdict arriving late changes nothing
            issue = self._issue(event.issue_id)
            issue.verdict = event.verdict
            issue.verdict_at = event.evaluated_at
            self.themes |= issue.themes()
        followup = self.followups.get(event.issue_id) if event.issue_id else None
        if not needs_followup(event.verdict):
            if followup is not None and followup.status in ("open", "contacted"):
                reason = f"customer is satisfied ({event.basis})"
                self._update(
                    followup,
                    "satisfied",
                    by="kefu",
                    status="resolved",
                    verdict=event.verdict,
                    reason=reason,
                )
            return
        reason = f"customer is {event.verdict} ({event.basis})"
        if followup is None:
            self._open(event, issue, reason)
        elif followup.status in ("resolved", "dismissed"):
            self._update(
                followup, "reopened", by="kefu", status="open", verdict=event.verdict, reason=reason
            )
        elif (followup.verdict, followup.reason) != (event.verdict, reason):
            self._update(followup, "verdict", verdict=event.verdict, reason=reason)

    def _issue(self, issue_id: uuid.UUID) -> Issue:
        issue = self.issues.get(issue_id)
        if issue is None:
            issue = self.issues[issue_id] = Issue(issue_id)
        self.issues_changed[issue_id] = issue
        return issue

    def _open(self, event: SatisfactionEvaluated, context: Issue | None, reason: str) -> None:
        name = event.customer.name if event.customer else None
        followup = Followup(
            id=self.new_id(),
            issue_id=event.issue_id,
            customer=event.customer.model_dump(mode="json") if event.customer else None,
            channel=context.channel if context else None,
            need=context.need if context else None,
            intent=context.intent if context else None,
            verdict=event.verdict,
            reason=reason,
            summary=summary(name, context.language if context else None),
            status="open",
            note=None,
            created_at=self.now,
            updated_at=self.now,
        )
        self.opened.append(followup)
        if event.issue_id is not None:
            self.followups[event.issue_id] = followup
        self.events.append(
            FollowupRequired(
                followup_id=followup.id,
                issue_id=followup.issue_id,
                customer=event.customer,
                channel=followup.channel,
                need=followup.need,
                intent=followup.intent,
                verdict=followup.verdict,
                reason=followup.reason,
                summary=followup.summary,
                created_at=self.now,
            )
        )

    def _update(
        self, followup: Followup, change: FollowupChange, by: str | None = None, **values: Any
    ) -> None:
        previous = followup.status
        for name, value in values.items():
            setattr(followup, name, value)
        followup.updated_at = self.now
        if all(followup is not new for new in self.opened):
            self.followups_changed[followup.id] = followup
        self.events.append(followup.updated(previous, change, by=by))


def _later(known: datetime | None, arriving: datetime) -> bool:
    return known is not None and known > arriving
