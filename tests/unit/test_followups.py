"""improvement's decisions on follow-ups, folded from events without any I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.improvement.domain.followups import Batch, Followup, Issue, move, proposal_change
from shared.contracts import (
    Analysis,
    CustomerRef,
    FollowupRequired,
    FollowupUpdated,
    IssueAnalyzed,
    IssueReceived,
    SatisfactionEvaluated,
    Sentiment,
)
from shared.errors import Conflict

T0 = datetime(2026, 11, 30, 9, tzinfo=UTC)
ISSUE = uuid.UUID(int=7)
LI_SI = CustomerRef(customer_id=uuid.UUID(int=1), name="李四")


def received(at: datetime = T0) -> IssueReceived:
    return IssueReceived(
        issue_id=ISSUE, channel="chat", external_id="x", customer=LI_SI, text="…", received_at=at
    )


def analyzed(intent: str = "delivery", need: str = "更快的发货", minutes: int = 1) -> IssueAnalyzed:
    return IssueAnalyzed(
        issue_id=ISSUE,
        channel="chat",
        customer=LI_SI,
        text="…",
        analysis=Analysis(
            language="zh",
            need=need,
            intent=intent,
            urgency="normal",
            sentiment=Sentiment(label="neutral", score=0),
        ),
        analyzer_version="test",
        analyzed_at=T0 + timedelta(minutes=minutes),
    )


def verdict(value: str, minutes: int, issue_id: uuid.UUID | None = ISSUE) -> SatisfactionEvaluated:
    return SatisfactionEvaluated(
        issue_id=issue_id,
        customer=LI_SI,
        score=0.5,
        verdict=value,
        source="explicit",
        basis="rating",
        evaluated_at=T0 + timedelta(minutes=minutes),
    )


def batch(**known: object) -> Batch:
    ids = iter(uuid.UUID(int=100 + n) for n in range(100))
    return Batch(
        issues=dict(known.get("issues", {})),  # type: ignore[call-overload]
        followups=dict(known.get("followups", {})),  # type: ignore[call-overload]
        now=T0 + timedelta(hours=1),
        new_id=lambda: next(ids),
    )


def kinds(b: Batch) -> list[str]:
    return [
        "required" if isinstance(e, FollowupRequired) else e.change  # type: ignore[attr-defined]
        for e in b.events
    ]


def test_several_events_of_one_issue_fold_in_order() -> None:
    b = batch()
    b.received(received())
    b.analyzed(analyzed())
    b.evaluated(verdict("neutral", 2))
    b.evaluated(verdict("dissatisfied", 3))
    (opened,) = b.opened
    assert (opened.status, opened.verdict, opened.need, opened.channel) == (
        "open",
        "dissatisfied",
        "更快的发货",
        "chat",
    )
    assert opened.summary == "改进企业产品和服务，满足李四的需求"
    assert kinds(b) == ["required", "verdict"]
    assert not b.followups_changed  # opened in this batch: inserted once, in its final state
    assert b.themes == {("intent", "delivery"), ("need", "更快的发货")}
    assert b.issues_changed[ISSUE].verdict == "dissatisfied"


def test_late_older_verdicts_and_analyses_change_nothing() -> None:
    b = batch()
    b.analyzed(analyzed(minutes=10))
    b.evaluated(verdict("dissatisfied", 10))
    b.analyzed(analyzed(intent="billing", minutes=5))
    b.evaluated(verdict("satisfied", 5))
    issue = b.issues[ISSUE]
    assert (issue.intent, issue.verdict) == ("delivery", "dissatisfied")
    assert b.opened[0].status == "open" and kinds(b) == ["required"]


def test_satisfied_resolves_and_unhappy_reopens() -> None:
    b = batch()
    b.evaluated(verdict("neutral", 1))
    b.evaluated(verdict("satisfied", 2))
    assert b.opened[0].status == "resolved"
    b.evaluated(verdict("dissatisfied", 3))
    assert b.opened[0].status == "open"
    assert kinds(b) == ["required", "satisfied", "reopened"]
    updated = [e for e in b.events if isinstance(e, FollowupUpdated)]
    assert [(e.previous_status, e.status, e.by) for e in updated] == [
        ("open", "resolved", "kefu"),
        ("resolved", "open", "kefu"),
    ]


def test_context_arriving_after_the_follow_up_fills_it_in() -> None:
    existing = Followup(
        id=uuid.UUID(int=9),
        issue_id=ISSUE,
        customer=LI_SI.model_dump(mode="json"),
        channel=None,
        need=None,
        intent=None,
        verdict="neutral",
        reason="customer is neutral (rating)",
        summary="…",
        status="contacted",
        note=None,
        created_at=T0,
        updated_at=T0,
    )
    b = batch(issues={ISSUE: Issue(ISSUE, verdict="neutral")}, followups={ISSUE: existing})
    b.analyzed(analyzed())
    b.received(received())
    b.received(received())  # a second copy: the channel is already known
    assert (existing.need, existing.intent, existing.channel) == ("更快的发货", "delivery", "chat")
    assert kinds(b) == ["analysis", "context"]
    assert list(b.followups_changed) == [existing.id] and not b.opened


def test_a_reanalysis_marks_the_theme_it_leaves() -> None:
    known = Issue(ISSUE, intent="delivery", need="x", need_key="x", analyzed_at=T0)
    b = batch(issues={ISSUE: known})
    b.analyzed(analyzed(intent="billing", need="y", minutes=5))
    assert b.themes == {("intent", "delivery"), ("need", "x"), ("intent", "billing"), ("need", "y")}


def test_a_need_theme_is_the_analyzers_need_key_when_it_has_one() -> None:
    """Stated and implied needs of one meaning share the analyzer's key, whatever the words."""
    b = batch()
    event = analyzed(need="回复快一点")
    keyed = event.analysis.model_copy(update={"need_key": "speed_up:response"})
    b.analyzed(event.model_copy(update={"analysis": keyed}))
    assert ("need", "speed_up:response") in b.themes
    older = batch()
    older.analyzed(analyzed(need="回复快一点"))  # an analysis from before keys
    assert ("need", "回复快一点") in older.themes


def test_customer_level_feedback_gets_a_follow_up_of_its_own_each_time() -> None:
    b = batch()
    b.evaluated(verdict("dissatisfied", 1, issue_id=None))
    b.evaluated(verdict("dissatisfied", 2, issue_id=None))
    assert len(b.opened) == 2 and not b.issues_changed and not b.themes


def test_people_move_follow_ups_and_proposals_only_along_the_allowed_moves() -> None:
    b = batch()
    b.evaluated(verdict("neutral", 1))
    followup = b.opened[0]
    event = move(followup, "contacted", by="agent-7", note="called", now=T0)
    assert event is not None and (event.change, event.previous_status) == ("status", "open")
    assert move(followup, "contacted", by="agent-7", note=None, now=T0) is None
    assert move(followup, "contacted", by="agent-7", note="again", now=T0) is not None
    assert followup.note == "again"
    move(followup, "resolved", by="agent-7", note=None, now=T0)
    with pytest.raises(Conflict) as refused:
        move(followup, "contacted", by="agent-7", note=None, now=T0)
    assert refused.value.field == "status"
    assert proposal_change("open", "accepted", None) == "status"
    assert proposal_change("open", "open", "n") == "note"
    assert proposal_change("open", "open", None) is None
    with pytest.raises(Conflict):
        proposal_change("done", "open", None)
